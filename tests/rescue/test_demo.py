"""The synthetic demo: deterministic, on land, plausible, and loaded once, idempotently."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Sequence

import asyncpg
import numpy as np
import pytest

from geo import ServiceArea, haversine_m, validate_opening_hours
from rescue import db
from rescue.area import load_service_area
from rescue.demo import (
    AED_COUNT,
    DEMO_SEED,
    VOLUNTEER_COUNT,
    DemoAed,
    DemoCounts,
    DemoVolunteer,
    demo_counts,
    demo_loaded,
    generate_aeds,
    generate_demo,
    generate_volunteers,
    load_demo,
    volunteer_anchor,
    volunteer_day_position,
    volunteer_id,
    volunteer_index,
)
from rescue.demo.districts import PLANS
from rescue.ids import seeded_id
from rescue.settings import Settings

TODAY = dt.date(2026, 6, 1)
CORE = ("370202", "370203", "370213", "370212")
MIDDLE = ("370211", "370214", "370215")
OUTER = ("370281", "370283", "370285")

Demo = tuple[list[DemoAed], list[DemoVolunteer]]


@pytest.fixture(scope="module")
def area() -> ServiceArea:
    return load_service_area()


@pytest.fixture(scope="module")
def demo(area: ServiceArea) -> Demo:
    return generate_demo(area, today=TODAY)


def digest(rows: Sequence[tuple[object, ...]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(row).encode())
    return h.hexdigest()


def share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags)


def km2(area: ServiceArea, adcode: str) -> float:
    geometry = area.district(adcode).geometry
    lat = geometry.centroid.y
    return float(geometry.area) * 110.574 * 111.320 * math.cos(math.radians(lat))


def test_generation_is_deterministic(area: ServiceArea, demo: Demo) -> None:
    aeds, volunteers = generate_demo(area, today=TODAY)
    assert digest(aeds) == digest(demo[0])
    assert digest(volunteers) == digest(demo[1])
    assert digest(generate_aeds(area, seed=DEMO_SEED + 1, today=TODAY)) != digest(aeds)
    other = generate_volunteers(seed=DEMO_SEED + 1, today=TODAY, count=1000)
    assert digest(other) != digest(volunteers[:1000])


def test_places_and_people_do_not_depend_on_the_day(area: ServiceArea, demo: Demo) -> None:
    later = TODAY + dt.timedelta(days=400)
    aeds = generate_aeds(area, today=later)
    assert [(a.id, a.lat, a.lng, a.name, a.status) for a in aeds] == [
        (a.id, a.lat, a.lng, a.name, a.status) for a in demo[0]
    ]
    assert all(
        b.pads_expire_on - a.pads_expire_on == dt.timedelta(days=400)
        for a, b in zip(demo[0], aeds, strict=True)
    )
    volunteers = generate_volunteers(today=later, count=2000)
    assert [(v.id, v.name, v.home_district) for v in volunteers] == [
        (v.id, v.name, v.home_district) for v in demo[1][:2000]
    ]


def test_sizes_ids_and_unique_keys(demo: Demo) -> None:
    aeds, volunteers = demo
    assert len(aeds) == AED_COUNT == 1983
    assert len(volunteers) == VOLUNTEER_COUNT == 110_000
    assert [a.id for a in aeds[:3]] == [seeded_id("aed", 1_735_660_800_000, n) for n in (1, 2, 3)]
    for i in (0, 1, 1023, 1024, 54_321, VOLUNTEER_COUNT - 1):
        assert volunteers[i].id == volunteer_id(i) == seeded_id("vol", 1_735_660_800_000, i + 1)
        assert volunteer_index(volunteers[i].id) == i
    assert len({a.id for a in aeds}) == len(aeds)
    assert len({a.serial_no for a in aeds}) == len(aeds)
    assert all(re.fullmatch(r"QD-DEMO-\d{5}", a.serial_no) for a in aeds)
    assert len({v.id for v in volunteers}) == len(volunteers)
    assert len({v.cert_number for v in volunteers}) == len(volunteers)
    assert all(re.fullmatch(r"1[3-9]\d00\d{6}", v.phone) for v in volunteers)


def test_every_aed_lies_on_land_in_the_district_it_claims(area: ServiceArea, demo: Demo) -> None:
    for aed in demo[0]:
        assert area.contains(aed.lat, aed.lng), aed
        district = area.district_of(aed.lat, aed.lng)
        assert district is not None and district.adcode == aed.district, aed
    counts = Counter(a.district for a in demo[0])
    assert counts == {plan.adcode: plan.aeds for plan in PLANS}


def test_urban_core_is_denser_than_the_outer_districts(area: ServiceArea, demo: Demo) -> None:
    counts = Counter(a.district for a in demo[0])
    density = {code: counts[code] / km2(area, code) for code in counts}
    assert min(density[c] for c in CORE) > max(density[c] for c in MIDDLE + OUTER)
    assert min(density[c] for c in MIDDLE) > max(density[c] for c in OUTER)
    assert sum(counts[c] for c in CORE) > sum(counts[c] for c in OUTER) * 3
    assert min(counts[c] for c in MIDDLE) > max(counts[c] for c in OUTER)


def test_venues_favour_workplaces_with_fitting_hours(demo: Demo) -> None:
    aeds = demo[0]
    venues = Counter(a.venue_type for a in aeds)
    assert set(venues) <= {
        "factory", "office", "mall", "transit", "school", "hospital", "hotel", "government",
        "sports", "residential", "public",
    }  # fmt: skip
    assert venues.most_common(2)[0][0] in {"factory", "office"}
    assert (venues["factory"] + venues["office"]) / len(aeds) > 0.3
    for aed in aeds:
        validate_opening_hours(aed.opening_hours)
        if aed.venue_type in ("transit", "hospital"):
            assert aed.opening_hours == "24/7", aed
    offices = [a.opening_hours for a in aeds if a.venue_type == "office"]
    assert Counter(offices).most_common(1)[0][0] == "Mo-Fr 08:30-18:00"
    assert {"24/7", "Mo-Sa 07:00-23:00"} <= {
        a.opening_hours for a in aeds if a.venue_type == "factory"
    }
    names = {a.name for a in aeds}
    assert {"青岛北站 B1 换乘大厅", "青岛站 候车大厅", "青岛胶东国际机场 T1 出发层"} <= names
    assert any(a.name.startswith("海尔工业园 ") for a in aeds)


def test_indoor_units_have_a_floor_and_an_access_note(demo: Demo) -> None:
    aeds = demo[0]
    for aed in aeds:
        assert aed.name and aed.address and aed.model and aed.owner_name and aed.owner_phone
        assert aed.access_note
        if aed.indoor:
            assert aed.level is not None
        else:
            assert aed.level is None
    assert any(a.level is not None and a.level < 0 for a in aeds if a.venue_type == "transit")
    assert 0.05 < share([not a.indoor for a in aeds]) < 0.3


def test_inventory_condition_shares(demo: Demo) -> None:
    aeds = demo[0]
    status = Counter(a.status for a in aeds)
    assert 0.015 < status["maintenance"] / len(aeds) < 0.05
    assert 0 < status["missing"] / len(aeds) < 0.015
    assert status["retired"] == 0
    soonest = [min(a.pads_expire_on, a.battery_expire_on) for a in aeds]
    expired = share([day < TODAY for day in soonest])
    expiring = share([TODAY <= day <= TODAY + dt.timedelta(days=30) for day in soonest])
    assert 0.025 < expired < 0.06
    assert 0.03 < expiring < 0.075
    stale = share([a.last_inspected_on < TODAY - dt.timedelta(days=365) for a in aeds])
    assert 0.08 < stale < 0.25
    assert all(a.last_inspected_on <= TODAY for a in aeds)


def test_volunteer_shares(demo: Demo) -> None:
    volunteers = demo[1]
    expired = share([v.cert_expires_on < TODAY for v in volunteers])
    expiring = share(
        [TODAY <= v.cert_expires_on <= TODAY + dt.timedelta(days=30) for v in volunteers]
    )
    assert 0.07 < expired < 0.09
    assert 0.02 < expiring < 0.04
    assert 0.007 < share([v.status == "suspended" for v in volunteers]) < 0.014
    assert 0.1 < share([v.quiet_hours is not None for v in volunteers]) < 0.3
    modes = Counter(v.travel_mode for v in volunteers)
    assert modes["walk"] > 0.7 * len(volunteers) and modes["bike"] > modes["car"] > 0
    issuers = Counter(v.cert_issuer for v in volunteers)
    assert set(issuers) == {"青岛市红十字会", "青岛市总工会", "青岛市急救中心"}
    for v in volunteers[:5000]:
        assert v.cert_issued_on <= TODAY
        assert v.cert_expires_on.year - v.cert_issued_on.year == 3
        assert (v.cert_expires_on - v.cert_issued_on).days in (1095, 1096)
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", v.name)
    homes = Counter(v.home_district for v in volunteers)
    for plan in PLANS:
        assert abs(homes[plan.adcode] / len(volunteers) - plan.aeds / AED_COUNT) < 0.01


def near(points: np.ndarray, position: tuple[float, float]) -> list[tuple[float, float]]:
    """The points within about 0.05 degrees (5 km) of position."""
    close = np.abs(points - np.array(position)).max(axis=1) < 0.05
    return [(float(lat), float(lng)) for lat, lng in points[close]]


def test_day_positions_are_deterministic_on_land_and_near_work(
    area: ServiceArea, demo: Demo
) -> None:
    aeds, volunteers = demo
    aed_points = np.array([(a.lat, a.lng) for a in aeds])
    sample = random.Random(7).sample(range(VOLUNTEER_COUNT), 300)
    at_home = 0
    for i in sample:
        position = volunteer_day_position(i, random.Random(i))
        assert position == volunteer_day_position(volunteers[i].id, random.Random(i))
        assert area.contains(*position)
        nearest = min(
            (haversine_m(*position, lat, lng) for lat, lng in near(aed_points, position)),
            default=math.inf,
        )
        assert nearest < 2500
        anchor_district = area.district_of(*volunteer_anchor(i))
        at_home += (
            anchor_district is not None and anchor_district.adcode == volunteers[i].home_district
        )
    assert at_home > 0.55 * len(sample)
    moved = volunteer_day_position(sample[0], random.Random(1))
    assert moved != volunteer_day_position(sample[0], random.Random(2))
    with pytest.raises(ValueError):
        volunteer_index(VOLUNTEER_COUNT)
    with pytest.raises(ValueError):
        volunteer_index("vol_01h0000000000000000000000a")


async def test_load_creates_everything_once(
    pg: asyncpg.Connection, settings: Settings, area: ServiceArea, demo: Demo
) -> None:
    assert not await demo_loaded(pg)
    report = await load_demo(pg, area=area, today=TODAY)
    assert (report.aeds_created, report.volunteers_created) == (AED_COUNT, VOLUNTEER_COUNT)
    assert await demo_loaded(pg)
    assert await demo_counts(pg) == DemoCounts(aeds=AED_COUNT, volunteers=VOLUNTEER_COUNT)

    stored = await pg.fetchrow("SELECT * FROM aeds WHERE id = $1", demo[0][100].id)
    assert tuple(stored[k] for k in DemoAed._fields) == demo[0][100]
    stored = await pg.fetchrow("SELECT * FROM volunteers WHERE id = $1", demo[1][-1].id)
    assert tuple(stored[k] for k in DemoVolunteer._fields) == demo[1][-1]
    assert await pg.fetchval("SELECT count(*) FROM volunteers WHERE token_hash IS NULL") == (
        VOLUNTEER_COUNT
    )
    by_district = dict(await pg.fetch("SELECT district, count(*) FROM aeds GROUP BY district"))
    assert by_district == {plan.adcode: plan.aeds for plan in PLANS}

    pool = await db.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        again = await load_demo(pool, area=area, today=TODAY + dt.timedelta(days=1))
    finally:
        await pool.close()
    assert (again.aeds_created, again.volunteers_created) == (0, 0)
    assert (again.aeds_generated, again.volunteers_generated) == (AED_COUNT, VOLUNTEER_COUNT)
    assert await pg.fetchval("SELECT count(*) FROM aeds") == AED_COUNT
    assert await pg.fetchval("SELECT count(*) FROM volunteers") == VOLUNTEER_COUNT
