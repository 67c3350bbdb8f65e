"""Opening hours: OSM syntax evaluated at a naive local time."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.hours import InvalidOpeningHours, is_open, parse_opening_hours, validate_opening_hours

# 2024-01-06 is a Saturday, 2024-01-07 a Sunday, 2024-01-08 a Monday.
SAT = datetime(2024, 1, 6)
SUN = datetime(2024, 1, 7)
MON = datetime(2024, 1, 8)


def at(day: datetime, hh: int, mm: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_always_open(moment: datetime) -> None:
    assert is_open("24/7", moment)


def test_office_hours_closed_on_saturday() -> None:
    hours = "Mo-Fr 08:00-18:00"
    assert not is_open(hours, at(SAT, 10))
    assert not is_open(hours, at(SUN, 10))
    assert is_open(hours, at(MON, 10))
    assert is_open(hours, at(MON, 8))
    assert not is_open(hours, at(MON, 7, 59))
    assert not is_open(hours, at(MON, 18))  # the end is exclusive


def test_shift_hours() -> None:
    hours = "Mo-Sa 07:00-23:00"
    assert is_open(hours, at(SAT, 22, 59))
    assert not is_open(hours, at(SAT, 23))
    assert not is_open(hours, at(SUN, 12))
    assert not is_open(hours, at(MON, 6, 59))
    assert is_open(hours, at(MON, 7))


def test_several_rules_and_overnight() -> None:
    hours = "Mo-Fr 08:00-18:00; Sa 09:00-12:00"
    assert is_open(hours, at(SAT, 11))
    assert not is_open(hours, at(SAT, 13))
    overnight = "Mo-Su 22:00-06:00"
    assert is_open(overnight, at(SAT, 23))
    assert is_open(overnight, at(SUN, 5))
    assert not is_open(overnight, at(SUN, 12))


def test_unknown_counts_as_closed() -> None:
    assert not is_open("Mo-Fr 08:00-18:00 unknown", at(MON, 10))
    assert not is_open("off", at(MON, 10))


@pytest.mark.parametrize(
    "expr", ["", "   ", "garbage x", "Mo-Fx 08:00-18:00", "Mo-Fr 08:00-18:00;;", "24/7 x"]
)
def test_invalid_syntax(expr: str) -> None:
    with pytest.raises(InvalidOpeningHours) as info:
        validate_opening_hours(expr)
    message = str(info.value)
    assert "\n" not in message
    assert repr(expr) in message
    assert info.value.expr == expr
    with pytest.raises(InvalidOpeningHours):
        is_open(expr, at(MON, 10))


def test_error_message_is_readable() -> None:
    with pytest.raises(InvalidOpeningHours, match=r"^invalid opening hours 'Mo-Fx': at column 4"):
        parse_opening_hours("Mo-Fx")


def test_invalid_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError) as info:
        parse_opening_hours("nope nope")
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, InvalidOpeningHours)
    assert str(copy) == str(info.value)


def test_valid_texts_pass_validation() -> None:
    for expr in ["24/7", "Mo-Fr 08:00-18:00; Sa 09:00-12:00", "Mo-Sa 07:00-23:00; PH off"]:
        validate_opening_hours(expr)


def test_parse_is_cached() -> None:
    assert parse_opening_hours("Mo-Sa 07:00-23:00") is parse_opening_hours("Mo-Sa 07:00-23:00")


def test_aware_datetimes_are_refused() -> None:
    aware = datetime(2024, 1, 8, 10, tzinfo=timezone(timedelta(hours=8)))
    with pytest.raises(ValueError, match="naive"):
        is_open("24/7", aware)
