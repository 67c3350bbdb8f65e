"""The worker's heap is frozen once started, and what is made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rescue import heap
from rescue.gunicorn import app_factory
from rescue.settings import Settings
from tests.conftest import ADMIN_TOKEN


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test process collects as usual


def test_settle_freezes_the_live_heap_and_later_cycles_are_collected(unfrozen: None) -> None:
    before = _Node()
    assert heap.settle() > 0
    assert gc.get_freeze_count() > 0
    # What existed is no longer tracked by collections; what comes later is collected.
    later = _Node()
    ref = weakref.ref(later)
    del later
    gc.collect()
    assert ref() is None
    ref_before = weakref.ref(before)
    del before
    gc.collect()
    assert ref_before() is not None  # frozen: the collector no longer walks it


async def test_the_gunicorn_worker_settles_after_its_start_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RESCUE_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("RESCUE_DEMO", "0")
    monkeypatch.setenv("RESCUE_DEMO_FLEET", "0")
    gc.unfreeze()
    app = await app_factory()
    assert app.on_startup[-1] is heap.settle_on_startup
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert gc.get_freeze_count() > 0  # the start-up ran settle_on_startup
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()
