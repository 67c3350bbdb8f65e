"""The volunteer's phone page in a real browser: position by a tap, duty, an offer declined."""

from __future__ import annotations

import datetime as dt

import asyncpg
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from tests.helpers import bearer, insert_volunteer, wait_until
from tests.ui.conftest import PageFactory
from tests.ui.support import PATIENT, dispatch_key, offset, volunteer

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


async def phone_page(client: TestClient, open_page: PageFactory, token: str) -> Page:
    page = await open_page(str(client.make_url("/ui/volunteer")), **PHONE)
    await page.fill("#login input[name=token]", token)
    await page.click("#login button")
    await expect(page.locator("#stream-state.live")).to_be_visible()
    await expect(page.locator("#map path.district")).to_have_count(10)
    return page


async def tap_on_map(page: Page, lat: float, lng: float) -> None:
    point = await page.evaluate(
        "([lat, lng]) => { const m = window.rescueMap(); m.focus(lat, lng, 1000);"
        " return m.screenPoint(lat, lng); }",
        [lat, lng],
    )
    await page.mouse.click(point["x"], point["y"])


async def test_a_tap_sets_the_position_and_an_offer_can_be_declined(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    person = await volunteer(ui_client)
    page = await phone_page(ui_client, open_page, person["token"])
    await page.click("#check-in")
    await expect(page.locator("#duty .error")).to_have_text("Set your position first")
    here = offset(PATIENT, north_m=100)
    await tap_on_map(page, *here)
    await expect(page.locator("#position")).to_contain_text("(map)")
    await expect(page.locator("#map circle.me")).to_have_count(1)
    await page.click("#check-in")
    await expect(page.locator("#duty-state.on")).to_be_visible()

    # The position tapped is the one the service plans with: an alert there reaches this phone.
    key = await dispatch_key(ui_client)
    body = {"external_id": "QD120-ui-1", "location": {"lat": PATIENT[0], "lng": PATIENT[1]}}
    resp = await ui_client.post("/v1/alerts", json=body, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    assert [r["volunteer_id"] for r in plan["responders"]] == [person["id"]]
    offer = page.locator("#offer")
    await expect(offer).to_be_visible()
    await expect(offer).to_contain_text("go and start CPR")
    await expect(offer.locator(".distance")).to_have_text("100 m")
    await offer.locator("button.decline").click()
    await expect(offer).to_be_hidden()

    async def declined() -> bool:
        resp = await ui_client.get(f"/v1/incidents/{plan['incident_id']}", headers=bearer(key))
        return bool((await resp.json())["offers"][0]["state"] == "declined")

    await wait_until(declined)
    await page.click("#check-out")
    await expect(page.locator("#duty-state.off")).to_be_visible()


async def test_an_expired_certificate_cannot_check_in(
    ui_client: TestClient, open_page: PageFactory, pg: asyncpg.Connection
) -> None:
    _, token = await insert_volunteer(pg, expires_on=dt.date.today() - dt.timedelta(days=1))
    page = await phone_page(ui_client, open_page, token)
    await tap_on_map(page, *PATIENT)
    await page.click("#check-in")
    await expect(page.locator("#duty .error")).to_contain_text("certificate")
    await expect(page.locator("#duty-state.off")).to_be_visible()
