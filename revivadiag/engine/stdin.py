"""Jobs reach a probe on its standard input, never on its command line.

A probe job may carry credentials (the PostgreSQL and Redis health checks). Anything in a
process's argv is readable by every process of its PID namespace (``/proc/<pid>/cmdline``),
and a container's command is kept by the engine (``docker inspect`` shows ``Config.Cmd``).
So the sidecar and exec methods start the shipped netprobe program with no job in its argv
and write the request to its stdin over the engine's attach stream:

- :func:`exec_with_stdin`: ``POST /exec/{id}/start`` hijacked, the request written, the write
  side closed (the process sees end of file), then stdout and stderr read back demultiplexed.
- :func:`create_with_stdin` / :func:`feed`: a container created with ``OpenStdin`` and
  ``StdinOnce``, attached *before* it starts; closing the attach stream closes its stdin.

Works over the local socket and ``tcp://``; over ``ssh://`` the stream is a paramiko channel,
which has ``sendall`` and ``shutdown_write`` too.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter


def _raw(sock: Any) -> Any:
    """The object that can send: a socket under docker-py's SocketIO, else the stream itself."""
    return getattr(sock, "_sock", sock)


def send_and_close_write(sock: Any, payload: bytes, timeout_s: float) -> None:
    """Write ``payload`` and signal end of file, keeping the read side open."""
    raw = _raw(sock)
    if hasattr(raw, "settimeout"):
        raw.settimeout(timeout_s)
    raw.sendall(payload)
    if hasattr(raw, "shutdown_write"):  # paramiko channel (ssh://)
        raw.shutdown_write()
    else:
        raw.shutdown(socket.SHUT_WR)


def exec_with_stdin(api: Any, container_id: str, argv: list[str], payload: bytes,
                    timeout_s: float) -> tuple[int, str, str]:
    """Run ``argv`` in the container with ``payload`` on stdin: (exit code, stdout, stderr).

    Raises docker's errors as docker-py does (NotFound, APIError), and ``TimeoutError``
    when the stream stalls past ``timeout_s``. A process that exits without reading its
    stdin (say, ``python3`` is not in the container) is not an error here: its exit code
    and output tell.
    """
    code, out, err = exec_with_stdin_bytes(api, container_id, argv, payload, timeout_s)
    return code, out.decode(errors="replace"), err.decode(errors="replace")


def exec_with_stdin_bytes(api: Any, container_id: str, argv: list[str], payload: bytes,
                          timeout_s: float, *, user: str = "",
                          environment: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """:func:`exec_with_stdin` with the output as bytes, run as ``user`` with
    ``environment`` added (a secret there is not shown by ``docker inspect``, unlike argv)."""
    exec_id = api.exec_create(container_id, argv, stdin=True, stdout=True, stderr=True,
                              user=user, environment=environment or None)["Id"]
    sock = api.exec_start(exec_id, socket=True)
    try:
        # a process that is gone already broke the pipe: read what it said
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send_and_close_write(sock, payload, timeout_s)
        frames = (demux_adaptor(*frame) for frame in frames_iter(sock, tty=False))
        out, err = consume_socket_output(frames, demux=True)
    finally:
        sock.close()
    code = api.exec_inspect(exec_id).get("ExitCode")
    return (-1 if code is None else int(code)), (out or b""), (err or b"")


def create_with_stdin(api: Any, image: str, argv: list[str], *, name: str, entrypoint: list[str],
                      network_mode: str, labels: dict[str, str]) -> str:
    """Create (not start) a container whose stdin stays open until the first attach ends."""
    config = api.create_container_config(
        image, argv, entrypoint=entrypoint, stdin_open=True, labels=labels,
        host_config=api.create_host_config(network_mode=network_mode))
    config["StdinOnce"] = True
    return str(api.create_container_from_config(config, name=name)["Id"])


def start_and_feed(api: Any, container_id: str, payload: bytes, timeout_s: float) -> None:
    """Attach to the created container's stdin, start it, write ``payload``, close stdin."""
    sock = api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
    try:
        api.start(container_id)
        send_and_close_write(sock, payload, timeout_s)
    finally:
        sock.close()
