"""Rendering the inventory for export: CSV and GeoJSON in the flat form the import reads."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from geo import Crs
from rescue.aeds.models import EXPORT_FIELDS, flat_aed

FORMATS = ("geojson", "csv")


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def to_csv(rows: Iterable[Mapping[str, Any]], crs: Crs = Crs.WGS84) -> bytes:
    """A CSV (UTF-8, header row of the flat field names) that the import reads back unchanged."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        flat = flat_aed(row, crs)
        writer.writerow([_csv_value(flat[key]) for key in EXPORT_FIELDS])
    return out.getvalue().encode("utf-8")


def to_geojson(rows: Iterable[Mapping[str, Any]], crs: Crs = Crs.WGS84) -> dict[str, Any]:
    """A FeatureCollection of Points; `properties.crs` names the coordinates' system."""
    features = []
    for row in rows:
        properties = flat_aed(row, crs)
        lat, lng = properties.pop("lat"), properties.pop("lng")
        features.append(
            {
                "type": "Feature",
                "id": row["id"],
                "geometry": {"type": "Point", "coordinates": [lng, lat]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}
