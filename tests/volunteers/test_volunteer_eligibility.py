"""Eligibility and quiet hours (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from geo import TravelMode
from volunteers.eligibility import (
    VolunteerMeta,
    decode_meta,
    eligibility_problem,
    encode_meta,
    parse_quiet_hours,
)

TODAY = dt.date(2026, 6, 15)


def meta(**changes: object) -> VolunteerMeta:
    values: dict[str, object] = {
        "travel_mode": TravelMode.BIKE,
        "cert_expires_on": TODAY + dt.timedelta(days=10),
        "status": "active",
        "quiet_hours": None,
    }
    values.update(changes)
    return VolunteerMeta(**values)  # type: ignore[arg-type]


def at(hour: int, minute: int = 0, day: dt.date = TODAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("23:00-07:00", ["23:00", "00:00", "03:30", "06:59"], ["07:00", "12:00", "22:59"]),
        ("12:30-14:00", ["12:30", "13:59"], ["12:29", "14:00", "00:00"]),
        ("22:00-24:00", ["22:00", "23:59"], ["00:00", "21:59"]),
    ],
)
def test_quiet_hours_window(text: str, inside: list[str], outside: list[str]) -> None:
    quiet = parse_quiet_hours(text)
    for t in inside:
        assert quiet.contains(dt.time.fromisoformat(t)), t
    for t in outside:
        assert not quiet.contains(dt.time.fromisoformat(t)), t


@pytest.mark.parametrize(
    "bad", ["", "23:00", "23-07", "25:00-07:00", "23:60-07:00", "07:00-07:00", "24:00-01:00", "x"]
)
def test_quiet_hours_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_quiet_hours(bad)


def test_quiet_hours_normalizes() -> None:
    assert str(parse_quiet_hours(" 23:00-07:00 ")) == "23:00-07:00"


def test_eligible_volunteer_has_no_problem() -> None:
    assert eligibility_problem(meta(), at(12)) is None


def test_certificate_is_valid_through_its_expiry_day() -> None:
    assert eligibility_problem(meta(cert_expires_on=TODAY), at(23, 59)) is None
    yesterday = TODAY - dt.timedelta(days=1)
    assert eligibility_problem(meta(cert_expires_on=yesterday), at(0, 1)) == "certificate_expired"


def test_suspended_is_excluded() -> None:
    assert eligibility_problem(meta(status="suspended"), at(12)) == "suspended"


def test_quiet_hours_exclude_only_inside_the_window() -> None:
    night = meta(quiet_hours=parse_quiet_hours("23:00-07:00"))
    assert eligibility_problem(night, at(2)) == "quiet_hours"
    assert eligibility_problem(night, at(23, 30)) == "quiet_hours"
    assert eligibility_problem(night, at(7)) is None


def test_meta_round_trips_through_its_compact_json() -> None:
    original = meta(quiet_hours=parse_quiet_hours("23:00-07:00"))
    raw = encode_meta(original)
    assert " " not in raw
    assert decode_meta(raw) == original
