"""The consoles' routes over plain HTTP: pages, static files, the map's data, no secrets."""

from __future__ import annotations

import re

import shapely.geometry
from aiohttp.test_utils import TestClient

from dispatch.models import STATUS_MARKERS
from rescue.aeds.models import VENUE_TYPES
from rescue.area import load_service_area
from rescue.ui import STATIC_DIR
from tests.conftest import ADMIN_TOKEN


async def test_pages_are_served_with_a_self_only_policy(ui_client: TestClient) -> None:
    for path, marker in [
        ("/ui/", "to-admin"),
        ("/ui/admin", "admin.js"),
        ("/ui/dispatch", "dispatch.js"),
        ("/ui/volunteer", "volunteer.js"),
    ]:
        resp = await ui_client.get(path)
        assert resp.status == 200, path
        assert resp.content_type == "text/html"
        assert marker in await resp.text()
        policy = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy


async def test_bare_ui_redirects_to_the_index(ui_client: TestClient) -> None:
    resp = await ui_client.get("/ui", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ui/"


async def test_static_files_are_served_and_unknown_ones_are_a_json_404(
    ui_client: TestClient,
) -> None:
    resp = await ui_client.get("/ui/static/js/map.js")
    assert resp.status == 200
    assert "javascript" in resp.content_type
    resp = await ui_client.get("/ui/static/js/no-such.js")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


def test_no_page_loads_anything_from_elsewhere() -> None:
    external = re.compile(r"""(?:src|href|import|from|url)\s*[=(]?\s*["'](?:https?:)?//""")
    for file in STATIC_DIR.rglob("*"):
        if file.suffix in (".html", ".js", ".css"):
            assert not external.search(file.read_text(encoding="utf-8")), file


async def test_districts_are_simplified_wgs84_geojson(ui_client: TestClient) -> None:
    resp = await ui_client.get("/ui/districts.geojson")
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.content_type == "application/geo+json"
    body = await resp.json(content_type=None)
    area = load_service_area()
    assert {f["properties"]["adcode"] for f in body["features"]} == {
        d.adcode for d in area.districts
    }
    shinan = next(f for f in body["features"] if f["properties"]["adcode"] == "370202")
    assert shinan["properties"]["name"] == "市南区"
    assert shinan["properties"]["name_en"] == "Shinan"
    # Within ~50 m of the WGS-84 boundary everywhere (GCJ-02 would be ~500 m off).
    drawn = shapely.geometry.shape(shinan["geometry"])
    assert drawn.hausdorff_distance(area.district("370202").geometry) < 0.0005
    assert len(await resp.read()) < 200_000


async def test_districts_without_gzip(ui_client: TestClient) -> None:
    resp = await ui_client.get(
        "/ui/districts.geojson", headers={"Accept-Encoding": "identity"}, auto_decompress=False
    )
    assert resp.status == 200
    assert "Content-Encoding" not in resp.headers
    assert len((await resp.json(content_type=None))["features"]) == 10


async def test_config_holds_no_secret(ui_client: TestClient) -> None:
    resp = await ui_client.get("/ui/config.json")
    assert resp.status == 200
    body = await resp.json()
    assert body["timezone"] == "Asia/Shanghai"
    assert body["time_budget_s"] == 300
    assert body["speed_mps"]["walk"] == 2.0
    assert body["detour_factor"] == 1.4
    text = await resp.text()
    assert ADMIN_TOKEN not in text and "token" not in text.lower()


async def test_static_paths_cannot_leave_the_static_folder(ui_client: TestClient) -> None:
    for path in ("/ui/static/../ui.py", "/ui/static/%2e%2e/ui.py", "/ui/static/js/"):
        resp = await ui_client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"


def _strings() -> dict[str, list[str]]:
    text = (STATIC_DIR / "js" / "strings.js").read_text(encoding="utf-8")
    pairs = re.findall(
        r'"([a-z_]+\.[a-z0-9_]+)":\s*\["((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)"\]', text
    )
    return {key: [zh, en] for key, zh, en in pairs}


def test_every_fixed_string_has_chinese_and_english() -> None:
    strings = _strings()
    assert len(strings) > 200
    used: set[str] = set()
    for file in STATIC_DIR.rglob("*"):
        if file.suffix in (".html", ".js") and file.name != "strings.js":
            text = file.read_text(encoding="utf-8")
            used |= set(re.findall(r'data-i18n(?:-placeholder|-title)?="([^"]+)"', text))
            used |= set(re.findall(r'\bt\("([a-z_]+\.[a-z0-9_]+)"', text))
    assert used, "no string found in use"
    assert used - strings.keys() == set()
    for key, (zh, en) in strings.items():
        assert zh and en, key
    # Keys built at run time from the API's vocabularies are all there too.
    for prefix, values in {
        "marker": [
            "aed_collected",
            "arrived",
            "cpr_started",
            "aed_arrived",
            "pads_attached",
            "shock_delivered",
            "rosc",
            "handed_over",
            "withdrawn",
            "ems_arrived",
        ],
        "status": ["active", "maintenance", "missing", "retired"],
        "ostate": ["open", "accepted", "declined", "expired", "cancelled"],
        "istatus": ["open", "closed", "cancelled"],
        "role": ["aed", "cpr"],
        "now": ["available", "closed", "unknown", "expired", "maintenance", "missing"],
        "venue": list(VENUE_TYPES),
    }.items():
        for value in values:
            assert f"{prefix}.{value}" in strings, f"{prefix}.{value}"


def test_the_phone_offers_every_marker_of_the_contract() -> None:
    text = (STATIC_DIR / "js" / "mission.js").read_text(encoding="utf-8")
    listed = re.search(r"export const MARKERS = \[([^\]]*)\]", text)
    assert listed is not None
    assert sorted(re.findall(r'"(\w+)"', listed.group(1))) == sorted(STATUS_MARKERS)
