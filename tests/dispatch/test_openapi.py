"""Every dispatch route (alerts, incidents, offers) is documented in rescue/openapi/dispatch.py."""

from __future__ import annotations

from aiohttp import web

from dispatch.offer_routes import routes as offer_routes
from dispatch.routes import routes as incident_routes
from rescue.openapi import dispatch as doc


def test_dispatch_routes_are_documented_and_nothing_more() -> None:
    served = {
        (route.method.lower(), route.path)
        for table in (incident_routes, offer_routes)
        for route in table
        if isinstance(route, web.RouteDef)
    }
    documented = {(method, path) for path, ops in doc.PATHS.items() for method in ops}
    assert served == documented
    assert len(served) == 8


def test_schema_references_resolve() -> None:
    from rescue.openapi import common

    names = set(doc.SCHEMAS) | set(common.SCHEMAS)

    def refs(node: object) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
            return found.union(*(refs(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(v) for v in node))
        return set()

    schema_refs = {r for r in refs(doc.PATHS) | refs(doc.SCHEMAS) if not r[0] == "E"}
    schema_refs -= {"crs", "limit", "cursor"}
    assert schema_refs <= names
