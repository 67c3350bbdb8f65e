"""The Utstein-style record of an incident, computed from its timeline (never stored).

Milestones (the first time each happened; None if it did not, or was not reported):
- `call`: when 120 took the call (the alert's `reported_at`); `alert`: when the alert arrived;
- `first_offer` (`offers_sent`), `first_acceptance` (`offer_accepted`);
- `on_scene`: a responder's first on-scene marker (`arrived`, or an act only done there:
  `cpr_started`, `aed_arrived`, `pads_attached`, `shock_delivered`, `rosc`, `handed_over`);
  the dispatcher's markers do not count (they record what bystanders do);
- `first_compression`: the first `cpr_started`, by anyone (dispatcher-assisted bystander CPR
  counts); `aed_on_scene`: the first `aed_arrived`, or `pads_attached`/`shock_delivered` if
  earlier (the AED is evidently there); `pads_attached`; `first_shock`; `rosc` (the marker);
- `ems_arrival`: the earlier of the `ems_arrived` marker and the outcome's `ems_arrived_at`.

Intervals are whole seconds between two milestones (None unless both are known);
`on_scene_before_ems_s` is positive when a responder was there before the ambulance (the
summary counts "on scene before EMS" only when both times are known). Outcome:
`rosc` is true if the outcome says so or a `rosc` marker was reported (any ROSC), false if
the outcome says false and none was reported; `transported` and `survived` as 120 closed it.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from dispatch.guidance.models import EMS_ARRIVED, MARKERS

MILESTONES = (
    "call",
    "alert",
    "first_offer",
    "first_acceptance",
    "on_scene",
    "first_compression",
    "aed_on_scene",
    "pads_attached",
    "first_shock",
    "rosc",
    "ems_arrival",
)

INTERVALS = (
    ("call_to_alert_s", "call", "alert"),
    ("alert_to_first_offer_s", "alert", "first_offer"),
    ("alert_to_first_acceptance_s", "alert", "first_acceptance"),
    ("alert_to_on_scene_s", "alert", "on_scene"),
    ("alert_to_first_compression_s", "alert", "first_compression"),
    ("alert_to_aed_on_scene_s", "alert", "aed_on_scene"),
    ("alert_to_pads_attached_s", "alert", "pads_attached"),
    ("alert_to_first_shock_s", "alert", "first_shock"),
    ("alert_to_ems_arrival_s", "alert", "ems_arrival"),
    ("call_to_first_compression_s", "call", "first_compression"),
    ("call_to_first_shock_s", "call", "first_shock"),
    ("call_to_ems_arrival_s", "call", "ems_arrival"),
    ("on_scene_to_first_compression_s", "on_scene", "first_compression"),
    ("aed_on_scene_to_first_shock_s", "aed_on_scene", "first_shock"),
    ("on_scene_before_ems_s", "on_scene", "ems_arrival"),
)

# What the summary counts: incidents, except volunteers_offered, responders_accepted and
# shocks (how many of those in all).
SUMMARY_COUNTS = (
    "alerts",
    "open",
    "closed",
    "cancelled",
    "offered",
    "volunteers_offered",
    "accepted",
    "responders_accepted",
    "on_scene",
    "on_scene_before_ems",
    "compressions",
    "aed_on_scene",
    "aed_attached",
    "shocked",
    "shocks",
    "rosc",
    "transported",
    "survived",
)

# Intervals whose medians the summary gives.
SUMMARY_MEDIANS = (
    "alert_to_first_acceptance_s",
    "alert_to_on_scene_s",
    "alert_to_first_compression_s",
    "alert_to_aed_on_scene_s",
    "alert_to_first_shock_s",
    "on_scene_before_ems_s",
)

ON_SCENE_MARKERS = frozenset(
    {
        "arrived",
        "cpr_started",
        "aed_arrived",
        "pads_attached",
        "shock_delivered",
        "rosc",
        "handed_over",
    }
)
AED_MARKERS = frozenset({"aed_arrived", "pads_attached", "shock_delivered"})
# The entries a record reads.
RECORD_ENTRY_TYPES = ["offers_sent", "offer_accepted", *MARKERS]

REPORT_INCIDENTS = """
SELECT id, center_id, external_id, exercise, status, category, district, reported_at,
       created_at, closed_at, outcome
FROM incidents
WHERE created_at >= $1 AND created_at < $2
  AND ($3::boolean IS NULL OR exercise = $3)
  AND ($4::text IS NULL OR id > $4)
ORDER BY id
LIMIT $5
"""

RECORD_ENTRIES = """
SELECT incident_id, at, type, actor, data FROM timeline
WHERE incident_id = ANY($1::text[]) AND type = ANY($2::text[])
ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One incident's record."""

    incident: Mapping[str, Any]
    times: dict[str, dt.datetime | None]
    offered: int
    accepted: int
    shocks: int
    rosc: bool | None
    intervals: dict[str, int | None] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "intervals", _intervals(self.times))

    @property
    def exercise(self) -> bool:
        """Whether the incident was an exercise."""
        return bool(self.incident["exercise"])

    def outcome(self, key: str) -> bool | None:
        """A boolean of the outcome as 120 closed the incident."""
        outcome = self.incident["outcome"] or {}
        value = outcome.get(key)
        return value if isinstance(value, bool) else None

    @property
    def on_scene_before_ems(self) -> bool | None:
        """Whether a responder was there before the ambulance (None: not known)."""
        lead = self.intervals["on_scene_before_ems_s"]
        return None if lead is None else lead > 0


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _earliest(*values: dt.datetime | None) -> dt.datetime | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _intervals(times: Mapping[str, dt.datetime | None]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name, start, end in INTERVALS:
        a, b = times[start], times[end]
        out[name] = round((b - a).total_seconds()) if a is not None and b is not None else None
    return out


def build_record(
    incident: Mapping[str, Any], entries: Iterable[Mapping[str, Any]]
) -> IncidentRecord:
    """The record of an incident from its row and its timeline entries (any order)."""
    first: dict[str, dt.datetime] = {}
    on_scene: dt.datetime | None = None
    offered = accepted = shocks = 0

    def seen(key: str, at: dt.datetime) -> None:
        if key not in first or at < first[key]:
            first[key] = at

    for entry in entries:
        kind, at, data = entry["type"], entry["at"], entry["data"] or {}
        if kind == "offers_sent":
            offered += len(data.get("offers") or ())
            seen("offers_sent", at)
        elif kind == "offer_accepted":
            accepted += 1
            seen("offer_accepted", at)
        elif kind in MARKERS:
            seen(kind, at)
            shocks += kind == "shock_delivered"
            if data.get("volunteer_id") and kind in ON_SCENE_MARKERS:
                on_scene = _earliest(on_scene, at)
    outcome = incident["outcome"] or {}
    times = {
        "call": incident["reported_at"],
        "alert": incident["created_at"],
        "first_offer": first.get("offers_sent"),
        "first_acceptance": first.get("offer_accepted"),
        "on_scene": on_scene,
        "first_compression": first.get("cpr_started"),
        "aed_on_scene": _earliest(*(first.get(m) for m in AED_MARKERS)),
        "pads_attached": first.get("pads_attached"),
        "first_shock": first.get("shock_delivered"),
        "rosc": first.get("rosc"),
        "ems_arrival": _earliest(
            first.get(EMS_ARRIVED), _parse_time(outcome.get("ems_arrived_at"))
        ),
    }
    said = outcome.get("rosc")
    rosc = True if "rosc" in first or said is True else (False if said is False else None)
    return IncidentRecord(
        incident=incident,
        times=times,
        offered=offered,
        accepted=accepted,
        shocks=shocks,
        rosc=rosc,
    )


async def fetch_records(
    conn: asyncpg.Connection,
    *,
    start: dt.datetime,
    end: dt.datetime,
    exercise: bool | None,
    after: str | None,
    limit: int,
) -> list[IncidentRecord]:
    """Records of incidents alerted in [start, end), by id, after a cursor (limit rows)."""
    incidents = await conn.fetch(REPORT_INCIDENTS, start, end, exercise, after, limit)
    if not incidents:
        return []
    entries = await conn.fetch(RECORD_ENTRIES, [i["id"] for i in incidents], RECORD_ENTRY_TYPES)
    by_incident: dict[str, list[asyncpg.Record]] = {}
    for entry in entries:
        by_incident.setdefault(entry["incident_id"], []).append(entry)
    return [build_record(i, by_incident.get(i["id"], [])) for i in incidents]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def render_record(record: IncidentRecord) -> dict[str, Any]:
    """A record as JSON."""
    incident = record.incident
    return {
        "incident_id": incident["id"],
        "external_id": incident["external_id"],
        "center_id": incident["center_id"],
        "exercise": record.exercise,
        "status": incident["status"],
        "category": incident["category"],
        "district": incident["district"],
        "times": {key: _iso(value) for key, value in record.times.items()},
        "intervals_s": dict(record.intervals),
        "responders": {"offered": record.offered, "accepted": record.accepted},
        "shocks": record.shocks,
        "outcome": {
            "rosc": record.rosc,
            "transported": record.outcome("transported"),
            "survived": record.outcome("survived"),
            "on_scene_before_ems": record.on_scene_before_ems,
        },
    }


CSV_COLUMNS = (
    "incident_id",
    "external_id",
    "center_id",
    "exercise",
    "status",
    "category",
    "district",
    *(f"{m}_at" for m in MILESTONES),
    *(name for name, _, _ in INTERVALS),
    "offered",
    "accepted",
    "shocks",
    "rosc",
    "transported",
    "survived",
    "on_scene_before_ems",
)


def flat_record(record: IncidentRecord) -> dict[str, Any]:
    """A record as one CSV row (keys: CSV_COLUMNS)."""
    rendered = render_record(record)
    return {
        **{k: rendered[k] for k in CSV_COLUMNS[:7]},
        **{f"{m}_at": rendered["times"][m] for m in MILESTONES},
        **rendered["intervals_s"],
        "offered": record.offered,
        "accepted": record.accepted,
        "shocks": record.shocks,
        **rendered["outcome"],
    }


@dataclass
class Summary:
    """Counts over a set of incidents (real ones and exercises are summed apart)."""

    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[int]] = field(default_factory=dict)

    def add(self, record: IncidentRecord) -> None:
        """Count one incident."""
        times = record.times
        flags = {
            "alerts": True,
            "open": record.incident["status"] == "open",
            "closed": record.incident["status"] == "closed",
            "cancelled": record.incident["status"] == "cancelled",
            "offered": record.offered > 0,
            "accepted": record.accepted > 0,
            "on_scene": times["on_scene"] is not None,
            "on_scene_before_ems": record.on_scene_before_ems is True,
            "compressions": times["first_compression"] is not None,
            "aed_on_scene": times["aed_on_scene"] is not None,
            "aed_attached": times["pads_attached"] is not None,
            "shocked": record.shocks > 0,
            "rosc": record.rosc is True,
            "transported": record.outcome("transported") is True,
            "survived": record.outcome("survived") is True,
        }
        for key, flag in flags.items():
            self.counts[key] = self.counts.get(key, 0) + int(flag)
        for key, n in (
            ("volunteers_offered", record.offered),
            ("responders_accepted", record.accepted),
            ("shocks", record.shocks),
        ):
            self.counts[key] = self.counts.get(key, 0) + n
        for name in SUMMARY_MEDIANS:
            value = record.intervals[name]
            if value is not None:
                self.samples.setdefault(name, []).append(value)

    def render(self) -> dict[str, Any]:
        """The summary as JSON (every count present, medians None without samples)."""
        counts = {key: self.counts.get(key, 0) for key in SUMMARY_COUNTS}
        medians = {
            name: (statistics.median(self.samples[name]) if self.samples.get(name) else None)
            for name in SUMMARY_MEDIANS
        }
        return {**counts, "median_s": medians}


def summarize(records: Sequence[IncidentRecord], real: Summary, exercises: Summary) -> None:
    """Add records to the real incidents' or the exercises' summary."""
    for record in records:
        (exercises if record.exercise else real).add(record)
