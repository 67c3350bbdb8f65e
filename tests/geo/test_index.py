"""The in-memory AED index: agreement with brute force, availability, upserts and removals."""

from __future__ import annotations

import random
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.distance import haversine_m
from geo.hours import InvalidOpeningHours
from geo.index import AedIndex, IndexedAed

SAT_22H = datetime(2024, 1, 6, 22, 0)  # a Saturday evening
TODAY = SAT_22H.date()
HOURS = ["24/7", "Mo-Fr 08:00-18:00", "Mo-Sa 07:00-23:00", "Mo-Fr 08:00-18:00 unknown"]
STATUSES = ["active", "active", "active", "maintenance", "missing"]


def _brute(
    aeds: list[IndexedAed],
    lat: float,
    lng: float,
    *,
    at_local: datetime | None = None,
    max_distance_m: float | None = None,
) -> list[tuple[IndexedAed, float]]:
    rows = [(haversine_m(lat, lng, a.lat, a.lng), a.id, a) for a in aeds]
    rows = [r for r in rows if max_distance_m is None or r[0] <= max_distance_m]
    rows = [r for r in rows if at_local is None or r[2].available_at(at_local)]
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(a, d) for d, _, a in rows]


def _wrap(lng: float) -> float:
    return (lng + 180.0) % 360.0 - 180.0


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[IndexedAed], float, float]:
    """AEDs clustered around a centre anywhere on Earth (antimeridian included), and a query."""
    c_lat = draw(st.floats(min_value=-75, max_value=75))
    c_lng = (
        draw(st.sampled_from([120.38, 179.95, -179.95, 0.0]))
        if draw(st.booleans())
        else (draw(st.floats(min_value=-180, max_value=180)))
    )
    spread = draw(st.sampled_from([0.002, 0.02, 0.3]))
    n = draw(st.integers(min_value=0, max_value=60))
    aeds = []
    for i in range(n):
        lat = c_lat + draw(st.floats(min_value=-spread, max_value=spread))
        lng = _wrap(c_lng + draw(st.floats(min_value=-spread, max_value=spread)))
        expires = draw(st.sampled_from([None, date(2024, 1, 5), TODAY, date(2025, 1, 1)]))
        aeds.append(
            IndexedAed(
                id=f"aed-{i}",
                lat=lat,
                lng=lng,
                status=draw(st.sampled_from(STATUSES)),
                opening_hours=draw(st.sampled_from(HOURS)),
                pads_expire_on=expires,
            )
        )
    if draw(st.booleans()):
        q_lat = c_lat + draw(st.floats(min_value=-2 * spread, max_value=2 * spread))
        q_lng = _wrap(c_lng + draw(st.floats(min_value=-2 * spread, max_value=2 * spread)))
    else:  # anywhere, possibly far from every AED
        q_lat = draw(st.floats(min_value=-89, max_value=89))
        q_lng = draw(st.floats(min_value=-180, max_value=180))
    return aeds, q_lat, q_lng


def _assert_same(
    got: list[tuple[IndexedAed, float]],
    expected: list[tuple[IndexedAed, float]],
    lat: float,
    lng: float,
) -> None:
    assert [d for _, d in got] == pytest.approx([d for _, d in expected], abs=1e-6)
    assert len({a.id for a, _ in got}) == len(got)
    for aed, d in got:
        assert d == pytest.approx(haversine_m(lat, lng, aed.lat, aed.lng), abs=1e-9)
    # Equal distances may come in either order; strictly nearer ones must be the same AEDs.
    if got and expected:
        cut = expected[-1][1] - 1e-6
        assert {a.id for a, d in got if d < cut} == {a.id for a, d in expected if d < cut}


@settings(max_examples=300, deadline=None)
@given(
    scene=scenes(),
    k=st.integers(min_value=1, max_value=12),
    filtered=st.booleans(),
    max_distance=st.one_of(st.none(), st.floats(min_value=0, max_value=50_000)),
)
def test_nearest_agrees_with_brute_force(
    scene: tuple[list[IndexedAed], float, float],
    k: int,
    filtered: bool,
    max_distance: float | None,
) -> None:
    aeds, lat, lng = scene
    index = AedIndex(aeds)
    at_local = SAT_22H if filtered else None
    got = index.nearest(lat, lng, k, at_local=at_local, max_distance_m=max_distance)
    expected = _brute(aeds, lat, lng, at_local=at_local, max_distance_m=max_distance)[:k]
    _assert_same(got, expected, lat, lng)


@settings(max_examples=300, deadline=None)
@given(
    scene=scenes(),
    radius=st.floats(min_value=0, max_value=60_000),
    filtered=st.booleans(),
)
def test_within_agrees_with_brute_force(
    scene: tuple[list[IndexedAed], float, float], radius: float, filtered: bool
) -> None:
    aeds, lat, lng = scene
    index = AedIndex(aeds)
    at_local = SAT_22H if filtered else None
    got = index.within(lat, lng, radius, at_local=at_local)
    expected = _brute(aeds, lat, lng, at_local=at_local, max_distance_m=radius)
    assert len(got) == len(expected)
    _assert_same(got, expected, lat, lng)


def test_city_scale_queries_match_brute_force_exactly() -> None:
    rng = random.Random(11)
    aeds = [
        IndexedAed(
            id=f"a{i}",
            lat=rng.gauss(36.08, 0.05),
            lng=rng.gauss(120.38, 0.07),
            status=rng.choice(STATUSES),
            opening_hours=rng.choice(HOURS),
        )
        for i in range(2000)
    ]
    index = AedIndex(aeds)
    for _ in range(200):
        lat, lng = rng.uniform(35.9, 36.3), rng.uniform(120.1, 120.7)
        for at_local in (None, SAT_22H):
            got = index.nearest(lat, lng, 10, at_local=at_local)
            expected = _brute(aeds, lat, lng, at_local=at_local)[:10]
            assert [(a.id, d) for a, d in got] == [(a.id, d) for a, d in expected]
            got_w = index.within(lat, lng, 430, at_local=at_local)
            expected_w = _brute(aeds, lat, lng, at_local=at_local, max_distance_m=430)
            assert [a.id for a, _ in got_w] == [a.id for a, _ in expected_w]
    far = index.nearest(39.9042, 116.4074, 3)  # Beijing: every AED is ~550 km away
    assert [a.id for a, _ in far] == [a.id for a, _ in _brute(aeds, 39.9042, 116.4074)[:3]]
    assert far[0][1] > 500_000


def _aed(aed_id: str, lat: float = 36.0620, lng: float = 120.3780, **kw: object) -> IndexedAed:
    fields: dict[str, object] = {"status": "active", **kw}
    return IndexedAed(aed_id, lat, lng, **fields)  # type: ignore[arg-type]


def test_availability() -> None:
    assert _aed("a").available_at(SAT_22H)
    assert not _aed("a", status="maintenance").available_at(SAT_22H)
    assert not _aed("a", status="missing").available_at(SAT_22H)
    assert not _aed("a", pads_expire_on=date(2024, 1, 5)).available_at(SAT_22H)
    assert _aed("a", pads_expire_on=TODAY).available_at(SAT_22H)  # valid through its date
    assert not _aed("a", battery_expire_on=date(2024, 1, 5)).available_at(SAT_22H)
    assert _aed("a", battery_expire_on=TODAY).available_at(SAT_22H)
    assert not _aed("a", opening_hours="Mo-Fr 08:00-18:00").available_at(SAT_22H)
    assert _aed("a", opening_hours="Mo-Sa 07:00-23:00").available_at(SAT_22H)


def test_queries_filter_unavailable_aeds() -> None:
    index = AedIndex(
        [
            _aed("maintenance", 36.0621, 120.3780, status="maintenance"),
            _aed("expired", 36.0622, 120.3780, pads_expire_on=date(2023, 12, 31)),
            _aed("closed", 36.0623, 120.3780, opening_hours="Mo-Fr 08:00-18:00"),
            _aed("ok", 36.0630, 120.3780),
        ]
    )
    everything = [a.id for a, _ in index.nearest(36.0620, 120.3780, 10)]
    assert everything == ["maintenance", "expired", "closed", "ok"]
    assert [a.id for a, _ in index.nearest(36.0620, 120.3780, 10, at_local=SAT_22H)] == ["ok"]
    assert [a.id for a, _ in index.within(36.0620, 120.3780, 500, at_local=SAT_22H)] == ["ok"]
    monday = datetime(2024, 1, 8, 10, 0)
    assert [a.id for a, _ in index.within(36.0620, 120.3780, 500, at_local=monday)] == [
        "closed",
        "ok",
    ]


def test_nearest_limits() -> None:
    index = AedIndex([_aed("near", 36.0625, 120.3780), _aed("far", 36.0720, 120.3780)])
    assert [a.id for a, _ in index.nearest(36.0620, 120.3780, 1)] == ["near"]
    assert [a.id for a, _ in index.nearest(36.0620, 120.3780, 5)] == ["near", "far"]
    assert [a.id for a, _ in index.nearest(36.0620, 120.3780, 5, max_distance_m=500)] == ["near"]
    assert index.nearest(36.0620, 120.3780, 0) == []
    assert AedIndex().nearest(36.0620, 120.3780, 3) == []
    (_, d), _ = index.nearest(36.0620, 120.3780, 2)
    assert d == pytest.approx(55.6, abs=0.1)


def test_upsert_moves_a_point() -> None:
    index = AedIndex([_aed("a", 36.0620, 120.3780), _aed("b", 36.0700, 120.3780)])
    assert [a.id for a, _ in index.within(36.0620, 120.3780, 100)] == ["a"]
    index.upsert(_aed("a", 36.2000, 120.4000, payload={"name": "moved"}))
    assert len(index) == 2
    assert index.within(36.0620, 120.3780, 100) == []
    moved = index.within(36.2000, 120.4000, 10)
    assert [a.id for a, _ in moved] == ["a"]
    assert moved[0][0].payload == {"name": "moved"}
    assert [a.id for a, _ in index.nearest(36.0620, 120.3780, 1)] == ["b"]
    got = index.get("a")
    assert got is not None and got.lat == 36.2


def test_remove() -> None:
    index = AedIndex([_aed("a"), _aed("b", 36.0630, 120.3790)])
    index.remove("a")
    assert index.get("a") is None
    assert "a" not in index and "b" in index
    assert [a.id for a in index] == ["b"]
    assert [a.id for a, _ in index.nearest(36.0620, 120.3780, 5)] == ["b"]
    index.remove("a")  # absent: no error
    index.remove("b")
    assert len(index) == 0
    assert index.nearest(36.0620, 120.3780, 5) == []
    assert index.within(36.0620, 120.3780, 1000) == []


def test_bad_records_fail_at_upsert() -> None:
    index = AedIndex()
    with pytest.raises(InvalidOpeningHours):
        index.upsert(_aed("a", opening_hours="whenever"))
    with pytest.raises(ValueError, match="coordinates"):
        index.upsert(_aed("b", 120.378, 36.062))  # swapped: latitude 120 is off the globe
    assert len(index) == 0


def test_indexed_aed_defaults() -> None:
    aed = IndexedAed("x", 36.0, 120.0, "active")
    assert aed.opening_hours == "24/7"
    assert (aed.pads_expire_on, aed.battery_expire_on, aed.indoor, aed.level, aed.payload) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_nearest_across_the_antimeridian() -> None:
    # The grid does not wrap: the AED just across 180 degrees is the nearest all the same.
    index = AedIndex([_aed("west", 10.0, 179.99), _aed("east", 10.0, -179.9995)])
    (aed, d), *_ = index.nearest(10.0, 179.9985, 1)
    assert aed.id == "east" and d == pytest.approx(219, abs=1)
    assert [a.id for a, _ in index.within(10.0, 179.9985, 1000)] == ["east", "west"]


def test_nearest_near_a_pole() -> None:
    index = AedIndex([_aed("same-side", 89.99, 0.0), _aed("over-the-pole", 89.9995, 180.0)])
    assert [a.id for a, _ in index.nearest(89.9990, 0.0, 2)] == ["over-the-pole", "same-side"]
