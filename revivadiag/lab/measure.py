"""Measure the lab's build and startup times and print them.

    python -m revivadiag.lab.measure            # cached build + startup of every variant
    python -m revivadiag.lab.measure --cold     # first a forced (cold) rebuild of every image
    python -m revivadiag.lab.measure --rebuild shop --variant shop-current --variant shop-target

A cold build here is ``build_images(force=True)``: mmdebstrap from scratch, ``docker
import``, and every service build on the new base (no layer cache can apply). ``--rebuild``
instead rebuilds only the named service recipes (``shop`` names the shop stack's four) with
``docker build --no-cache`` on the existing base, which is shared and left alone. Startup is
measured on isolated copies (unique prefix, free ports) from ``compose up`` until every
container is healthy (running, for one without a healthcheck); each copy is removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time

from revivadiag.errors import RevivadiagError
from revivadiag.lab.config import PROFILES, VARIANTS, check_variant
from revivadiag.lab.images import SHOP_RECIPES, build_images
from revivadiag.lab.lifecycle import down, isolated_config, up


def measure_startup(variant: str, profile: str) -> float:
    """Seconds from ``compose up`` to all healthy, for a fresh isolated copy (then removed)."""
    config = isolated_config(variant, profile, stem="rdm")
    try:
        return up(config).startup_s
    finally:
        down(config.prefix, volumes=True)


def main(argv: list[str] | None = None) -> int:
    """Print build and startup figures; exit 0 (2 with a message for a bad variant or recipe,
    or an engine that does not answer)."""
    try:
        return _measure(argv)
    except RevivadiagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _measure(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m revivadiag.lab.measure")
    parser.add_argument("--cold", action="store_true", help="force a full rebuild first")
    parser.add_argument("--rebuild", action="append", default=[], metavar="RECIPE",
                        help="rebuild this service recipe from scratch first (repeatable; "
                             "'shop' = the shop stack's recipes)")
    parser.add_argument("--variant", action="append", default=[], metavar="VARIANT",
                        help="measure only these variants (repeatable; default: "
                             f"{', '.join(VARIANTS)})")
    parser.add_argument("--runs", type=int, default=1, help="startups per variant")
    args = parser.parse_args(argv)
    variants = [check_variant(v) for v in args.variant] or list(VARIANTS)
    rebuild = [r for name in args.rebuild for r in (SHOP_RECIPES if name == "shop" else (name,))]
    if args.cold:
        cold = build_images(force=True)
        print(f"cold build:   {cold.seconds:6.1f} s\n{cold.summary()}\n")
    elif rebuild:
        cold = build_images(rebuild=rebuild)
        built = sum(i.seconds for i in cold.images if i.built)
        print(f"cold build of {', '.join(rebuild)}: {built:6.1f} s\n{cold.summary()}\n")
    t0 = time.monotonic()
    cached = build_images()
    print(f"cached build: {time.monotonic() - t0:6.1f} s ({len(cached.built)} built)")
    for variant in variants:
        for profile in PROFILES:
            times = [measure_startup(variant, profile) for _ in range(max(1, args.runs))]
            shown = ", ".join(f"{t:.1f}" for t in times)
            print(f"startup {variant:12} {profile:11}: {shown} s (KPI < 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
