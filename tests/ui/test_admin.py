"""The administrator's console in a real browser: import, map, inventory, forms, lists."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.helpers import bearer
from tests.ui.conftest import PageFactory, publish_screenshot, screenshot_path
from tests.ui.support import PATIENT, aed, demo_aeds_csv, dispatch_key, volunteer

DESKTOP = {"viewport": {"width": 1280, "height": 800}}


async def admin_page(client: TestClient, open_page: PageFactory) -> Page:
    page = await open_page(str(client.make_url("/ui/admin")), **DESKTOP)
    await page.fill("#login input[name=token]", ADMIN_TOKEN)
    await page.click("#login button")
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("#map path.district")).to_have_count(10)
    return page


async def test_a_wrong_token_is_refused_and_never_kept(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    page = await open_page(str(ui_client.make_url("/ui/admin")), **DESKTOP)
    await page.fill("#login input[name=token]", "adm_not-the-right-token-000000")
    await page.click("#login button")
    await expect(page.locator("#login .error")).to_have_text("Unknown token")
    await expect(page.locator("#app")).to_be_hidden()
    key = await dispatch_key(ui_client)
    await page.fill("#login input[name=token]", key)
    await page.click("#login button")
    await expect(page.locator("#login .error")).to_have_text(
        "This token is not for this console's role"
    )
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.evaluate("localStorage.getItem('rescue.token.admin')") is None


async def test_import_the_demo_inventory_and_see_it_on_the_map(
    ui_client: TestClient, open_page: PageFactory, tmp_path: Path
) -> None:
    page = await admin_page(ui_client, open_page)
    csv_file = tmp_path / "aeds.csv"
    csv_file.write_bytes(demo_aeds_csv() + b"bad row,,,,1000,1000\n")
    await page.click("#tabs button[data-tab=import]")
    await page.set_input_files("#import-form input[type=file]", str(csv_file))
    await page.click("#import-form button")
    report = page.locator("#import-report")
    await expect(report.locator(".created")).to_have_text("1983 created", timeout=30_000)
    await expect(report.locator(".rejected")).to_have_text("1 rejected")
    await expect(report.locator("tbody tr")).to_have_count(1)
    await expect(report.locator("tbody td").first).to_contain_text("1985")

    await page.click("#tabs button[data-tab=map]")
    pins = page.locator("#map circle.aed")
    await expect(pins).to_have_count(1983 - await _retired(ui_client))
    counts = await page.locator("#legend li b").all_inner_texts()
    assert sum(int(c) for c in counts) == await pins.count()
    available = int(await page.locator("#legend li[data-state=available] b").inner_text())
    assert 0 < available < 1983
    await page.screenshot(path=screenshot_path("admin"))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        publish_screenshot("admin")

    # Clicking an AED shows it; the language switch redraws the page in Chinese.
    point = await page.evaluate(
        "([lat, lng]) => { const c = document.querySelector('#map circle.aed');"
        " const r = c.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }",
        [PATIENT[0], PATIENT[1]],
    )
    await page.mouse.click(point[0], point[1])
    await expect(page.locator("#aed-details h3")).not_to_be_empty()
    await page.click("#lang")
    await expect(page.locator("#tabs button[data-tab=aeds]")).to_have_text("AED 台账")
    await expect(page.locator("#legend li[data-state=available]")).to_contain_text("可用")
    await page.reload()
    await expect(page.locator("#tabs button[data-tab=aeds]")).to_have_text("AED 台账")
    await page.click("#lang")
    await expect(page.locator("#tabs button[data-tab=aeds]")).to_have_text("Inventory")


async def _retired(client: TestClient) -> int:
    resp = await client.get("/v1/aeds", params={"status": "retired", "limit": 1000}, headers=ADMIN)
    return len((await resp.json())["items"])


async def test_the_inventory_is_searched_and_filtered(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    await aed(ui_client, PATIENT, name="五四广场 AED")
    await aed(ui_client, (36.0660, 120.3830), name="奥帆中心 AED", status="maintenance")
    await aed(ui_client, (36.3000, 120.6000), name="崂山景区 AED")
    page = await admin_page(ui_client, open_page)
    await page.click("#tabs button[data-tab=aeds]")
    rows = page.locator("#aed-table tbody tr[data-id]")
    await expect(rows).to_have_count(3)
    await page.fill("#aed-filter input[name=q]", "奥帆")
    await page.click("#aed-filter button:text('Filter')")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("奥帆中心 AED")
    await expect(rows.first).to_contain_text("maintenance")
    await page.fill("#aed-filter input[name=q]", "")
    await page.select_option("#aed-filter select[name=district]", "370212")
    await page.click("#aed-filter button:text('Filter')")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("崂山景区 AED")
    await expect(rows.first).to_contain_text("Laoshan")
    await page.select_option("#aed-filter select[name=district]", "")
    await page.select_option("#aed-filter select[name=status]", "active")
    await page.click("#aed-filter button:text('Filter')")
    await expect(rows).to_have_count(2)


async def test_the_aed_form_shows_the_api_s_own_messages(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    page = await admin_page(ui_client, open_page)
    await page.click("#tabs button[data-tab=aeds]")
    await page.click("#aed-new")
    form = page.locator("#aed-form")
    await form.locator("input[name=name]").fill("台东步行街 AED")
    await form.locator("input[name=lat]").fill("120.3450")  # latitude and longitude swapped
    await form.locator("input[name=lng]").fill("36.0790")
    await form.locator("input[name=opening_hours]").fill("Mo-Fr 25:00-18:00")
    await form.locator("button.primary").click()
    # The same words the API gives a client: ask the API directly and compare.
    body = {
        "name": "台东步行街 AED",
        "location": {"lat": 120.345, "lng": 36.079, "crs": "wgs84"},
        "opening_hours": "Mo-Fr 25:00-18:00",
        "venue_type": "other",
        "status": "active",
    }
    resp = await ui_client.post("/v1/aeds", json=body, headers=ADMIN)
    expected = (await resp.json())["error"]
    assert resp.status == 400
    await expect(form.locator(".error")).to_have_text(expected["message"])
    for detail in expected["details"]:
        field = form.locator(f"[data-field='{detail['field']}'] > .problem")
        await expect(field).to_have_text(detail["problem"])

    assert {d["field"] for d in expected["details"]} == {"location.lat", "opening_hours"}

    # Well-formed but outside Qingdao (Shanghai): the API's 422, next to the location.
    await form.locator("input[name=opening_hours]").fill("Mo-Su 08:00-20:00")
    await form.locator("input[name=lat]").fill("31.2304")
    await form.locator("input[name=lng]").fill("121.4737")
    await form.locator("button.primary").click()
    shanghai = {"lat": 31.2304, "lng": 121.4737, "crs": "wgs84"}
    resp = await ui_client.post(
        "/v1/aeds", json={**body, "location": shanghai, "opening_hours": "24/7"}, headers=ADMIN
    )
    outside = (await resp.json())["error"]
    assert resp.status == 422
    await expect(form.locator(".error")).to_have_text(outside["message"])
    await expect(form.locator("[data-field^=location].invalid").first).to_be_visible()

    await form.locator("input[name=lat]").fill("36.0790")
    await form.locator("input[name=lng]").fill("120.3450")
    await form.locator("button.primary").click()
    await expect(page.locator("#aed-dialog")).to_be_hidden()
    row = page.locator("#aed-table tbody tr", has_text="台东步行街 AED")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Shibei")

    # Edit: a bad date is refused with the API's words, a good change is saved.
    await row.click()
    await form.locator("input[name=level]").fill("two")
    await form.locator("button.primary").click()
    await expect(form.locator("[data-field=level] > .problem")).to_have_text("must be an integer")
    await form.locator("input[name=level]").fill("2")
    await form.locator("select[name=status]").select_option("maintenance")
    await form.locator("button.primary").click()
    await expect(page.locator("#aed-dialog")).to_be_hidden()
    await expect(row).to_contain_text("maintenance")
    aed_id = await row.get_attribute("data-id")
    stored = await (await ui_client.get(f"/v1/aeds/{aed_id}", headers=ADMIN)).json()
    assert stored["level"] == 2 and stored["status"] == "maintenance"
    assert stored["opening_hours"] == "Mo-Su 08:00-20:00"


async def test_maintenance_and_volunteers_with_their_certificates(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    await aed(ui_client, PATIENT, name="过期电极片 AED", pads_expire_on="2020-01-01")
    await aed(ui_client, (36.0660, 120.3830), name="正常 AED")
    person = await volunteer(ui_client, name="李红")
    page = await admin_page(ui_client, open_page)
    await page.click("#tabs button[data-tab=maintenance]")
    rows = page.locator("#maint-table tbody tr[data-id]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("过期电极片 AED")
    await expect(rows.first).to_contain_text("pads expired 2020-01-01")

    await page.click("#tabs button[data-tab=volunteers]")
    vol = page.locator(f"#vol-table tbody tr[data-id='{person['id']}']")
    await expect(vol).to_contain_text("李红")
    await expect(vol).to_contain_text(person["certificate"]["number"])
    await expect(vol).to_contain_text(person["certificate"]["expires_on"])
    await page.select_option("#vol-filter select[name=certificate]", "expired")
    await page.click("#vol-filter button")
    await expect(page.locator("#vol-table tbody tr[data-id]")).to_have_count(0)


async def test_a_volunteer_is_registered_edited_and_given_a_new_token(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    page = await admin_page(ui_client, open_page)
    page.on("dialog", lambda dialog: dialog.accept())  # the new token's confirm()
    await page.click("#tabs button[data-tab=volunteers]")
    await page.click("#vol-new")
    form = page.locator("#vol-form")
    today = dt.date.today()
    issued, expires = today - dt.timedelta(days=10), today + dt.timedelta(days=700)
    await form.locator("input[name=name]").fill("张伟")
    await form.locator("input[name=phone]").fill("+86 139 0532 0000")
    await form.locator("select[name=travel_mode]").select_option("bike")
    await form.locator("input[name=number]").fill("QD-RC-2026-0001")
    await form.locator("input[name=issuer]").fill("青岛市红十字会")
    await form.locator("input[name=issued_on]").fill(issued.isoformat())
    await form.locator("input[name=expires_on]").fill(today.replace(year=2000).isoformat())
    await form.locator("button.primary").click()
    # The API's own words, beside the field it names.
    body = {
        "name": "张伟",
        "phone": "+86 139 0532 0000",
        "travel_mode": "bike",
        "status": "active",
        "certificate": {
            "number": "QD-RC-2026-0001",
            "issuer": "青岛市红十字会",
            "issued_on": issued.isoformat(),
            "expires_on": today.replace(year=2000).isoformat(),
        },
    }
    resp = await ui_client.post("/v1/volunteers", json=body, headers=ADMIN)
    assert resp.status == 400
    [detail] = (await resp.json())["error"]["details"]
    assert detail["field"] == "certificate.expires_on"
    problem = form.locator("[data-field='certificate.expires_on'] > .problem")
    await expect(problem).to_have_text(detail["problem"])

    await form.locator("input[name=expires_on]").fill(expires.isoformat())
    await form.locator("button.primary").click()
    token = await page.locator("#vol-token-value").text_content()
    assert token
    duty = {"on_duty": False}
    resp = await ui_client.put("/v1/me/duty", json=duty, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    await form.locator("button.primary").click()  # close
    await expect(page.locator("#vol-dialog")).to_be_hidden()
    row = page.locator("#vol-table tbody tr[data-id]", has_text="张伟")
    await expect(row).to_contain_text("QD-RC-2026-0001")
    await expect(row).to_contain_text("bike")
    vol_id = await row.get_attribute("data-id")

    # Suspended, and the certificate renewed: only what changed is sent.
    await row.click()
    await form.locator("select[name=status]").select_option("suspended")
    renewed = expires + dt.timedelta(days=365)
    await form.locator("input[name=expires_on]").fill(renewed.isoformat())
    await form.locator("button.primary").click()
    await expect(page.locator("#vol-dialog")).to_be_hidden()
    await expect(row).to_contain_text("suspended")
    stored = await (await ui_client.get(f"/v1/volunteers/{vol_id}", headers=ADMIN)).json()
    assert stored["status"] == "suspended"
    assert stored["certificate"]["expires_on"] == renewed.isoformat()
    assert stored["certificate"]["number"] == "QD-RC-2026-0001"
    assert stored["travel_mode"] == "bike"

    # A new token: the old one stops working, the new one is the volunteer's.
    await row.click()
    await page.click("#vol-token")
    new_token = await page.locator("#vol-token-value").text_content()
    assert new_token and new_token != token
    resp = await ui_client.put("/v1/me/duty", json=duty, headers=bearer(token))
    assert resp.status == 401
    on_duty = {"on_duty": True, "location": {"lat": PATIENT[0], "lng": PATIENT[1]}}
    resp = await ui_client.put("/v1/me/duty", json=on_duty, headers=bearer(new_token))
    assert resp.status == 403  # known, and suspended
    assert (await resp.json())["error"]["code"] == "suspended"


async def test_incidents_are_listed_and_opened_by_id(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    key = await dispatch_key(ui_client)
    body = {"external_id": "QD120-admin-1", "location": {"lat": PATIENT[0], "lng": PATIENT[1]}}
    resp = await ui_client.post("/v1/alerts", json=body, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    incident_id = (await resp.json())["incident_id"]
    page = await admin_page(ui_client, open_page)
    await page.click("#tabs button[data-tab=incidents]")
    listed = page.locator(f"#incident-list li[data-incident='{incident_id}']")
    await expect(listed).to_contain_text("QD120-admin-1")
    await expect(listed).to_contain_text("Shinan")
    await page.fill("#incident-lookup input[name=id]", "inc_no-such-incident")
    await page.click("#incident-lookup button")
    await expect(page.locator("#incident-view .error")).not_to_be_empty()
    await page.fill("#incident-lookup input[name=id]", incident_id)
    await page.click("#incident-lookup button")
    await expect(page.locator("#incident-view h2")).to_contain_text("QD120-admin-1")
    await expect(page.locator("#incident-view .timeline li[data-type=plan_made]")).to_have_count(1)
    await expect(page.locator("#incident-view .record")).to_contain_text("0 / 0")
