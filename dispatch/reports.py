"""Reports for the city (admin): each incident's record, in JSON or CSV, and a summary.

- `GET /v1/reports/incidents?from=&to=&exercise=&format=json|csv` -> JSON: the list of records
  (`{"items", "next_cursor", "from", "to"}`, paged by `limit`/`cursor`); CSV: every record of
  the period, one row each (columns: dispatch/records.py CSV_COLUMNS), streamed.
- `GET /v1/reports/summary?from=&to=` -> `{"from", "to", "real": {...}, "exercises": {...}}`:
  counts and medians, exercises apart.

`from`/`to` select incidents by the alert's time: RFC 3339 timestamps, or dates (YYYY-MM-DD,
the deployment's zone) where `to` includes its whole day. `to` defaults to now, `from` to 30
days before `to`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from dispatch.records import (
    CSV_COLUMNS,
    Summary,
    fetch_records,
    flat_record,
    render_record,
    summarize,
)
from rescue.auth import Role, requires
from rescue.errors import invalid
from rescue.http import decode_cursor, json_response, page, page_limit
from rescue.typedefs import db_key, settings_key

routes = web.RouteTableDef()

DEFAULT_PERIOD = dt.timedelta(days=30)
BATCH = 500
FORMATS = ("json", "csv")


def _bound(request: web.Request, key: str, *, end: bool) -> dt.datetime | None:
    raw = request.query.get(key, "").strip()
    if not raw:
        return None
    tz = request.app[settings_key].timezone
    if len(raw) == 10:
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise invalid(key, "must be a date YYYY-MM-DD or an RFC 3339 timestamp") from None
        if end:
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(), tzinfo=tz)
    try:
        # A '+' of an offset arrives as a space when the client did not encode it.
        parsed = dt.datetime.fromisoformat(raw.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise invalid(key, "must be a date YYYY-MM-DD or an RFC 3339 timestamp with an offset")
    return parsed


def parse_period(request: web.Request) -> tuple[dt.datetime, dt.datetime]:
    """`?from=&to=`: [from, to), defaulting to the 30 days up to now."""
    end = _bound(request, "to", end=True) or dt.datetime.now(dt.UTC)
    start = _bound(request, "from", end=False) or end - DEFAULT_PERIOD
    if start >= end:
        raise invalid("from", "must be before to")
    return start, end


def parse_format(request: web.Request) -> str:
    """`?format=json|csv` (json by default)."""
    fmt = request.query.get("format", "json").lower()
    if fmt not in FORMATS:
        raise invalid("format", "must be json or csv")
    return fmt


def parse_bool(request: web.Request, key: str) -> bool | None:
    """`?key=true|false`, or None when absent."""
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise invalid(key, "must be true or false")
    return raw.lower() == "true"


def csv_value(value: Any) -> str:
    """A CSV cell: empty for null, true/false for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_rows(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    """CSV lines (UTF-8, CRLF) of flat rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_value(row[c]) for c in columns])
    return out.getvalue().encode("utf-8")


async def start_csv(request: web.Request, name: str, columns: Sequence[str]) -> web.StreamResponse:
    """A streamed CSV download, its header row written."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}.csv"',
        }
    )
    await response.prepare(request)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(columns)
    await response.write(out.getvalue().encode("utf-8"))
    return response


def _label(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.date().isoformat()}_{end.date().isoformat()}"


@routes.get("/v1/reports/incidents")
@requires(Role.ADMIN)
async def report_incidents(request: web.Request) -> web.StreamResponse:
    """Each incident's record (times, intervals, outcome) in a period, as JSON or CSV."""
    start, end = parse_period(request)
    fmt = parse_format(request)
    exercise = parse_bool(request, "exercise")
    pool = request.app[db_key]
    if fmt == "csv":
        response = await start_csv(request, f"incidents_{_label(start, end)}", CSV_COLUMNS)
        after: str | None = None
        while True:
            async with pool.acquire() as conn:
                records = await fetch_records(
                    conn, start=start, end=end, exercise=exercise, after=after, limit=BATCH
                )
            if not records:
                break
            await response.write(csv_rows((flat_record(r) for r in records), CSV_COLUMNS))
            after = str(records[-1].incident["id"])
        await response.write_eof()
        return response
    limit = page_limit(request)
    cursor = decode_cursor(request)
    async with pool.acquire() as conn:
        records = await fetch_records(
            conn, start=start, end=end, exercise=exercise, after=cursor, limit=limit + 1
        )
    body = page(
        [render_record(r) for r in records], [str(r.incident["id"]) for r in records], limit
    )
    return json_response({**body, "from": start.isoformat(), "to": end.isoformat()})


@routes.get("/v1/reports/summary")
@requires(Role.ADMIN)
async def report_summary(request: web.Request) -> web.Response:
    """Counts and median intervals of a period's incidents; exercises counted apart."""
    start, end = parse_period(request)
    real, exercises = Summary(), Summary()
    after: str | None = None
    pool = request.app[db_key]
    while True:
        async with pool.acquire() as conn:
            records = await fetch_records(
                conn, start=start, end=end, exercise=None, after=after, limit=BATCH
            )
        if not records:
            break
        summarize(records, real, exercises)
        after = str(records[-1].incident["id"])
    return json_response(
        {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "real": real.render(),
            "exercises": exercises.render(),
        }
    )
