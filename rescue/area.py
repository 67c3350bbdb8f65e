"""The shipped Qingdao service area, loaded once per process."""

from __future__ import annotations

import functools
import json
from importlib import resources

from geo import Crs, ServiceArea

AREA_FILE = "qingdao-districts.gcj02.geojson"


@functools.cache
def load_service_area() -> ServiceArea:
    """Qingdao's land area and ten districts (shipped in GCJ-02, held in WGS-84)."""
    text = resources.files("rescue.data").joinpath(AREA_FILE).read_text(encoding="utf-8")
    return ServiceArea.from_geojson(json.loads(text), crs=Crs.GCJ02)
