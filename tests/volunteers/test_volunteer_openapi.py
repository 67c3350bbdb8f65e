"""The volunteers' part of the OpenAPI document matches the routes served."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rescue.openapi import common
from rescue.openapi import volunteers as doc
from volunteers.channels import routes as channel_routes
from volunteers.routes import routes

METHODS = {"get", "post", "put", "patch", "delete"}


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        for value in node.values():
            found |= refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node)) if node else set()
    return set()


def test_every_route_is_documented_and_nothing_more() -> None:
    served = {
        (r.method.lower(), r.path)
        for r in [*routes, *channel_routes]
        if isinstance(r, web.RouteDef)
    }
    documented = {(m, p) for p, ops in doc.PATHS.items() for m in ops if m in METHODS}
    assert served == documented


def test_every_reference_resolves() -> None:
    known = (
        {f"#/components/schemas/{n}" for n in {**common.SCHEMAS, **doc.SCHEMAS}}
        | {f"#/components/responses/{n}" for n in common.RESPONSES}
        | {f"#/components/parameters/{n}" for n in common.PARAMETERS}
    )
    assert refs(doc.PATHS) | refs(doc.SCHEMAS) <= known


def test_schema_names_do_not_collide_with_the_shared_ones() -> None:
    assert not set(doc.SCHEMAS) & set(common.SCHEMAS)
