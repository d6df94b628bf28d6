from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robust_attn.attacks import EpsUnit, parse_eps_grid
from robust_attn.errors import UserError


def test_range_includes_stop_in_255_units():
    grid = parse_eps_grid("0:8:1")
    assert grid.labels == ("0", "1/255", "2/255", "3/255", "4/255", "5/255", "6/255", "7/255", "8/255")
    assert grid.values[8] == 8 / 255 and grid.values[0] == 0.0


def test_list_and_raw_units():
    assert parse_eps_grid("0,1,2,4,8").values == tuple(v / 255 for v in (0, 1, 2, 4, 8))
    raw = parse_eps_grid("0:1:0.25", unit="raw")
    assert raw.values == (0.0, 0.25, 0.5, 0.75, 1.0) and raw.unit is EpsUnit.RAW
    assert raw.labels == ("0", "0.25", "0.5", "0.75", "1")


def test_decimal_steps_do_not_drift():
    assert len(parse_eps_grid("0:1:0.1", unit="raw")) == 11
    assert parse_eps_grid("0:1:0.1", unit="raw").values[-1] == 1.0


@pytest.mark.parametrize("spec", ["", "  ", "0:8", "0:8:1:2", "a:8:1", "0:8:0", "8:0:1", "-1:8:1", "0,,2", "1,-2",
                                  "0:1e9:1", "nan", "0:300:1"])
def test_malformed_grids_are_one_line_errors(spec):
    with pytest.raises(UserError) as info:
        parse_eps_grid(spec)
    assert "\n" not in str(info.value)


def test_unknown_unit():
    with pytest.raises(UserError, match="unit"):
        parse_eps_grid("0:8:1", unit="px")


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 50), count=st.integers(1, 40), step=st.integers(1, 80).map(lambda k: Fraction(k, 8)))
def test_range_property(start, count, step):
    stop = start + (count - 1) * step
    grid = parse_eps_grid(f"{start}:{float(stop)!r}:{float(step)!r}", unit="raw")
    assert len(grid) == count
    assert list(grid.values) == sorted(set(grid.values))
    assert grid.values[0] == start and abs(grid.values[-1] - float(stop)) < 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=20))
def test_list_property(values):
    grid = parse_eps_grid(",".join(map(str, values)))
    assert grid.values == tuple(v / 255 for v in sorted(set(values)))
    assert all((lab == "0") == (v == 0) for lab, v in zip(grid.labels, grid.values))


@pytest.mark.parametrize("written,plain", [("8/255", "8"), ("0:8/255:2/255", "0:8:2"), ("0.5/255,1/255", "0.5,1")])
def test_a_budget_written_over_255_means_the_same_in_a_grid_of_255ths(written, plain):
    assert parse_eps_grid(written) == parse_eps_grid(plain)
    assert parse_eps_grid("4/3").values == (4 / 3 / 255,)  # other fractions stay fractions of 1/255
