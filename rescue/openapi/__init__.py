"""The OpenAPI 3.1 document of the whole contract, assembled from one module per domain."""

from __future__ import annotations

import copy
import functools
from typing import Any

from rescue.openapi import aeds, callbacks, common, dispatch, guidance, ops, volunteers

# Each module contributes `PATHS` (path -> operations) and `SCHEMAS` (component schemas).
_MODULES: list[Any] = [ops, common, aeds, volunteers, dispatch, callbacks, guidance]


def register(module: Any) -> None:
    """Add a domain's module (its PATHS and SCHEMAS) to the document."""
    if module not in _MODULES:
        _MODULES.append(module)
        openapi_document.cache_clear()


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document served at /openapi.json."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for module in _MODULES:
        for path, operations in getattr(module, "PATHS", {}).items():
            paths.setdefault(path, {}).update(copy.deepcopy(operations))
        schemas.update(copy.deepcopy(getattr(module, "SCHEMAS", {})))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AED rescue network (5-minute rescue circle)",
            "version": "1.0.0",
            "description": (
                "The external contract between a 120 emergency center, certified volunteers' "
                "phones and administrators. Locations are WGS-84 unless `crs` says otherwise; "
                'every error is `{"error": {code, message, details}}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": common.AUTH_TEXT}
            },
            "schemas": schemas,
            "responses": common.RESPONSES,
            "parameters": common.PARAMETERS,
        },
    }
