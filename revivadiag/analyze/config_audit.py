"""Config audit per environment (development / production): one ``checks`` row per subject.

Static checks read snapshot frames (``containers``, ``env``, ``ports``, ``dns``,
``endpoints``, ``reachability``); live checks (:mod:`proxy_audit`) judge what
:func:`revivadiag.collect.live.gather` observed through the proxy. All judging is pure.

>>> import pandas as pd
>>> from revivadiag import schemas
>>> env = schemas.to_frame("env", [{"container": "shop-web-1", "service": "web",
...     "key": "NEXT_PUBLIC_API_URL", "value": "http://localhost:8000", "is_sensitive": False}])
>>> rows = check_client_env(env, internal_names=[], internal_ports={8000})
>>> rows[0]["status"], rows[0]["subject"]
('fail', 'shop-web-1 NEXT_PUBLIC_API_URL')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from revivadiag import schemas, seed
from revivadiag.analyze import proxy_audit, urls
from revivadiag.analyze.checks import Row, row
from revivadiag.analyze.policy import Policy
from revivadiag.analyze.source_audit import code_part
from revivadiag.collect.live_facts import LiveFacts
from revivadiag.errors import ParameterError
from revivadiag.redact import redact_url

ENVIRONMENTS = ("development", "production")

#: environment variables browsers see (Next.js, Vite, CRA conventions)
CLIENT_PREFIXES = ("NEXT_PUBLIC_", "VITE_", "REACT_APP_", "PUBLIC_")
#: server-side variables that name another service
INTERNAL_KEYS = frozenset({
    "BACKEND_INTERNAL_URL", "DATABASE_INTERNAL_HOST", "REDIS_INTERNAL_URL", "BACKEND_HOST",
    "DATABASE_HOST", "REDIS_HOST", "DB_HOST", "POSTGRES_HOST", "PGHOST", "REDIS_URL",
    "DATABASE_URL", "BACKEND_URL",
})
#: frontend -> database/redis probe outcome -> check status (timeout/unresolvable: pass)
ISOLATION_STATUS = {"open": "fail", "refused": "warn", "error": "skip"}
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_STRING = re.compile(r"([\"'`])((?:(?!\1)[^\\]|\\.)*)\1")
_INTERNAL_RE = re.compile(r"_INTERNAL_(URL|HOST)$")

def check_environment(environment: str) -> str:
    """``environment`` if known, else ParameterError."""
    if environment not in ENVIRONMENTS:
        raise ParameterError("environment", environment,
                             f"expected one of {', '.join(ENVIRONMENTS)}")
    return environment


# ---------------------------------------------------------------- client-visible URLs


def client_env_urls(env: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(container, key, value) of the client-visible variables holding a URL-ish value."""
    out = []
    for rec in env.to_dict("records"):
        key = str(rec["key"])
        if key.startswith(CLIENT_PREFIXES) and ("URL" in key or "://" in str(rec["value"])):
            out.append((str(rec["container"]), key, str(rec["value"])))
    return out


def check_client_env(env: pd.DataFrame, internal_names: Iterable[str],
                     internal_ports: Iterable[int] = ()) -> list[Row]:
    """Each client-visible URL variable: fail when it names localhost or a container port."""
    rows = []
    names, ports = list(internal_names), set(internal_ports)
    for container, key, value in client_env_urls(env):
        problems = urls.client_url_problems(value, names, ports)
        shown = value or "(empty: relative URLs through the proxy)"
        status = "fail" if problems else "pass"
        rows.append(row("client-api-url", f"{container} {key}", status,
                        f"{key}={shown}" + (f": {'; '.join(problems)}" if problems else "")))
    if not rows:
        rows.append(row("client-api-url", "environment", "pass",
                        "no client-visible URL variable set (relative URLs)"))
    return rows


def page_urls(live: LiveFacts) -> list[tuple[str, str]]:
    """(where, url) of the absolute URLs in the served page's code and its scripts, once each.

    Comments (``<!-- -->``, ``//``, ``/* */``) and unquoted text are left out: what counts
    is what the page's code would request.
    """
    found: list[tuple[str, str]] = []
    texts = [("/", live.page.body)] if live.page is not None else []
    texts += list(live.scripts.items())
    for where, text in texts:
        code = "\n".join(code_part(line, "js") for line in _HTML_COMMENT.sub("", text).splitlines())
        found += [(where, u) for u in urls.find_urls(_quoted(code))]
    return list(dict.fromkeys(found))


def _quoted(code: str) -> str:
    """Only the string literals of ``code`` (where a URL the code requests must be)."""
    return "\n".join(m.group(2) for m in _STRING.finditer(code))


def check_page(live: LiveFacts | None, internal_names: Iterable[str],
               internal_ports: Iterable[int] = ()) -> list[Row]:
    """URLs the browser receives in the page at ``/`` (and its scripts)."""
    if live is None or live.page is None:
        return [row("page-api-url", "/", "skip", "live checks off")]
    if live.page.error:
        return [row("page-api-url", f"{live.base_url}/", "fail",
                    f"page not served: {live.page.error}")]
    if live.page.status != 200:  # an API-only stack serves no page at /
        return [row("page-api-url", f"{live.base_url}/", "skip",
                    f"no page at / (HTTP {live.page.status}): no page URLs to check")]
    names, ports = list(internal_names), set(internal_ports)
    bad = [(w, u, p) for w, u in page_urls(live)
           if (p := urls.client_url_problems(u, names, ports))]
    if not bad:
        return [row("page-api-url", f"{live.base_url}/", "pass",
                    "no localhost or container-port URL in the page or its scripts")]
    return [row("page-api-url", f"{live.base_url}{where}", "fail", f"{u}: {'; '.join(p)}")
            for where, u, p in bad]


def check_mixed_content(environment: str, env: pd.DataFrame, live: LiveFacts | None) -> list[Row]:
    """Production serves https: any http:// or ws:// URL given to the browser is mixed content."""
    if environment != "production":
        return [row("mixed-content", "site", "skip", "development is served over http://")]
    seen = [(f"{c} {k}", v) for c, k, v in client_env_urls(env) if urls.is_mixed_content(v)]
    if live is not None:
        seen += [(f"page {w}", u) for w, u in page_urls(live) if urls.is_mixed_content(u)]
    if not seen:
        return [row("mixed-content", "site", "pass", "no http:// or ws:// URL served")]
    return [row("mixed-content", where, "fail", f"{u} would be blocked on https://")
            for where, u in seen]


# ---------------------------------------------------------------- names, DNS, ports


def network_names(endpoints: pd.DataFrame) -> dict[str, set[str]]:
    """network -> every name Docker's resolver answers there (container, service, aliases)."""
    out: dict[str, set[str]] = {}
    for rec in endpoints.to_dict("records"):
        names = out.setdefault(str(rec["network"]), set())
        names.update(str(n).lower() for n in [rec["container"], rec["service"]] if n)
        names.update(str(n).lower() for n in list(rec["aliases"]) + list(rec["dns_names"]))
    return out


def internal_hosts(env: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(container, key, host) of server-side variables that name another service."""
    out = []
    for rec in env.to_dict("records"):
        key, value = str(rec["key"]), str(rec["value"])
        if key in INTERNAL_KEYS or _INTERNAL_RE.search(key):
            host, _port = urls.url_host_port(value)
            if host and host != "***":
                out.append((str(rec["container"]), key, host))
    return out


def _dns_answer(dns: pd.DataFrame, container: str, host: str) -> str | None:
    if len(dns) == 0:
        return None
    rows = dns[(dns["source"] == container) & (dns["query"].str.lower() == host)]
    if len(rows) == 0:
        return None
    ok = rows[rows["rcode"] == "NOERROR"]
    if len(ok):
        return f"resolves to {', '.join(ok.iloc[0]['answers'])} ({ok.iloc[0]['latency_ms']:.2f} ms)"
    return f"does not resolve ({rows.iloc[0]['rcode']})"


def check_internal_dns(env: pd.DataFrame, dns: pd.DataFrame, endpoints: pd.DataFrame) -> list[Row]:
    """Each internal host name must resolve from the container that uses it."""
    names_by_net = network_names(endpoints)
    rows = []
    for container, key, host in internal_hosts(env):
        subject = f"{container} {key}"
        if urls.is_local_host(host):
            rows.append(row("internal-dns", subject, "fail",
                            f"{host} is the container itself, not another service"))
            continue
        answer = _dns_answer(dns, container, host)
        if answer is not None:
            status = "pass" if answer.startswith("resolves") else "fail"
            rows.append(row("internal-dns", subject, status, f"{host} {answer} (dns frame)"))
            continue
        nets = set(endpoints[endpoints["container"] == container]["network"].astype(str))
        if any(host in names_by_net.get(n, set()) for n in nets):
            rows.append(row("internal-dns", subject, "pass",
                            f"{host} is a name on {', '.join(sorted(nets))} (not queried)"))
        elif re.fullmatch(r"[\d.]+", host):
            rows.append(row("internal-dns", subject, "warn",
                            f"{host} is a literal address: stale when the container is recreated"))
        else:
            rows.append(row("internal-dns", subject, "fail",
                            f"{host} is no name on {', '.join(sorted(nets)) or 'any network'}"))
    return rows or [row("internal-dns", "environment", "skip", "no internal URL variables")]


def naming_convention(services: Iterable[str], policy: Policy) -> str | None:
    """The naming pattern to judge: the policy's, else the seed's on the seed's own stack.

    >>> from revivadiag.analyze.policy import load_policy
    >>> naming_convention(["web", "api"], load_policy()) is None
    True
    """
    asked = policy.conventions.get("naming")
    if asked:
        return str(asked)
    return seed.NAMING if seed.is_seed_stack(services) else None


def compose_default_name(name: str, project: str, service: str) -> bool:
    """``<project>_<service>_<n>`` (Compose v1) or ``<project>-<service>-<n>`` (v2).

    >>> compose_default_name("shop-api-1", "shop", "api"), compose_default_name("x", "s", "x")
    (True, False)
    """
    return bool(re.fullmatch(rf"{re.escape(project)}([_-]){re.escape(service)}\1\d+", name))


def check_naming(containers: pd.DataFrame, prefix: str, pattern: str | None) -> list[Row]:
    """Each container is named by ``pattern`` (e.g. ``{project}_{service}``), when one applies.

    Without a pattern (neither the seed's stack nor a policy's ``conventions.naming``) names
    are not judged; Compose's own default names are never a finding.
    """
    if pattern is None:
        return [row("container-naming", "project", "skip",
                    "no naming convention applies (not the seed's stack; no policy "
                    "conventions.naming)")]
    rows = []
    for rec in containers.to_dict("records"):
        service, name = str(rec["service"]), str(rec["name"])
        expected = pattern.format(project=prefix, service=service)
        if name == expected:
            rows.append(row("container-naming", name, "pass", f"{name} follows {pattern}"))
        elif compose_default_name(name, prefix, service):
            rows.append(row("container-naming", name, "pass",
                            f"{name} is Compose's default name for {service}"))
        else:
            rows.append(row("container-naming", name, "fail",
                            f"{name} != {expected} (target naming {pattern})"))
    return rows or [row("container-naming", "project", "skip", "no containers")]


def check_ports(ports: pd.DataFrame, policy: Policy, environment: str,
                roles: Mapping[str, str] | None = None, seed_host_ports: bool = False
                ) -> list[Row]:
    """Each published port against the environment's allowed (service, container port) list.

    ``policy`` is bound to the stack. Outside the list: a database or cache, or anything in
    production, fails; anything else in development is a warning. ``seed_host_ports``: also
    note where a host port differs from the seed's.
    """
    allowed = {(p.service, p.container_port): p for p in policy.allowed_external(environment)}
    role_of = roles or {}
    rows = []
    for rec in ports.to_dict("records"):
        service = str(rec["service"])
        key = (service, int(rec["container_port"]))
        where = f"{rec['host_ip']}:{rec['host_port']} -> {rec['container']}:{rec['container_port']}"
        if key in allowed:
            want = seed.HOST_PORTS.get(service) if seed_host_ports else None
            note = "" if want in (None, rec["host_port"]) else f" (seed's host port {want})"
            rows.append(row("published-ports", where, "pass", f"allowed in {environment}{note}"))
            continue
        role = role_of.get(service, "")
        ok = ", ".join(f"{s}:{p.container_port}" for (s, _), p in allowed.items()) or "none"
        store = role in ("database", "cache")
        status = "fail" if store or environment == "production" else "warn"
        what = f"the {role} " if role else ""
        rows.append(row("published-ports", where, status,
                        f"{what}{service}:{rec['container_port']} published on the host; "
                        f"{environment} allows only {ok}"))
    return rows or [row("published-ports", "project", "pass", "no published ports")]


def check_isolation(reachability: pd.DataFrame, roles: Mapping[str, str]) -> list[Row]:
    """The proxy's probes of every database and cache must not be open."""
    proxies = sorted(s for s, r in roles.items() if r == "proxy")
    targets = {s for s, r in roles.items() if r in ("database", "cache")}
    subject = ", ".join(proxies) or "proxy"
    if not proxies:
        return [row("frontend-isolation", subject, "skip", "no service holds the role proxy")]
    if len(reachability) == 0:
        return [row("frontend-isolation", subject, "skip", "no reachability probes")]
    rows = []
    sel = reachability[reachability["source_service"].isin(proxies)
                       & reachability["target_service"].isin(targets)]
    for rec in sel.to_dict("records"):
        status = ISOLATION_STATUS.get(str(rec["outcome"]), "pass")
        ms = rec["connect_ms"]
        took = f" in {ms:.2f} ms" if not pd.isna(ms) else ""
        rows.append(row("frontend-isolation",
                        f"{rec['source']} -> {rec['target_service']}:{rec['target_port']}", status,
                        f"{rec['outcome']}{took} ({rec['method']})"
                        + (f" [{rec['error_type']}]" if rec["error_type"] else "")))
    return rows or [row("frontend-isolation", subject, "skip", "no probes from the proxy")]


# ---------------------------------------------------------------- the audit


@dataclass(frozen=True)
class AuditContext:
    """Inputs of the audit besides the frames."""

    environment: str
    #: the policy bound to the stack (:meth:`~revivadiag.analyze.policy.Policy.bind`)
    policy: Policy
    prefix: str
    live: LiveFacts | None = None
    watcher: str | None = None
    #: service -> role
    roles: Mapping[str, str] = field(default_factory=dict)


def internal_names(frames: Mapping[str, pd.DataFrame]) -> set[str]:
    """Container, service and alias names of the project (browsers cannot resolve them)."""
    names: set[str] = set()
    for n in network_names(frames["endpoints"]).values():
        names |= n
    names |= {str(n).lower() for n in frames["containers"]["name"]}
    return names


def internal_ports(frames: Mapping[str, pd.DataFrame], roles: Mapping[str, str]) -> set[int]:
    """Ports of every service but the proxy: container ports (the ``roles`` frame, else
    exposed) and the host ports publishing them. A browser URL with one bypasses the proxy."""
    behind = {s for s, r in roles.items() if r != "proxy"}
    out: set[int] = set()
    role_frame = frames.get("roles")
    if role_frame is not None:
        for rec in role_frame.to_dict("records"):
            if rec["service"] in behind:
                out.update(int(p) for p in rec["ports"])
    ports = frames["ports"]
    for rec in ports[ports["service"].isin(behind)].to_dict("records"):
        out.update(int(rec[c]) for c in ("container_port", "host_port") if pd.notna(rec[c]))
    return out


def audit(frames: Mapping[str, pd.DataFrame], ctx: AuditContext) -> pd.DataFrame:
    """The ``checks`` frame for ``ctx.environment``; frames are a snapshot's, by name."""
    env = check_environment(ctx.environment)
    names = internal_names(frames)
    ports = internal_ports(frames, ctx.roles)
    rows: list[Row] = []
    rows += check_client_env(frames["env"], names, ports)
    rows += check_page(ctx.live, names, ports)
    rows += check_mixed_content(env, frames["env"], ctx.live)
    rows += check_internal_dns(frames["env"], frames["dns"], frames["endpoints"])
    services = [str(s) for s in frames["containers"]["service"]]
    rows += check_naming(frames["containers"], ctx.prefix,
                         naming_convention(services, ctx.policy))
    seed_ports = bool(ctx.policy.conventions.get("host_ports")) or seed.is_seed_stack(services)
    rows += check_ports(frames["ports"], ctx.policy, env, ctx.roles, seed_ports)
    rows += check_isolation(frames["reachability"], ctx.roles)
    rows += proxy_audit.proxy_checks(ctx.live, ctx.watcher)
    for r in rows:
        r["environment"] = env
        r["evidence"] = redact_url(str(r["evidence"]))  # a URL with credentials, anywhere
        r["subject"] = redact_url(str(r["subject"]))
    return schemas.to_frame("checks", rows)
