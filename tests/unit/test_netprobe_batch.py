"""run_batch over real loopback sockets: outcomes, retries with backoff, breaker, main()."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import pytest

from revivadiag.engine.netprobe import batch, context, run_batch, services


@pytest.fixture
def listener() -> Iterator[int]:
    """A listening loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_open_and_refused(listener: int, closed_port: int) -> None:
    """open vs refused, with connect times and the address used."""
    jobs = [{"kind": "tcp", "host": "127.0.0.1", "port": listener, "tag": "a"},
            {"kind": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 0}]
    opened, refused = run_batch(jobs)
    assert (opened["outcome"], opened["error_type"], opened["tag"]) == ("open", "", "a")
    assert opened["connect_ms"] >= 0 and opened["ip"] == "127.0.0.1"
    assert (refused["outcome"], refused["error_type"]) == ("refused", "CONNECTION_REFUSED")


def test_retries_with_backoff(closed_port: int) -> None:
    """A refused connect is retried (exponential backoff) up to ``retries`` times."""
    res = run_batch([{"kind": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 2,
                      "backoff_s": 0.02}])[0]
    assert res["attempts"] == 3
    assert res["elapsed_ms"] >= (0.02 + 0.04) * 0.5 * 1000  # jitter is at most +-50 %


def test_no_retry_for_types_not_listed(closed_port: int) -> None:
    """retry_on limits which error types are retried."""
    res = run_batch([{"kind": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 3,
                      "retry_on": ["TIMEOUT"]}])[0]
    assert res["attempts"] == 1


def test_breaker_stops_retries_within_a_batch(closed_port: int) -> None:
    """After 3 consecutive failures to one target, later probes are made once, marked."""
    jobs = [{"kind": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 0}] * 3
    jobs.append({"kind": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 3})
    results = run_batch(jobs, concurrency=1)
    assert results[-1]["attempts"] == 1
    assert "circuit open" in results[-1]["error"]


def test_breaker_and_backoff_units() -> None:
    """Breaker resets on success; backoff doubles up to the cap."""
    br = context.Breaker(threshold=2)
    br.record("t", ok=False)
    br.record("t", ok=True)
    br.record("t", ok=False)
    assert not br.is_open("t")
    assert list(context.backoff_delays(5, base_s=0.25, jitter=0.0, cap_s=1.0)) == [
        0.25, 0.5, 1.0, 1.0, 1.0]


def test_unresolvable_via_system_resolver() -> None:
    """A name that does not resolve is 'unresolvable' / DNS_RESOLUTION_FAILED (no connect)."""
    res = run_batch([{"kind": "tcp", "host": "no-such-host.invalid", "port": 80,
                      "server": ""}])[0]
    assert (res["outcome"], res["error_type"], res["attempts"]) == (
        "unresolvable", "DNS_RESOLUTION_FAILED", 0)


def test_dns_job_without_resolver() -> None:
    """Asking a resolver that is not there gives a row, not an exception."""
    res = run_batch([{"kind": "dns", "name": "backend", "server": "127.0.0.1",
                      "timeout_s": 0.3, "retries": 0}])[0]
    assert res["rcode"] in ("ERROR", "TIMEOUT") and res["error_type"]


@pytest.mark.parametrize(
    ("job", "needle"),
    [({"kind": "ping"}, "unknown job kind"), ({"kind": "tcp", "host": "x"}, "bad tcp job")],
)
def test_bad_jobs_become_rows(job: dict[str, object], needle: str) -> None:
    """Unknown kinds and missing fields are reported in the row."""
    assert needle in run_batch([job])[0]["error"]


def test_main_reads_argv_and_stdin(listener: int, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """main(): JSON jobs in (argument or stdin, list or object), JSON results out."""
    job = {"kind": "tcp", "host": "127.0.0.1", "port": listener}
    assert batch.main([json.dumps([job])]) == 0
    assert json.loads(capsys.readouterr().out)[0]["outcome"] == "open"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"jobs": [job], "concurrency": 2})))
    assert batch.main([]) == 0
    assert json.loads(capsys.readouterr().out)[0]["outcome"] == "open"


@pytest.mark.parametrize(
    ("text", "auth"),
    [
        ("-WRONGPASS invalid username-password pair or user is disabled.", True),
        ("-NOAUTH Authentication required.", True),
        ("-ERR invalid password", True),
        ("-ERR unknown command", False),
    ],
)
def test_redis_auth_errors(text: str, auth: bool) -> None:
    """Redis replies that mean 'credentials rejected'."""
    assert services.is_auth_error(text) is auth


@pytest.mark.parametrize(
    ("text", "error_type", "auth"),
    [
        ('connection failed: FATAL:  password authentication failed for user "app"', "", True),
        ('FATAL:  role "nobody" does not exist', "", True),
        ("connection failed: Connection refused", "CONNECTION_REFUSED", False),
        ("connection failed: timeout expired", "TIMEOUT", False),
        ('FATAL:  database "x" does not exist', "CONNECTION_REFUSED", False),
    ],
)
def test_postgres_error_mapping(text: str, error_type: str, auth: bool) -> None:
    """libpq texts map to an error type or to 'credentials rejected'."""
    assert services.classify_pg_error(text) == (error_type, auth)


def test_scrub_and_resp() -> None:
    """The password never survives in a text; RESP framing is byte-exact."""
    assert services.scrub("auth failed for s3cret!", "s3cret!") == "auth failed for ***"
    assert services.resp_command("PING") == b"*1\r\n$4\r\nPING\r\n"


def test_open_connects_are_repeated_quietly_after_the_batch() -> None:
    """``quiet_samples``: an open connect is repeated that many times after the batch
    (loopback listener); a refused one, or a job without the field, gets no repeats."""
    import socket

    from revivadiag.engine.netprobe.batch import run_batch as run

    with socket.socket() as listener, socket.socket() as closed:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
        port, dead = listener.getsockname()[1], closed.getsockname()[1]
        jobs = [{"kind": "tcp", "host": "127.0.0.1", "port": port, "server": "",
                 "retries": 0, "quiet_samples": 3},
                {"kind": "tcp", "host": "127.0.0.1", "port": dead, "server": "",
                 "retries": 0, "quiet_samples": 3},
                {"kind": "tcp", "host": "127.0.0.1", "port": port, "server": "", "retries": 0}]
        results = run(jobs, 8, 2)
    assert [r["outcome"] for r in results] == ["open", "refused", "open"]
    assert len(results[0]["quiet_ms"]) == 3 and all(t >= 0 for t in results[0]["quiet_ms"])
    assert "quiet_ms" not in results[1] and "quiet_ms" not in results[2]
