"""Fallback 2: ``docker exec`` in the source container itself.

With python3 in the container, the shipped netprobe code runs there in one exec per batch,
its request written to the exec's stdin (never its argv: jobs may carry credentials).
Without it, each job becomes an ``nslookup`` / ``nc -w 1`` exec (busybox or not; see
:mod:`revivadiag.engine.busybox`); with neither, every job's row says the container has
no tools.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
import requests.exceptions

from revivadiag.engine import busybox
from revivadiag.engine.base import ProbeMethod, Progress, Settings, Target, check_results
from revivadiag.engine.client import client_address
from revivadiag.engine.jobs import Job, Result, batch_deadline_s, failure_result
from revivadiag.engine.netprobe import outcomes as o
from revivadiag.engine.netprobe.dnswire import is_ip
from revivadiag.engine.netprobe.probes import pick_address, server_of
from revivadiag.engine.ship import chunk_jobs, probe_argv, request_bytes
from revivadiag.engine.stdin import exec_with_stdin
from revivadiag.errors import EngineUnreachable

JOBS_PER_CONTAINER = 4
#: containers exec'd into at once (each docker exec costs the engine ~60 ms of work)
MAX_EXECS = 8


class NoPython(Exception):
    """The container has no python3 on its PATH."""


class ExecMethod(ProbeMethod):
    """``docker exec <container> python3 -c <netprobe>``, else nc/nslookup."""

    name = "exec"

    @classmethod
    def unavailable_reason(cls, client: Any, settings: Settings) -> str | None:
        return None

    def run(self, targets: Sequence[Target],
            progress: Progress | None = None) -> dict[str, list[Result]]:
        results: dict[str, list[Result]] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_EXECS, self.settings.workers))) as pool:
            futures = {pool.submit(self._one, t): t for t in targets}
            for future, target in futures.items():
                results[target.key] = future.result()
                if progress is not None:
                    progress(len(target.jobs))
        return results

    def _one(self, target: Target) -> list[Result]:
        try:
            container = self.client.containers.get(target.container_id)
            try:
                return self._python(container, target)
            except NoPython:
                return self._tools(container, target)
        except docker.errors.NotFound as exc:
            return target.gone(self.name, str(exc)[:200])
        except docker.errors.APIError as exc:
            if "not running" in str(exc).lower() or "is paused" in str(exc).lower():
                return target.gone(self.name, str(exc)[:200])
            return target.fail_all("", f"docker exec: {str(exc)[:300]}", self.name)
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise EngineUnreachable(client_address(self.client), str(exc)[:300]) from exc

    def _python(self, container: Any, target: Target) -> list[Result]:
        rows: list[Result] = []
        for chunk in chunk_jobs(target.jobs):
            request = request_bytes(chunk, self.settings.concurrency,
                                    self.settings.dns_concurrency)
            timeout = batch_deadline_s(chunk, self.settings.concurrency) + 10.0
            try:
                code, out, err = exec_with_stdin(self.client.api, container.id, probe_argv(),
                                                 request, timeout)
            except TimeoutError as exc:  # the stream stalled past the batch's deadline
                part = Target(target.key, target.container_id, target.name, target.pid,
                              list(chunk))
                rows.extend(part.fail_all(o.TIMEOUT, f"exec probe stalled: {exc}", self.name))
                continue
            if busybox.not_found_in_path(code, out + err):
                raise NoPython(target.name)
            part = Target(target.key, target.container_id, target.name, target.pid, list(chunk))
            try:
                parsed = json.loads(out) if code == 0 else None
            except ValueError:
                parsed = None
            if parsed is None:
                text = f"python3 probe failed ({code}): {err[-300:]}"
                rows.extend(part.fail_all("", text, self.name))
            else:
                rows.extend(check_results(part, parsed, self.name))
        return rows

    def _tools(self, container: Any, target: Target) -> list[Result]:
        prefix = _tool_prefix(container)
        if prefix is None:
            text = f"container {target.name} has no python3, nc or nslookup: cannot probe by exec"
            return target.fail_all("", text, self.name)
        runner = ToolRunner(container, prefix)
        with ThreadPoolExecutor(max_workers=JOBS_PER_CONTAINER) as pool:
            rows = list(pool.map(runner.run, target.jobs))
        return [dict(r, method=self.name) for r in rows]


def _exec(container: Any, argv: list[str]) -> tuple[int, str, str]:
    result = container.exec_run(argv, demux=True)
    out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
    return (int(result.exit_code), (out or b"").decode(errors="replace"),
            (err or b"").decode(errors="replace"))


def _tool_prefix(container: Any) -> list[str] | None:
    """[] when ``nc`` is on PATH, ["busybox"] when only busybox is, else None."""
    for prefix in ([], ["busybox"]):
        code, out, err = _exec(container, [*prefix, "nc"])
        if not busybox.not_found_in_path(code, out + err):
            return prefix
    return None


class ToolRunner:
    """Runs dns/tcp jobs with nslookup and nc inside one container."""

    def __init__(self, container: Any, prefix: list[str]) -> None:
        self.container = container
        self.prefix = prefix
        self.names: dict[tuple[str, str], tuple[str, list[str]]] = {}

    def lookup(self, name: str, server: str) -> tuple[str, list[str]]:
        """(rcode, answers) of ``name`` at ``server``, asked once per runner."""
        key = (name, server)
        if key not in self.names:
            argv = busybox.nslookup_argv(self.prefix, name, server)
            for _attempt in range(2):  # a cold resolver may answer the first ask with nothing
                _code, out, err = _exec(self.container, argv)
                rcode, answers = busybox.parse_nslookup(out + err)
                if answers or rcode != "NOERROR":
                    break
            self.names[key] = (rcode, answers)
        return self.names[key]

    def run(self, job: Job) -> Result:
        kind = job.get("kind")
        if kind == "dns":
            return self.dns(job)
        if kind == "tcp":
            return self.tcp(job)
        return failure_result(job, "", f"{kind} probes need python3 in the container "
                                        "(only nc/nslookup found)", "exec")

    def dns(self, job: Job) -> Result:
        res = failure_result(job, "", "", "exec")
        rcode, answers = self.lookup(str(job["name"]), server_of(job))
        etype = o.classify_rcode(rcode, answers)
        res.update(rcode=rcode, answers=answers, attempts=1, error_type=etype,
                   error=f"{job['name']}: {rcode}" if etype else "")
        return res

    def tcp(self, job: Job) -> Result:
        res = failure_result(job, "", "", "exec")
        host, port = str(job["host"]), int(job["port"])
        if is_ip(host):
            ip = host
        else:
            rcode, answers = self.lookup(host, server_of(job))
            if not answers:
                etype = o.TIMEOUT if rcode == "TIMEOUT" else o.DNS_RESOLUTION_FAILED
                res.update(outcome=o.UNRESOLVABLE, error_type=etype,
                           error=f"name not resolved: {host}: {rcode}")
                return res
            ip = pick_address(answers, [str(a) for a in job.get("prefer_ips", [])])
        code, out, err = _exec(self.container, busybox.nc_argv(self.prefix, ip, port,
                                                               float(job.get("timeout_s", 0.5))))
        outcome, etype, text = busybox.parse_nc(code, out + err)
        res.update(ip=ip, outcome=outcome, error_type=etype, error=text, attempts=1)
        return res
