"""The 1,983 synthetic demo AEDs: clustered where people work, inside the real land boundaries.

Each district gets a fixed number of AEDs (PLANS). A few stand at fixed landmarks (railway
stations, the airport); most fall around the district's centres with a Gaussian spread, their
venue type drawn from the centre's profile (business district, industrial park, old town...);
outer districts scatter a share uniformly over their land (township clinics, schools, village
offices). Every point is rejection-sampled until the service area says it lies in that district.
Dates are offsets from `today`, so the share of expired pads or overdue inspections stays the
same whenever the demo is loaded; locations and names do not depend on `today`.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import NamedTuple

from geo import District, ServiceArea
from rescue.demo import vocab
from rescue.demo.constants import DEMO_SEED, aed_id, demo_today
from rescue.demo.districts import PLANS, PROFILES, Centre, DistrictPlan

__all__ = ["DemoAed", "generate_aeds"]

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LNG_EQUATOR = 111_320.0
_NEAR_ATTEMPTS = 200
_LANDMARK_SIGMA_M = 15.0

# Shares of the inventory's condition (of all AEDs).
MISSING_SHARE = 0.005
MAINTENANCE_SHARE = 0.03
EXPIRED_SHARE = 0.04
EXPIRING_SHARE = 0.05
STALE_INSPECTION_SHARE = 0.15
# Chance that a unit of this venue type hangs indoors (the rest stand in outdoor cabinets).
_INDOOR = {"public": 0.15, "sports": 0.7, "residential": 0.7, "factory": 0.9}


class DemoAed(NamedTuple):
    """One demo AED: the `aeds` columns it fills, in COPY order."""

    id: str
    name: str
    address: str
    district: str
    lat: float
    lng: float
    venue_type: str
    indoor: bool
    level: int | None
    access_note: str | None
    opening_hours: str
    status: str
    model: str
    serial_no: str
    pads_expire_on: dt.date
    battery_expire_on: dt.date
    last_inspected_on: dt.date
    owner_name: str
    owner_phone: str


class _Site(NamedTuple):
    lat: float
    lng: float
    venue_type: str
    centre: Centre | None


class _Venue(NamedTuple):
    name: str
    owner: str
    level: int
    hours_kind: str


def generate_aeds(
    area: ServiceArea, *, seed: int = DEMO_SEED, today: dt.date | None = None
) -> list[DemoAed]:
    """The demo AEDs, identical for the same seed and day."""
    today = today or demo_today()
    rng = random.Random(seed)
    aeds: list[DemoAed] = []
    for plan in PLANS:
        district = area.district(plan.adcode)
        for landmark in plan.landmarks:
            lat, lng = _near(area, plan.adcode, landmark.lat, landmark.lng, _LANDMARK_SIGMA_M, rng)
            venue = _Venue(landmark.name, landmark.owner_name, landmark.level, landmark.venue_type)
            aeds.append(
                _aed(
                    len(aeds), rng, today, plan, district, lat, lng, landmark.venue_type, venue
                )._replace(address=landmark.address, access_note=landmark.access_note)
            )
        for site in _sites(area, plan, district, rng):
            indoor = rng.random() < _INDOOR.get(site.venue_type, 1.0)
            venue = _describe(site, plan, district, indoor, rng)
            aed = _aed(
                len(aeds), rng, today, plan, district, site.lat, site.lng, site.venue_type, venue
            )
            if not indoor:
                aed = aed._replace(
                    indoor=False, level=None, access_note=rng.choice(vocab.OUTDOOR_NOTES)
                )
            aeds.append(aed)
    return aeds


def _sites(
    area: ServiceArea, plan: DistrictPlan, district: District, rng: random.Random
) -> list[_Site]:
    """Where the district's non-landmark AEDs go, and their venue types."""
    remaining = plan.aeds - len(plan.landmarks)
    scattered = round(remaining * plan.scatter)
    sites: list[_Site] = []
    weights = [c.weight for c in plan.centres]
    for _ in range(remaining - scattered):
        centre = rng.choices(plan.centres, weights)[0]
        venue_type = _pick(PROFILES[centre.profile], rng)
        sigma = centre.sigma_m / 2 if venue_type == "transit" else centre.sigma_m
        lat, lng = _near(area, plan.adcode, centre.lat, centre.lng, sigma, rng)
        sites.append(_Site(lat, lng, venue_type, centre))
    for _ in range(scattered):
        lat, lng = _uniform(area, district, rng)
        sites.append(_Site(lat, lng, _pick(PROFILES["rural"], rng), None))
    return sites


def _pick(weights: dict[str, float], rng: random.Random) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _near(
    area: ServiceArea, adcode: str, lat: float, lng: float, sigma_m: float, rng: random.Random
) -> tuple[float, float]:
    """A point around (lat, lng) on the district's land (the sea is never far in Qingdao)."""
    m_per_deg_lng = _M_PER_DEG_LNG_EQUATOR * math.cos(math.radians(lat))
    for _ in range(_NEAR_ATTEMPTS):
        point = (
            round(lat + rng.gauss(0.0, sigma_m) / _M_PER_DEG_LAT, 6),
            round(lng + rng.gauss(0.0, sigma_m) / m_per_deg_lng, 6),
        )
        if _in(area, adcode, *point):
            return point
    return _uniform(area, area.district(adcode), rng)


def _uniform(area: ServiceArea, district: District, rng: random.Random) -> tuple[float, float]:
    """A uniformly random point of the district's land, rounded to 6 decimals (about 0.1 m)."""
    while True:
        lat, lng = area.random_point_in(district, rng)
        point = (round(lat, 6), round(lng, 6))
        if _in(area, district.adcode, *point):
            return point


def _in(area: ServiceArea, adcode: str, lat: float, lng: float) -> bool:
    found = area.district_of(lat, lng)
    return found is not None and found.adcode == adcode


def _aed(
    index: int,
    rng: random.Random,
    today: dt.date,
    plan: DistrictPlan,
    district: District,
    lat: float,
    lng: float,
    venue_type: str,
    venue: _Venue,
) -> DemoAed:
    """The AED's row: its venue's name and hours, a device, its condition and dates."""
    hours = vocab.OPENING_HOURS[venue.hours_kind]
    pads, battery = _expiries(rng, today)
    r = rng.random()
    status = (
        "missing"
        if r < MISSING_SHARE
        else "maintenance"
        if r < MISSING_SHARE + MAINTENANCE_SHARE
        else "active"
    )
    if rng.random() < STALE_INSPECTION_SHARE:
        inspected = today - dt.timedelta(days=rng.randint(366, 1000))
    else:
        inspected = today - dt.timedelta(days=rng.randint(0, 364))
    return DemoAed(
        id=aed_id(index),
        name=venue.name,
        address=f"{district.name}{rng.choice(plan.roads)}{rng.randint(1, 399)}号",
        district=plan.adcode,
        lat=lat,
        lng=lng,
        venue_type=venue_type,
        indoor=True,
        level=venue.level,
        access_note=rng.choice(vocab.ACCESS_NOTES[venue_type]),
        opening_hours=rng.choices([h for h, _ in hours], [w for _, w in hours])[0],
        status=status,
        model=rng.choices([m for m, _ in vocab.MODELS], [w for _, w in vocab.MODELS])[0],
        serial_no=f"QD-DEMO-{index + 1:05d}",
        pads_expire_on=pads,
        battery_expire_on=battery,
        last_inspected_on=inspected,
        owner_name=venue.owner,
        owner_phone=f"0532-{rng.randint(8000, 8999)}{rng.randint(0, 9999):04d}",
    )


def _expiries(rng: random.Random, today: dt.date) -> tuple[dt.date, dt.date]:
    """(pads, battery): a share expired, a share expiring within 30 days, the rest later."""
    r = rng.random()
    pads = today + dt.timedelta(days=rng.randint(31, 730))
    battery = today + dt.timedelta(days=rng.randint(31, 1460))
    if r < EXPIRED_SHARE:
        gone = today - dt.timedelta(days=rng.randint(1, 240))
        return (gone, battery) if rng.random() < 0.7 else (pads, gone)
    if r < EXPIRED_SHARE + EXPIRING_SHARE:
        soon = today + dt.timedelta(days=rng.randint(1, 30))
        return (soon, battery) if rng.random() < 0.6 else (pads, soon)
    return pads, battery


def _describe(
    site: _Site, plan: DistrictPlan, district: District, indoor: bool, rng: random.Random
) -> _Venue:
    """A plausible Chinese name, owner and floor for a venue of this type."""
    places = vocab.PLACES.get(plan.adcode, {})
    road = rng.choice(plan.roads)
    street = rng.choice(plan.streets)
    n = rng.randint(1, 12)
    kind = site.venue_type

    def named(key: str, chance: float) -> str | None:
        options = places.get(key, ())
        return rng.choice(options) if options and rng.random() < chance else None

    if kind == "factory":
        park = (
            named("factory", 0.7)
            or f"青岛{rng.choice(vocab.FIRMS)}{rng.choice(vocab.COMPANY_WORDS)}有限公司"
        )
        park, _, unit = park.partition("/")
        spot = rng.choice([f"{n}号{unit or '厂房'}"] * 3 + ["员工食堂", "门卫室", "综合楼"])
        return _Venue(f"{park} {spot}", f"{park} 安全环保部", 1, kind)
    if kind == "office":
        building = f"{rng.choice(vocab.OFFICE_PREFIXES)}{rng.choice(vocab.OFFICE_SUFFIXES)}"
        floor = 1 if rng.random() < 0.75 else rng.randint(2, 30)
        spot = "1楼大堂" if floor == 1 else f"{floor}楼电梯厅"
        return _Venue(f"{building} {spot}", f"{building} 物业管理处", floor, kind)
    if kind == "mall":
        mall = named("mall", 0.6) or f"{rng.choice(vocab.MALL_BRANDS)}({road}店)"
        floor = rng.choice([-1, 1, 1, 1, 2, 3])
        spot = "B1 中庭" if floor < 0 else "1楼服务台" if floor == 1 else f"{floor}楼中庭"
        return _Venue(f"{mall} {spot}", f"{mall} 客服中心", floor, kind)
    if kind == "transit":
        stations = site.centre.stations if site.centre else ()
        if stations:
            station = rng.choice(stations)
            station = station if station.endswith("站") else f"{station}站"
            floor = -1 if rng.random() < 0.7 else -2
            spot = "站厅层" if floor == -1 else "站台层"
            return _Venue(f"地铁{station} {spot}", "青岛地铁运营有限公司", floor, kind)
        hub = site.centre.name if site.centre else street
        return _Venue(f"{hub}公交枢纽站 调度室", "青岛城运控股交通发展集团", 1, kind)
    if kind == "school":
        university = named("university", 0.25)
        if university:
            spot = rng.choice(["体育馆", "图书馆", "学生活动中心", "第一食堂"])
            return _Venue(f"{university} {spot}", f"{university} 保卫处", 1, "university")
        school = named("school", 0.3) or rng.choice(
            [f"{road}小学", f"{street}中学", f"{district.name}{street}实验学校"]
        )
        spot = rng.choice(["体育馆", "医务室", "教学楼大厅"])
        return _Venue(f"{school} {spot}", f"{school} 后勤处", 1, kind)
    if kind == "hospital":
        clinic = f"{street}卫生院" if site.centre is None else f"{street}街道社区卫生服务中心"
        hospital = named("hospital", 0.5 if site.centre else 0.0)
        if hospital is None:
            hospital, spots = clinic, ["门诊大厅", "预防接种门诊", "全科诊室"]
        else:
            spots = ["门诊大厅", "急诊科", "住院部大厅", "体检中心"]
        spot = rng.choice(spots)
        return _Venue(f"{hospital} {spot}", f"{hospital} 医务科", 1, kind)
    if kind == "hotel":
        hotel = named("hotel", 0.25) or f"{rng.choice(vocab.HOTEL_BRANDS)}({road}店)"
        return _Venue(f"{hotel} 大堂", f"{hotel} 前厅部", 1, kind)
    if kind == "government":
        police = (
            f"青岛市公安局{plan.short}分局"
            if district.name.endswith("区")
            else f"{district.name}公安局"
        )
        office = rng.choice(
            [f"{district.name}政务服务中心", f"{street}街道便民服务中心"] * 2
            + [f"{district.name}人力资源和社会保障局", f"{police}户政服务中心"]
        )
        return _Venue(f"{office} 办事大厅", f"{office} 综合科", 1, kind)
    if kind == "sports":
        venue = named("sports", 0.4) or rng.choice(
            [f"{street}全民健身中心", f"{road}游泳馆", f"{district.name}体育馆"]
        )
        spot = "入口大厅" if indoor else "室外健身广场"
        return _Venue(f"{venue} {spot}", f"{venue} 管理处", 1, kind)
    if kind == "residential":
        estate = f"{rng.choice(vocab.ESTATE_PREFIXES)}{rng.choice(vocab.ESTATE_SUFFIXES)}"
        spot = rng.choice(["物业服务中心", f"{n}号楼 门厅"]) if indoor else "北门岗亭"
        return _Venue(f"{estate} {spot}", f"{estate} 物业服务中心", 1, kind)
    place = named("public", 0.6) or rng.choice([f"{street}街道社区党群服务中心", f"{road}街心公园"])
    spot = "游客服务中心" if indoor else rng.choice(["东入口", "公共服务亭", "主广场"])
    return _Venue(f"{place} {spot}", f"{place} 管理处", 1, "public")
