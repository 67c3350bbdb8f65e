"""The contract as a whole: every served route is documented, and the auth matrix holds."""

from __future__ import annotations

import re

import asyncpg
from aiohttp.test_utils import TestClient

from rescue.auth import Role, allowed_roles
from rescue.openapi import openapi_document
from tests.conftest import ADMIN
from tests.helpers import bearer, create_center, insert_volunteer

_PARAM = re.compile(r"\{[^}]+\}")


def served_routes(client: TestClient) -> list[tuple[str, str, object]]:
    """(method, path, handler) for every route the app serves, HEAD excluded."""
    routes = []
    for route in client.app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path is None or path.startswith("/static") or path.startswith("/ui"):
            continue
        routes.append((route.method.lower(), path, route.handler))
    return routes


async def test_every_served_route_is_documented_and_nothing_more(client: TestClient) -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    served = {(m, p) for m, p, _ in served_routes(client)}
    documented = {
        (method, path)
        for path, ops in doc["paths"].items()
        for method in ops
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


async def test_openapi_is_served(client: TestClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    body = await resp.json()
    assert "/v1/dispatch-centers" in body["paths"]
    assert body["components"]["schemas"]["Error"]


async def test_auth_matrix_for_every_endpoint(client: TestClient, pg: asyncpg.Connection) -> None:
    center = await create_center(client)
    _, volunteer_token = await insert_volunteer(pg)
    tokens = {
        Role.ADMIN: ADMIN,
        Role.DISPATCH: bearer(center["api_key"]),
        Role.VOLUNTEER: bearer(volunteer_token),
    }
    checked = 0
    for method, path, handler in served_routes(client):
        roles = allowed_roles(handler)
        if roles is None:
            continue
        url = _PARAM.sub("no-such-id", path)
        resp = await client.request(method, url)
        assert resp.status == 401, (method, path, resp.status)
        assert (await resp.json())["error"]["code"] == "unauthorized"
        resp = await client.request(method, url, headers=bearer("dsp_unknown-token-xxxxxxxx"))
        assert resp.status == 401, (method, path)
        for role, headers in tokens.items():
            resp = await client.request(method, url, headers=headers)
            if role in roles:
                assert resp.status not in (401, 403), (method, path, role, resp.status)
            else:
                assert resp.status == 403, (method, path, role, resp.status)
                assert (await resp.json())["error"]["code"] == "forbidden"
        checked += 1
    assert checked >= 1
