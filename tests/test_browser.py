"""Each kind of report (sweep, study, transfer) as a reader sees it: rendered by headless Chromium at 1400 x 900.

What a page's HTML cannot tell: whether its images load, whether the browser reports an error, whether the
banner and the verdicts are on the first screen, whether the page scrolls sideways, how tall it is with its
details closed, and whether a link of the table of contents opens the folded section it points into.

Needs Debian's ``chromium`` and the ``playwright`` Python package (the ``test`` extra; never ``playwright
install``: the test drives the system's Chromium, launched as scripts/screenshot_report.py launches it).
Without either, each test fails with one line saying what to install; .ci/run installs Chromium where it is
missing.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from robust_attn.report.study import build_study_report
from robust_attn.report.transfer import build_transfer_report
from scripts.screenshot_report import HEIGHT, WIDTH, MissingBrowser, chromium

from .test_study_report import make_study
from .test_transfer_report import SOUND, write_folder

DEFAULT_SWEEP_MAX_HEIGHT = 5000  # px, the default sweep's page with every folded section closed
KINDS = [pytest.param("sweep", marks=pytest.mark.slow), "study", "transfer"]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless Chromium (Debian's, driven by Playwright) for the whole session; without it every test
    fails, saying what to install."""
    try:
        with chromium() as launched:
            yield launched
    except MissingBrowser as missing:
        pytest.fail(f"tests/test_browser.py {missing}", pytrace=False)


@pytest.fixture(scope="module")
def study_page(tmp_path_factory) -> Path:
    """The study page of tests/test_study_report.py's study (2 architectures x 3 seeds, with a member sweep)."""
    return build_study_report(make_study(tmp_path_factory.mktemp("browser-study") / "out", sweep=True))


@pytest.fixture(scope="module")
def transfer_page(tmp_path_factory) -> Path:
    """The transfer page of tests/test_transfer_report.py's sound transfer folder."""
    return build_transfer_report(write_folder(tmp_path_factory.mktemp("browser-transfer") / "sound", SOUND))


@pytest.fixture(params=KINDS)
def report(request) -> Path:
    """The index.html of one kind of report; the sweep's is the README's first command's (tests/conftest.py)."""
    if request.param == "sweep":
        return request.getfixturevalue("default_sweep") / "report" / "index.html"
    return request.getfixturevalue(f"{request.param}_page")


@pytest.fixture
def opened(browser, report):
    """``(page, errors)``: the report loaded at 1400 x 900, and every console error and page error it raised."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.goto(report.as_uri(), wait_until="load")
    yield page, errors
    context.close()


def test_every_image_loads(opened):
    """Every image, folded ones too: the details opened and each image scrolled to, as a reader would (a
    folded figure may load lazily)."""
    page, _ = opened
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    for image in page.locator("img").all():
        image.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=10_000)
    images = page.evaluate("Array.from(document.images, i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
    assert images, "the page shows no image"
    assert [src for src, loaded in images if not loaded] == []


def test_no_console_or_page_error(opened):
    page, errors = opened
    page.wait_for_timeout(100)  # a late error still lands in the list
    assert errors == []


@pytest.mark.parametrize("selector", ["#banner", "#verdicts"])
def test_banner_and_verdicts_are_on_the_first_screen(opened, selector):
    page, _ = opened
    box = page.evaluate("s => document.querySelector(s)?.getBoundingClientRect().toJSON()", selector)
    assert box is not None, f"no {selector} on the page"
    assert box["height"] > 0 and box["bottom"] <= HEIGHT, box


def test_no_horizontal_scrolling(opened):
    page, _ = opened
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def test_folded_sections_are_closed(opened):
    page, _ = opened
    folded = page.evaluate("Array.from(document.querySelectorAll('details.section'), d => d.open)")
    assert folded, "the page folds no section"
    assert not any(folded), folded


def test_a_contents_link_opens_its_folded_section(opened):
    page, _ = opened
    targets = page.evaluate("Array.from(document.querySelectorAll('#toc a'), a => a.hash.slice(1))"
                            ".filter(id => document.getElementById(id)?.closest('details.section'))")
    assert targets, "no link of the table of contents points into a folded section"
    page.click(f'#toc a[href="#{targets[-1]}"]')
    assert page.evaluate("id => document.getElementById(id).closest('details.section').open", targets[-1]) is True


@pytest.mark.slow
def test_default_sweep_page_with_details_closed_is_at_most_5000_px_tall(browser, default_sweep):
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    page.goto((default_sweep / "report" / "index.html").as_uri(), wait_until="load")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = false; })")
    assert page.evaluate("document.documentElement.scrollHeight") <= DEFAULT_SWEEP_MAX_HEIGHT
    context.close()
