"""``revivadiag lab build|up|down|status|break|heal``: option parsing only; the work is in the
package."""

from __future__ import annotations

import argparse
import sys

from revivadiag.errors import LabStartError, ParameterError
from revivadiag.lab.config import (
    DEFAULT_PREFIX,
    PROFILES,
    VARIANTS,
    LabConfig,
    check_variant,
    parse_port_option,
)
from revivadiag.lab.fault_scenarios import scenario_lines
from revivadiag.lab.faults import HEAL_TIMEOUT_S, break_lab, heal
from revivadiag.lab.images import build_images
from revivadiag.lab.lifecycle import DEFAULT_TIMEOUT_S, down, status, up


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lab`` command and its subcommands."""
    lab = subparsers.add_parser("lab", help="build, start, stop and list the reference lab")
    sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    build = sub.add_parser("build", help="build the lab's images (cached by recipe hash)")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.add_argument("--from-registry", action="store_true",
                       help="base on the official debian:bookworm-slim image (needs a registry)")
    build.set_defaults(func=_build)

    start = sub.add_parser("up", help="start a lab instance and wait until it is healthy")
    start.add_argument("--variant", default="current",
                       help=f"one of {', '.join(VARIANTS)} (default current)")
    start.add_argument("--profile", default="development",
                       help=f"one of {', '.join(PROFILES)} (default development)")
    start.add_argument("--prefix", default=DEFAULT_PREFIX, help="compose project / name prefix")
    start.add_argument("--port", action="append", default=[], metavar="SERVICE=PORT",
                       help="host port of a service, e.g. frontend=13010 or, in the shop "
                            "variants, proxy=18080 (repeatable)")
    start.add_argument("--no-publish", action="store_true",
                       help="publish no host port at all (reach the services from the "
                            "containers' networks only)")
    start.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                       help="seconds to wait for all services to be healthy")
    start.set_defaults(func=_up)

    stop = sub.add_parser("down", help="stop and remove a lab instance")
    stop.add_argument("--prefix", default=DEFAULT_PREFIX)
    stop.add_argument("--volumes", action="store_true",
                      help="also remove the database volume and the instance's secrets")
    stop.set_defaults(func=_down)

    show = sub.add_parser("status", help="table of the instance's containers")
    show.add_argument("--prefix", default=DEFAULT_PREFIX)
    show.set_defaults(func=_status)

    fault = sub.add_parser("break", help="apply a fault scenario to a lab instance (undo: heal)")
    fault.add_argument("scenario", nargs="?", metavar="SCENARIO",
                       help="the scenario (see --list)")
    fault.add_argument("--list", action="store_true", help="list the scenarios and exit")
    fault.add_argument("--prefix", default=DEFAULT_PREFIX)
    fault.add_argument("--ms", type=int, default=None,
                       help="delay per request for backend-slow (default 300)")
    fault.set_defaults(func=_break)

    mend = sub.add_parser("heal", help="undo the fault `lab break` applied and wait until "
                          "healthy")
    mend.add_argument("--prefix", default=DEFAULT_PREFIX)
    mend.add_argument("--timeout", type=float, default=HEAL_TIMEOUT_S,
                      help="seconds to wait for all services to be healthy again")
    mend.set_defaults(func=_heal)


def _say(text: str) -> None:
    """Progress of a build, on stderr as it happens."""
    print(f"revivadiag: lab build: {text}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    report = build_images(force=args.force, from_registry=args.from_registry,
                          progress=_say)
    print(report.summary())
    return 0


def _up(args: argparse.Namespace) -> int:
    check_variant(args.variant)
    ports = dict(parse_port_option(p, args.variant) for p in args.port)
    config = LabConfig(prefix=args.prefix, variant=args.variant, profile=args.profile, ports=ports,
                       publish=not args.no_publish)
    try:
        instance = up(config, timeout_s=args.timeout)
    except LabStartError as exc:
        if exc.log_tail:
            print(f"last log lines (secrets masked):\n{exc.log_tail}", file=sys.stderr)
        raise
    published = ", ".join(f"{s}=127.0.0.1:{p}" for s, p in instance.ports.items()) or "none"
    print(f"lab {instance.prefix} ({instance.variant}, {instance.profile}) healthy "
          f"in {instance.startup_s:.1f} s; published: {published}")
    return 0


def _down(args: argparse.Namespace) -> int:
    removed = down(args.prefix, volumes=args.volumes)
    print(f"lab {args.prefix} removed" if removed else f"lab {args.prefix}: nothing to remove")
    return 0


def _status(args: argparse.Namespace) -> int:
    frame = status(args.prefix)
    if frame.empty:
        print(f"lab {args.prefix}: no containers")
        return 0
    print(frame[["container", "service", "state", "health", "ports"]].to_string(index=False))
    return 0


def _break(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(scenario_lines()))
        return 0
    if not args.scenario:
        raise ParameterError("scenario", "", "give one (revivadiag lab break --list shows them)")
    print(break_lab(args.prefix, args.scenario, ms=args.ms).summary())
    return 0


def _heal(args: argparse.Namespace) -> int:
    print(heal(args.prefix, timeout_s=args.timeout).summary())
    return 0
