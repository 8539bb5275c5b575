"""Building the lab's images without a registry, idempotently.

1. **Base**: ``mmdebstrap --variant=apt --include=<images/base/packages.txt> bookworm base.tar``
   with no mirror argument, so the host's own apt sources are used (no mirror host name is
   written anywhere in this repository); the tar is ``docker import``-ed as
   ``revivadiag/base:<hash>``. With ``from_registry=True`` the same package set is installed
   on top of the official ``debian:bookworm-slim`` image instead (needs a reachable registry;
   not exercised by the tests here) and tagged identically.
2. **Services**: ``revivadiag/lab-<recipe>:latest`` for the seed stack's frontend, backend,
   database, redis and the shop stack's shop-nginx, shop-web, shop-api (api and worker) and
   shop-postgres (its cache runs lab-redis), each ``docker build`` (classic builder) of
   ``images/<recipe>/`` ``FROM`` the base.

A rebuild removes the image it replaced when nothing uses it any more (an image still used
by a running lab's container stays until that lab is removed).

Idempotence: each recipe has a content hash (sha256 over its files, the package list and the
base's hash). The base's hash is in its tag; a service image carries it in the label
``io.revivadiag.recipe-hash``. An image whose hash matches is not rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from revivadiag.engine.client import connect
from revivadiag.errors import ImageBuildError, ParameterError
from revivadiag.lab.config import SEED_STACK, SERVICES, SHOP_STACK, Stack
from revivadiag.lab.state import state_root

RECIPES = Path(__file__).parent / "images"
BASE_REPO = "revivadiag/base"
LABEL_HASH = "io.revivadiag.recipe-hash"
SUITE = "bookworm"
#: Bump when the way the base is made changes (options below), to force a rebuild.
BASE_RECIPE_VERSION = "1"
MMDEBSTRAP_OPTIONS = (
    "--variant=apt",
    "--aptopt=APT::Install-Recommends \"false\"",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "CMD [\"/bin/bash\"]",
)
BUILD_TIMEOUT_S = 900
#: The shop stack's own recipes (its cache uses the seed's ``redis`` recipe).
SHOP_RECIPES = ("shop-postgres", "shop-api", "shop-web", "shop-nginx")
#: Every service recipe, in build order.
RECIPE_NAMES = (*SERVICES, *SHOP_RECIPES)
#: Recipe of each shop service.
SHOP_SERVICE_RECIPES: dict[str, str] = {
    "proxy": "shop-nginx", "web": "shop-web", "api": "shop-api", "worker": "shop-api",
    "db": "shop-postgres", "cache": "redis",
}


@dataclass(frozen=True)
class ImageResult:
    """One image of a build: its tag, whether it was (re)built, and how long that took."""

    image: str
    built: bool
    seconds: float
    recipe_hash: str


@dataclass
class BuildReport:
    """What :func:`build_images` did."""

    images: list[ImageResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def built(self) -> list[str]:
        """Tags that were built this time."""
        return [i.image for i in self.images if i.built]

    @property
    def cached(self) -> list[str]:
        """Tags that were already up to date."""
        return [i.image for i in self.images if not i.built]

    def summary(self) -> str:
        """Human-readable lines, one per image, then the total."""
        lines = [
            f"{'built ' if i.built else 'cached'} {i.image:34} {i.seconds:6.1f} s  "
            f"{i.recipe_hash[:12]}"
            for i in self.images
        ]
        lines.append(
            f"total {self.seconds:.1f} s ({len(self.built)} built, {len(self.cached)} cached)"
        )
        return "\n".join(lines)


def read_packages(text: str) -> list[str]:
    """Package names from packages.txt content (comments and blanks dropped)."""
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [n for n in names if n]


def hash_files(root: Path, extra: str = "") -> str:
    """sha256 over every file under ``root`` (relative path + content) and ``extra``."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def base_hash() -> str:
    """Content hash of the base recipe (package list + mmdebstrap options + suite)."""
    extra = "\n".join((BASE_RECIPE_VERSION, SUITE, *MMDEBSTRAP_OPTIONS, *IMPORT_CHANGES))
    return hash_files(RECIPES / "base", extra)


def base_tag(recipe_hash: str | None = None) -> str:
    """``revivadiag/base:<first 16 hex of the hash>``."""
    return f"{BASE_REPO}:{(recipe_hash or base_hash())[:16]}"


def service_tag(service: str) -> str:
    """``revivadiag/lab-<service>:latest``."""
    return f"revivadiag/lab-{service}:latest"


def service_hash(service: str, base: str) -> str:
    """Content hash of a service recipe, chained to the base's hash."""
    return hash_files(RECIPES / service, base)


def _image_hash(client: docker.DockerClient, tag: str) -> str | None:
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return str((image.labels or {}).get(LABEL_HASH, "")) or None


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def _drop_superseded(client: docker.DockerClient, old_id: str | None, tag: str) -> None:
    """Remove the image a rebuild untagged, unless a container (or a child image) uses it."""
    if old_id is None or old_id == _image_id(client, tag):
        return
    # still in use by a running lab: the engine refuses, and keeps it, as it should
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(old_id)


#: a line of a build tool's output worth showing as progress: mmdebstrap's phases
#: (``I: ...``), the classic builder's steps (``Step 3/9 : RUN ...``)
PROGRESS_LINE = re.compile(r"^(I: |Step \d+/\d+ : )")
Progress = Callable[[str], None]


def progress_text(line: str, image: str, elapsed_s: float) -> str | None:
    """What to show for one output line of a build step (None: nothing).

    >>> progress_text("I: downloading packages with apt...", "base", 12.34)
    'base [ 12s] I: downloading packages with apt...'
    >>> progress_text("Get:1 http://mirror.invalid ...", "base", 1.0) is None
    True
    """
    line = line.rstrip()
    if not PROGRESS_LINE.match(line):
        return None
    return f"{image} [{elapsed_s:3.0f}s] {line[:120]}"


def _run(argv: list[str], image: str, env: dict[str, str] | None = None,
         progress: Progress | None = None) -> None:
    """Run one build step; with ``progress``, its phases are reported as they happen."""
    started = time.monotonic()
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, errors="replace") as proc:
        assert proc.stdout is not None
        timer = threading.Timer(BUILD_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                tail = [*tail[-14:], line.rstrip()]
                shown = progress_text(line, image, time.monotonic() - started)
                if progress is not None and shown is not None:
                    progress(shown)
            returncode = proc.wait()
        finally:
            timer.cancel()
    if returncode != 0:
        raise ImageBuildError(image, f"{argv[0]} {argv[1]} exited {returncode}:\n"
                              + "\n".join(tail))


def _classic_builder_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DOCKER_BUILDKIT"] = "0"  # the classic builder works on every engine here (20.10)
    return env


def _build_base_mmdebstrap(tag: str, progress: Progress | None = None) -> None:
    packages = read_packages((RECIPES / "base" / "packages.txt").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="revivadiag-base-") as tmp:
        tar = str(Path(tmp) / "base.tar")
        _run(
            ["mmdebstrap", *MMDEBSTRAP_OPTIONS, f"--include={','.join(packages)}", SUITE, tar],
            tag,
            progress=progress,
        )
        if progress is not None:
            progress(f"{tag} docker import")
        changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
        _run(["docker", "import", *changes, tar, tag], tag)


def _build_base_registry(tag: str, progress: Progress | None = None) -> None:
    _run(
        ["docker", "build", "-f", str(RECIPES / "base" / "Dockerfile.registry"), "-t", tag,
         str(RECIPES / "base")],
        tag,
        env=_classic_builder_env(),
        progress=progress,
    )


def _build_service(service: str, base: str, recipe_hash: str, no_cache: bool = False,
                   progress: Progress | None = None) -> None:
    tag = service_tag(service)
    _run(
        ["docker", "build", *(["--no-cache"] if no_cache else []),
         "--build-arg", f"BASE_IMAGE={base}",
         "--label", f"{LABEL_HASH}={recipe_hash}", "--label", "io.revivadiag.lab=1",
         "-t", tag, str(RECIPES / service)],
        tag,
        env=_classic_builder_env(),
        progress=progress,
    )


@contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time on this machine (parallel test sessions share the images)."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "build.lock", "w", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_images(
    force: bool = False, from_registry: bool = False, client: docker.DockerClient | None = None,
    rebuild: Collection[str] = (),
    progress: Progress | None = None,
) -> BuildReport:
    """Build the base and every service image; skip those whose recipe hash matches.

    ``rebuild`` names service recipes (e.g. ``"shop-api"``) to build again from scratch
    (``--no-cache``) whatever their hash, leaving the shared base alone. ``progress`` is told
    each step as it happens (which image, mmdebstrap's phases, the builder's steps), so a
    ~70 s base build is not silent. Raises EngineUnreachable when no engine answers,
    ImageBuildError when a step fails, ParameterError for an unknown recipe in ``rebuild``.
    """
    unknown = sorted(set(rebuild) - set(RECIPE_NAMES))
    if unknown:
        raise ParameterError("recipe", unknown[0], f"expected one of {', '.join(RECIPE_NAMES)}")
    client = client or connect()
    report = BuildReport()
    started = time.monotonic()
    with _build_lock():
        bhash = base_hash()
        btag = base_tag(bhash)
        t0 = time.monotonic()
        build_base = force or not _has_image(client, btag)
        old_base = _image_id(client, btag)
        if build_base:
            if progress is not None:
                progress(f"{btag}: building ({'docker build' if from_registry else 'mmdebstrap'}"
                         ", about a minute)")
            (_build_base_registry if from_registry else _build_base_mmdebstrap)(btag, progress)
        report.images.append(ImageResult(btag, build_base, time.monotonic() - t0, bhash))
        for service in RECIPE_NAMES:
            shash = service_hash(service, bhash)
            t0 = time.monotonic()
            build = (force or build_base or service in rebuild
                     or _image_hash(client, service_tag(service)) != shash)
            if build:
                old = _image_id(client, service_tag(service))
                if progress is not None:
                    progress(f"{service_tag(service)}: building")
                _build_service(service, btag, shash, no_cache=service in rebuild,
                               progress=progress)
                _drop_superseded(client, old, service_tag(service))
            report.images.append(
                ImageResult(service_tag(service), build, time.monotonic() - t0, shash)
            )
        if build_base:
            _drop_superseded(client, old_base, btag)
    report.seconds = time.monotonic() - started
    return report


def stack_images(stack: Stack) -> list[str]:
    """The service image tags a stack runs.

    >>> stack_images(SHOP_STACK)[:2]
    ['revivadiag/lab-shop-postgres:latest', 'revivadiag/lab-redis:latest']
    """
    if stack is SHOP_STACK:
        recipes = [SHOP_SERVICE_RECIPES[s] for s in stack.services]
        return [service_tag(r) for r in dict.fromkeys(recipes)]
    return [service_tag(s) for s in SERVICES]


def missing_images(client: docker.DockerClient, stack: Stack | None = None) -> list[str]:
    """Service image tags of ``stack`` (default: the seed's) that do not exist on the engine
    (``lab up`` needs them all)."""
    return [t for t in stack_images(stack or SEED_STACK) if not _has_image(client, t)]
