"""The whole story across the three consoles at once, in headless Chromium.

A volunteer checks in on the phone page, the dispatcher raises an alert near them, the offer
rings on the phone and is accepted, the dispatcher's map shows it, a marker tapped on the phone
shows on the dispatcher's page, and the administrator reads the incident's timeline.
"""

from __future__ import annotations

import logging
import os

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from tests.conftest import ADMIN_TOKEN
from tests.helpers import bearer
from tests.ui.conftest import (
    METRONOME_PER_MIN,
    PageFactory,
    publish_screenshot,
    screenshot_path,
)
from tests.ui.support import PATIENT, aed, dispatch_key, offset, volunteer

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
TIMEOUT_MS = 15_000


async def login(page: Page, token: str) -> None:
    await page.fill("#login input[name=token]", token)
    await page.click("#login button")
    await expect(page.locator("#app")).to_be_visible()


async def test_the_rescue_circle_across_three_consoles(
    ui_client: TestClient, open_page: PageFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    expect.set_options(timeout=TIMEOUT_MS)
    key = await dispatch_key(ui_client)
    person = await volunteer(ui_client)
    here = offset(PATIENT, north_m=150)
    fetched = await aed(ui_client, offset(PATIENT, north_m=120, east_m=40))
    await aed(ui_client, offset(PATIENT, north_m=-180, east_m=-90), name="中山路地铁站 AED")
    await aed(ui_client, offset(PATIENT, north_m=60, east_m=-260), name="青岛银行大厦 AED")
    # Two more volunteers on duty nearby, checked in straight through the API.
    others = []
    for name, north, east in (("张伟", -120, 60), ("刘洋", 40, 150)):
        other = await volunteer(ui_client, name=name)
        where = offset(PATIENT, north_m=north, east_m=east)
        resp = await ui_client.put(
            "/v1/me/duty",
            json={"on_duty": True, "location": {"lat": where[0], "lng": where[1]}},
            headers=bearer(other["token"]),
        )
        assert resp.status == 200, await resp.text()
        others.append(other)

    # The volunteer's phone: its position from the browser's geolocation, then check in.
    phone = await open_page(
        str(ui_client.make_url("/ui/volunteer")),
        **PHONE,
        permissions=["geolocation"],
        geolocation={"latitude": here[0], "longitude": here[1], "accuracy": 10},
    )
    await login(phone, person["token"])
    await expect(phone.locator("#stream-state.live")).to_be_visible()
    await phone.click("#locate")
    await expect(phone.locator("#position")).to_contain_text(f"{here[0]:.5f}")
    await phone.click("#check-in")
    await expect(phone.locator("#duty-state.on")).to_be_visible()

    # The dispatcher raises an alert at the patient, typed in WGS-84.
    desk = await open_page(str(ui_client.make_url("/ui/dispatch")), **DESKTOP)
    await login(desk, key)
    await desk.fill("#alert-form input[name=lat]", f"{PATIENT[0]:.6f}")
    await desk.fill("#alert-form input[name=lng]", f"{PATIENT[1]:.6f}")
    await desk.select_option("#alert-form select[name=crs]", "wgs84")
    await desk.fill("#alert-form input[name=address]", "青岛市市南区五四广场")
    await desk.click("#alert-form button.alarm")
    responder = desk.locator(f"#responders li[data-volunteer='{person['id']}']")
    await expect(responder).to_have_attribute("data-state", "open")
    await expect(desk.locator("ellipse.reach")).to_have_count(1)
    await expect(desk.locator("circle.patient")).to_have_count(1)
    await expect(desk.locator(f"circle.plan-aed[data-pin='{fetched['id']}']")).to_have_count(1)
    await expect(desk.locator("#responders li[data-offer]")).to_have_count(3)
    await expect(desk.locator("#plan-aeds li[data-aed]")).to_have_count(3)
    incident_id = (await desk.locator("#incident-head p.mono").inner_text()).strip()

    # The offer rings on the phone; the volunteer accepts and sees where to go.
    offer = phone.locator("#offer")
    await expect(offer).to_be_visible()
    await expect(phone.locator("body")).to_have_attribute("data-beeps", "1")
    await offer.locator("button.accept").click()
    await expect(phone.locator("#mission")).to_be_visible()
    await expect(phone.locator("#mission .patient-where")).to_contain_text("五四广场")
    await expect(phone.locator("#map circle.patient")).to_have_count(1)

    # The dispatcher's map and list show the acceptance.
    await expect(responder).to_have_attribute("data-state", "accepted")
    if await responder.locator(".role-aed").count():
        await expect(desk.locator("circle.plan-aed.fetching")).to_have_count(1)
        await expect(desk.locator("polyline.fetch-route")).to_have_count(1)

    # A marker tapped on the phone: the metronome starts, the dispatcher sees it.
    await phone.click("#markers button[data-marker=cpr_started]")
    await expect(phone.locator("#markers button[data-marker=cpr_started].done")).to_be_visible()
    await expect(phone.locator("body")).to_have_attribute("data-ticks", "3", timeout=TIMEOUT_MS)
    await expect(responder.locator(".last-status")).to_have_text("CPR started")
    await expect(desk.locator("#timeline li[data-type=cpr_started]")).to_have_count(1)

    # Guidance: the dispatcher joins, moves to compressions; the phone follows at the
    # session's cadence; chat and the dispatcher's marker go through the session.
    await desk.click("#join-guidance")
    await expect(desk.locator("#guidance .status.connected")).to_be_visible()
    await expect(phone.locator("#guidance .status.connected")).to_be_visible()
    # Each sees who has the session open: the dispatcher and the responder.
    for console in (desk, phone):
        await expect(console.locator("#guidance .participants li.online")).to_have_count(2)
    await desk.click("#guidance .steps button[data-step=compressions]")
    await expect(phone.locator("#guidance .step[data-step=compressions]")).to_be_visible()
    await expect(phone.locator("#cadence")).to_have_text(str(METRONOME_PER_MIN))
    ticks = int(await phone.locator("body").get_attribute("data-ticks") or 0)
    await expect(phone.locator("body")).not_to_have_attribute("data-ticks", str(ticks))
    await desk.fill("#guidance .chat input", "救护车两分钟到")
    await desk.click("#guidance .chat button")
    await expect(phone.locator("#guidance .log li.chat")).to_contain_text("救护车两分钟到")
    await desk.click("#guidance button[data-marker=ems_arrived]")
    await expect(desk.locator("#timeline li[data-type=ems_arrived]")).to_have_count(1)
    await expect(phone.locator("#guidance .log li.marker", has_text="EMS arrived")).to_have_count(1)
    await phone.screenshot(path=screenshot_path("volunteer"), full_page=True)
    await desk.evaluate("document.querySelector('.dispatch-page aside').scrollTop = 0")
    await desk.screenshot(path=screenshot_path("dispatch"))
    await phone.click("#lang")
    await expect(phone.locator("#markers button[data-marker=cpr_started]")).to_have_text("开始按压")
    titles = {"aed": "取 AED，送往患者", "cpr": "前往患者，开始按压"}
    role = "aed" if await responder.locator(".role-aed").count() else "cpr"
    await expect(phone.locator("#mission h2")).to_have_text(titles[role])
    await phone.screenshot(path=screenshot_path("volunteer-zh"), full_page=True)

    # The administrator reads the incident's record.
    admin = await open_page(str(ui_client.make_url("/ui/admin")), **DESKTOP)
    await login(admin, ADMIN_TOKEN)
    await admin.click("#tabs button[data-tab=incidents]")
    await admin.click(f"#incident-list li[data-incident='{incident_id}'] button")
    view = admin.locator("#incident-view")
    for entry in ("alert_received", "offer_accepted", "cpr_started", "guidance_step"):
        await expect(view.locator(f".timeline li[data-type={entry}]")).to_have_count(1)
    await expect(view.locator(f"tr[data-offer] >> text={person['id']}")).to_have_count(1)
    await expect(view.locator(".record")).to_contain_text("Alert → first acceptance")
    await admin.screenshot(path=screenshot_path("admin-incident"), full_page=True)

    # The dispatcher closes the incident: the phone hears it and the metronome stops.
    await desk.click("#close-incident")
    await expect(desk.locator("#incident-status")).to_have_text("closed")
    await expect(desk.locator("#new-alert")).to_be_visible()
    await expect(phone.locator("#mission .closed-banner")).to_be_visible()
    await expect(phone.locator("#metronome-toggle")).to_have_text("开始节拍器")

    if os.environ.get("UPDATE_SCREENSHOTS"):
        for name in ("volunteer", "dispatch"):
            publish_screenshot(name)
    # No token reaches any log line (WebSocket URLs carry them as ?token=).
    for token in (key, person["token"], ADMIN_TOKEN, *(o["token"] for o in others)):
        assert token not in caplog.text
