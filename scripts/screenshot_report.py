#!/usr/bin/env python3
"""Screenshot an HTML report with Playwright and Debian's chromium (docs/report.png).

    .venv/bin/python scripts/screenshot_report.py reports/<run>/report.html docs/report.png \
        --last-image docs/topology.png

The report is opened from disk with JavaScript disabled (it has none: its CSP forbids
scripts) and every network request outside file:// aborted, so the screenshot shows
exactly what a reviewer's browser shows offline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _only_local(route: Route) -> None:
    if route.request.url.startswith(("file://", "data:")):
        route.continue_()
    else:
        route.abort()


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 1600,
               full_page: bool = False, last_image: Path | None = None) -> Path:
    """Render ``html`` in chromium and save a PNG of the first ``height`` pixels (or all);
    ``last_image`` also saves the report's last image (the topology figure) on its own."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height},
                                    java_script_enabled=False)
            page.route("**/*", _only_local)
            page.goto(html.resolve().as_uri())
            page.screenshot(path=str(png), full_page=full_page)
            if last_image is not None:
                page.locator("img").last.screenshot(path=str(last_image))
        finally:
            browser.close()
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="report.html written by revivadiag diagnose")
    parser.add_argument("png", type=Path, nargs="?", default=Path("docs/report.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1600)
    parser.add_argument("--full-page", action="store_true")
    parser.add_argument("--last-image", type=Path, metavar="PNG",
                        help="also save the report's last image (the topology) here")
    args = parser.parse_args(argv)
    out = screenshot(args.html, args.png, width=args.width, height=args.height,
                     full_page=args.full_page, last_image=args.last_image)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
