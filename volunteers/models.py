"""The volunteers package's types and their JSON form."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from geo import TravelMode
from volunteers.eligibility import VolunteerMeta, parse_quiet_hours

TRAVEL_MODES = tuple(m.value for m in TravelMode)
STATUSES = ("active", "suspended")
CERTIFICATE_FILTERS = ("valid", "expired", "expiring")
# `?certificate=expiring`: still valid today and expiring within this many days (inclusive).
EXPIRING_WITHIN_DAYS = 30


class Candidate(NamedTuple):
    """An on-duty volunteer with a fresh position who may be alerted, as seen by a search.

    A named tuple, not a frozen dataclass: a search builds hundreds per alert and per wave, and
    a frozen dataclass's __init__ (one object.__setattr__ per field) costs three times more.
    """

    volunteer_id: str
    lat: float
    lng: float
    distance_m: float
    travel_mode: TravelMode


class Waypoint(NamedTuple):
    """A point a candidate may go by on the way to the patient (an AED to fetch), and how far
    from it a member of each travel mode can be and still arrive in time (a mode not given is
    not searched there)."""

    lat: float
    lng: float
    radius_m: Mapping[TravelMode, float]


class Coverage(NamedTuple):
    """Where a bounded search read every member (search_candidates), per travel mode: around the
    centre, and around each of its waypoints in order. A distance: every member of that mode
    nearer than it was read; None: every member of that mode who could count was."""

    centre: Mapping[TravelMode, float | None]
    waypoints: list[Mapping[TravelMode, float | None]]


@dataclass(frozen=True, slots=True)
class VolunteerInput:
    """A whole volunteer as created by the API or a roster row (None: keep or default)."""

    name: str
    phone: str
    cert_number: str
    cert_issuer: str
    cert_issued_on: dt.date
    cert_expires_on: dt.date
    travel_mode: str | None = None
    status: str | None = None
    quiet_hours: str | None = None
    home_district: str | None = None


@dataclass(frozen=True, slots=True)
class VolunteerFilter:
    """The list's filters; each None means no filter."""

    status: str | None = None
    district: str | None = None
    q: str | None = None
    expires_from: dt.date | None = None
    expires_until: dt.date | None = None


def certificate_window(
    kind: str, today: dt.date, within_days: int = EXPIRING_WITHIN_DAYS
) -> tuple[dt.date | None, dt.date | None]:
    """The inclusive range of expiry dates a `?certificate=` value selects."""
    if kind == "valid":
        return today, None
    if kind == "expired":
        return None, today - dt.timedelta(days=1)
    return today, today + dt.timedelta(days=within_days)


def volunteer_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A volunteer as the API shows it."""
    return {
        "id": row["id"],
        "name": row["name"],
        "phone": row["phone"],
        "certificate": {
            "number": row["cert_number"],
            "issuer": row["cert_issuer"],
            "issued_on": row["cert_issued_on"].isoformat(),
            "expires_on": row["cert_expires_on"].isoformat(),
        },
        "travel_mode": row["travel_mode"],
        "status": row["status"],
        "quiet_hours": row["quiet_hours"],
        "home_district": row["home_district"],
        "created_at": row["created_at"].isoformat(),
    }


def meta_of(row: Mapping[str, Any]) -> VolunteerMeta:
    """The eligibility facts of a volunteer row."""
    quiet = row["quiet_hours"]
    return VolunteerMeta(
        travel_mode=TravelMode(row["travel_mode"]),
        cert_expires_on=row["cert_expires_on"],
        status=row["status"],
        quiet_hours=parse_quiet_hours(quiet) if quiet else None,
    )
