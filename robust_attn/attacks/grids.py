"""Epsilon grids: ``'0:8:1'`` (start:stop:step, stop included), ``'0,1,2,4,8'``, in units of 1/255
(``unit='255'``, the Linf convention) or raw (``unit='raw'``, e.g. L2 radii).

Arithmetic is done on exact fractions of the decimal strings, so ``0:1:0.1`` has 11 points and
no float drift; values come out as floats in raw units, with labels such as ``8/255``.
"""
from __future__ import annotations

import re

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from ..errors import UserError

MAX_POINTS = 1000


class EpsUnit(StrEnum):
    PER_255 = "255"
    RAW = "raw"


@dataclass(frozen=True)
class EpsGrid:
    values: tuple[float, ...]  # raw units (what the attack receives)
    labels: tuple[str, ...]  # human form: '8/255' or '0.25'
    unit: EpsUnit

    def __len__(self) -> int:
        return len(self.values)


def _number(text: str, spec: str) -> Fraction:
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise UserError(f"eps grid {spec!r}: {text.strip()!r} is not a number") from None
    if value < 0:
        raise UserError(f"eps grid {spec!r}: eps must be >= 0, got {text.strip()}")
    return value


def _format(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"


def parse_eps_grid(spec: str, unit: str | EpsUnit = EpsUnit.PER_255) -> EpsGrid:
    """Parse an eps grid; sorted ascending and de-duplicated. Malformed input is a :class:`UserError`."""
    try:
        unit = EpsUnit(str(unit.value if isinstance(unit, EpsUnit) else unit))
    except ValueError:
        raise UserError(f"eps unit must be '255' or 'raw', got {unit!r}") from None
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("eps grid is empty")
    text = spec.strip()
    if unit is EpsUnit.PER_255:  # '8/255' in a grid of 1/255 units means 8/255, as the papers write it: not 8/255**2
        text = re.sub(r"/\s*255(?![0-9.])", "", text)
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise UserError(f"eps grid {spec!r}: a range is START:STOP:STEP")
        start, stop, step = (_number(p, spec) for p in parts)
        if step == 0:
            raise UserError(f"eps grid {spec!r}: step must be > 0")
        if stop < start:
            raise UserError(f"eps grid {spec!r}: stop {_format(stop)} is below start {_format(start)}")
        count = int((stop - start) / step) + 1
        if count > MAX_POINTS:
            raise UserError(f"eps grid {spec!r} has {count} points; at most {MAX_POINTS}")
        points = [start + i * step for i in range(count)]
    else:
        items = text.split(",")
        if any(not item.strip() for item in items):
            raise UserError(f"eps grid {spec!r}: empty entry in list")
        points = [_number(item, spec) for item in items]
        if len(points) > MAX_POINTS:
            raise UserError(f"eps grid {spec!r} has {len(points)} points; at most {MAX_POINTS}")
    points = sorted(set(points))
    scale = 255 if unit is EpsUnit.PER_255 else 1
    if unit is EpsUnit.PER_255 and points[-1] > 255:
        raise UserError(f"eps grid {spec!r}: {_format(points[-1])}/255 exceeds the [0, 1] pixel range")
    labels = tuple(
        ("0" if p == 0 else f"{_format(p)}/255") if unit is EpsUnit.PER_255 else _format(p) for p in points
    )
    return EpsGrid(tuple(float(p / scale) for p in points), labels, unit)


def parse_eps_value(text: str, what: str = "eps") -> tuple[float, str]:
    """One budget in raw pixel units, written as a fraction (``'8/255'``) or a decimal (``'0.1'``):
    ``(value, label)``. The label keeps the per-255 form when the text was a fraction of 255, so a
    record reads ``8/255`` as the papers write it. Parsed with the grid's own number rule (exact
    fractions); outside [0, 1] is a :class:`UserError` naming ``what``."""
    spec = str(text).strip()
    if not spec or "," in spec or ":" in spec:
        raise UserError(f"{what} must be one number such as 8/255 or 0.1, got {text!r}")
    try:
        value = _number(spec, spec)
    except UserError:
        raise UserError(f"{what} must be a number such as 8/255 or 0.1 in [0, 1], got {text!r}") from None
    if value > 1:
        raise UserError(f"{what} must lie in [0, 1] (pixel units), got {text!r}")
    per_255 = value * 255
    label = f"{_format(per_255)}/255" if "/" in spec and per_255.denominator == 1 and value else _format(value)
    return float(value), label
