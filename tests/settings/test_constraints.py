"""The one constraint vocabulary (repspace/_constraints.py): what each constraint accepts,
what the message says, and that a declaration cannot silently check nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repspace._constraints import (
    Check,
    Interval,
    Options,
    SettingError,
    Types,
    Validated,
    describe,
    validate,
)


def _refused(constraints, value) -> SettingError:
    with pytest.raises(SettingError) as info:
        validate({"x": constraints}, {"x": value})
    return info.value


@pytest.mark.parametrize("value", [True, False, 1.0, "3", None, [1]])
def test_an_integer_field_takes_no_bool_float_string_or_none(value):
    err = _refused([Interval(int, 1, None)], value)
    assert str(err) == f"x must be an integer ≥ 1; got {value!r}"


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_int_interval_is_the_closed_range(a, b):
    lo, hi = min(a, b), max(a, b)
    c = Interval(int, lo, hi)
    for v in (lo - 1, lo, (lo + hi) // 2, hi, hi + 1):
        assert c.accepts(v) == (lo <= v <= hi)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_interval_closed_sides_and_nothing_non_finite(v):
    for closed, inside in (
        ("both", lambda: 0 <= v <= 1),
        ("left", lambda: 0 <= v < 1),
        ("right", lambda: 0 < v <= 1),
        ("neither", lambda: 0 < v < 1),
    ):
        assert Interval(float, 0, 1, closed=closed).accepts(v) == (math.isfinite(v) and inside())
    assert Interval(float).accepts(v) == math.isfinite(v)


def test_float_intervals_take_ints_but_int_intervals_take_no_floats():
    assert Interval(float, 0, None).accepts(3)
    assert not Interval(int, 0, None).accepts(3.0)


@pytest.mark.parametrize(
    "constraint, text",
    [
        (Interval(int, 1, None), "an integer ≥ 1"),
        (Interval(int, None, 0, closed="left"), "an integer < 0"),
        (Interval(int, 0, 2**32 - 1), "an integer from 0 to 4294967295"),
        (Interval(float, 0, 1, closed="right"), "a number in (0, 1]"),
        (Interval(float, 0, None, closed="neither"), "a number > 0"),
        (Interval(float, 1e-12, 1e300), "a number in [1e-12, 1e+300]"),
        (Interval(float), "a finite number"),
        (Options("mean", "first"), "one of mean, first"),
        (Types(str), "a string"),
        (Check(lambda v: v % 8 == 0, "a multiple of 8"), "a multiple of 8"),
    ],
)
def test_descriptions(constraint, text):
    assert constraint.describe() == text


def test_several_constraints_and_none_read_as_one_sentence():
    allowed = [Interval(int, 1, None), Options("auto"), None]
    assert describe(allowed) == "an integer ≥ 1 or auto or None"
    assert str(_refused(allowed, 0)) == "x must be an integer ≥ 1 or auto or None; got 0"
    validate({"x": allowed}, {"x": None})
    validate({"x": allowed}, {"x": "auto"})
    validate({"x": allowed}, {"y": 0})  # an absent field is the class's default: not checked


def test_options_compare_exactly():
    c = Options("mean", "first")
    assert c.accepts("mean") and not c.accepts("Mean") and not c.accepts(" mean")
    assert not Options(1, 2).accepts(True)  # True == 1, but a flag is not a choice


def test_a_check_that_raises_refuses_instead():
    assert not Check(lambda v: v % 8 == 0, "a multiple of 8").accepts("x")


def test_the_cli_renames_the_field_in_one_place():
    err = _refused([Interval(int, 2, None)], 1)
    assert str(err) == "x must be an integer ≥ 2; got 1"
    assert str(err.in_vocabulary({"x": "--num-x"})) == "--num-x must be an integer ≥ 2; got 1"
    assert err.in_vocabulary({"y": "--y"}) is err
    assert isinstance(err, ValueError)  # callers that catch ValueError keep working


@dataclass
class _Toy(Validated):
    _constraints: ClassVar = {"n": [Interval(int, 2, None)], "mode": [Options("a", "b")]}
    n: int = 2
    mode: str = "a"


def test_validated_dataclasses_check_at_construction():
    _Toy()
    with pytest.raises(SettingError, match=r"^n must be an integer ≥ 2; got 1$"):
        _Toy(n=1)
    with pytest.raises(SettingError, match=r"^mode must be one of a, b; got 'c'$"):
        _Toy(mode="c")


def test_a_declaration_naming_no_field_is_a_bug_not_a_silent_pass():
    @dataclass
    class Typo(Validated):
        _constraints: ClassVar = {"num_sampels": [Interval(int, 2, None)]}
        num_samples: int = 2

    with pytest.raises(TypeError, match="num_sampels"):
        Typo()


def test_interval_arguments_are_checked():
    with pytest.raises(TypeError):
        Interval(str, 0, 1)
    with pytest.raises(ValueError):
        Interval(int, 0, 1, closed="open")
