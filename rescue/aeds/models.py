"""The AED's fields, defaults and renderings (JSON, flat rows, index entries)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from geo import Crs, IndexedAed, from_wgs84
from rescue.http import render_location

VENUE_TYPES = (
    "factory",
    "office",
    "mall",
    "transit",
    "school",
    "hospital",
    "hotel",
    "government",
    "sports",
    "residential",
    "public",
    "other",
)
STATUSES = ("active", "maintenance", "missing", "retired")
DATE_COLUMNS = ("pads_expire_on", "battery_expire_on", "last_inspected_on")

# The stored columns a client may set (besides id), in table order.
COLUMNS = (
    "name",
    "address",
    "district",
    "lat",
    "lng",
    "venue_type",
    "indoor",
    "level",
    "access_note",
    "opening_hours",
    "status",
    "model",
    "serial_no",
    "pads_expire_on",
    "battery_expire_on",
    "last_inspected_on",
    "owner_name",
    "owner_phone",
    "osm_id",
)
# The value a column takes on creation when the input does not give it.
DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(COLUMNS),
    "venue_type": "other",
    "opening_hours": "24/7",
    "status": "active",
}

# The JSON body of POST/PATCH /v1/aeds.
API_FIELDS = (
    "name",
    "address",
    "district",
    "location",
    "venue_type",
    "indoor",
    "level",
    "access_note",
    "opening_hours",
    "status",
    "model",
    "serial_no",
    "pads_expire_on",
    "battery_expire_on",
    "last_inspected_on",
    "owner",
)
READ_ONLY_FIELDS = ("id", "created_at", "updated_at")

# The flat form (CSV columns, GeoJSON properties): the AED's fields with location and owner
# spread out; created_at/updated_at appear in exports and are ignored on import.
FLAT_FIELDS = (
    "id",
    "name",
    "address",
    "district",
    "lat",
    "lng",
    "crs",
    "venue_type",
    "indoor",
    "level",
    "access_note",
    "opening_hours",
    "status",
    "model",
    "serial_no",
    "pads_expire_on",
    "battery_expire_on",
    "last_inspected_on",
    "owner_name",
    "owner_phone",
)
EXPORT_FIELDS = (*FLAT_FIELDS, "created_at", "updated_at")
IGNORED_ON_IMPORT = ("created_at", "updated_at")


@dataclass(slots=True)
class ImportRow:
    """One valid row of an import: the columns its source gives, validated and normalized."""

    ref: str
    values: dict[str, Any]
    position: int = 0
    # Values used only if the row creates a new AED (e.g. a name for an unnamed OSM element).
    create_defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One row of an import that cannot be used, and why (the message names the field)."""

    ref: str
    error: str
    position: int = 0


@dataclass(slots=True)
class ImportReport:
    """The outcome of an import; changed_ids are the AEDs created or updated."""

    created: int = 0
    updated: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    changed_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The API's import report."""
        return {
            "created": self.created,
            "updated": self.updated,
            "rejected": [{"ref": r.ref, "error": r.error} for r in self.rejected],
        }


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def render_aed(row: Mapping[str, Any], crs: Crs = Crs.WGS84) -> dict[str, Any]:
    """The API's AED object from a stored row, its location in the given system."""
    owner_name, owner_phone = row["owner_name"], row["owner_phone"]
    return {
        "id": row["id"],
        "name": row["name"],
        "address": row["address"],
        "district": row["district"],
        "location": render_location(row["lat"], row["lng"], crs),
        "venue_type": row["venue_type"],
        "indoor": row["indoor"],
        "level": row["level"],
        "access_note": row["access_note"],
        "opening_hours": row["opening_hours"],
        "status": row["status"],
        "model": row["model"],
        "serial_no": row["serial_no"],
        "pads_expire_on": _iso(row["pads_expire_on"]),
        "battery_expire_on": _iso(row["battery_expire_on"]),
        "last_inspected_on": _iso(row["last_inspected_on"]),
        "owner": (
            None
            if owner_name is None and owner_phone is None
            else {"name": owner_name, "phone": owner_phone}
        ),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def api_input(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as a POST body (WGS-84), the base a PATCH is merged onto."""
    rendered = render_aed(row)
    rendered["location"] = {"lat": row["lat"], "lng": row["lng"], "crs": Crs.WGS84.value}
    for key in READ_ONLY_FIELDS:
        del rendered[key]
    return rendered


def flat_aed(row: Mapping[str, Any], crs: Crs = Crs.WGS84) -> dict[str, Any]:
    """An AED in the flat form of exports (full coordinate precision, so a re-import is exact)."""
    flat = {key: row[key] for key in EXPORT_FIELDS if key != "crs"}
    lat, lng = row["lat"], row["lng"]
    if crs is not Crs.WGS84:
        lat, lng = from_wgs84(lat, lng, crs)
    flat.update(lat=lat, lng=lng, crs=crs.value)
    for key in (*DATE_COLUMNS, "created_at", "updated_at"):
        flat[key] = _iso(row[key])
    return {key: flat[key] for key in EXPORT_FIELDS}


def index_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a plan shows of an AED, kept with it in the index."""
    return {
        "id": row["id"],
        "name": row["name"],
        "address": row["address"],
        "lat": row["lat"],
        "lng": row["lng"],
        "level": row["level"],
        "access_note": row["access_note"],
        "opening_hours": row["opening_hours"],
        "indoor": row["indoor"],
    }


def indexed_aed(row: Mapping[str, Any]) -> IndexedAed:
    """The index entry of a stored AED."""
    return IndexedAed(
        id=row["id"],
        lat=row["lat"],
        lng=row["lng"],
        status=row["status"],
        opening_hours=row["opening_hours"],
        pads_expire_on=row["pads_expire_on"],
        battery_expire_on=row["battery_expire_on"],
        indoor=row["indoor"],
        level=row["level"],
        payload=index_payload(row),
    )
