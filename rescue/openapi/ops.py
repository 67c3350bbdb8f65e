"""OpenAPI of the operations endpoints (unauthenticated)."""

from __future__ import annotations

from typing import Any

from rescue.openapi.common import json_body

_PUBLIC: list[dict[str, list[str]]] = []

PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness.",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": {"200": json_body({"type": "object"}, '`{"status": "ok"}`')},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: PostgreSQL and Redis answer.",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": {
                "200": json_body({"type": "object"}, "Ready, with each check."),
                "503": json_body({"type": "object"}, "Not ready; names the failing check."),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics of the answering worker.",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1.")},
        }
    },
}
