"""Fallback 1: a short-lived probe container sharing the source's network namespace.

Works against a remote engine and without root: ``network_mode="container:<id>"`` from an
image that has python3 (the lab's ``revivadiag/base`` image by default), running the shipped
netprobe code (:mod:`revivadiag.engine.ship`). The request reaches it on stdin (attached
before the start), so no job — and no credential in one — is in its ``Config.Cmd``. The
sidecar is always removed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
import requests.exceptions

from revivadiag.engine.base import ProbeMethod, Progress, Settings, Target, check_results
from revivadiag.engine.client import client_address
from revivadiag.engine.jobs import Result, batch_deadline_s
from revivadiag.engine.ship import chunk_jobs, probe_argv, request_bytes
from revivadiag.engine.stdin import create_with_stdin, start_and_feed
from revivadiag.errors import EngineUnreachable, NetworkErrorType

DEFAULT_IMAGE_REPO = "revivadiag/base"
LABEL = "revivadiag.probe"
MAX_SIDECARS = 4


def find_image(client: Any, wanted: str | None) -> str | None:
    """``wanted`` if it exists, else the newest local ``revivadiag/base:*`` tag, else None."""
    try:
        if wanted:
            client.images.get(wanted)
            return wanted
        images = client.images.list(name=DEFAULT_IMAGE_REPO)
    except docker.errors.DockerException:
        return None
    images = sorted(images, key=lambda i: str(i.attrs.get("Created", "")), reverse=True)
    for image in images:
        if image.tags:
            return str(image.tags[0])
    return None


def is_gone_error(exc: Exception) -> bool:
    """True when docker refused because the source container is gone or stopped."""
    if isinstance(exc, docker.errors.ImageNotFound):
        return False
    text = str(exc).lower()
    gone = "not running" in text or "no such container" in text
    return isinstance(exc, docker.errors.NotFound) or gone


class SidecarMethod(ProbeMethod):
    """``docker run --network container:<id> <image> python3 -c <netprobe>``."""

    name = "sidecar"

    @classmethod
    def unavailable_reason(cls, client: Any, settings: Settings) -> str | None:
        if find_image(client, settings.sidecar_image) is None:
            wanted = settings.sidecar_image or DEFAULT_IMAGE_REPO
            return f"no image with python3 (looked for {wanted})"
        return None

    def run(self, targets: Sequence[Target],
            progress: Progress | None = None) -> dict[str, list[Result]]:
        image = find_image(self.client, self.settings.sidecar_image)
        results: dict[str, list[Result]] = {}
        threads = max(1, min(MAX_SIDECARS, self.settings.workers))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = {pool.submit(self._one, t, image): t for t in targets}
            for future, target in futures.items():
                results[target.key] = future.result()
                if progress is not None:
                    progress(len(target.jobs))
        return results

    def _one(self, target: Target, image: str | None) -> list[Result]:
        if image is None:
            return target.fail_all("", "no sidecar image with python3", self.name)
        rows: list[Result] = []
        for chunk in chunk_jobs(target.jobs):
            part = Target(target.key, target.container_id, target.name, target.pid, list(chunk))
            rows.extend(self._chunk(part, image))
        return rows

    def _chunk(self, target: Target, image: str) -> list[Result]:
        request = request_bytes(target.jobs, self.settings.concurrency,
                                self.settings.dns_concurrency)
        deadline = batch_deadline_s(target.jobs, self.settings.concurrency) + 10.0
        try:
            out = run_sidecar(self.client, image, f"container:{target.container_id}", request,
                              deadline, f"rdprobe-{target.container_id[:12]}")
            return check_results(target, json.loads(out), self.name)
        except SidecarFailed as exc:
            return target.fail_all("", f"sidecar failed: {exc}", self.name)
        except requests.exceptions.ConnectionError as exc:
            raise EngineUnreachable(client_address(self.client), str(exc)[:300]) from exc
        except requests.exceptions.RequestException:
            return target.fail_all(NetworkErrorType.TIMEOUT.value,
                                   f"sidecar for {target.name} overran {deadline:.0f}s", self.name)
        except docker.errors.DockerException as exc:
            if is_gone_error(exc):
                return target.gone(self.name, str(exc)[:200])
            return target.fail_all("", f"sidecar: {str(exc)[:300]}", self.name)
        except ValueError:
            return target.fail_all("", "sidecar output was not JSON", self.name)
        except TimeoutError as exc:  # the attach stream stalled
            return target.fail_all(NetworkErrorType.TIMEOUT.value,
                                   f"sidecar for {target.name}: stdin stalled: {exc}", self.name)


class SidecarFailed(Exception):
    """The sidecar's program exited non-zero (its stderr's tail is the message)."""


def run_sidecar(client: Any, image: str, network_mode: str, request: bytes,
                deadline_s: float, name_prefix: str = "rdprobe") -> bytes:
    """Run the shipped netprobe program in a container of ``image`` with ``network_mode``
    (``container:<id>``: a container's namespace; ``host``: the engine host's), its
    ``request`` fed on stdin; its stdout. The container is always removed.

    Raises :class:`SidecarFailed`, docker-py's and requests' errors, TimeoutError.
    """
    api = client.api
    container = None
    try:
        cid = create_with_stdin(api, image, probe_argv()[1:],
                                name=f"{name_prefix}-{secrets.token_hex(3)}",
                                entrypoint=["python3"], labels={LABEL: "sidecar"},
                                network_mode=network_mode)
        container = client.containers.get(cid)
        start_and_feed(api, cid, request, deadline_s)
        status = container.wait(timeout=deadline_s)
        out: bytes = container.logs(stdout=True, stderr=False)
        if int(status.get("StatusCode", 1)) != 0:
            err = container.logs(stdout=False, stderr=True).decode(errors="replace")
            raise SidecarFailed(err.strip()[-300:])
        return out
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
