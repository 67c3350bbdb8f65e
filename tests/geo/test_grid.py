"""The precomputed cell grid answers exactly what the shapely geometries answer.

ServiceArea.contains and district_of look most points up in a grid (geo.grid); these tests
compare them with the exact shapely predicates on many points: uniform, on and near the
boundaries, on cell edges and corners, and on small synthetic areas built to be awkward
(edges along the grid lines, holes, slivers, overlapping districts).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from geo.area import District, ServiceArea
from geo.crs import Crs
from geo.grid import INSIDE, MIXED, OUTSIDE, CellGrid

_NAME = "qingdao-districts.gcj02.geojson"
_ROOT = Path(__file__).resolve().parents[2]
_CANDIDATES = [_ROOT / "rescue" / "data" / _NAME, _ROOT.parent / "shared" / "data" / _NAME]


@functools.cache
def qingdao() -> ServiceArea:
    path = next(p for p in _CANDIDATES if p.exists())
    return ServiceArea.from_geojson(json.loads(path.read_text(encoding="utf-8")), crs=Crs.GCJ02)


def exact_contains(area: ServiceArea, lat: float, lng: float) -> bool:
    return bool(shapely.intersects_xy(area.outline, lng, lat))


def exact_district(area: ServiceArea, lat: float, lng: float) -> District | None:
    return next((d for d in area.districts if shapely.intersects_xy(d.geometry, lng, lat)), None)


def assert_exact(area: ServiceArea, lat: float, lng: float) -> None:
    assert area.contains(lat, lng) == exact_contains(area, lat, lng), (lat, lng)
    assert area.district_of(lat, lng) == exact_district(area, lat, lng), (lat, lng)


# --- Qingdao: the shipped area -------------------------------------------------------------


def test_most_cells_are_settled_without_the_geometry() -> None:
    area = qingdao()
    rng = np.random.default_rng(11)
    min_lat, min_lng, max_lat, max_lng = area.bounds
    lat = rng.uniform(min_lat, max_lat, 20_000)
    lng = rng.uniform(min_lng, max_lng, 20_000)
    codes = np.frombuffer(area._outline_cells, dtype=np.uint8)
    settled = [codes[area._grid.index(x, y)] != MIXED for y, x in zip(lat, lng, strict=True)]
    # The coastline crosses ~5 % of the cells; the rest answer without shapely.
    assert np.mean(settled) > 0.9


def test_many_random_points_agree_with_shapely() -> None:
    area = qingdao()
    rng = np.random.default_rng(2024)
    min_lat, min_lng, max_lat, max_lng = area.bounds
    n = 60_000
    # Uniform over (a little more than) the bounds, then near the coast and district borders.
    lat = rng.uniform(min_lat - 0.05, max_lat + 0.05, n)
    lng = rng.uniform(min_lng - 0.05, max_lng + 0.05, n)
    borders = [
        shapely.boundary(area.outline),
        *(shapely.boundary(d.geometry) for d in area.districts),
    ]
    near = shapely.line_interpolate_point(
        np.array(borders)[rng.integers(0, len(borders), n)], rng.uniform(0, 1, n), normalized=True
    )
    scale = 10.0 ** rng.integers(-12, -2, n)  # 1e-12 .. 1e-3 degrees off the line
    near_lng = shapely.get_x(near) + rng.uniform(-1, 1, n) * scale
    near_lat = shapely.get_y(near) + rng.uniform(-1, 1, n) * scale
    lat, lng = np.concatenate([lat, near_lat]), np.concatenate([lng, near_lng])

    expected = shapely.intersects_xy(area.outline, lng, lat)
    got = np.array([area.contains(y, x) for y, x in zip(lat.tolist(), lng.tolist(), strict=True)])
    mismatches = np.flatnonzero(got != expected)
    assert mismatches.size == 0, list(zip(lat[mismatches[:5]], lng[mismatches[:5]], strict=True))
    assert expected.sum() > n // 4 and (~expected).sum() > n // 4  # both answers exercised

    first = np.zeros(lat.shape, dtype=np.int64)  # 0: none, k + 1: the k-th district
    for number, district in enumerate(area.districts, start=1):
        hit = shapely.intersects_xy(district.geometry, lng, lat) & (first == 0)
        first[hit] = number
    by_number = [None, *area.districts]
    for y, x, number in zip(lat.tolist(), lng.tolist(), first.tolist(), strict=True):
        assert area.district_of(y, x) is by_number[number], (y, x)


@settings(max_examples=400, deadline=None)
@given(
    border=st.integers(0, 10),
    at=st.floats(0, 1),
    dx=st.sampled_from([0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-6, -1e-6, 1e-4, -1e-4]),
    dy=st.sampled_from([0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-6, -1e-6, 1e-4, -1e-4]),
)
def test_points_on_and_next_to_the_boundaries(border: int, at: float, dx: float, dy: float) -> None:
    area = qingdao()
    geometry = area.outline if border == 0 else area.districts[border - 1].geometry
    point = shapely.line_interpolate_point(shapely.boundary(geometry), at, normalized=True)
    assert_exact(area, point.y + dy, point.x + dx)


@settings(max_examples=400, deadline=None)
@given(
    vertex=st.integers(0, 10**9),
    dx=st.sampled_from([0.0, 5e-324, -5e-324, 1e-13, -1e-13]),
)
def test_the_outline_vertices_themselves(vertex: int, dx: float) -> None:
    area = qingdao()
    coords = shapely.get_coordinates(area.outline)
    x, y = coords[vertex % len(coords)]
    assert_exact(area, float(y), float(x) + dx)


@settings(max_examples=600, deadline=None)
@given(
    col=st.integers(0, 200),
    row=st.integers(0, 200),
    fx=st.sampled_from([0.0, 1.0, 0.5, 1e-15, 1 - 1e-15]),
    fy=st.sampled_from([0.0, 1.0, 0.5, 1e-15, 1 - 1e-15]),
)
def test_cell_edges_and_corners(col: int, row: int, fx: float, fy: float) -> None:
    area = qingdao()
    grid = area._grid
    lng = grid.x0 + (col + fx) * grid.step
    lat = grid.y0 + (row + fy) * grid.step
    assert_exact(area, lat, lng)


def test_non_finite_and_far_points_are_outside() -> None:
    area = qingdao()
    for lat, lng in ((math.nan, 120.4), (36.1, math.nan), (math.inf, 120.4), (39.9, 116.4)):
        assert area.contains(lat, lng) is False
        assert area.district_of(lat, lng) is None


# --- small synthetic areas, built to be awkward ---------------------------------------------

STEP = 0.01


@st.composite
def shapes(draw: st.DrawFn) -> Polygon:
    """A box or triangle near (0, 0), corners often exactly on the grid lines, maybe holed."""
    on_grid = st.integers(-6, 6).map(lambda k: k * STEP)
    # Anywhere to a nanodegree (0.1 mm): no real boundary is finer, and arbitrary floats (down
    # to subnormals such as 1e-308) make GEOS's own union fail with a TopologyException.
    anywhere = st.integers(-60_000_000, 60_000_000).map(lambda n: n / 1e9)
    coordinate = st.one_of(on_grid, anywhere)
    if draw(st.booleans()):
        x0, x1 = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
        y0, y1 = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
        shape = box(x0, y0, x1, y1)
        if draw(st.booleans()) and x1 - x0 > 4 * STEP and y1 - y0 > 4 * STEP:
            hole = box(x0 + STEP, y0 + STEP, x1 - STEP, y1 - STEP)  # edges on the grid
            shape = shape.difference(hole)
        return shape
    points = draw(st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=3))
    triangle = Polygon(points)
    return triangle if triangle.is_valid and triangle.area > 0 else box(0, 0, STEP, 3 * STEP)


@settings(max_examples=150, deadline=None)
@example(
    geometries=[box(0, 0, 5 * STEP, 5 * STEP), box(2 * STEP, 2 * STEP, 7 * STEP, 7 * STEP)],
    with_outline=False,
    step=STEP,
)
@given(
    geometries=st.lists(shapes(), min_size=1, max_size=3),
    with_outline=st.booleans(),
    step=st.sampled_from([STEP, STEP / 3, 0.037, 1.0]),
)
def test_synthetic_areas_agree_with_shapely(
    geometries: list[Polygon], with_outline: bool, step: float
) -> None:
    districts = [
        District(adcode=str(i), name="", name_en="", geometry=g) for i, g in enumerate(geometries)
    ]
    outline = box(-0.03, -0.02, 0.04, 0.05) if with_outline else None
    area = ServiceArea(districts, outline, grid_step=step)
    rng = np.random.default_rng(len(geometries))
    lattice = np.arange(-8, 9) * STEP
    tiny = np.array([0.0, 1e-12, -1e-12])
    points = [(y, x) for y in lattice for x in lattice]
    points += [(y + e, x - e) for y in lattice[::3] for x in lattice[::3] for e in tiny[1:]]
    points += list(zip(rng.uniform(-0.08, 0.08, 300), rng.uniform(-0.08, 0.08, 300), strict=True))
    for x, y in shapely.get_coordinates([g.boundary for g in geometries]):
        points.append((float(y), float(x)))
    for lat, lng in points:
        assert_exact(area, float(lat), float(lng))


# --- the grid itself --------------------------------------------------------------------------


def test_the_last_cell_holds_the_far_edge_and_codes_cover_every_cell() -> None:
    grid = CellGrid((120.0, 36.0, 120.1, 36.05), 0.01)
    assert grid.index(120.0, 36.0) == 0
    assert grid.index(120.1, 36.05) == grid.rows * grid.cols - 1
    shape = box(120.015, 36.005, 120.085, 36.045)
    shapely.prepare(shape)
    codes = grid.classify(shape)
    assert codes.shape == (grid.rows * grid.cols,)
    assert set(codes.tolist()) == {INSIDE, OUTSIDE, MIXED}


def test_a_huge_area_gets_coarser_cells_not_unbounded_memory() -> None:
    grid = CellGrid((0.0, 0.0, 100.0, 100.0), 0.001)
    assert grid.rows * grid.cols <= 4_100_000
    assert grid.index(100.0, 100.0) == grid.rows * grid.cols - 1


@pytest.mark.parametrize("bounds", [(0.0, 0.0, math.nan, 1.0), (1.0, 0.0, 0.0, 1.0)])
def test_a_grid_needs_finite_ordered_bounds(bounds: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError):
        CellGrid(bounds, 0.01)


def test_an_empty_area_finds_nothing() -> None:
    area = ServiceArea([], shapely.Polygon())
    assert not area.contains(0.0, 0.0)
    assert area.district_of(0.0, 0.0) is None
