"""The in-memory AED index each worker keeps: a grid hash over latitude and longitude.

About 2,000 AEDs in a city, 20,000 in a province. Points are bucketed into cells of
CELL_DEG x CELL_DEG degrees (about 550 m x 450 m in Qingdao), so a query inside the 5-minute
radius touches a handful of cells. Not thread-safe: one event loop per worker owns its index.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from geo.distance import EARTH_RADIUS_M, bbox_around, haversine_rad
from geo.hours import is_open, validate_opening_hours

__all__ = ["CELL_DEG", "AedIndex", "IndexedAed"]

CELL_DEG = 0.005
_DEG = math.pi / 180.0
# nearest() expands rings of cells around the query; once the block of cells visited outgrows
# the index (a query far from every AED, or most AEDs closed), one scan of all is cheaper.
# Past this span the ring bound (see _safe_radius_m) would also stop being valid.
_MAX_RING_SPAN_DEG = 45.0


@dataclass(frozen=True, slots=True)
class IndexedAed:
    """What the index knows about one AED; payload is opaque data the caller renders."""

    id: str
    lat: float
    lng: float
    status: str
    opening_hours: str = "24/7"
    pads_expire_on: date | None = None
    battery_expire_on: date | None = None
    indoor: bool | None = None
    level: int | None = None
    payload: Any = None

    def available_at(self, at_local: datetime) -> bool:
        """Active, pads and battery not expired on that day, and open at that local time."""
        if self.status != "active":
            return False
        day = at_local.date()
        if self.pads_expire_on is not None and self.pads_expire_on < day:
            return False
        if self.battery_expire_on is not None and self.battery_expire_on < day:
            return False
        return is_open(self.opening_hours, at_local)


class _Entry(NamedTuple):
    aed: IndexedAed
    lat_rad: float
    lng_rad: float
    cos_lat: float
    cell: tuple[int, int]


def _cell_of(lat: float, lng: float) -> tuple[int, int]:
    return math.floor(lat / CELL_DEG), math.floor(lng / CELL_DEG)


class AedIndex:
    """AEDs by id and by grid cell, for nearest-k and radius queries by great-circle distance."""

    def __init__(self, aeds: Iterable[IndexedAed] = ()) -> None:
        self._entries: dict[str, _Entry] = {}
        self._cells: dict[tuple[int, int], dict[str, _Entry]] = {}
        for aed in aeds:
            self.upsert(aed)

    @property
    def _scan_cells(self) -> int:
        """How many cells nearest() may visit before it falls back to a scan."""
        return 4 * len(self._entries) + 100

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[IndexedAed]:
        return (entry.aed for entry in list(self._entries.values()))

    def __contains__(self, aed_id: object) -> bool:
        return aed_id in self._entries

    def get(self, aed_id: str) -> IndexedAed | None:
        """The AED with this id, or None."""
        entry = self._entries.get(aed_id)
        return entry.aed if entry is not None else None

    def upsert(self, aed: IndexedAed) -> None:
        """Insert an AED or replace the one with the same id (it may have moved).

        Raises ValueError for coordinates off the globe and InvalidOpeningHours for bad hours
        text, so that a bad record fails when it is loaded, never during an alert.
        """
        if not (-90.0 <= aed.lat <= 90.0 and -180.0 <= aed.lng <= 180.0):
            raise ValueError(f"AED {aed.id!r}: coordinates out of range: ({aed.lat}, {aed.lng})")
        validate_opening_hours(aed.opening_hours)
        self.remove(aed.id)
        lat_rad = aed.lat * _DEG
        entry = _Entry(aed, lat_rad, aed.lng * _DEG, math.cos(lat_rad), _cell_of(aed.lat, aed.lng))
        self._entries[aed.id] = entry
        self._cells.setdefault(entry.cell, {})[aed.id] = entry

    def remove(self, aed_id: str) -> None:
        """Remove an AED by id; nothing happens if it is not there."""
        entry = self._entries.pop(aed_id, None)
        if entry is None:
            return
        cell = self._cells[entry.cell]
        del cell[aed_id]
        if not cell:
            del self._cells[entry.cell]

    def within(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        *,
        at_local: datetime | None = None,
    ) -> list[tuple[IndexedAed, float]]:
        """AEDs within radius_m of a point (available at at_local, if given), nearest first."""
        if not radius_m >= 0:
            raise ValueError(f"radius_m must be non-negative, got {radius_m!r}")
        min_lat, min_lng, max_lat, max_lng = bbox_around(lat, lng, radius_m)
        lo_i, lo_j = _cell_of(min_lat, min_lng)
        hi_i, hi_j = _cell_of(max_lat, max_lng)
        n_cells = (hi_i - lo_i + 1) * (hi_j - lo_j + 1)
        if n_cells > len(self._cells):
            candidates: Iterable[_Entry] = self._entries.values()
        else:
            candidates = self._entries_in(lo_i, hi_i, lo_j, hi_j)
        q_lat = lat * _DEG
        q_lng = lng * _DEG
        q_cos = math.cos(q_lat)
        found: list[tuple[float, str, IndexedAed]] = []
        for entry in candidates:
            d = haversine_rad(q_lat, q_lng, q_cos, entry.lat_rad, entry.lng_rad, entry.cos_lat)
            if d <= radius_m:
                found.append((d, entry.aed.id, entry.aed))
        found.sort(key=lambda item: (item[0], item[1]))
        return [(aed, d) for d, _, aed in found if at_local is None or aed.available_at(at_local)]

    def nearest(
        self,
        lat: float,
        lng: float,
        k: int,
        *,
        at_local: datetime | None = None,
        max_distance_m: float | None = None,
    ) -> list[tuple[IndexedAed, float]]:
        """The k nearest AEDs (available at at_local and within max_distance_m, if given)."""
        if k <= 0 or not self._entries:
            return []
        limit = math.inf if max_distance_m is None else max_distance_m
        if not limit >= 0:
            raise ValueError(f"max_distance_m must be non-negative, got {max_distance_m!r}")
        q_lat = lat * _DEG
        q_lng = lng * _DEG
        q_cos = math.cos(q_lat)
        ci, cj = _cell_of(lat, lng)
        result: list[tuple[IndexedAed, float]] = []
        # Visited but not yet final: (distance, id, aed), popped in distance order once no
        # unvisited point can be nearer.
        pending: list[tuple[float, str, IndexedAed]] = []
        visited = 0
        ring = 0
        while True:
            if ring * CELL_DEG > _MAX_RING_SPAN_DEG or (2 * ring + 1) ** 2 > self._scan_cells:
                return self._scan(q_lat, q_lng, q_cos, k, at_local, limit, result)
            for entry in self._ring(ci, cj, ring):
                visited += 1
                d = haversine_rad(q_lat, q_lng, q_cos, entry.lat_rad, entry.lng_rad, entry.cos_lat)
                if d <= limit:
                    heapq.heappush(pending, (d, entry.aed.id, entry.aed))
            exhausted = visited == len(self._entries)
            safe = math.inf if exhausted else self._safe_radius_m(lat, lng, ci, cj, ring)
            while pending and pending[0][0] <= safe:
                d, _, aed = heapq.heappop(pending)
                if at_local is None or aed.available_at(at_local):
                    result.append((aed, d))
                    if len(result) == k:
                        return result
            if exhausted or safe >= limit:
                return result
            ring += 1

    def _entries_in(self, lo_i: int, hi_i: int, lo_j: int, hi_j: int) -> Iterator[_Entry]:
        cells = self._cells
        for i in range(lo_i, hi_i + 1):
            for j in range(lo_j, hi_j + 1):
                cell = cells.get((i, j))
                if cell:
                    yield from cell.values()

    def _ring(self, ci: int, cj: int, ring: int) -> Iterator[_Entry]:
        """Entries in the cells at Chebyshev distance `ring` from cell (ci, cj)."""
        cells = self._cells
        if ring == 0:
            cell = cells.get((ci, cj))
            if cell:
                yield from cell.values()
            return
        for j in range(cj - ring, cj + ring + 1):
            for i in (ci - ring, ci + ring):
                cell = cells.get((i, j))
                if cell:
                    yield from cell.values()
        for i in range(ci - ring + 1, ci + ring):
            for j in (cj - ring, cj + ring):
                cell = cells.get((i, j))
                if cell:
                    yield from cell.values()

    @staticmethod
    def _safe_radius_m(lat: float, lng: float, ci: int, cj: int, ring: int) -> float:
        """A lower bound on the distance from the point to any cell outside the visited block."""
        south = lat - (ci - ring) * CELL_DEG
        north = (ci + ring + 1) * CELL_DEG - lat
        west = lng - (cj - ring) * CELL_DEG
        east = (cj + ring + 1) * CELL_DEG - lng
        if (cj - ring) * CELL_DEG <= -180.0 or (cj + ring + 1) * CELL_DEG >= 180.0:
            # The grid does not wrap: AEDs just across the antimeridian sit in cells at the far
            # end of the index, so no bound holds; keep expanding until the scan takes over.
            return 0.0
        lat_m = min(south, north) * _DEG * EARTH_RADIUS_M
        # The nearest point of a meridian dlng away is asin(sin(dlng) * cos(lat)) away.
        cos_lat = math.cos(lat * _DEG)
        lng_m = math.asin(min(1.0, math.sin(min(west, east) * _DEG) * cos_lat)) * EARTH_RADIUS_M
        return min(lat_m, lng_m)

    def _scan(
        self,
        q_lat: float,
        q_lng: float,
        q_cos: float,
        k: int,
        at_local: datetime | None,
        limit: float,
        result: list[tuple[IndexedAed, float]],
    ) -> list[tuple[IndexedAed, float]]:
        """Finish a nearest() query by scanning every AED not already in the result."""
        taken = {aed.id for aed, _ in result}
        rest: list[tuple[float, str, IndexedAed]] = []
        for entry in self._entries.values():
            if entry.aed.id in taken:
                continue
            d = haversine_rad(q_lat, q_lng, q_cos, entry.lat_rad, entry.lng_rad, entry.cos_lat)
            if d <= limit:
                rest.append((d, entry.aed.id, entry.aed))
        rest.sort(key=lambda item: (item[0], item[1]))
        for d, _, aed in rest:
            if len(result) == k:
                break
            if at_local is None or aed.available_at(at_local):
                result.append((aed, d))
        return result
