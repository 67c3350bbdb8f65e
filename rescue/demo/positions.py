"""Plausible daytime positions of the demo volunteers (for the demo fleet; never stored).

Each volunteer has a workplace anchor, regenerated deterministically from the seed: most work in
their home district, the rest anywhere, weighted like the AEDs; the anchor lies a few hundred
metres from a demo AED of the workplace district, on land. `volunteer_day_position` adds a
small random walk around the anchor from the caller's random generator.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import shapely
from numpy.typing import NDArray

from geo import ServiceArea
from rescue.area import load_service_area
from rescue.demo.aeds import generate_aeds
from rescue.demo.constants import DEMO_SEED, DISTRICT_SHARES, VOLUNTEER_COUNT, volunteer_index
from rescue.demo.volunteers import home_districts

__all__ = ["HOME_WORK_SHARE", "volunteer_anchor", "volunteer_anchors", "volunteer_day_position"]

_ANCHOR_STREAM = 3
# Share of volunteers working in their home district.
HOME_WORK_SHARE = 0.7
_ANCHOR_SIGMA_M = 350.0
_ANCHOR_ROUNDS = 6
_DAY_ATTEMPTS = 8
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LNG_EQUATOR = 111_320.0


def volunteer_anchors(
    *, area: ServiceArea | None = None, seed: int = DEMO_SEED
) -> NDArray[np.float64]:
    """Every demo volunteer's workplace anchor as a (count, 2) array of (lat, lng); cached."""
    return _anchors(area or load_service_area(), seed, VOLUNTEER_COUNT)


def volunteer_anchor(
    volunteer: int | str, *, area: ServiceArea | None = None, seed: int = DEMO_SEED
) -> tuple[float, float]:
    """The workplace anchor (lat, lng) of a demo volunteer given by 0-based index or id."""
    lat, lng = volunteer_anchors(area=area, seed=seed)[volunteer_index(volunteer)]
    return float(lat), float(lng)


def volunteer_day_position(
    volunteer: int | str,
    rng: random.Random,
    *,
    area: ServiceArea | None = None,
    seed: int = DEMO_SEED,
    spread_m: float = 150.0,
) -> tuple[float, float]:
    """A daytime (lat, lng) on land near the volunteer's workplace anchor, drawn from rng."""
    area = area or load_service_area()
    lat0, lng0 = volunteer_anchor(volunteer, area=area, seed=seed)
    m_per_deg_lng = _M_PER_DEG_LNG_EQUATOR * math.cos(math.radians(lat0))
    for _ in range(_DAY_ATTEMPTS):
        lat = lat0 + rng.gauss(0.0, spread_m) / _M_PER_DEG_LAT
        lng = lng0 + rng.gauss(0.0, spread_m) / m_per_deg_lng
        if area.contains(lat, lng):
            return lat, lng
    return lat0, lng0


@functools.cache
def _anchors(area: ServiceArea, seed: int, count: int) -> NDArray[np.float64]:
    codes = sorted(DISTRICT_SHARES)
    shares = np.array([DISTRICT_SHARES[c] for c in codes])
    aeds = generate_aeds(area, seed=seed)
    by_district = [np.array([(a.lat, a.lng) for a in aeds if a.district == c]) for c in codes]
    home = np.searchsorted(np.array(codes), home_districts(seed=seed, count=count))

    rng = np.random.default_rng([seed, _ANCHOR_STREAM])
    elsewhere = rng.choice(len(codes), size=count, p=shares / shares.sum())
    work = np.where(rng.random(count) < HOME_WORK_SHARE, home, elsewhere)
    base = np.empty((count, 2))
    for k, points in enumerate(by_district):
        chosen = np.flatnonzero(work == k)
        base[chosen] = points[rng.integers(0, len(points), size=chosen.size)]

    # Jitter around the AED; points falling in the sea are drawn again, and the last few
    # keep the AED's own position.
    anchors = base.copy()
    pending = np.arange(count)
    m_per_deg_lng = _M_PER_DEG_LNG_EQUATOR * np.cos(np.radians(base[:, 0]))
    for _ in range(_ANCHOR_ROUNDS):
        lat = base[pending, 0] + rng.normal(0.0, _ANCHOR_SIGMA_M, pending.size) / _M_PER_DEG_LAT
        lng = (
            base[pending, 1]
            + rng.normal(0.0, _ANCHOR_SIGMA_M, pending.size) / m_per_deg_lng[pending]
        )
        on_land = shapely.contains_xy(area.outline, lng, lat)
        anchors[pending[on_land]] = np.column_stack((lat[on_land], lng[on_land]))
        pending = pending[~on_land]
        if not pending.size:
            break
    anchors.setflags(write=False)
    return anchors
