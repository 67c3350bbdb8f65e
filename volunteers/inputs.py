"""Reading volunteers from JSON bodies: every bad field is named, nothing half-applied."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from geo import ServiceArea
from rescue.validation import Fields
from volunteers.eligibility import parse_quiet_hours
from volunteers.models import STATUSES, TRAVEL_MODES, VolunteerInput

CREATE_FIELDS = (
    "name",
    "phone",
    "certificate",
    "travel_mode",
    "status",
    "quiet_hours",
    "home_district",
)
CERTIFICATE_FIELDS = ("number", "issuer", "issued_on", "expires_on")

_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]*$")


def resolve_district(area: ServiceArea, raw: str) -> str | None:
    """A district's adcode from its adcode, Chinese name or English name (None if unknown)."""
    wanted = raw.strip().casefold()
    for district in area.districts:
        short_en = district.name_en.split(" (")[0]
        if wanted in (n.casefold() for n in (district.adcode, district.name, district.name_en)):
            return district.adcode
        if wanted == short_en.casefold():
            return district.adcode
    return None


def read_phone(fields: Fields, key: str, *, required: bool = False) -> str | None:
    """A phone number: digits with an optional +, spaces, dashes or parentheses."""
    value = fields.str(key, required=required, max_len=40)
    if value is None:
        return None
    digits = sum(c.isdigit() for c in value)
    if not _PHONE_RE.match(value) or not 5 <= digits <= 20:
        fields.fail(key, "must be a phone number (5-20 digits, optional +, spaces, dashes)")
        return None
    return value


def read_quiet_hours(fields: Fields, key: str) -> str | None:
    """Quiet hours "HH:MM-HH:MM" (may wrap past midnight), normalized."""
    value = fields.str(key, max_len=20)
    if value is None:
        return None
    try:
        return str(parse_quiet_hours(value))
    except ValueError as exc:
        fields.fail(key, str(exc))
        return None


def read_district(fields: Fields, key: str, area: ServiceArea) -> str | None:
    """A home district (adcode or name), stored as its adcode."""
    value = fields.str(key, max_len=100)
    if value is None:
        return None
    adcode = resolve_district(area, value)
    if adcode is None:
        codes = ", ".join(d.adcode for d in area.districts)
        fields.fail(key, f"is not a district of the service area (adcodes: {codes})")
    return adcode


def _given(fields: Fields, key: str) -> bool:
    """Present and not null; a null where null is not allowed is reported."""
    if not fields.has(key):
        return False
    if fields.data[key] is None:
        fields.fail(key, "must not be null")
        return False
    return True


def parse_create(body: Mapping[str, Any], area: ServiceArea) -> VolunteerInput:
    """A new volunteer from a POST body (400 naming every bad field)."""
    fields = Fields(body)
    fields.unknown(CREATE_FIELDS)
    name = fields.str("name", required=True, max_len=200)
    phone = read_phone(fields, "phone", required=True)
    cert = fields.object("certificate", required=True)
    number = issuer = issued = expires = None
    if cert is not None:
        sub = Fields(cert, prefix="certificate.")
        sub.unknown(CERTIFICATE_FIELDS)
        number = sub.str("number", required=True, max_len=100)
        issuer = sub.str("issuer", required=True, max_len=200)
        issued = sub.date("issued_on", required=True)
        expires = sub.date("expires_on", required=True)
        if issued and expires and expires < issued:
            sub.fail("expires_on", "must not be before certificate.issued_on")
        fields.problems.extend(sub.problems)
    travel_mode = fields.enum("travel_mode", TRAVEL_MODES)
    status = fields.enum("status", STATUSES)
    quiet = read_quiet_hours(fields, "quiet_hours")
    district = read_district(fields, "home_district", area)
    fields.check()
    assert name and phone and number and issuer and issued and expires
    return VolunteerInput(
        name=name,
        phone=phone,
        cert_number=number,
        cert_issuer=issuer,
        cert_issued_on=issued,
        cert_expires_on=expires,
        travel_mode=travel_mode,
        status=status,
        quiet_hours=quiet,
        home_district=district,
    )


def parse_patch(body: Mapping[str, Any], area: ServiceArea) -> dict[str, Any]:
    """The columns a PATCH body changes (quiet_hours/home_district null clears them)."""
    fields = Fields(body)
    fields.unknown(CREATE_FIELDS)
    changes: dict[str, Any] = {}
    if _given(fields, "name"):
        changes["name"] = fields.str("name", required=True, max_len=200)
    if _given(fields, "phone"):
        changes["phone"] = read_phone(fields, "phone", required=True)
    cert = fields.object("certificate") if _given(fields, "certificate") else None
    if cert is not None:
        sub = Fields(cert, prefix="certificate.")
        sub.unknown(CERTIFICATE_FIELDS)
        readers: dict[str, tuple[str, Callable[[str], Any]]] = {
            "number": ("cert_number", lambda k: sub.str(k, required=True, max_len=100)),
            "issuer": ("cert_issuer", lambda k: sub.str(k, required=True, max_len=200)),
            "issued_on": ("cert_issued_on", lambda k: sub.date(k, required=True)),
            "expires_on": ("cert_expires_on", lambda k: sub.date(k, required=True)),
        }
        for key, (column, read) in readers.items():
            if _given(sub, key):
                changes[column] = read(key)
        fields.problems.extend(sub.problems)
    if _given(fields, "travel_mode"):
        changes["travel_mode"] = fields.enum("travel_mode", TRAVEL_MODES)
    if _given(fields, "status"):
        changes["status"] = fields.enum("status", STATUSES)
    if fields.has("quiet_hours"):
        changes["quiet_hours"] = read_quiet_hours(fields, "quiet_hours")
    if fields.has("home_district"):
        changes["home_district"] = read_district(fields, "home_district", area)
    fields.check()
    return changes
