"""The service area and its districts, from a GeoJSON FeatureCollection.

Geometries are held in WGS-84 (x = lng, y = lat, as shapely and GeoJSON want); the public
methods take and return (lat, lng). Point queries are answered from a grid of precomputed cells
(geo.grid) where a cell lies wholly inside or outside; only cells the boundary crosses ask the
prepared geometry (a few microseconds through shapely's array machinery).
"""

from __future__ import annotations

import json
import math
import random
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely  # type: ignore[import-untyped, unused-ignore]
from numpy.typing import NDArray
from shapely.geometry import shape  # type: ignore[import-untyped, unused-ignore]
from shapely.geometry.base import BaseGeometry  # type: ignore[import-untyped, unused-ignore]

from geo.crs import Crs, to_wgs84, to_wgs84_array
from geo.grid import INSIDE, MIXED, OUTSIDE, CellGrid

__all__ = ["District", "ServiceArea"]

Bounds = tuple[float, float, float, float]

_MAX_SAMPLE_ATTEMPTS = 100_000
# About 1.1 km x 0.9 km at Qingdao's latitude: ~5 % of the cells meet the coastline.
GRID_STEP_DEG = 0.01
# A district cell's code: 0 no district, k + 1 the k-th district, this one ask the geometries.
_DISTRICT_MIXED = 0xFFFF


@dataclass(frozen=True)
class District:
    """An administrative district: codes, names and its land geometry in WGS-84 (lng, lat)."""

    adcode: str
    name: str
    name_en: str
    geometry: BaseGeometry
    level: str = "district"

    @property
    def bounds(self) -> Bounds:
        """(min_lat, min_lng, max_lat, max_lng) of the district."""
        return _lat_lng_bounds(self.geometry)


def _xy_bounds(geometry: BaseGeometry) -> Bounds:
    min_x, min_y, max_x, max_y = (float(v) for v in shapely.bounds(geometry))
    return min_x, min_y, max_x, max_y


def _lat_lng_bounds(geometry: BaseGeometry) -> Bounds:
    min_x, min_y, max_x, max_y = _xy_bounds(geometry)
    return min_y, min_x, max_y, max_x


def _convert_geometry(geometry: BaseGeometry, crs: Crs) -> BaseGeometry:
    """The geometry with every vertex converted from `crs` to WGS-84, made valid if needed."""
    if crs is Crs.WGS84:
        return geometry

    def convert(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        lat, lng = to_wgs84_array(xy[:, 1], xy[:, 0], crs)
        return np.column_stack((lng, lat))

    converted = shapely.transform(geometry, convert)
    if not shapely.is_valid(converted):
        converted = shapely.make_valid(converted)
    return converted


def _in_bounds(bounds: Bounds, lat: float, lng: float) -> bool:
    return bounds[0] <= lat <= bounds[2] and bounds[1] <= lng <= bounds[3]


class ServiceArea:
    """The area a deployment serves, divided into districts."""

    def __init__(
        self,
        districts: Iterable[District],
        outline: BaseGeometry | None = None,
        *,
        adcode: str = "",
        name: str = "",
        name_en: str = "",
        grid_step: float = GRID_STEP_DEG,
    ) -> None:
        self._districts: tuple[District, ...] = tuple(districts)
        self._by_adcode: dict[str, District] = {d.adcode: d for d in self._districts}
        if len(self._by_adcode) != len(self._districts):
            raise ValueError("district adcodes must be unique")
        if outline is None:
            if not self._districts:
                raise ValueError("a service area needs an outline or at least one district")
            outline = shapely.union_all([d.geometry for d in self._districts])
        self._outline: BaseGeometry = outline
        self.adcode = adcode
        self.name = name
        self.name_en = name_en
        for geometry in (outline, *(d.geometry for d in self._districts)):
            shapely.prepare(geometry)
        self._bounds = _lat_lng_bounds(outline)
        self._district_bounds: tuple[tuple[Bounds, District], ...] = tuple(
            (d.bounds, d) for d in self._districts
        )
        self._build_grid(grid_step)

    def _build_grid(self, step: float) -> None:
        """Classify the grid's cells against the outline and the districts, once."""
        extents = [_xy_bounds(g) for g in (self._outline, *(d.geometry for d in self._districts))]
        finite = [e for e in extents if all(math.isfinite(v) for v in e)]
        if finite:  # the grid covers the outline and every district: off it is in none
            min_x, min_y = min(e[0] for e in finite), min(e[1] for e in finite)
            max_x, max_y = max(e[2] for e in finite), max(e[3] for e in finite)
        else:  # only empty geometries: nothing to find anywhere
            min_x = min_y = max_x = max_y = 0.0
        self._grid_bounds: Bounds = (min_y, min_x, max_y, max_x)
        self._grid = grid = CellGrid((min_x, min_y, max_x, max_y), step)
        self._outline_cells = grid.classify_within(self._outline, extents[0]).tobytes()
        # district_of answers the first district, in order, that holds the point.
        codes = np.zeros(grid.rows * grid.cols, dtype=np.uint16)
        undecided = np.ones(codes.shape, dtype=bool)
        numbered = self._districts[: _DISTRICT_MIXED - 1]
        for number, (district, extent) in enumerate(zip(numbered, extents[1:], strict=False), 1):
            cells = grid.classify_within(district.geometry, extent)
            codes[undecided & (cells == INSIDE)] = number
            codes[undecided & (cells == MIXED)] = _DISTRICT_MIXED
            undecided &= cells == OUTSIDE
        if len(numbered) < len(self._districts):  # too many to number: ask the geometries
            codes[undecided] = _DISTRICT_MIXED
        self._district_cells = array("H", codes.tobytes())

    @classmethod
    def from_geojson(cls, fc: Mapping[str, Any], *, crs: Crs = Crs.GCJ02) -> ServiceArea:
        """Build from a FeatureCollection of one 'city' feature and 'district' features."""
        if fc.get("type") != "FeatureCollection":
            raise ValueError("expected a GeoJSON FeatureCollection")
        crs = Crs(crs)
        districts: list[District] = []
        city: Mapping[str, Any] | None = None
        city_geometry: BaseGeometry | None = None
        for index, feature in enumerate(fc.get("features") or ()):
            properties: Mapping[str, Any] = feature.get("properties") or {}
            if feature.get("geometry") is None:
                raise ValueError(f"features[{index}] has no geometry")
            geometry = _convert_geometry(shape(feature["geometry"]), crs)
            level = str(properties.get("level", "district"))
            if level == "city":
                city, city_geometry = properties, geometry
                continue
            adcode = properties.get("adcode")
            if not adcode:
                raise ValueError(f"features[{index}].properties.adcode is missing")
            districts.append(
                District(
                    adcode=str(adcode),
                    name=str(properties.get("name", "")),
                    name_en=str(properties.get("name_en", "")),
                    geometry=geometry,
                    level=level,
                )
            )
        city = city or {}
        return cls(
            districts,
            city_geometry,
            adcode=str(city.get("adcode", "")),
            name=str(city.get("name", "")),
            name_en=str(city.get("name_en", "")),
        )

    @property
    def districts(self) -> tuple[District, ...]:
        """The districts, in the order of the source."""
        return self._districts

    @property
    def outline(self) -> BaseGeometry:
        """The whole area's geometry in WGS-84 (lng, lat)."""
        return self._outline

    @property
    def bounds(self) -> Bounds:
        """(min_lat, min_lng, max_lat, max_lng) of the whole area."""
        return self._bounds

    def district(self, adcode: str) -> District:
        """The district with this adcode; KeyError if unknown."""
        try:
            return self._by_adcode[adcode]
        except KeyError:
            raise KeyError(f"unknown district adcode: {adcode!r}") from None

    def contains(self, lat: float, lng: float, crs: Crs = Crs.WGS84) -> bool:
        """Whether a point (on the boundary included) lies in the service area."""
        if crs is not Crs.WGS84:
            lat, lng = to_wgs84(lat, lng, Crs(crs))
        if not _in_bounds(self._bounds, lat, lng):
            return False
        code = self._outline_cells[self._grid.index(lng, lat)]
        if code != MIXED:
            return code == INSIDE
        return bool(shapely.intersects_xy(self._outline, lng, lat))

    def district_of(self, lat: float, lng: float, crs: Crs = Crs.WGS84) -> District | None:
        """The district containing a point, or None outside every district."""
        if crs is not Crs.WGS84:
            lat, lng = to_wgs84(lat, lng, Crs(crs))
        if not _in_bounds(self._grid_bounds, lat, lng):
            return None
        code = self._district_cells[self._grid.index(lng, lat)]
        if code != _DISTRICT_MIXED:
            return self._districts[code - 1] if code else None
        for bounds, district in self._district_bounds:
            if _in_bounds(bounds, lat, lng) and shapely.intersects_xy(district.geometry, lng, lat):
                return district
        return None

    def random_point_in(
        self, target: District | str | BaseGeometry, rng: random.Random
    ) -> tuple[float, float]:
        """A uniformly random (lat, lng) strictly inside a district (or adcode, or geometry)."""
        if isinstance(target, str):
            geometry = self.district(target).geometry
        elif isinstance(target, District):
            geometry = target.geometry
        else:
            geometry = target
        if shapely.is_empty(geometry):
            raise ValueError("cannot sample a point in an empty geometry")
        shapely.prepare(geometry)
        min_lat, min_lng, max_lat, max_lng = _lat_lng_bounds(geometry)
        for _ in range(_MAX_SAMPLE_ATTEMPTS):
            lat = rng.uniform(min_lat, max_lat)
            lng = rng.uniform(min_lng, max_lng)
            if shapely.contains_xy(geometry, lng, lat):
                return lat, lng
        raise ValueError("no point found inside the geometry; is it degenerate?")

    def to_geojson(self) -> dict[str, Any]:
        """The districts as a WGS-84 FeatureCollection, coordinates rounded to 6 decimals."""
        features = [
            {
                "type": "Feature",
                "properties": {
                    "adcode": d.adcode,
                    "name": d.name,
                    "name_en": d.name_en,
                    "level": d.level,
                },
                "geometry": _rounded_geojson(d.geometry),
            }
            for d in self._districts
        ]
        return {"type": "FeatureCollection", "features": features}


def _rounded_geojson(geometry: BaseGeometry) -> dict[str, Any]:
    rounded = shapely.transform(geometry, lambda xy: np.round(xy, 6))
    result: dict[str, Any] = json.loads(shapely.to_geojson(rounded))
    return result
