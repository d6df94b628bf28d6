"""The README's generated blocks: the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``, which the
scripts beside this file (readme_tables.py, readme_study.py, readme_transfer.py) regenerate and rewrite."""
from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def marked(name: str, text: str) -> str:
    """``text`` between the block's two markers, each on a line of its own."""
    return f"<!-- {name}:start -->\n{text}\n<!-- {name}:end -->"


def write_block(name: str, text: str, readme: Path = README) -> Path:
    """Replace block ``name`` of ``readme`` with ``text``; a README without its markers is a one-line exit."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = readme.read_text()
    if start not in body or end not in body:
        raise SystemExit(f"README.md lacks the markers {start} ... {end}")
    before, rest = body.split(start, 1)
    _, after = rest.split(end, 1)
    readme.write_text(before + marked(name, text) + after)
    return readme
