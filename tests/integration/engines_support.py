"""A second Docker Engine and a real sshd on this machine, for the multi-engine and Swarm tests.

:class:`SecondEngine` starts a private ``dockerd`` beside the shared one: its own unix socket,
``--data-root``, ``--exec-root``, ``--pidfile``, a default bridge of its own (an interface
``rdb<hex>`` made here: ``--bridge=none`` would not do, as a daemon started with it deletes
the interface ``docker0`` of its network namespace, i.e. the shared engine's bridge),
``--iptables=false`` (the shared engine owns the host's DOCKER chains; a second dockerd with
iptables on would flush them) and an address pool of its own. It listens on
``tcp://127.0.0.1:<free port>`` too. Because the host forwards bridged traffic through
iptables (``bridge-nf-call-iptables=1``, FORWARD policy DROP), one ACCEPT rule for the pool
(source and destination inside it) is inserted into ``DOCKER-USER`` and deleted at stop.

:class:`Sshd` runs Debian's OpenSSH server on ``127.0.0.1:<free port>`` with a host key, a
user key and a config file generated in a temp dir; :meth:`Sshd.client_config` writes the
client side (an ``ssh_config`` naming the key and a known_hosts file holding the host key).

Both are ended by their own PID and leave nothing behind. Commands are argv lists; images
are copied with ``docker save`` piped into ``docker load`` (two processes, no shell).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker

from revivadiag.lab import read_secrets
from revivadiag.lab.compose import run_compose
from revivadiag.lab.config import LabConfig
from revivadiag.lab.lifecycle import pick_free_ports

START_TIMEOUT_S = 60.0
#: pools the second engine may take its networks from (one /16 not routed on this host)
POOL_CANDIDATES = [f"10.{n}.0.0/16" for n in range(230, 250)]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return pick_free_ports(1)[0]


def _routed() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False)
    nets = []
    for line in out.stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            if "/" in first:
                nets.append(ipaddress.ip_network(first, strict=False))
    return nets


def free_pool(exclude: tuple[str, ...] = ()) -> str:
    """A /16 from :data:`POOL_CANDIDATES` that overlaps no route of this host (nor
    ``exclude``)."""
    routed = _routed()
    for cand in POOL_CANDIDATES:
        if cand in exclude:
            continue
        net = ipaddress.ip_network(cand)
        if not any(net.overlaps(r) for r in routed):
            return cand
    raise RuntimeError("no free /16 for the second engine's address pool")


def _stop_pid(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM ``pid``, wait for it to go, SIGKILL after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class SecondEngine:
    """A private dockerd; see the module docstring."""

    root: Path
    tcp_port: int = field(default_factory=free_port)
    pool: str = field(default_factory=free_pool)
    #: argv run before dockerd's, e.g. ``nsenter --net=/run/netns/NAME`` (its own netns)
    wrap: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    _rule: list[str] = field(default_factory=list)
    #: the default bridge interface this engine gets (host network namespace only)
    bridge: str = field(default_factory=lambda: f"rdb{secrets.token_hex(4)}")

    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}"

    def argv(self) -> list[str]:
        return [*self.wrap, "dockerd", "--host", self.unix_url, "--host", self.tcp_url,
                "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "x"),
                "--pidfile", str(self.root / "dockerd.pid"),
                # in its own namespace (wrap) it may have none; beside the shared engine it
                # needs its own, or it deletes docker0
                "--bridge=" + ("none" if self.wrap else self.bridge),
                "--iptables=false", "--ip-masq=false", "--ip-forward=false",
                "--default-address-pool", f"base={self.pool},size=24",
                "--storage-driver", "overlay2"]

    def _make_bridge(self) -> None:
        """The bridge interface, with the last /24 of the engine's pool (its networks are
        allocated from the first ones)."""
        net = ipaddress.IPv4Network(self.pool)
        last = list(net.subnets(new_prefix=24))[-1]
        for argv in (["ip", "link", "add", self.bridge, "type", "bridge"],
                     ["ip", "addr", "add", f"{last.network_address + 1}/24", "dev", self.bridge],
                     ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run(argv, capture_output=True, check=True)

    def start(self) -> SecondEngine:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.wrap:
            self._make_bridge()
        log = (self.root / "dockerd.log").open("wb")
        # the daemon runs `ps` for /containers/{id}/top: a COLUMNS inherited from a terminal
        # (pytest sets one) would cut the processes' command lines short
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {self.log_tail()}")
            with contextlib.suppress(Exception):
                client = docker.DockerClient(base_url=self.unix_url, version="auto", timeout=5)
                client.ping()
                client.close()
                self._allow_forwarding()
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT_S:.0f} s")

    def _allow_forwarding(self) -> None:
        rule = ["DOCKER-USER", "-s", self.pool, "-d", self.pool, "-j", "ACCEPT"]
        done = subprocess.run(["iptables", "-I", *rule], capture_output=True, check=False)
        if done.returncode == 0:
            self._rule = rule

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.unix_url, version="auto", timeout=60)

    def docker(self, *args: str, check: bool = True,
               timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine (``check``: a failure raises with its
        stderr)."""
        done = subprocess.run(["docker", "-H", self.unix_url, *args], capture_output=True,
                              text=True, check=False, timeout=timeout_s)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:2])}: {done.stderr.strip()[-500:]}")
        return done

    def load_images(self, images: list[str]) -> None:
        """Copy ``images`` from the shared engine: ``docker save`` piped into ``docker load``."""
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", self.unix_url, "load", "-q"], stdin=save.stdout,
                              capture_output=True, check=False, timeout=600)
        assert save.stdout is not None
        save.stdout.close()
        if save.wait(timeout=600) != 0 or load.returncode != 0:
            raise RuntimeError(f"image copy failed: {load.stderr.decode()[-300:]}")

    def log_tail(self, lines: int = 15) -> str:
        path = self.root / "dockerd.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Leave swarm mode if in it, remove every container, end dockerd by PID, clean up."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.docker("swarm", "leave", "--force", check=False, timeout_s=60)
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "-aq", check=False).stdout.split()
                if ids:
                    self.docker("rm", "-f", "-v", *ids, check=False)
            _stop_pid(self.proc.pid, timeout_s=30)
            self.proc.wait(timeout=10)
        if self._rule:
            subprocess.run(["iptables", "-D", *self._rule], capture_output=True, check=False)
            self._rule = []
        if not self.wrap:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        # dockerd leaves overlay mounts under its data root until they are unmounted
        subprocess.run(["umount", "-R", str(self.root / "x")], capture_output=True, check=False)
        for mount in reversed(_mounts_under(self.root)):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def second_engine(images: list[str]) -> Iterator[SecondEngine]:
    """A started :class:`SecondEngine` holding ``images`` (copied from the shared engine),
    stopped at the end."""
    eng = SecondEngine(Path(f"/tmp/rdt{secrets.token_hex(4)}")).start()  # short: containerd
    try:
        eng.load_images(images)
        yield eng
    finally:
        eng.stop()


@contextlib.contextmanager
def lab_on(engine: SecondEngine, prefix: str) -> Iterator[LabConfig]:
    """The `current` lab under project ``prefix`` (its secrets are those of the shared
    engine's lab of that prefix) on ``engine``, no published port, healthy; removed with its
    volume at the end."""
    config = LabConfig(prefix=prefix, variant="current", publish=False)
    lab_secrets = read_secrets(prefix)
    env = {"DOCKER_HOST": engine.unix_url}
    with _environ(env):
        run_compose(config, lab_secrets, "up", "-d")
    try:
        _wait_healthy(engine.client(), prefix, 4)
        yield config
    finally:
        with _environ(env):
            run_compose(config, lab_secrets, "down", "-v")


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_healthy(client: docker.DockerClient, project: str, count: int,
                  timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
        if len(found) == count and all(c.attrs["State"].get("Health", {}).get("Status")
                                       == "healthy" for c in found):
            return
        time.sleep(1)
    raise AssertionError(f"{project} on the second engine did not become healthy")


def free_udp_port() -> int:
    """A UDP port free here in the range Swarm takes for its VXLAN port (1024-49151)."""
    import random

    for _ in range(50):
        port = random.randint(40000, 49151)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free UDP port for the VXLAN data path")


@contextlib.contextmanager
def swarm_mode(engine: SecondEngine, advertise: str = "127.0.0.1") -> Iterator[SecondEngine]:
    """``engine`` as a single-node swarm (its own address pool and VXLAN port; the node
    address ``advertise``) for the ``with`` block; always left again, ``docker_gwbridge``
    removed."""
    port = free_port()
    engine.docker("swarm", "init", "--advertise-addr", advertise, "--listen-addr",
                  f"127.0.0.1:{port}", "--default-addr-pool", free_pool((engine.pool,)),
                  "--data-path-port", str(free_udp_port()))
    try:
        yield engine
    finally:
        engine.docker("swarm", "leave", "--force", check=False)
        engine.docker("network", "rm", "docker_gwbridge", check=False)
        assert engine.docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() \
            == "inactive"


def _mounts_under(root: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(root) + "/"
    points = [ln.split()[1] for ln in lines if len(ln.split()) > 1]
    return [m for m in points if m.startswith(prefix)]


@dataclass
class Sshd:
    """OpenSSH's sshd on 127.0.0.1, keys and config of its own; see the module docstring."""

    root: Path
    port: int = field(default_factory=free_port)
    user: str = "root"
    #: the engine ``docker system dial-stdio`` reaches in a session (sshd's ``SetEnv``)
    docker_host: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host_key(self) -> Path:
        return self.root / "host_ed25519"

    @property
    def user_key(self) -> Path:
        return self.root / "user_ed25519"

    def start(self) -> Sshd:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(sshd).exists():
            raise RuntimeError("sshd is not installed (Debian: openssh-server)")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for key in (self.host_key, self.user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True, capture_output=True)
        auth = self.root / "authorized_keys"
        auth.write_text(self.user_key.with_suffix(".pub").read_text())
        os.chmod(auth, 0o600)
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.root / 'sshd.pid'}", f"AuthorizedKeysFile {auth}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no",
            "MaxStartups 10:30:60", "MaxSessions 10", "LogLevel VERBOSE",
            *([f"SetEnv DOCKER_HOST={self.docker_host}"] if self.docker_host else []), ""]))
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        log = (self.root / "sshd.log").open("wb")
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-400:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                         timeout=0.5):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("sshd did not listen")

    def client_config(self, alias: str = "") -> tuple[str, Path]:
        """(an ``ssh://`` URL, the ssh_config file that makes it work) for this sshd."""
        alias = alias or f"rdt{secrets.token_hex(4)}"
        known = self.root / "known_hosts"
        known.write_text(f"[127.0.0.1]:{self.port} "
                         + " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
                         + "\n")
        config = self.root / "ssh_config"
        config.write_text("\n".join([
            f"Host {alias}", "  HostName 127.0.0.1", f"  Port {self.port}", f"  User {self.user}",
            f"  IdentityFile {self.user_key}", f"  UserKnownHostsFile {known}",
            "  StrictHostKeyChecking yes", ""]))
        return f"ssh://{alias}", config

    def connections(self) -> int:
        """Logins so far (its log's 'Accepted publickey' lines; the readiness probe of
        :meth:`start` connects but never logs in)."""
        log = self.root / "sshd.log"
        return log.read_text(errors="replace").count("Accepted publickey") if log.exists() else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _stop_pid(self.proc.pid, timeout_s=10)
            self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
