"""Every route of guidance, reports and missions is documented in rescue/openapi/guidance.py."""

from __future__ import annotations

from aiohttp import web

from dispatch.guidance.routes import routes as guidance_routes
from dispatch.mission_routes import routes as mission_routes
from dispatch.reports import routes as report_routes
from rescue.openapi import common, dispatch
from rescue.openapi import guidance as doc


def test_routes_are_documented_and_nothing_more() -> None:
    served = {
        (route.method.lower(), route.path)
        for table in (guidance_routes, report_routes, mission_routes)
        for route in table
        if isinstance(route, web.RouteDef)
    }
    documented = {(method, path) for path, ops in doc.PATHS.items() for method in ops}
    assert served == documented
    assert len(served) == 13


def test_schema_references_resolve() -> None:
    names = set(doc.SCHEMAS) | set(common.SCHEMAS) | set(dispatch.SCHEMAS)

    def refs(node: object) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
            return found.union(*(refs(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(v) for v in node))
        return set()

    found = refs(doc.PATHS) | refs(doc.SCHEMAS)
    found -= set(common.RESPONSES) | set(common.PARAMETERS)
    assert found <= names, found - names
