"""Reading a report page in tests: its top (banner, verdicts) and one section, as text or HTML."""
from __future__ import annotations

import html
import re


def top_html(page: str) -> str:
    """The page above its table of contents: title, banner, verdicts and key figure (no style sheet)."""
    body = page[page.index("<body>"):]
    return body[: body.index('<nav id="toc">')]


def text(fragment: str) -> str:
    """An HTML fragment as the words a reader sees: whitespace collapsed, none before punctuation."""
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())
    return re.sub(r" ([,.:;])(?=\s|$)", r"\1", words)


def section(page: str, section_id: str) -> str:
    """The HTML of one section of a page (from its anchor to the next section, folded or not)."""
    start = page.index(f'id="{section_id}"')
    ends = [i for i in (page.find("<section id=", start + 1), page.find('<details class="section"', start + 1)) if i != -1]
    return page[start: min(ends, default=len(page))]
