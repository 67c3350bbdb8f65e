"""Operations endpoints."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from rescue.metrics import Metrics
from tests.conftest import ADMIN


async def test_healthz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_ok(client: TestClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_readyz_names_redis_when_down(make_client) -> None:
    client = await make_client(redis_url="redis://127.0.0.1:1/0")
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("failed")
    assert "redis" in body["error"]["message"]
    assert resp.headers["Retry-After"]


async def test_metrics_counts_routes(client: TestClient) -> None:
    await client.get("/healthz")
    await client.get("/healthz")
    text = await (await client.get("/metrics")).text()
    assert 'rescue_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert "rescue_http_request_duration_seconds_bucket" in text


def test_observe_request_feeds_the_same_labelled_series() -> None:
    metrics = Metrics()
    route = "/v1/me/location"
    for status, seconds in ((204, 0.004), (204, 0.2), (409, 0.001)):
        metrics.observe_request("PUT", route, status, seconds)
    sample = metrics.registry.get_sample_value
    counts = "rescue_http_requests_total"
    assert sample(counts, {"method": "PUT", "route": route, "status": "204"}) == 2.0
    assert sample(counts, {"method": "PUT", "route": route, "status": "409"}) == 1.0
    latency = "rescue_http_request_duration_seconds"
    assert sample(f"{latency}_count", {"method": "PUT", "route": route}) == 3.0
    assert sample(f"{latency}_sum", {"method": "PUT", "route": route}) == pytest.approx(0.205)
    bucket = {"method": "PUT", "route": route, "le": "0.005"}
    assert sample(f"{latency}_bucket", bucket) == 2.0
    # The cached children are the registry's own series: labels() adds to the same count.
    metrics.requests.labels("PUT", route, "204").inc()
    metrics.observe_request("PUT", route, 204, 0.01)
    assert sample(counts, {"method": "PUT", "route": route, "status": "204"}) == 4.0


async def test_unknown_path_is_json_404(client: TestClient) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_wrong_method_is_json_405(client: TestClient) -> None:
    resp = await client.delete("/healthz")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_dispatch_center_creation_and_auth(client: TestClient) -> None:
    payload = {"name": "Qingdao 120", "callback_url": "https://120.example/cb"}
    assert (await client.post("/v1/dispatch-centers", json=payload)).status == 401
    bad = {"Authorization": "Bearer nope-nope-nope-nope"}
    assert (await client.post("/v1/dispatch-centers", json=payload, headers=bad)).status == 401
    resp = await client.post("/v1/dispatch-centers", json=payload, headers=ADMIN)
    assert resp.status == 201
    center = await resp.json()
    assert center["api_key"].startswith("dsp_")
    assert center["webhook_secret"].startswith("whsec_")
    key = {"Authorization": f"Bearer {center['api_key']}"}
    resp = await client.post("/v1/dispatch-centers", json=payload, headers=key)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"


async def test_dispatch_center_validation(client: TestClient) -> None:
    resp = await client.post(
        "/v1/dispatch-centers", json={"callback_url": "ftp://x"}, headers=ADMIN
    )
    assert resp.status == 400
    fields = {d["field"] for d in (await resp.json())["error"]["details"]}
    assert fields == {"name", "callback_url"}
    resp = await client.post(
        "/v1/dispatch-centers", data="name=x", headers={**ADMIN, "Content-Type": "text/plain"}
    )
    assert resp.status == 415


async def test_garbage_cursor_is_a_400_naming_the_field(client: TestClient) -> None:
    for cursor in ("%%%", "not-base64!", "YQ=="):
        resp = await client.get("/v1/aeds", params={"cursor": cursor}, headers=ADMIN)
        assert resp.status == 400, cursor
        assert (await resp.json())["error"]["details"][0]["field"] == "cursor"
