"""The CSV roster import: parse every row, report the bad ones, upsert the good ones.

Rows match an existing volunteer on `id` when given, else on `certificate_number`, so
re-importing the same roster creates nothing. Imported volunteers get no token: an admin
issues one with POST /v1/volunteers/{id}/token when the volunteer is enrolled on a phone.
Empty cells: `travel_mode` and `status` keep the current value (default walk/active on
creation); `quiet_hours` and `home_district` are cleared (a column left out keeps them).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from geo import ServiceArea
from rescue.ids import new_id
from rescue.validation import Fields
from volunteers import queries
from volunteers.inputs import read_district, read_phone, read_quiet_hours
from volunteers.models import STATUSES, TRAVEL_MODES, VolunteerInput

logger = logging.getLogger(__name__)

COLUMNS = (
    "id",
    "name",
    "phone",
    "certificate_number",
    "certificate_issuer",
    "certificate_issued_on",
    "certificate_expires_on",
    "travel_mode",
    "status",
    "quiet_hours",
    "home_district",
)
REQUIRED_COLUMNS = COLUMNS[1:7]
_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
_CHUNK = 500


class RosterError(ValueError):
    """The file as a whole cannot be read (no header, unknown columns, broken CSV)."""


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One valid row of the roster."""

    line: int
    id: str | None
    data: VolunteerInput
    set_quiet_hours: bool
    set_home_district: bool


@dataclass(slots=True)
class ImportReport:
    """What an import did; `rejected` names each bad row by its line."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    changed_ids: list[str] = field(default_factory=list)

    def reject(self, line: int, error: str) -> None:
        """Report a row that was not imported."""
        self.rejected.append({"ref": f"line {line}", "error": error})

    def as_json(self) -> dict[str, Any]:
        """The API's import report."""
        self.rejected.sort(key=lambda r: int(r["ref"].split()[1]))
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
        }


def _header(raw: list[str]) -> list[str]:
    columns = [c.strip().lower() for c in raw]
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise RosterError(f"unknown column(s) {', '.join(map(repr, unknown))}; known: {COLUMNS}")
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if doubled:
        raise RosterError(f"column(s) given twice: {', '.join(doubled)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise RosterError(f"missing required column(s): {', '.join(missing)}")
    return columns


def _row(values: dict[str, str | None], area: ServiceArea) -> tuple[str | None, VolunteerInput]:
    fields = Fields(values)
    row_id = fields.str("id", max_len=100)
    if row_id is not None and not _ID_RE.match(row_id):
        fields.fail("id", "may only hold letters, digits and _ . : -")
    name = fields.str("name", required=True, max_len=200)
    phone = read_phone(fields, "phone", required=True)
    number = fields.str("certificate_number", required=True, max_len=100)
    issuer = fields.str("certificate_issuer", required=True, max_len=200)
    issued = fields.date("certificate_issued_on", required=True)
    expires = fields.date("certificate_expires_on", required=True)
    if issued and expires and expires < issued:
        fields.fail("certificate_expires_on", "must not be before certificate_issued_on")
    travel_mode = fields.enum("travel_mode", TRAVEL_MODES)
    status = fields.enum("status", STATUSES)
    quiet = read_quiet_hours(fields, "quiet_hours")
    district = read_district(fields, "home_district", area)
    if fields.problems:
        raise ValueError("; ".join(f"{p.field}: {p.problem}" for p in fields.problems))
    assert name and phone and number and issuer and issued and expires
    return row_id, VolunteerInput(
        name, phone, number, issuer, issued, expires, travel_mode, status, quiet, district
    )


def parse_roster(text: str, area: ServiceArea, report: ImportReport) -> list[RosterRow]:
    """The valid rows of a CSV roster; bad rows go to the report (RosterError: bad file)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        raw_header = next(reader, None)
        if raw_header is None:
            raise RosterError("the roster is empty: a header row is required")
        columns = _header(raw_header)
        rows: list[RosterRow] = []
        first_line: dict[tuple[str, str], int] = {}
        line = reader.line_num + 1
        for record in reader:
            this_line, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(columns):
                report.reject(this_line, f"has {len(record)} cells, the header {len(columns)}")
                continue
            values = {c: (cell.strip() or None) for c, cell in zip(columns, record, strict=True)}
            try:
                row_id, data = _row(values, area)
            except ValueError as exc:
                report.reject(this_line, str(exc))
                continue
            keys = [("certificate_number", data.cert_number)]
            if row_id is not None:
                keys.append(("id", row_id))
            earlier = [(k, first_line[k]) for k in keys if k in first_line]
            if earlier:
                (column, value), other = earlier[0]
                report.reject(this_line, f"{column} {value!r} is also on line {other}")
                continue
            first_line.update(dict.fromkeys(keys, this_line))
            rows.append(
                RosterRow(
                    this_line,
                    row_id,
                    data,
                    "quiet_hours" in columns,
                    "home_district" in columns,
                )
            )
    except csv.Error as exc:
        raise RosterError(f"line {reader.line_num}: malformed CSV: {exc}") from None
    return rows


async def _import_row(conn: asyncpg.Connection, row: RosterRow) -> tuple[str, str]:
    d = row.data
    result = await conn.fetchrow(
        queries.IMPORT_ROW,
        row.id,
        new_id("vol"),
        d.name,
        d.phone,
        d.cert_number,
        d.cert_issuer,
        d.cert_issued_on,
        d.cert_expires_on,
        d.travel_mode,
        d.status,
        d.quiet_hours,
        row.set_quiet_hours,
        d.home_district,
        row.set_home_district,
    )
    if result["clash_id"] is not None:
        return "rejected", (
            f"certificate_number {d.cert_number!r} already belongs to volunteer "
            f"{result['clash_id']}"
        )
    if result["created_id"] is not None:
        return "created", result["created_id"]
    if result["changed_id"] is not None:
        return "updated", result["changed_id"]
    return "unchanged", result["target_id"]


async def import_roster(
    conn: asyncpg.Connection, *, rows: list[RosterRow], report: ImportReport
) -> ImportReport:
    """Upsert the rows, a transaction per chunk; the report counts what happened."""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        try:
            async with conn.transaction():
                outcomes = [await _import_row(conn, row) for row in chunk]
        except asyncpg.UniqueViolationError:
            # A concurrent write took a number between our check and our write: row by row.
            outcomes = []
            for row in chunk:
                try:
                    async with conn.transaction():
                        outcomes.append(await _import_row(conn, row))
                except asyncpg.UniqueViolationError:
                    outcomes.append(("rejected", "id or certificate_number taken meanwhile"))
        for row, (outcome, detail) in zip(chunk, outcomes, strict=True):
            if outcome == "rejected":
                report.reject(row.line, detail)
            elif outcome == "created":
                report.created += 1
            elif outcome == "updated":
                report.updated += 1
                report.changed_ids.append(detail)
            else:
                report.unchanged += 1
    return report
