"""Measure the lab's build and startup times and print them.

    python -m revivadiag.lab.measure            # cached build + startup of both variants
    python -m revivadiag.lab.measure --cold     # first a forced (cold) rebuild of every image

A cold build here is ``build_images(force=True)``: mmdebstrap from scratch, ``docker
import``, and the four service builds on the new base (no layer cache can apply). Startup
is measured on isolated copies (unique prefix, free ports) from ``compose up`` until every
container is healthy; each copy is removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time

from revivadiag.lab.config import PROFILES, VARIANTS
from revivadiag.lab.images import build_images
from revivadiag.lab.lifecycle import down, isolated_config, up


def measure_startup(variant: str, profile: str) -> float:
    """Seconds from ``compose up`` to all healthy, for a fresh isolated copy (then removed)."""
    config = isolated_config(variant, profile, stem="rdm")
    try:
        return up(config).startup_s
    finally:
        down(config.prefix, volumes=True)


def main(argv: list[str] | None = None) -> int:
    """Print build and startup figures; exit 0."""
    parser = argparse.ArgumentParser(prog="python -m revivadiag.lab.measure")
    parser.add_argument("--cold", action="store_true", help="force a full rebuild first")
    parser.add_argument("--runs", type=int, default=1, help="startups per variant")
    args = parser.parse_args(argv)
    if args.cold:
        cold = build_images(force=True)
        print(f"cold build:   {cold.seconds:6.1f} s\n{cold.summary()}\n")
    t0 = time.monotonic()
    cached = build_images()
    print(f"cached build: {time.monotonic() - t0:6.1f} s ({len(cached.built)} built)")
    for variant in VARIANTS:
        for profile in PROFILES:
            times = [measure_startup(variant, profile) for _ in range(max(1, args.runs))]
            shown = ", ".join(f"{t:.1f}" for t in times)
            print(f"startup {variant:7} {profile:11}: {shown} s (KPI < 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
