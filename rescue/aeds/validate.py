"""Validation of an AED's fields, shared by the JSON API (nested form) and imports (flat form)."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from geo import Crs, InvalidOpeningHours, ServiceArea, validate_opening_hours
from rescue.aeds.models import (
    API_FIELDS,
    FLAT_FIELDS,
    IGNORED_ON_IMPORT,
    READ_ONLY_FIELDS,
    STATUSES,
    VENUE_TYPES,
)
from rescue.errors import ApiError, Problem
from rescue.validation import Fields, require_in_area

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
# Phone numbers as people write them, possibly several: "+86 532 8288 0000; 0532-120".
PHONE_PATTERN = re.compile(r"[0-9+()\-\s;,/.]*[0-9][0-9+()\-\s;,/.]*")
LEVEL_RANGE = (-20, 300)

_STRINGS = (("address", 500), ("access_note", 1000), ("model", 200), ("serial_no", 100))
_DATES = ("pads_expire_on", "battery_expire_on", "last_inspected_on")


@dataclass(slots=True)
class Validated:
    """The columns read from the input, the problems found, and a 422 if outside the area."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    outside: ApiError | None = None

    def message(self) -> str:
        """Every problem in one line ("field: problem; field: problem")."""
        parts = [f"{p.field}: {p.problem}" for p in self.problems]
        if not parts and self.outside is not None:
            parts = [f"{p.field}: {p.problem}" for p in self.outside.details]
        return "; ".join(parts)


def read_aed(
    data: Mapping[str, Any],
    *,
    area: ServiceArea,
    default_crs: Crs,
    flat: bool,
    required: Collection[str] = (),
    prefix: str = "",
) -> Validated:
    """Read the fields present in data (and those `required`) into stored columns."""
    f = Fields(data, prefix=prefix)
    _unknown(f, data, flat=flat)
    out: dict[str, Any] = {}

    def wanted(key: str) -> bool:
        return key in data or key in required

    if flat and "id" in data:
        aed_id = f.str("id", max_len=100)
        if aed_id is not None and not ID_PATTERN.fullmatch(aed_id):
            f.fail("id", "may hold only letters, digits and _ . : - (at most 100)")
        out["id"] = aed_id
    if wanted("name"):
        out["name"] = f.str("name", required=True, max_len=200)
    for key, max_len in _STRINGS:
        if key in data:
            out[key] = f.str(key, max_len=max_len)
    if "venue_type" in data:
        out["venue_type"] = f.enum("venue_type", VENUE_TYPES) or "other"
    if "status" in data:
        out["status"] = f.enum("status", STATUSES) or "active"
    if "indoor" in data:
        out["indoor"] = f.bool("indoor")
    if "level" in data:
        out["level"] = f.int("level", lo=LEVEL_RANGE[0], hi=LEVEL_RANGE[1])
    if "opening_hours" in data:
        out["opening_hours"] = _opening_hours(f)
    for key in _DATES:
        if key in data:
            out[key] = f.date(key)
    _owner(f, data, out, flat=flat)
    district = _district(f, area) if "district" in data else None

    location: tuple[float, float] | None = None
    if flat:
        if "lat" in data or "lng" in data or "location" in required:
            location = f.location_fields(data, default_crs=default_crs)
    elif wanted("location"):
        location = f.location("location", default_crs=default_crs, required=True)
    result = Validated(out, f.problems)
    if location is not None:
        lat, lng = location
        out["lat"], out["lng"] = lat, lng
        try:
            require_in_area(area, lat, lng, field=f.name("location"))
        except ApiError as exc:
            result.outside = exc
        if district is None:
            found = area.district_of(lat, lng)
            district = found.adcode if found is not None else None
    if "district" in data or location is not None:
        out["district"] = district
    return result


def _unknown(f: Fields, data: Mapping[str, Any], *, flat: bool) -> None:
    allowed = (*FLAT_FIELDS, *IGNORED_ON_IMPORT) if flat else API_FIELDS
    for key in data:
        if key in allowed:
            continue
        if not flat and key in READ_ONLY_FIELDS:
            f.fail(key, "is read-only")
        else:
            f.fail(key, "is not a known field")


def _opening_hours(f: Fields) -> str:
    value = f.str("opening_hours", max_len=500)
    if value is None:
        return "24/7"
    try:
        validate_opening_hours(value)
    except InvalidOpeningHours as exc:
        f.fail("opening_hours", f"is not valid OpenStreetMap opening_hours syntax ({exc.detail})")
    return value


def _phone(f: Fields, key: str) -> str | None:
    value = f.str(key, max_len=50)
    if value is not None and not PHONE_PATTERN.fullmatch(value):
        f.fail(key, "must be a phone number (digits, spaces, + - ( ) ; , /)")
    return value


def _owner(f: Fields, data: Mapping[str, Any], out: dict[str, Any], *, flat: bool) -> None:
    if flat:
        if "owner_name" in data:
            out["owner_name"] = f.str("owner_name", max_len=200)
        if "owner_phone" in data:
            out["owner_phone"] = _phone(f, "owner_phone")
        return
    if "owner" not in data:
        return
    owner = data["owner"]
    if owner is None:
        out["owner_name"] = out["owner_phone"] = None
        return
    if not isinstance(owner, dict):
        f.fail("owner", "must be an object {name, phone} or null")
        return
    sub = Fields(owner, prefix=f.name("owner."))
    sub.unknown(["name", "phone"])
    out["owner_name"] = sub.str("name", max_len=200)
    out["owner_phone"] = _phone(sub, "phone")
    f.problems.extend(sub.problems)


def _district(f: Fields, area: ServiceArea) -> str | None:
    value = f.str("district", max_len=20)
    if value is None:
        return None
    adcodes = [d.adcode for d in area.districts]
    if value not in adcodes:
        f.fail("district", f"must be the adcode of a district: {', '.join(adcodes)}")
        return None
    return value


@functools.cache
def _district_names(area: ServiceArea) -> dict[str, str]:
    names: dict[str, str] = {}
    for d in area.districts:
        short = d.name[:-1] if len(d.name) > 2 and d.name[-1] in "区市县" else d.name
        english = d.name_en.split(" (", 1)[0]
        for key in (d.adcode, d.name, short, d.name_en, english):
            if key:
                names[key.casefold()] = d.adcode
    return names


def district_filter(area: ServiceArea, raw: str) -> str:
    """The adcode a list filter names (adcode, Chinese or English name), or a 400."""
    adcode = _district_names(area).get(raw.strip().casefold())
    if adcode is None:
        raise ApiError(
            400,
            "invalid_input",
            f"district: unknown district {raw!r}",
            [Problem("district", "must be a district's adcode, Chinese name or English name")],
        )
    return adcode
