"""A real `nginx -T` of Debian's packaged nginx (in the lab's image), parsed with crossplane."""

from __future__ import annotations

import docker
import pytest

from revivadiag.collect import nginx_conf
from revivadiag.lab import BuildReport

pytestmark = pytest.mark.integration

# Debian's own nginx.conf, plus a conf.d upstream and a sites-enabled site written by the test;
# nginx itself checks the result and dumps every file (`nginx -T`). `api` resolves through
# --add-host, so no name is ever looked up on a network (the container has none).
SCRIPT = r"""
printf 'upstream api_pool {\n  server api:8000 max_fails=3 fail_timeout=5s;\n  keepalive 8;\n}\n' \
  > /etc/nginx/conf.d/api.conf
printf 'server {\n  listen 8081;\n  proxy_http_version 1.1;\n' > /etc/nginx/sites-enabled/api
printf '  proxy_set_header Connection "";\n  location /api/ { proxy_pass http://api_pool; }\n' \
  >> /etc/nginx/sites-enabled/api
printf '  location = /x { return 200 "a { b; }"; }\n}\n' >> /etc/nginx/sites-enabled/api
exec nginx -T
"""


def test_real_debian_dump(engine: docker.DockerClient, lab_images: BuildReport) -> None:
    """Every file nginx dumped is read; the site's proxy_pass meets the conf.d upstream."""
    out = engine.containers.run(
        "revivadiag/lab-frontend:latest", entrypoint=["sh", "-c", SCRIPT], network_mode="none",
        extra_hosts={"api": "10.9.8.7"}, remove=True, stdout=True, stderr=False,
    ).decode()
    files = nginx_conf.split_dump(out)
    assert next(iter(files)) == "/etc/nginx/nginx.conf"
    assert {"/etc/nginx/mime.types", "/etc/nginx/conf.d/api.conf",
            "/etc/nginx/sites-enabled/api"} <= set(files)
    cfg = nginx_conf.parse_files(files)
    assert cfg.errors == []
    assert cfg.upstreams["api_pool"].servers == (("api:8000", ("max_fails=3", "fail_timeout=5s")),)
    got = [(p.location, p.host, p.port, p.file) for p in cfg.proxy_passes]
    assert got == [("/api/", "api_pool", 8000, "/etc/nginx/sites-enabled/api")]
    assert nginx_conf.keepalive_verdict(cfg)[0] == "pass"
