"""The import's upsert: match rows to AEDs, then write them in one transaction with bulk SQL."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from rescue.aeds import queries
from rescue.aeds.models import COLUMNS, DEFAULTS, ImportReport, ImportRow, Rejected
from rescue.errors import conflict
from rescue.ids import new_id

logger = logging.getLogger(__name__)

# Coordinates closer than this (about 1 cm) to the stored ones are not a change, so that an
# export in GCJ-02 or BD-09 re-imports without touching anything.
COORDINATE_TOLERANCE_DEG = 1e-7

Parsed = ImportRow | Rejected


def merge_unchanged(old: Mapping[str, Any], new: dict[str, Any]) -> bool:
    """Whether new says what old says in every column (keeping old coordinates within tolerance)."""
    same = True
    for column in COLUMNS:
        if column in ("lat", "lng"):
            if abs(old[column] - new[column]) <= COORDINATE_TOLERANCE_DEG:
                new[column] = old[column]
            else:
                same = False
        elif old[column] != new[column]:
            same = False
    return same


@dataclass(slots=True)
class Plan:
    """What an import writes: full rows (id plus every column) to insert and to update."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _place(values: Mapping[str, Any]) -> tuple[Any, Any, Any] | None:
    if values.get("serial_no") or values.get("osm_id") or not values.get("name"):
        return None
    return (values["name"], values["lat"], values["lng"])


class _Planner:
    """Resolves each row to an AED (by id, else serial_no, else OSM id, else same name+place)."""

    def __init__(self, existing: Sequence[Mapping[str, Any]]) -> None:
        self.by_id = {r["id"]: r for r in existing}
        self.owners: dict[str, dict[Any, str]] = {
            "serial_no": {r["serial_no"]: r["id"] for r in existing if r["serial_no"]},
            "osm_id": {r["osm_id"]: r["id"] for r in existing if r["osm_id"]},
        }
        self.places = {
            (r["name"], r["lat"], r["lng"]): r["id"]
            for r in existing
            if not r["serial_no"] and not r["osm_id"]
        }
        self.claims: dict[tuple[str, Any], str] = {}
        self.plan = Plan()

    def _target(self, values: Mapping[str, Any]) -> tuple[str | None, str]:
        """The existing AED a row refers to (or None), and the field that says so."""
        if values.get("id"):
            return (values["id"] if values["id"] in self.by_id else None), "id"
        for key in ("serial_no", "osm_id"):
            value = values.get(key)
            if value and value in self.owners[key]:
                return self.owners[key][value], key
        place = _place(values)
        return (self.places.get(place) if place is not None else None), "name"

    def _conflict(self, row: ImportRow, aed_id: str, via: str) -> str | None:
        values = row.values
        claims: list[tuple[str, tuple[str, Any]]] = [(via, ("id", aed_id))]
        for key in ("serial_no", "osm_id"):
            value = values.get(key)
            if value:
                owner = self.owners[key].get(value)
                if owner is not None and owner != aed_id:
                    return f"{key}: {value!r} belongs to another AED ({owner})"
                claims.append((key, (key, value)))
        place = _place(values)
        if place is not None:
            claims.append(("name", ("place", place)))
        for key, claim in claims:
            if claim in self.claims:
                return f"{key}: the same AED as {self.claims[claim]}"
        for _, claim in claims:
            self.claims[claim] = row.ref
        return None

    def add(self, row: ImportRow) -> None:
        target, via = self._target(row.values)
        aed_id = target or row.values.get("id") or new_id("aed")
        problem = self._conflict(row, aed_id, via)
        if problem is None and target is None:
            full = {**DEFAULTS, **row.create_defaults, **row.values, "id": aed_id}
            if not full.get("name"):
                problem = "name: is required to create an AED"
            else:
                self.plan.inserts.append(full)
                return
        if problem is not None:
            self.plan.rejected.append(Rejected(row.ref, problem, row.position))
            return
        old = self.by_id[aed_id]
        merged = {**{c: old[c] for c in COLUMNS}, **row.values, "id": aed_id}
        if not merge_unchanged(old, merged):
            self.plan.updates.append(merged)


def plan_import(rows: Sequence[ImportRow], existing: Sequence[Mapping[str, Any]]) -> Plan:
    """Match every row to an existing AED or a new one; rows that conflict are rejected."""
    planner = _Planner(existing)
    for row in rows:
        planner.add(row)
    return planner.plan


def _arrays(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [[row[c] for row in rows] for c in ("id", *COLUMNS)]


async def import_rows(conn: asyncpg.Connection, parsed: Sequence[Parsed]) -> ImportReport:
    """Upsert the valid rows in one transaction; report created, updated and rejected rows."""
    rows = [p for p in parsed if isinstance(p, ImportRow)]
    rejected = [p for p in parsed if isinstance(p, Rejected)]
    places = [place for row in rows if (place := _place(row.values)) is not None]
    async with conn.transaction():
        await conn.execute(queries.LOCK_FOR_IMPORT)
        existing = await conn.fetch(
            queries.IMPORT_CANDIDATES,
            [row.values["id"] for row in rows if row.values.get("id")],
            [row.values["serial_no"] for row in rows if row.values.get("serial_no")],
            [row.values["osm_id"] for row in rows if row.values.get("osm_id")],
            [p[0] for p in places],
            [p[1] for p in places],
            [p[2] for p in places],
        )
        plan = plan_import(rows, existing)
        try:
            if plan.inserts:
                await conn.execute(queries.BULK_INSERT, *_arrays(plan.inserts))
            if plan.updates:
                await conn.execute(queries.BULK_UPDATE, *_arrays(plan.updates))
        except asyncpg.UniqueViolationError as exc:
            # Not expected under the table lock; a clean 409 rather than a 500 if it happens.
            logger.warning("AED import hit a unique constraint: %s", exc.constraint_name)
            raise conflict("import_conflict", "the import conflicts with the stored AEDs") from None
    rejected.extend(plan.rejected)
    rejected.sort(key=lambda r: r.position)
    return ImportReport(
        created=len(plan.inserts),
        updated=len(plan.updates),
        rejected=rejected,
        changed_ids=[row["id"] for row in (*plan.inserts, *plan.updates)],
    )
