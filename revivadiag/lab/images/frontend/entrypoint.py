#!/usr/bin/python3
"""Frontend entrypoint: render nginx's config from the environment, then run nginx.

current (PROXY_MODE=current): BACKEND_HOST (a container name) is written into proxy_pass;
nginx resolves it once at start, and this process execs nginx (the seed's behaviour).

target (PROXY_MODE=target): the backend comes from BACKEND_INTERNAL_URL. Debian bookworm's
nginx 1.22 cannot re-resolve a name inside an ``upstream`` block (that needs 1.27.3's
``resolve`` parameter), so this process stays as PID 1: it asks Docker's resolver
(127.0.0.11) for the backend's address, writes ``/run/nginx/upstream.conf`` with that IP and
``keepalive 32``, starts nginx, and every RESOLVE_INTERVAL_S seconds asks again; when the
address changes it rewrites the upstream and sends nginx SIGHUP (a graceful reload). Until
the name resolves, the upstream points at 127.0.0.1:9 (requests get 502).
"""

import os
import re
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import dns.exception
import dns.resolver

TEMPLATES = "/etc/revivadiag"
CONF = "/run/nginx/nginx.conf"
UPSTREAM = "/run/nginx/upstream.conf"
PLACEHOLDER = "127.0.0.1:9"
_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render(text, values):
    """Replace ${NAME} (uppercase names only; nginx's own $vars are lowercase)."""
    def sub(match):
        name = match.group(1)
        if name not in values:
            raise SystemExit(f"frontend: template needs {name}, which is not set")
        return values[name]
    return _VAR.sub(sub, text)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def upstream_conf(address):
    return (
        "upstream backend {\n"
        f"    server {address} max_fails=0;\n"
        "    keepalive 32;\n"
        "    keepalive_timeout 60s;\n"
        "}\n"
    )


def resolve(name, resolver):
    """The first IPv4 address of ``name`` at Docker's resolver, or None."""
    try:
        answer = resolver.resolve(name, "A", lifetime=2.0)
    except (dns.exception.DNSException, OSError):
        return None
    addresses = sorted(r.address for r in answer)
    return addresses[0] if addresses else None


def render_page(env, mode):
    api_url = env.get("NEXT_PUBLIC_API_URL", "")
    values = {
        "APP_VARIANT": mode,
        "NEXT_PUBLIC_API_URL": api_url,
        "API_URL_SHOWN": api_url or "(relative: same origin)",
    }
    with open("/srv/www/index.html.tmpl", encoding="utf-8") as fh:
        write("/srv/www/index.html", render(fh.read(), values))


def render_conf(env, mode):
    values = {
        "BACKEND_HOST": env.get("BACKEND_HOST", ""),
        "RATE_LIMIT_RPS": env.get("RATE_LIMIT_RPS", "30"),
        "RATE_LIMIT_BURST": env.get("RATE_LIMIT_BURST", "30"),
    }
    with open(f"{TEMPLATES}/nginx-{mode}.conf.tmpl", encoding="utf-8") as fh:
        write(CONF, render(fh.read(), values))


def run_current():
    os.execv("/usr/sbin/nginx", ["nginx", "-c", CONF, "-g", "daemon off;"])


def run_target(env):
    url = urlsplit(env["BACKEND_INTERNAL_URL"])
    host, port = url.hostname, url.port or 80
    interval = float(env.get("RESOLVE_INTERVAL_S", "5"))
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [env.get("DNS_RESOLVER", "127.0.0.11")]
    current = resolve(host, resolver)
    write(UPSTREAM, upstream_conf(f"{current}:{port}" if current else PLACEHOLDER))
    nginx = subprocess.Popen(["/usr/sbin/nginx", "-c", CONF, "-g", "daemon off;"])

    def forward(signum, _frame):
        nginx.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, forward)
    print(f"frontend: upstream {host} -> {current or 'unresolved'}", flush=True)
    while True:
        # poll nginx often, resolve every `interval` seconds (1 s while unresolved)
        deadline = time.monotonic() + (interval if current else 1.0)
        while time.monotonic() < deadline:
            if nginx.poll() is not None:
                sys.exit(nginx.returncode)
            time.sleep(0.2)
        address = resolve(host, resolver)
        if address and address != current:
            print(f"frontend: {host} moved {current} -> {address}; reloading nginx", flush=True)
            write(UPSTREAM, upstream_conf(f"{address}:{port}"))
            nginx.send_signal(signal.SIGHUP)
            current = address


def main():
    env = dict(os.environ)
    mode = env.get("PROXY_MODE", "current")
    if mode not in ("current", "target"):
        raise SystemExit(f"frontend: PROXY_MODE must be current or target, not {mode!r}")
    os.makedirs("/run/nginx", exist_ok=True)
    render_page(env, mode)
    render_conf(env, mode)
    if mode == "current":
        run_current()
    else:
        run_target(env)


if __name__ == "__main__":
    main()
