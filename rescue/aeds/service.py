"""Use cases of the AED inventory: create, read, change, retire, list, maintenance, import."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from geo import Crs, ServiceArea
from rescue.aeds import importers, queries
from rescue.aeds.bulk import import_rows, merge_unchanged
from rescue.aeds.errors import aed_not_found, unique_violation
from rescue.aeds.models import COLUMNS, DEFAULTS, ImportReport, Rejected, api_input
from rescue.aeds.sync import publish_once
from rescue.aeds.validate import Validated, read_aed
from rescue.errors import ApiError, invalid_many
from rescue.ids import new_id
from rescue.settings import Settings

logger = logging.getLogger(__name__)

REQUIRED = ("name", "location")


def checked(result: Validated) -> dict[str, Any]:
    """The validated columns, or the 400 naming every bad field (then the 422 if outside)."""
    if result.problems:
        raise invalid_many(result.problems)
    if result.outside is not None:
        raise result.outside
    return result.values


async def create_aed(conn: asyncpg.Connection, *, values: Mapping[str, Any]) -> asyncpg.Record:
    """Store a new AED from validated columns."""
    full = {**DEFAULTS, **values}
    try:
        return await conn.fetchrow(queries.INSERT_AED, new_id("aed"), *(full[c] for c in COLUMNS))
    except asyncpg.UniqueViolationError as exc:
        raise unique_violation(exc, full["serial_no"]) from None


async def get_aed(conn: asyncpg.Connection, *, aed_id: str) -> asyncpg.Record:
    """An AED (retired ones included), or a 404."""
    row = await conn.fetchrow(queries.GET_AED, aed_id)
    if row is None:
        raise aed_not_found(aed_id)
    return row


async def update_aed(
    conn: asyncpg.Connection,
    *,
    aed_id: str,
    patch: Mapping[str, Any],
    area: ServiceArea,
    default_crs: Crs,
) -> tuple[asyncpg.Record, bool]:
    """Merge a PATCH onto the AED and validate the result; (row, whether anything changed)."""
    async with conn.transaction():
        row = await conn.fetchrow(queries.GET_AED_FOR_UPDATE, aed_id)
        if row is None:
            raise aed_not_found(aed_id)
        merged = {**api_input(row), **patch}
        if "location" in patch and "district" not in patch:
            del merged["district"]  # derive it again from the new location
        values = checked(
            read_aed(merged, area=area, default_crs=default_crs, flat=False, required=REQUIRED)
        )
        full = {**{c: row[c] for c in COLUMNS}, **values}
        if merge_unchanged(row, full):
            return row, False
        try:
            updated = await conn.fetchrow(queries.UPDATE_AED, aed_id, *(full[c] for c in COLUMNS))
        except asyncpg.UniqueViolationError as exc:
            raise unique_violation(exc, full["serial_no"]) from None
    return updated, True


async def retire_aed(conn: asyncpg.Connection, *, aed_id: str) -> None:
    """Set an AED's status to retired (it stays in the inventory's history), or a 404."""
    if await conn.fetchval(queries.RETIRE_AED, aed_id) is None:
        raise aed_not_found(aed_id)


@dataclass(frozen=True, slots=True)
class AedFilter:
    """The list's filters; bounds are WGS-84 (min_lat, min_lng, max_lat, max_lng)."""

    statuses: list[str] | None = None
    district: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    text: str | None = None


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_aeds(
    conn: asyncpg.Connection, *, where: AedFilter, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """AEDs matching the filters, by id after the cursor; at most limit rows."""
    bounds = where.bounds or (None, None, None, None)
    rows: list[asyncpg.Record] = await conn.fetch(
        queries.LIST_AEDS,
        after,
        where.statuses,
        where.district,
        *bounds,
        _like_pattern(where.text) if where.text else None,
        limit,
    )
    return rows


async def export_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every non-retired AED, by id."""
    rows: list[asyncpg.Record] = await conn.fetch(queries.EXPORT_AEDS)
    return rows


def _shift_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def aed_problems(
    row: Mapping[str, Any], *, today: dt.date, within_days: int
) -> tuple[dt.date, list[str]]:
    """What needs attention at an AED, and the date by which the most urgent of it is due."""
    horizon = today + dt.timedelta(days=within_days)
    problems: list[str] = []
    due: list[dt.date] = []
    for column, part, singular in (
        ("pads_expire_on", "pads", False),
        ("battery_expire_on", "battery", True),
    ):
        day = row[column]
        if day is None or day > horizon:
            continue
        verb = "expired" if day < today else ("expires" if singular else "expire")
        problems.append(f"{part} {verb} {day.isoformat()}")
        due.append(day)
    inspected = row["last_inspected_on"]
    if inspected is None:
        problems.append("never inspected")
        due.append(today)
    elif inspected < _shift_years(today, -1):
        problems.append(f"last inspected {inspected.isoformat()} (over a year ago)")
        due.append(_shift_years(inspected, 1))
    if row["status"] in ("maintenance", "missing"):
        problems.append(f"status {row['status']}")
        due.append(today)
    return (min(due) if due else horizon), problems


async def maintenance_report(
    conn: asyncpg.Connection, *, today: dt.date, within_days: int
) -> list[tuple[asyncpg.Record, list[str]]]:
    """Non-retired AEDs needing attention, most urgent first (then by id)."""
    rows = await conn.fetch(
        queries.MAINTENANCE_CANDIDATES,
        today + dt.timedelta(days=within_days),
        _shift_years(today, -1),
    )
    found = []
    for row in rows:
        due, problems = aed_problems(row, today=today, within_days=within_days)
        if problems:
            found.append((due, row["id"], row, problems))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(row, problems) for _, _, row, problems in found]


async def import_body(
    conn: asyncpg.Connection,
    *,
    media_type: str,
    raw: bytes,
    area: ServiceArea,
    default_crs: Crs,
    charset: str | None = None,
) -> ImportReport:
    """Parse an import body and upsert its rows (a bad row is reported, the others stored)."""
    parsed = importers.parse(media_type, raw, area=area, default_crs=default_crs, charset=charset)
    return await import_rows(conn, parsed)


async def import_file(
    pool: asyncpg.Pool, area: ServiceArea, settings: Settings, path: Path
) -> dict[str, Any]:
    """Import a .csv, .geojson or .json (Overpass) file; the report as the API gives it."""
    media_type = importers.MEDIA_BY_EXTENSION.get(Path(path).suffix.lower())
    if media_type is None:
        known = ", ".join(importers.MEDIA_BY_EXTENSION)
        error = f"unknown file type {Path(path).suffix!r}: expected {known}"
        return ImportReport(rejected=[Rejected(str(path), error)]).as_dict()
    raw = await asyncio.to_thread(Path(path).read_bytes)
    try:
        async with pool.acquire() as conn:
            report = await import_body(
                conn,
                media_type=media_type,
                raw=raw,
                area=area,
                default_crs=settings.default_crs,
            )
    except ApiError as exc:
        details = "; ".join(f"{d.field}: {d.problem}" for d in exc.details) or exc.message
        return ImportReport(rejected=[Rejected(str(path), details)]).as_dict()
    if report.changed_ids:
        await publish_once(settings.redis_url, report.changed_ids)
    return report.as_dict()
