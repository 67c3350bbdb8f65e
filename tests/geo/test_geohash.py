"""Redis GEO hashes decoded here give exactly the coordinates Redis itself gives."""

from __future__ import annotations

import random

from redis.asyncio import Redis

from geo import geohash

KEY = "test:geohash"


def _as_redis_prints(x: float) -> float:
    """Redis prints a coordinate with 17 decimals (`%.17Lf`): exact for |x| >= 1, a few digits
    short near 0 (the equator, the prime meridian)."""
    return float(f"{x:.17f}")


def _printed(lngs: list[float], lats: list[float]) -> list[tuple[float, float]]:
    return [(_as_redis_prints(x), _as_redis_prints(y)) for x, y in zip(lngs, lats, strict=True)]


def _points(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    edges = [
        (-180.0, -85.05112878),
        (180.0, 85.05112878),
        (0.0, 0.0),
        (-0.000001, 0.000001),
        (120.38, 36.07),  # Qingdao
        (179.999999, -85.0),
    ]
    spread = [(rng.uniform(-180, 180), rng.uniform(-85.05, 85.05)) for _ in range(n)]
    near = [(rng.uniform(119.5, 121.0), rng.uniform(35.5, 37.1)) for _ in range(n)]
    return edges + spread + near


async def test_decoded_hashes_are_the_coordinates_redis_returns(redis: Redis) -> None:
    points = _points(2000, seed=26)
    members = [f"m{i}" for i in range(len(points))]
    args: list[float | str] = []
    for (lng, lat), member in zip(points, members, strict=True):
        args += [lng, lat, member]
    await redis.geoadd(KEY, args)
    scores = await redis.zmscore(KEY, members)
    positions = await redis.geopos(KEY, *members)

    lngs, lats, _ = geohash.decode_measured([int(s) for s in scores], 0.0, 0.0)

    # Exactly equal, not close: the search's coordinates must not depend on how they were read.
    assert [(float(p[0]), float(p[1])) for p in positions] == _printed(lngs, lats)
    # Where Redis prints every digit (all of China), the decoded value is the printed one.
    assert [(float(p[0]), float(p[1])) for p in positions[4:5]] == [(lngs[4], lats[4])]


async def test_search_hashes_decode_to_its_coordinates(redis: Redis) -> None:
    points = _points(500, seed=7)
    args: list[float | str] = []
    for i, (lng, lat) in enumerate(points):
        args += [lng, lat, f"m{i}"]
    await redis.geoadd(KEY, args)
    reply = await redis.execute_command(
        "GEOSEARCH", KEY, "FROMLONLAT", 120.38, 36.07, "BYRADIUS", 200, "km",
        "WITHCOORD", "WITHHASH",
    )  # fmt: skip
    assert len(reply) > 400  # the points near Qingdao

    lngs, lats, _ = geohash.decode_measured([hit[1] for hit in reply], 120.38, 36.07)

    assert [(float(h[2][0]), float(h[2][1])) for h in reply] == list(zip(lngs, lats, strict=True))
    assert all(abs(x) >= 1 and abs(y) >= 1 for x, y in zip(lngs, lats, strict=True))


async def test_measured_distances_are_the_ones_geosearch_gives(redis: Redis) -> None:
    rng = random.Random(11)
    # Around Qingdao, across the globe, and on one meridian (where Redis takes a shortcut).
    points = _points(500, seed=11) + [(120.38, rng.uniform(-85, 85)) for _ in range(50)]
    args: list[float | str] = []
    for i, (lng, lat) in enumerate(points):
        args += [lng, lat, f"m{i}"]
    await redis.geoadd(KEY, args)
    # From a stored point (Qingdao's, m4): the meridian's members share its cell's longitude.
    ((lng, lat),) = await redis.geopos(KEY, "m4")
    centre = (float(lng), float(lat))
    reply = await redis.execute_command(
        "GEOSEARCH", KEY, "FROMLONLAT", *centre, "BYRADIUS", 21_000_000, "m",
        "WITHDIST", "WITHHASH", "WITHCOORD",
    )  # fmt: skip
    assert len(reply) > 1000  # (a few at the Mercator limits escape Redis's own bounding box)

    lngs, lats, metres = geohash.decode_measured([hit[2] for hit in reply], *centre)

    assert [(float(h[3][0]), float(h[3][1])) for h in reply] == _printed(lngs, lats)
    # Redis prints its distance to 0.1 mm: ours is the same number before that rounding.
    assert max(abs(float(h[1]) - m) for h, m in zip(reply, metres, strict=True)) <= 0.00005001
    assert sum(1 for x in lngs if x == centre[0]) > 40  # on the centre's meridian


def test_no_hashes_decode_to_nothing() -> None:
    assert geohash.decode_measured([], 120.0, 36.0) == ([], [], [])
