"""Moving a published host port from one container to another without refusing a client.

Docker binds one host port to one container: between blue releasing the port and green's
port forwarder listening, a connection to it is refused. While the port moves, new
connections to it are redirected (netfilter ``nat`` table, ``REDIRECT``) to an *interim*
container of the same configuration published on a port the engine picks; connections
already open keep going where they went (conntrack), so blue's requests in flight finish.
Once green holds the port and is ready, the rule goes and new connections reach green.

The rule is a journaled action with its inverse: it carries the comment
``rdmig:<project>:<step>`` (:func:`tag`), the step logs its addition and removal, and the
step's ``classify`` sees it (a run killed while it is in place is a *partial* step) and its
``undo`` removes every rule with that comment (:func:`remove_tagged`), so neither a crash nor
a rollback leaves it behind.

Only where it can work: the engine runs on this host (its published ports are this host's)
and ``iptables`` answers (root). Otherwise :func:`unusable` says why and the switch falls
back to stop-then-start, reporting the window in ms.

>>> tag("rdlab", "replace frontend")
'rdmig:rdlab:replace-frontend'
>>> Redirect("rdmig:p:s", 8080, 40001, "127.0.0.1").rules()[0][:6]
['-t', 'nat', '-I', 'OUTPUT', '-d', '127.0.0.1/32']
>>> [r[3] for r in Redirect("rdmig:p:s", 8080, 40001, "0.0.0.0").rules()]
['OUTPUT', 'PREROUTING']
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from revivadiag.errors import StepError

CHAINS = ("OUTPUT", "PREROUTING")
TIMEOUT_S = 10.0


def tag(project: str, step_id: str) -> str:
    """The comment that marks a step's rules (iptables comments: at most 256 characters)."""
    safe = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in f"{project}:{step_id}")
    return f"rdmig:{safe}"[:200]


def _iptables() -> str | None:
    return shutil.which("iptables")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def unusable(client: Any) -> str | None:
    """Why a redirect cannot be used here (None: it can): the engine is not on this host, or
    iptables is missing or does not answer (not root)."""
    base = str(getattr(getattr(client, "api", None), "base_url", "") or "")
    host = urlparse(base).hostname or ""
    if not (base.startswith("http+docker://") or host in ("127.0.0.1", "localhost", "::1")):
        return f"the engine at {base or '?'} is not on this host"
    binary = _iptables()
    if binary is None:
        return "iptables is not installed"
    if os.geteuid() != 0:
        return "not root: iptables cannot be changed"
    done = _run([binary, "-t", "nat", "-S", "OUTPUT"])
    if done.returncode != 0:
        return f"iptables does not answer: {done.stderr.strip()[:200]}"
    return None


class Redirect:
    """New TCP connections to host port ``port`` go to ``to_port`` on this host: from this
    host (``OUTPUT``, loopback clients) and, for a port published beyond loopback, from
    outside (``PREROUTING``)."""

    def __init__(self, comment: str, port: int, to_port: int, host_ip: str) -> None:
        self.comment = comment
        self.port = int(port)
        self.to_port = int(to_port)
        self.host_ip = host_ip or "0.0.0.0"

    def rules(self) -> list[list[str]]:
        """The ``iptables`` arguments that insert the rules."""
        match = ["-p", "tcp", "--dport", str(self.port), "-m", "comment", "--comment",
                 self.comment, "-j", "REDIRECT", "--to-ports", str(self.to_port)]
        if self.host_ip not in ("0.0.0.0", "::", ""):
            return [["-t", "nat", "-I", "OUTPUT", "-d", f"{self.host_ip}/32", *match]]
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return [["-t", "nat", "-I", chain, *local, *match] for chain in CHAINS]

    def add(self, log: Callable[[str], None]) -> None:
        binary = _iptables()
        if binary is None:
            raise StepError("redirect the host port", "iptables is not installed")
        for argv in self.rules():
            done = _run([binary, *argv])
            if done.returncode != 0:
                remove_tagged(self.comment, log)
                raise StepError("redirect the host port", done.stderr.strip()[:300])
        log(f"host port {self.port}: new connections redirected to port {self.to_port} "
            f"(iptables nat, comment {self.comment})")

    def remove(self, log: Callable[[str], None]) -> int:
        return remove_tagged(self.comment, log)


def tagged_rules(comment: str) -> list[list[str]]:
    """The ``-t nat -A CHAIN ...`` rules that carry ``comment``, as argument lists."""
    binary = _iptables()
    if binary is None:
        return []
    out = []
    for chain in CHAINS:
        done = _run([binary, "-t", "nat", "-S", chain])
        for line in done.stdout.splitlines():
            parts = shlex.split(line)
            if parts[:1] == ["-A"] and comment in parts:
                out.append(["-t", "nat", *parts])
    return out


def remove_tagged(comment: str, log: Callable[[str], None]) -> int:
    """Delete every nat rule with ``comment`` (the inverse of :meth:`Redirect.add`, also after
    a crash); returns how many were removed."""
    binary = _iptables()
    removed = 0
    for argv in tagged_rules(comment):
        delete = [argv[0], argv[1], "-D", *argv[3:]]
        if _run([binary or "iptables", *delete]).returncode == 0:
            removed += 1
    if removed:
        log(f"host port redirect removed ({removed} rule{'s' if removed > 1 else ''}, "
            f"comment {comment})")
    return removed
