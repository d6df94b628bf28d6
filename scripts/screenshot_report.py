"""Render a report page in headless Chromium and save its first screen as a PNG (the README's screenshot).

    python scripts/screenshot_report.py results/report/index.html reports/screenshot.png [--width 1400 --height 900]

The first screen is what a researcher sees before scrolling: the banner of the sanity checks, the verdicts and
the key figure. Needs Debian's ``chromium`` and the ``playwright`` Python package (the ``test`` extra); it drives
the system's Chromium, so never ``playwright install``. No network: a report is self-contained.
tests/test_browser.py opens the report pages in the same browser, through :func:`chromium`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 1400, 900  # the first screen the report is laid out for
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # headless in a container, offline, no profile set-up


class MissingBrowser(RuntimeError):
    """Chromium or the playwright package is not installed; the message says what to install."""


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (a ``playwright.sync_api.Browser``), closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as missing:
        raise MissingBrowser("needs the playwright Python package: pip install -e '.[test]'") from missing
    executable = shutil.which("chromium")
    if executable is None:
        raise MissingBrowser("needs Debian's chromium on PATH: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Path, out: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Write the first ``width`` x ``height`` screen of the HTML file ``page`` to the PNG ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": width, "height": height})
        tab.goto(page.resolve().as_uri(), wait_until="load")
        tab.screenshot(path=str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="a report's index.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--height", type=int, default=HEIGHT)
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"error: {args.page} does not exist", file=sys.stderr)
        return 2
    try:
        written = screenshot(args.page, args.out, args.width, args.height)
    except MissingBrowser as missing:
        print(f"error: {Path(__file__).name} {missing}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
