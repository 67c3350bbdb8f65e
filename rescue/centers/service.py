"""Dispatch centers: the 120 emergency centers that raise alerts."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import asyncpg

from rescue.auth import hash_token
from rescue.centers import queries
from rescue.ids import new_id
from rescue.settings import generate_token


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_center(
    conn: asyncpg.Connection, *, name: str, callback_url: str | None
) -> dict[str, Any]:
    """Create a center; its API key and webhook secret are returned this once."""
    api_key = generate_token("dsp")
    secret = new_webhook_secret()
    row = await conn.fetchrow(
        queries.INSERT_CENTER, new_id("dc"), name, callback_url, hash_token(api_key), secret
    )
    return {**dict(row), "api_key": api_key, "webhook_secret": secret}


async def get_center(conn: asyncpg.Connection, center_id: str) -> asyncpg.Record | None:
    """A center with its webhook secret (for signing callbacks), or None."""
    return await conn.fetchrow(queries.GET_CENTER, center_id)
