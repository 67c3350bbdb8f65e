"""The map's "available now" agrees with the service's opening-hours evaluation."""

from __future__ import annotations

import datetime as dt

from aiohttp.test_utils import TestClient

from geo import is_open
from rescue.demo.vocab import OPENING_HOURS
from tests.ui.conftest import PageFactory

EXPRESSIONS = sorted(
    {expr for choices in OPENING_HOURS.values() for expr, _ in choices}
    | {"Mo,We,Fr 08:00-12:00,14:00-18:00", "Mo-Fr 08:00-18:00; We off", "Sa-Mo 22:00-02:00"}
)
# A Monday to a Sunday, at hours around the usual openings and closings.
MOMENTS = [
    dt.datetime(2026, 11, 23 + day, hour, minute)
    for day in range(7)
    for hour, minute in ((1, 0), (7, 59), (8, 30), (12, 0), (17, 59), (18, 0), (22, 15), (23, 0))
]


async def test_the_browser_reads_opening_hours_like_the_service(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    page = await open_page(str(ui_client.make_url("/ui/")))
    cases = [
        {"expr": e, "day": m.weekday(), "minutes": m.hour * 60 + m.minute}
        for e in EXPRESSIONS
        for m in MOMENTS
    ]
    answers = await page.evaluate(
        """async (cases) => {
            const { isOpen } = await import("/ui/static/js/hours.js");
            return cases.map((c) => isOpen(c.expr, c));
        }""",
        cases,
    )
    expected = [is_open(e, m) for e in EXPRESSIONS for m in MOMENTS]
    mismatches = [
        (c["expr"], m.isoformat(), a)
        for c, m, a, x in zip(cases, MOMENTS * len(EXPRESSIONS), answers, expected, strict=True)
        if a != x
    ]
    assert mismatches == []
    assert any(expected) and not all(expected)


async def test_unknown_syntax_is_unknown_not_a_guess(
    ui_client: TestClient, open_page: PageFactory
) -> None:
    page = await open_page(str(ui_client.make_url("/ui/")))
    answer = await page.evaluate(
        """async () => {
            const { isOpen } = await import("/ui/static/js/hours.js");
            return isOpen("Mo-Fr 08:00-18:00; PH off", { day: 0, minutes: 600 });
        }"""
    )
    assert answer is None
