"""Pure geographic computation: coordinate systems, distances, travel times, the service area,
the in-memory AED index and opening hours. Imports nothing from the other packages, does no I/O.
"""

from geo.area import District, ServiceArea
from geo.crs import (
    Crs,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.distance import EARTH_RADIUS_M, bbox_around, haversine_m
from geo.hours import InvalidOpeningHours, is_open, parse_opening_hours, validate_opening_hours
from geo.index import AedIndex, IndexedAed
from geo.travel import TravelMode, TravelModel

__all__ = [
    "EARTH_RADIUS_M",
    "AedIndex",
    "Crs",
    "District",
    "IndexedAed",
    "InvalidOpeningHours",
    "ServiceArea",
    "TravelMode",
    "TravelModel",
    "bbox_around",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "haversine_m",
    "is_open",
    "out_of_china",
    "parse_opening_hours",
    "to_wgs84",
    "validate_opening_hours",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
