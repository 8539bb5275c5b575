"""nginx configuration parsed with crossplane: includes within a dump, scopes, ports, errors."""

from __future__ import annotations

import pytest

from revivadiag.collect import nginx_conf

# A Debian-shaped installation as `nginx -T` prints it: the main file first, then every file
# it includes (modules-enabled, mime.types, conf.d/*.conf, sites-enabled/*) in include order.
DEBIAN_DUMP = """\
nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
user www-data;
worker_processes auto;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
\t# multi_accept on;
}

http {
\tsendfile on;
\ttcp_nopush on;
\ttypes_hash_max_size 2048;
\tinclude /etc/nginx/mime.types;
\tdefault_type application/octet-stream;
\tssl_prefer_server_ciphers on;
\taccess_log /var/log/nginx/access.log;
\tgzip on;
\tproxy_http_version 1.1;
\tinclude conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}

# configuration file /etc/nginx/modules-enabled/50-mod-http-echo.conf:
load_module modules/ngx_http_echo_module.so;

# configuration file /etc/nginx/mime.types:

types {
    text/html                                        html htm shtml;
    application/javascript                           js;
    image/svg+xml                                    svg svgz;
}

# configuration file /etc/nginx/conf.d/upstreams.conf:
upstream api_pool {
    server api:8000 max_fails=3 fail_timeout=10s;
    server 10.1.2.3:8000 backup;
    keepalive 16;
}

# configuration file /etc/nginx/conf.d/zz-ws.conf:
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}

# configuration file /etc/nginx/sites-enabled/default:
server {
\tlisten 80 default_server;
\tlisten [::]:80 default_server;
\troot /var/www/html;
\tindex index.html index.htm index.nginx-debian.html;
\tserver_name _;
\tproxy_set_header Connection "";
\tlocation / {
\t\ttry_files $uri $uri/ =404;
\t}
\tlocation /api/ {
\t\tproxy_pass http://api_pool;
\t}
\tlocation /ws/ {
\t\tproxy_pass http://api_pool;
\t\tproxy_set_header Upgrade $http_upgrade;
\t\tproxy_set_header Connection $connection_upgrade;
\t}
}

# configuration file /etc/nginx/sites-enabled/admin:
server {
\tlisten 8081;
\tlocation /admin/ {
\t\tproxy_set_header Host $host;
\t\tproxy_pass http://admin:9000/;
\t}
}
"""

# map, if, quoted arguments holding braces and semicolons, comments with braces, escapes,
# upstream servers with parameters, a regex location with braces, a variable proxy_pass
TRICKY = r"""
# a comment with { braces } and ; semicolons
http {
    map $request_uri $api_host {          # trailing comment {
        default        "api:8000";
        "~^/v2/"       'api-v2:8001';
        "~^/x;{y}"     "odd";
    }
    resolver 127.0.0.11 valid=10s ipv6=off;
    upstream legacy {
        server legacy-1:3000 max_fails=2 fail_timeout=5s weight=3;
        server legacy-2:3000 down;
    }
    server {
        listen 8080;
        add_header X-Note "a { b; } c" always;
        set $target http://api:8000;
        if ($http_x_debug = "1") {
            return 418 "teapot; {}";
        }
        location ~ "^/v[0-9]{1,2}/" {
            rewrite ^/v[0-9]+/(.*)$ /$1 break;
            proxy_pass $target;
        }
        location /legacy/ {
            if ($request_method = POST) { proxy_pass http://legacy; }
            proxy_pass http://legacy;
        }
        location /dyn/ { proxy_pass http://$api_host; }
        location /esc/ { return 200 "quote \" inside"; }
    }
}
"""


@pytest.fixture(scope="module")
def debian() -> nginx_conf.NginxConfig:
    return nginx_conf.parse_files(nginx_conf.split_dump(DEBIAN_DUMP))


@pytest.fixture(scope="module")
def tricky() -> nginx_conf.NginxConfig:
    return nginx_conf.parse_files({"/etc/nginx/nginx.conf": TRICKY})


def test_debian_dump_follows_relative_and_glob_includes(debian: nginx_conf.NginxConfig) -> None:
    """conf.d/*.conf (relative to the main file) and sites-enabled/* are read in scope."""
    assert debian.errors == []
    assert debian.files[0] == "/etc/nginx/conf.d/upstreams.conf"
    assert list(debian.upstreams) == ["api_pool"]
    pool = debian.upstreams["api_pool"]
    assert pool.servers == (("api:8000", ("max_fails=3", "fail_timeout=10s")),
                            ("10.1.2.3:8000", ("backup",)))
    assert pool.keepalive == 16
    got = [(p.location, p.host, p.port, p.http_version, p.connection_header, p.file)
           for p in debian.proxy_passes]
    assert got == [  # sites-enabled/* in glob order: admin before default
        ("/admin/", "admin", 9000, "1.1", None, "/etc/nginx/sites-enabled/admin"),
        ("/api/", "api_pool", 8000, "1.1", "", "/etc/nginx/sites-enabled/default"),
        ("/ws/", "api_pool", 8000, "1.1", "$connection_upgrade",
         "/etc/nginx/sites-enabled/default"),
    ]


def test_a_level_with_its_own_headers_inherits_none(debian: nginx_conf.NginxConfig) -> None:
    """/admin/ sets Host only, so the server's `Connection ""` does not reach it (nginx's rule)."""
    status, evidence = nginx_conf.keepalive_verdict(debian)
    assert status == "fail"
    assert "/admin/ -> http://admin:9000/: no upstream block" in evidence
    assert "location /api/" not in evidence


def test_quotes_comments_map_if_and_variables(tricky: nginx_conf.NginxConfig) -> None:
    """Nothing in quotes or comments is read as syntax; `if` blocks and `set` are scoped."""
    assert tricky.errors == []
    assert tricky.resolvers == ["127.0.0.11"]
    legacy = tricky.upstreams["legacy"]
    assert legacy.servers[0] == ("legacy-1:3000", ("max_fails=2", "fail_timeout=5s", "weight=3"))
    assert legacy.ports == {3000}
    got = [(p.location, p.url, p.host, p.port, p.uses_variable) for p in tricky.proxy_passes]
    assert got == [
        ('~ ^/v[0-9]{1,2}/', "$target", "api", 8000, True),
        ("/legacy/", "http://legacy", "legacy", 3000, False),
        ("/legacy/", "http://legacy", "legacy", 3000, False),
        ("/dyn/", "http://$api_host", "", None, True),
    ]
    assert nginx_conf.resolution_verdict(tricky)[0] == "fail"  # legacy: names resolved once


@pytest.mark.parametrize(
    ("url", "upstream", "port"),
    [("http://api", "", 80), ("https://api/x", "", 443), ("http://api:8000/", "", 8000),
     ("http://pool", "server a:81; server b:81;", 81),
     ("http://pool", "server a:81; server b:82;", None),
     ("http://pool", "server unix:/run/app.sock;", None),
     ("http://pool", "server a;", 80)],
)
def test_proxy_pass_port(url: str, upstream: str, port: int | None) -> None:
    """The backend's port: the URL's, else the upstream servers' when they agree, else the
    scheme's default."""
    ups = f"upstream pool {{ {upstream} }}" if upstream else ""
    cfg = nginx_conf.parse_files(
        {"/n.conf": f"http {{ {ups} server {{ location / {{ proxy_pass {url}; }} }} }}"})
    assert [p.port for p in cfg.proxy_passes] == [port]


def test_included_file_listed_first_is_still_read_in_scope() -> None:
    """Order of the mapping does not matter: the file nobody includes is the main one."""
    files = {"/etc/nginx/up.conf": "upstream b { server x:1; keepalive 2; }",
             "/etc/nginx/nginx.conf": "http { proxy_http_version 1.1; include up.conf;"
                                      " server { proxy_set_header Connection '';"
                                      " location / { proxy_pass http://b; } } }"}
    cfg = nginx_conf.parse_files(files)
    assert nginx_conf.keepalive_verdict(cfg)[0] == "pass"
    assert [p.port for p in cfg.proxy_passes] == [1]


def test_missing_include_loop_and_syntax_errors_are_reported() -> None:
    """A named include absent from the dump, an include loop, and a broken file are errors
    in the result, and what could be read is still read."""
    files = {"/a.conf": "http { include /b.conf; include /nope.conf; "
                        "server { location / { proxy_pass http://x:1; } } }",
             "/b.conf": "include /b.conf;",
             "/c.conf": "server { location / { "}
    cfg = nginx_conf.parse_files(files)
    assert [p.host for p in cfg.proxy_passes] == ["x"]
    text = "\n".join(cfg.errors)
    assert "/a.conf:1: include /nope.conf: no such file in the configuration" in text
    assert "nested too deep" in text
    assert "/c.conf" in text and "unexpected end of file" in text


def test_split_dump_then_parse_keeps_file_names_in_errors() -> None:
    """crossplane's messages name the dump's path, never the temporary file."""
    cfg = nginx_conf.parse_files({"/etc/nginx/nginx.conf": "http { server { listen; } }"})
    assert cfg.errors and all(e.startswith("/etc/nginx/nginx.conf:1:") for e in cfg.errors)
    assert "revivadiag-nginx-" not in "".join(cfg.errors)


def test_relative_include_inside_an_included_file_is_read_once() -> None:
    """`include snippets/...` in a site resolves against the main file's directory (nginx's
    rule), and the snippet is not read a second time as a main file."""
    files = {"/etc/nginx/nginx.conf": "http { include sites-enabled/*; }",
             "/etc/nginx/sites-enabled/app": "server { location / { include snippets/p.conf; } }",
             "/etc/nginx/snippets/p.conf": "proxy_pass http://app:5000;"}
    cfg = nginx_conf.parse_files(files)
    assert cfg.errors == []
    assert [(p.location, p.host, p.port, p.file) for p in cfg.proxy_passes] == [
        ("/", "app", 5000, "/etc/nginx/snippets/p.conf")]
