"""The guidance panel on the dispatcher's console, against the service's own session."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from dispatch.guidance.protocol import STEP_IDS
from tests.helpers import bearer
from tests.ui.conftest import PageFactory
from tests.ui.support import PATIENT, dispatch_key
from tests.ui.test_dispatch import DESKTOP

STEPS_OF_THE_PROTOCOL = len(STEP_IDS)


async def test_the_dispatcher_steps_through_and_chats(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    key = await dispatch_key(ui_client)
    page = await open_page(str(ui_client.make_url("/ui/dispatch")), **DESKTOP)
    await page.fill("#login input[name=token]", key)
    await page.click("#login button")
    await page.fill("#alert-form input[name=lat]", str(PATIENT[0]))
    await page.fill("#alert-form input[name=lng]", str(PATIENT[1]))
    await page.click("#alert-form button.alarm")
    await page.click("#join-guidance")
    panel = page.locator("#guidance")
    await expect(panel.locator(".status.connected")).to_be_visible()
    await expect(panel.locator(".step[data-step=en_route]")).to_contain_text("On the way")
    await expect(panel.locator(".steps button")).to_have_count(STEPS_OF_THE_PROTOCOL)
    await panel.locator(".steps button[data-step=check]").click()
    await expect(panel.locator(".step[data-step=check]")).to_be_visible()
    await expect(panel.locator(".steps button.current")).to_have_attribute("data-step", "check")
    await panel.locator(".chat input").fill("请把患者放平")
    await panel.locator(".chat button").click()
    await expect(panel.locator(".log li.chat")).to_contain_text("请把患者放平")
    await page.click("#lang")
    await expect(panel.locator(".step[data-step=check] b")).to_contain_text("判断意识和呼吸")

    incident_id = (await page.locator("#incident-head p.mono").inner_text()).strip()
    resp = await ui_client.get(f"/v1/incidents/{incident_id}", headers=bearer(key))
    timeline: list[dict[str, Any]] = (await resp.json())["timeline"]
    steps = [e["data"]["step"] for e in timeline if e["type"] == "guidance_step"]
    chats = [e["data"]["text"] for e in timeline if e["type"] == "guidance_chat"]
    assert steps == ["check"] and chats == ["请把患者放平"]
    # The console's own timeline shows them too (polled every second).
    await expect(page.locator("#timeline li[data-type=guidance_step]")).to_have_count(1)


async def test_a_refused_token_ends_in_unavailable(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    key = await dispatch_key(ui_client)
    body = {"external_id": "QD120-ui-g", "location": {"lat": PATIENT[0], "lng": PATIENT[1]}}
    resp = await ui_client.post("/v1/alerts", json=body, headers=bearer(key))
    session_id = (await resp.json())["guidance"]["session_id"]
    page = await open_page(str(ui_client.make_url("/ui/")))
    await page.evaluate(
        """async (sessionId) => {
            const { GuidancePanel } = await import("/ui/static/js/guidance.js");
            const root = document.createElement("div");
            root.id = "g";
            document.body.append(root);
            new GuidancePanel(root).join(sessionId, "gds_not-a-token-of-this-session");
        }""",
        session_id,
    )
    await expect(page.locator("#g .status")).to_have_text("Guidance unavailable")
