"""Browser fixtures: Debian's Chromium driven by Playwright, against servers on real ports."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from redis.asyncio import Redis

from rescue.app import create_app
from rescue.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The offer's alarm and the metronome play without a tap first (a test cannot tap "for real").
    "--autoplay-policy=no-user-gesture-required",
]
HAVE_CHROMIUM = CHROMIUM.exists()
METRONOME_PER_MIN = 104
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session."""
    if not HAVE_CHROMIUM:
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM} (`apt-get install chromium`; "
            "`make test` installs it)"
        )
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def ui_client(
    pg: asyncpg.Connection, redis: Redis, settings: Settings
) -> AsyncIterator[TestClient]:
    """A running service (a real port on 127.0.0.1) serving the consoles."""
    # Not the default cadence (110/min): the phone must play the one the session sends.
    app = create_app(settings=settings.replace(metronome_per_min=METRONOME_PER_MIN))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


PageFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[PageFactory]:
    """Open a page in a fresh browser context (its own sessionStorage, like another person).

    Every request the page makes must stay on this machine: the consoles work offline.
    """
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    async def open_(url: str, **context_options: Any) -> Page:
        context_options.setdefault("locale", "en-US")
        context = await browser.new_context(**context_options)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "request",
            lambda req: (
                None
                if req.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:"))
                else problems.append(f"request off this machine: {req.url}")
            ),
        )
        await page.goto(url)
        return page

    yield open_
    for context in contexts:
        await context.close()
    assert problems == []


def screenshot_path(name: str) -> Path:
    """Where a test run saves a screenshot (tests/artifacts, git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def publish_screenshot(name: str) -> None:
    """Copy a run's screenshot to docs/screenshots when asked (UPDATE_SCREENSHOTS=1)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot_path(name), SCREENSHOTS / f"{name}.png")
