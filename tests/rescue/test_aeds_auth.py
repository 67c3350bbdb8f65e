"""Who may call each AED endpoint: write admin; read admin and dispatch."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN
from tests.rescue.aeds_support import (
    SHIBEI,
    aed_body,
    create_aed,
    dispatch_headers,
    stored_aeds,
    volunteer_headers,
)

CSV = "name,lat,lng\nImported,36.09,120.37\n"

# (method, path, request kwargs, roles allowed, status for an allowed role)
ENDPOINTS: list[tuple[str, str, dict[str, Any], set[str], int]] = [
    ("POST", "/v1/aeds", {"json": aed_body(name="New")}, {"admin"}, 201),
    ("GET", "/v1/aeds", {}, {"admin", "dispatch"}, 200),
    ("GET", "/v1/aeds/{id}", {}, {"admin", "dispatch"}, 200),
    ("PATCH", "/v1/aeds/{id}", {"json": {"location": SHIBEI}}, {"admin"}, 200),
    ("DELETE", "/v1/aeds/{id}", {}, {"admin"}, 204),
    (
        "POST",
        "/v1/aeds/import",
        {"data": CSV, "headers": {"Content-Type": "text/csv"}},
        {"admin"},
        200,
    ),
    ("GET", "/v1/aeds/export?format=csv", {}, {"admin", "dispatch"}, 200),
    ("GET", "/v1/aeds/maintenance", {}, {"admin", "dispatch"}, 200),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "allowed", "ok"),
    ENDPOINTS,
    ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS],
)
async def test_auth_matrix(
    client: TestClient,
    pg: asyncpg.Connection,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    allowed: set[str],
    ok: int,
) -> None:
    aed = await create_aed(client)
    url = path.format(id=aed["id"])
    tokens = {
        "admin": ADMIN,
        "dispatch": await dispatch_headers(client),
        "volunteer": await volunteer_headers(pg),
    }

    async def call(auth: dict[str, str]) -> Any:
        extra = dict(kwargs)
        headers = {**extra.pop("headers", {}), **auth}
        return await client.request(method, url, headers=headers, **extra)

    before = await stored_aeds(pg)
    refused = [
        ({}, 401),
        ({"Authorization": "Bearer dsp_not-a-real-key-0000000000"}, 401),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401),
    ]
    refused += [(tokens[role], 403) for role in ("dispatch", "volunteer") if role not in allowed]
    for auth, status in refused:
        resp = await call(auth)
        assert resp.status == status, (auth, await resp.text())
        code = "unauthorized" if status == 401 else "forbidden"
        assert (await resp.json())["error"]["code"] == code
    assert await stored_aeds(pg) == before
    for role in sorted(allowed):
        resp = await call(tokens[role])
        assert resp.status == ok, (role, await resp.text())
