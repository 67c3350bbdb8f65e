"""The dispatcher's console in a real browser: placing the patient, coordinate systems, errors."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from geo import Crs, from_wgs84, haversine_m
from tests.ui.conftest import PageFactory
from tests.ui.support import PATIENT, aed, dispatch_key

DESKTOP = {"viewport": {"width": 1280, "height": 800}}


async def dispatch_page(client: TestClient, open_page: PageFactory) -> Page:
    page = await open_page(str(client.make_url("/ui/dispatch")), **DESKTOP)
    await page.fill("#login input[name=token]", await dispatch_key(client))
    await page.click("#login button")
    await expect(page.locator("#map path.district")).to_have_count(10)
    return page


async def click_on_map(page: Page, lat: float, lng: float, radius_m: float = 2000) -> None:
    """Centre the map on a point, then click it where it is drawn."""
    point = await page.evaluate(
        "([lat, lng, r]) => { const m = window.rescueMap(); m.focus(lat, lng, r);"
        " return m.screenPoint(lat, lng); }",
        [lat, lng, radius_m],
    )
    await page.mouse.click(point["x"], point["y"])


async def test_a_click_on_the_map_places_the_patient(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    await aed(ui_client, PATIENT)
    page = await dispatch_page(ui_client, open_page)
    await click_on_map(page, *PATIENT)
    lat = float(await page.input_value("#alert-form input[name=lat]"))
    lng = float(await page.input_value("#alert-form input[name=lng]"))
    assert haversine_m(lat, lng, *PATIENT) < 10  # a pixel at this zoom is ~4 m
    assert await page.input_value("#alert-form select[name=crs]") == "wgs84"
    await expect(page.locator("circle.patient.tentative")).to_have_count(1)
    await page.click("#alert-form button.alarm")
    await expect(page.locator("#responders")).to_contain_text("No volunteer within reach")
    await expect(page.locator("#plan-aeds li[data-aed]")).to_have_count(1)
    await expect(page.locator("ellipse.reach")).to_have_count(1)
    await expect(page.locator("#timeline li[data-type=alert_received]")).to_have_count(1)


async def test_coordinates_typed_in_gcj02_land_in_the_right_place(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    page = await dispatch_page(ui_client, open_page)
    lat, lng = from_wgs84(*PATIENT, Crs.GCJ02)
    assert haversine_m(lat, lng, *PATIENT) > 300  # the two systems really differ here
    await page.fill("#alert-form input[name=lat]", f"{lat:.7f}")
    await page.fill("#alert-form input[name=lng]", f"{lng:.7f}")
    await page.select_option("#alert-form select[name=crs]", "gcj02")
    await page.click("#alert-form button.alarm")
    where = page.locator("#incident-head .where .mono")
    await expect(where).to_have_text(f"{PATIENT[0]:.5f}, {PATIENT[1]:.5f} (WGS-84)")
    await expect(page.locator("#incident-head .where")).to_contain_text("Shinan")


async def test_bad_coordinates_get_the_api_s_message_at_the_field(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    page = await dispatch_page(ui_client, open_page)
    await page.fill("#alert-form input[name=lat]", "north")
    await page.fill("#alert-form input[name=lng]", "120.38")
    await page.click("#alert-form button.alarm")
    await expect(page.locator("[data-field='location.lat'].invalid .problem")).not_to_be_empty()
    await expect(page.locator("#incident")).to_be_hidden()
    await page.fill("#alert-form input[name=lat]", "31.2304")  # Shanghai: outside the area
    await page.fill("#alert-form input[name=lng]", "121.4737")
    await page.click("#alert-form button.alarm")
    await expect(page.locator("#alert-form .error")).to_contain_text("service area")
    await expect(page.locator("#incident")).to_be_hidden()
