"""The bounded prober that runs beside a migration: traffic to 127.0.0.1 only, every request
tagged with the step running.

>>> target = probe_target(client, "rdlab")            # doctest: +SKIP
>>> prober = Prober(target, max_duration_s=600).start()  # doctest: +SKIP
>>> prober.mark("db"); ...; prober.mark(None)         # doctest: +SKIP
>>> report = prober.stop(); report.summary()["failed"]  # doctest: +SKIP

What it sends (a background thread running one asyncio loop), all to the proxy's published
loopback port (:mod:`revivadiag.migrate.probe_target`):

**HTTP**: ``GET`` of the target's paths in turn, at ``rate`` requests/s on a steady
schedule (request *i* is due at *i*/rate; a loop that fell more than one interval behind
skips the missed slots, counting them as ``missed_slots``, rather than bursting to catch
up; ``schedule_s`` is when the stream stopped, so that sent + missed slots = 1 + rate x
``schedule_s``). Each request has its own deadline (``deadline_s``, default 2 s, counted
from when it was sent). A request **failed** when no correct answer arrived within that deadline:

- an answer is *correct* when its status is 2xx or 3xx;
- an HTTP error status (502 from the proxy included) fails at once (error type
  ``PROXY_ERROR``), and so does a connection reset after the request was sent;
- no answer by the deadline fails as ``TIMEOUT``;
- a **refused connect is retried** (the request never reached a server, as a browser
  retries it) after 20 ms, doubling up to 250 ms, while the deadline allows; so is, once, a
  connection the server closed before any answer (RFC 9110 §9.2.2: an idempotent request).
  Every such attempt is counted in the row's ``retries`` and the summary's ``retries`` /
  ``retried_requests``; a request still refused at its deadline fails as
  ``CONNECTION_REFUSED``.

**WebSocket** (when the target has one): connects, sends ``rdp-<n>`` every ``ws_interval_s``
and expects the same text back within the deadline (``echo`` rows). A close by the server
is a ``close`` row, *ok* when clean (a close frame with 1000 or 1001) and failed otherwise;
the client then reconnects at once, then with backoff (100 ms doubling to 1 s):
``reconnect`` rows, ok or failed, counted apart from the closes. An echo that does not
come back in time fails, and the client reconnects. An echo sent just as the server closed
*cleanly* is sent again on the new connection, as a client resends what was not
acknowledged: it is answered there within its own deadline, or fails.

**Session** (when the target has one): ``login`` (or ``write``) once at the start (a
set-up request: it may take ``setup_timeout_s``, default 30 s, since a password hash is slow
on a busy machine; it fails like any request when it gets no correct answer), then a
``check`` every ``session_interval_s`` and one last check at :meth:`Prober.stop`. A check
fails on a non-2xx status or an answer without the expected text; a lost session is not
logged in again (it must survive).

**Tags**: each row carries ``step``, the step marked (:meth:`Prober.mark`) when it was
sent, and ``step_ended``, the step marked when its answer or failure came; the summary
charges a failure to the latter. Times are monotonic seconds since the start (``t_s``) and
the matching wall-clock time (``t``, UTC).

**Bounds**: it stops by itself after ``max_duration_s`` or ``max_requests`` requests (of
every kind), whichever comes first (``stopped_by`` says which); requests in flight then
finish within their deadline. No row, summary or log holds a secret: the session's body is
never recorded, only paths, statuses and the kinds of errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd

from revivadiag.errors import NetworkErrorType, ParameterError, ProberError
from revivadiag.migrate.probe_config import MARKER, ProberConfig
from revivadiag.migrate.probe_report import CLEAN_CLOSE_CODES, ProbeReport, summarize
from revivadiag.migrate.probe_target import ProbeTarget, new_marker, probe_target
from revivadiag.schemas import to_frame

__all__ = ["ProbeReport", "ProbeTarget", "Prober", "probe_target", "run_prober", "summarize"]

RETRY_FIRST_S = 0.02
RETRY_MAX_S = 0.25
WS_BACKOFF_FIRST_S = 0.1
WS_BACKOFF_MAX_S = 1.0
#: how often a waiting loop looks at the stop flag
POLL_S = 0.1


def _refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a refused TCP connect."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "Connection refused" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _status_error(status: int) -> NetworkErrorType:
    """An error status (or a wrong answer) came through the proxy: the seed's PROXY_ERROR."""
    del status
    return NetworkErrorType.PROXY_ERROR


class Prober:
    """Traffic through the proxy while a migration runs (see the module doc).

    ``rate`` and ``deadline_s`` default to the target's (the plan's, else 20/s and 2 s);
    ``max_requests`` defaults to what ``max_duration_s`` allows at those rates plus 10 %.
    """

    def __init__(self, target: ProbeTarget, *, rate: float | None = None,
                 max_duration_s: float = 900.0, max_requests: int | None = None,
                 deadline_s: float | None = None, ws_interval_s: float = 1.0,
                 session_interval_s: float = 1.0, setup_timeout_s: float = 30.0) -> None:
        self.target = target
        self.rate = float(rate if rate is not None else target.rate)
        self.deadline_s = float(deadline_s if deadline_s is not None else target.deadline_s)
        self.max_duration_s = float(max_duration_s)
        self.ws_interval_s = float(ws_interval_s)
        self.session_interval_s = float(session_interval_s)
        self.setup_timeout_s = max(float(setup_timeout_s), self.deadline_s)
        for name, value, low, high in (("rate", self.rate, 0.1, 200.0),
                                       ("deadline_s", self.deadline_s, 0.05, 60.0),
                                       ("max_duration_s", self.max_duration_s, 0.1, 86400.0),
                                       ("ws_interval_s", self.ws_interval_s, 0.05, 60.0),
                                       ("session_interval_s", self.session_interval_s, 0.05,
                                        600.0)):
            if not low <= value <= high:
                raise ParameterError(name, value, f"a number in {low}..{high}")
        per_s = self.rate + 2.0 / self.ws_interval_s + 1.0 / self.session_interval_s
        self.max_requests = (int(max_requests) if max_requests is not None
                             else math.ceil(self.max_duration_s * per_s * 1.1) + 10)
        if self.max_requests < 1:
            raise ParameterError("max_requests", max_requests, "at least 1")
        self._lock = threading.Lock()
        self._step = ""
        self._marks: list[tuple[str, float]] = []
        self._rows: list[dict[str, Any]] = []
        self._seq = itertools.count()
        self._taken = 0
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._closing = False
        self._stopped_by = ""
        self._missed_slots = 0
        self._http_ended_s = 0.0
        self._cpu_s = 0.0
        self._ended_s = 0.0
        self._error: BaseException | None = None
        self._report: ProbeReport | None = None
        #: (check path, expected text) once the session's login or write succeeded
        self._session_check_args: tuple[str, str] | None = None

    # ------------------------------------------------------------ public

    def start(self) -> Prober:
        """Start sending (a background thread); returns self."""
        if self._thread is not None:
            raise ProberError(self.target.project, "this prober was already started")
        self._mono0, self._wall0 = time.monotonic(), time.time()
        with self._lock:  # a step marked before the start runs from the start
            self._marks = [(step, 0.0) for step, _ in self._marks]
        self._thread = threading.Thread(target=self._run, name="revivadiag-prober",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        return self

    def mark(self, step_id: str | None) -> None:
        """The step now running (None: none); tags every request sent from now on."""
        with self._lock:
            self._step = step_id or ""
            self._marks.append((self._step, self._now()))

    def progress(self) -> dict[str, int]:
        """Counts so far, while it runs: rows, failed rows, and correct answers per kind
        and op (e.g. ``ok:session:check``)."""
        rows = list(self._rows)
        out = {"rows": len(rows), "failed": sum(1 for r in rows if not r["ok"])}
        for r in rows:
            if r["ok"]:
                key = f"ok:{r['kind']}:{r['op']}"
                out[key] = out.get(key, 0) + 1
        return out

    @property
    def running(self) -> bool:
        """True while the prober sends."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> ProbeReport:
        """Stop (requests in flight finish within their deadline) and return the report.
        Stopping again returns the same report."""
        if self._report is not None:
            return self._report
        if self._thread is None:
            raise ProberError(self.target.project, "stop() before start()")
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._request_stop, "stop()")
        self._thread.join(timeout=self.deadline_s * 3 + 15)
        if self._thread.is_alive():
            raise ProberError(self.target.project, "the prober did not stop within "
                                                   f"{self.deadline_s * 3 + 15:.0f} s")
        if self._error is not None:
            raise ProberError(self.target.project,
                              f"the prober failed: {type(self._error).__name__}: "
                              f"{self._error}") from self._error
        self._report = self._build_report()
        return self._report

    def __enter__(self) -> Prober:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def report(self) -> ProbeReport | None:
        """The report once :meth:`stop` returned it."""
        return self._report

    # ------------------------------------------------------------ the loop

    def _now(self) -> float:
        return time.monotonic() - self._mono0

    def _current_step(self) -> str:
        with self._lock:
            return self._step

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by stop(), never lost in a thread
            self._error = exc
        finally:
            self._cpu_s = time.thread_time() - cpu0
            self._ended_s = self._now()
            self._ready.set()

    def _request_stop(self, why: str) -> None:
        if not self._stopped_by:
            self._stopped_by = why
        if self._stop_event is not None:
            self._stop_event.set()

    def _take(self) -> bool:
        """Count one request against ``max_requests``; False (and stop) once spent."""
        if self._taken >= self.max_requests:
            self._request_stop("max_requests")
            self._closing = True
            return False
        self._taken += 1
        return True

    async def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` or until a stop is asked for."""
        assert self._stop_event is not None
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._ready.set()
        inflight = max(4, int(self.rate * self.deadline_s) + 4)
        limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
        timeout = httpx.Timeout(self.deadline_s)
        # trust_env=False: no HTTP proxy from the environment; traffic goes to 127.0.0.1 only
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as http, \
                httpx.AsyncClient(timeout=timeout, trust_env=False) as session_http:
            tasks = [asyncio.create_task(self._http_stream(http))]
            if self.target.websocket:
                tasks.append(asyncio.create_task(self._ws_loop(self.target.websocket)))
            if self.target.session is not None:
                tasks.append(asyncio.create_task(self._session_loop(session_http)))
            await self._wait(self.max_duration_s - self._now())
            self._request_stop("max_duration")
            self._closing = True
            await asyncio.gather(*tasks)
            if self._session_check_args is not None and self._session_alive():
                await self._session_check(session_http, self._session_check_args)  # "after"

    # ------------------------------------------------------------ rows

    def _row(self, kind: str, op: str, path: str, sent_s: float, step: str, *,
             status: int | None, ok: bool, error: NetworkErrorType | None = None,
             detail: str = "", retries: int = 0, seq: int | None = None,
             ended_s: float | None = None) -> None:
        ended = self._now() if ended_s is None else ended_s
        self._rows.append({
            "seq": next(self._seq) if seq is None else seq,
            "t": datetime.fromtimestamp(self._wall0 + sent_s, UTC),
            "t_s": round(sent_s, 6), "kind": kind, "op": op, "path": path, "step": step,
            "step_ended": self._current_step(),
            "status": status, "ok": ok, "latency_ms": round((ended - sent_s) * 1000.0, 3),
            "retries": retries, "error_type": "" if ok else str(error or
                                                                NetworkErrorType.PROXY_ERROR),
            "detail": detail})

    # ------------------------------------------------------------ HTTP

    async def _http_stream(self, http: httpx.AsyncClient) -> None:
        interval = 1.0 / self.rate
        due = 0.0  # slot 0 is the start: a loop that starts late has missed slots already
        paths = self.target.http
        pending: set[asyncio.Task[None]] = set()
        for i in itertools.count():
            if self._closing:
                break
            now = self._now()
            if now < due:
                await self._wait(due - now)
                if self._closing:
                    break
            now = self._now()
            if now > due + interval:  # fell behind: skip, do not burst
                missed = int((now - due) / interval)
                self._missed_slots += missed
                due += missed * interval
            if not self._take():
                break
            task = asyncio.create_task(self._http_one(http, paths[i % len(paths)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            due += interval
        self._http_ended_s = self._now()
        if pending:
            await asyncio.gather(*pending)

    async def _http_one(self, http: httpx.AsyncClient, path: str) -> None:
        seq, step, sent = next(self._seq), self._current_step(), self._now()
        end_by = sent + self.deadline_s
        url = self.target.url(path)
        retries, closed_retried, backoff = 0, False, RETRY_FIRST_S
        status: int | None = None
        error: NetworkErrorType | None = None
        detail = ""
        while True:
            remaining = end_by - self._now()
            if remaining <= 0:
                error, detail = NetworkErrorType.TIMEOUT, "no answer within the deadline"
                break
            try:
                response = await asyncio.wait_for(http.get(url), remaining)
            except (TimeoutError, httpx.TimeoutException):
                error, detail = NetworkErrorType.TIMEOUT, "no answer within the deadline"
                break
            except httpx.ConnectError as exc:
                if _refused(exc):
                    if self._now() + backoff < end_by:
                        retries += 1
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, RETRY_MAX_S)
                        continue
                    error, detail = NetworkErrorType.CONNECTION_REFUSED, "connect refused"
                else:
                    error, detail = NetworkErrorType.PROXY_ERROR, type(exc).__name__
                break
            except httpx.RemoteProtocolError as exc:
                if not closed_retried and self._now() < end_by:
                    closed_retried, retries = True, retries + 1
                    continue
                error, detail = NetworkErrorType.PROXY_ERROR, f"closed: {type(exc).__name__}"
                break
            except httpx.HTTPError as exc:
                error, detail = NetworkErrorType.PROXY_ERROR, type(exc).__name__
                break
            status = response.status_code
            if not 200 <= status < 400:
                error, detail = _status_error(status), f"HTTP {status}"
            break
        if retries and not detail:
            detail = f"answered after {retries} retr{'y' if retries == 1 else 'ies'}"
        elif retries:
            detail += f" ({retries} retr{'y' if retries == 1 else 'ies'})"
        self._row("http", "get", path, sent, step, status=status, ok=error is None,
                  error=error, detail=detail, retries=retries, seq=seq)

    # ------------------------------------------------------------ WebSocket

    async def _ws_loop(self, path: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

        url = self.target.ws_url(path)
        connected_once, backoff, n = False, WS_BACKOFF_FIRST_S, 0
        #: an echo pending when the server closed cleanly: sent again on the next connection
        carried: tuple[int, str, float, str] | None = None
        while not self._closing:
            if not self._take():
                break
            op = "reconnect" if connected_once else "connect"
            step, sent = self._current_step(), self._now()
            try:
                ws = await asyncio.wait_for(
                    connect(url, open_timeout=self.deadline_s, close_timeout=1.0,
                            ping_interval=None, proxy=None), self.deadline_s)
            except InvalidStatus as exc:
                code = exc.response.status_code
                self._row("ws", op, path, sent, step, status=code, ok=False,
                          error=_status_error(code), detail=f"handshake HTTP {code}")
            except (TimeoutError, OSError, WebSocketException) as exc:
                error = (NetworkErrorType.CONNECTION_REFUSED if _refused(exc) else
                         NetworkErrorType.TIMEOUT if isinstance(exc, TimeoutError) else
                         NetworkErrorType.PROXY_ERROR)
                self._row("ws", op, path, sent, step, status=None, ok=False, error=error,
                          detail=type(exc).__name__)
            else:
                self._row("ws", op, path, sent, step, status=101, ok=True)
                connected_once, backoff = True, WS_BACKOFF_FIRST_S
                pending: tuple[int, str, float, str] | None = None
                try:
                    next_tick = self._now()
                    if carried is not None:  # what a client does: send the unanswered again
                        pending, carried = carried, None
                        await ws.send(pending[3])
                        answer = await asyncio.wait_for(
                            ws.recv(), max(pending[2] + self.deadline_s - self._now(), 0.01))
                        seq, estep, esent, payload = pending
                        pending = None
                        good = answer == payload
                        self._row("ws", "echo", path, esent, estep, status=None, ok=good,
                                  detail="answered on the new connection" if good else
                                  "the answer is not the echo", seq=seq)
                    while not self._closing:
                        wait = next_tick - self._now()
                        if wait > 0:  # idle: notice a close at once
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(ws.recv(), min(wait, POLL_S))
                            continue
                        if not self._take():
                            break
                        n += 1
                        payload = f"rdp-{n}"
                        pending = (next(self._seq), self._current_step(), self._now(), payload)
                        await ws.send(payload)
                        answer = await asyncio.wait_for(ws.recv(), self.deadline_s)
                        seq, estep, esent, _ = pending
                        pending = None
                        good = answer == payload
                        self._row("ws", "echo", path, esent, estep, status=None, ok=good,
                                  detail="" if good else "the answer is not the echo",
                                  seq=seq)
                        next_tick += self.ws_interval_s
                        next_tick = max(next_tick, self._now())
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else 1006
                    clean = exc.rcvd is not None and code in CLEAN_CLOSE_CODES
                    if pending is not None and clean and self._now() < pending[2] + \
                            self.deadline_s:
                        carried = pending  # a clean close: the echo is asked again
                    elif pending is not None:
                        seq, estep, esent, _ = pending
                        self._row("ws", "echo", path, esent, estep, status=None, ok=False,
                                  detail="closed before the echo", seq=seq)
                    now = self._now()
                    self._row("ws", "close", path, now, self._current_step(), status=int(code),
                              ok=clean, detail=f"closed by the server ({code})", ended_s=now)
                    continue  # reconnect at once
                except TimeoutError:
                    if pending is not None:
                        seq, estep, esent, _ = pending
                        self._row("ws", "echo", path, esent, estep, status=None, ok=False,
                                  error=NetworkErrorType.TIMEOUT,
                                  detail="no echo within the deadline", seq=seq)
                finally:
                    await ws.close()
                if self._closing:
                    break
                continue
            await self._wait(backoff)
            backoff = min(backoff * 2, WS_BACKOFF_MAX_S)
        if carried is not None:  # stopped before it could be sent again
            seq, estep, esent, _ = carried
            self._row("ws", "echo", path, esent, estep, status=None, ok=False,
                      detail="closed before the echo", seq=seq)

    # ------------------------------------------------------------ session

    def _session_alive(self) -> bool:
        rows = [r for r in self._rows if r["kind"] == "session"]
        return bool(rows) and all(r["ok"] for r in rows)

    async def _session_request(self, http: httpx.AsyncClient, op: str, method: str, path: str,
                               expect: str = "", body: Mapping[str, Any] | None = None,
                               timeout_s: float | None = None) -> httpx.Response | None:
        step, sent = self._current_step(), self._now()
        url = self.target.url(path)
        try:
            response = await asyncio.wait_for(
                http.request(method, url, json=dict(body) if body is not None else None,
                             timeout=timeout_s or self.deadline_s),
                timeout_s or self.deadline_s)
        except (TimeoutError, httpx.TimeoutException):
            self._row("session", op, path, sent, step, status=None, ok=False,
                      error=NetworkErrorType.TIMEOUT, detail="no answer within the deadline")
            return None
        except httpx.HTTPError as exc:
            error = (NetworkErrorType.CONNECTION_REFUSED if _refused(exc)
                     else NetworkErrorType.PROXY_ERROR)
            self._row("session", op, path, sent, step, status=None, ok=False, error=error,
                      detail=type(exc).__name__)
            return None
        status = response.status_code
        ok, detail = 200 <= status < 300, ""
        if not ok:
            detail = f"HTTP {status}" + (": session lost" if op == "check" and status in (401,
                                                                                         403)
                                         else "")
        elif expect and expect not in response.text:
            ok, detail = False, ("the answer does not hold what the session wrote"
                                 if op == "check" else "unexpected answer")
        self._row("session", op, path, sent, step, status=status, ok=ok,
                  error=None if ok else _status_error(status), detail=detail)
        return response if ok else None

    async def _session_start(self, http: httpx.AsyncClient) -> tuple[str, str] | None:
        """Log in (or write); (check path, expected text), or None when it failed."""
        session = self.target.session
        assert session is not None
        if not self._take():
            return None
        if session.mode == "write":
            marker = new_marker()
            body = {k: v.replace(MARKER, marker) if isinstance(v, str) else v
                    for k, v in session.body.items()}
            answer = await self._session_request(http, "write", "POST", session.path,
                                                 body=body, timeout_s=self.setup_timeout_s)
            return (session.check, marker) if answer is not None else None
        answer = await self._session_request(http, "login", "POST", session.path,
                                             body=session.body, timeout_s=self.setup_timeout_s)
        if answer is None:
            return None
        try:
            token = answer.json().get("token")
        except (ValueError, AttributeError):
            token = None
        if isinstance(token, str) and token:
            http.headers["Authorization"] = f"Bearer {token}"
        return session.check, session.expect

    async def _session_check(self, http: httpx.AsyncClient, check: tuple[str, str]) -> None:
        await self._session_request(http, "check", "GET", check[0], expect=check[1])

    async def _session_loop(self, http: httpx.AsyncClient) -> None:
        check = await self._session_start(http)
        self._session_check_args = check
        if check is None:
            return
        while not self._closing:
            await self._wait(self.session_interval_s)
            if self._closing or not self._session_alive() or not self._take():
                break
            await self._session_check(http, check)

    # ------------------------------------------------------------ the report

    def _marks_frame(self, end_s: float) -> pd.DataFrame:
        with self._lock:
            marks = list(self._marks)
        rows = []
        for (step, at), nxt in itertools.pairwise([*marks, ("", end_s)]):
            if step:
                rows.append({"step": step, "started_s": round(at, 6),
                             "ended_s": round(max(nxt[1], at), 6),
                             "started": datetime.fromtimestamp(self._wall0 + at, UTC),
                             "ended": datetime.fromtimestamp(self._wall0 + max(nxt[1], at),
                                                             UTC)})
        return pd.DataFrame(rows, columns=["step", "started_s", "ended_s", "started", "ended"])

    def _build_report(self) -> ProbeReport:
        rows = sorted(self._rows, key=lambda r: (r["t_s"], r["seq"]))
        for i, row in enumerate(rows):  # seq: the order in which they were sent
            row["seq"] = i
        requests = to_frame("probe_requests", rows)
        meta = {"target": self.target.describe(), "rate": self.rate,
                "deadline_s": self.deadline_s, "max_duration_s": self.max_duration_s,
                "max_requests": self.max_requests,
                "started_at": datetime.fromtimestamp(self._wall0, UTC).isoformat(),
                "duration_s": round(self._ended_s, 3), "stopped_by": self._stopped_by,
                "missed_slots": self._missed_slots, "cpu_s": round(self._cpu_s, 3),
                "schedule_s": round(self._http_ended_s, 3),
                "skipped": dict(self.target.skipped)}
        return ProbeReport(requests, self._marks_frame(self._ended_s), meta)


def run_prober(project: str, duration_s: float, *, plan_prober: Mapping[str, Any] |
               ProberConfig | None = None, client: Any = None, rate: float | None = None,
               ) -> ProbeReport:
    """Probe ``project`` for ``duration_s`` seconds and return the report (for a notebook:
    ``run_prober("rdlab", 30).summary()``). The target is learned from the stack
    (:func:`probe_target`); ``client`` defaults to a fresh connection to the local engine."""
    if not 0 < duration_s <= 86400:
        raise ParameterError("duration_s", duration_s, "seconds, more than 0, at most 86400")
    own = client is None
    if own:
        from revivadiag.engine.client import connect

        client = connect()
    try:
        target = probe_target(client, project, plan_prober)
    finally:
        if own:
            client.close()
    prober = Prober(target, rate=rate, max_duration_s=duration_s).start()
    while prober.running:  # it stops by itself after duration_s
        time.sleep(0.1)
    return prober.stop()
