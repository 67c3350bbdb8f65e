"""`make run`: migrate, load the demo if the inventory is empty, issue demo tokens, say how."""

from __future__ import annotations

import sys

import asyncpg

from rescue import db
from rescue.area import load_service_area
from rescue.auth import hash_token
from rescue.centers.service import create_center, new_webhook_secret
from rescue.settings import Settings, generate_token

DEMO_CENTER_NAME = "青岛市急救中心 120 (demo)"
DEMO_VOLUNTEERS = 3


async def _demo_center(conn: asyncpg.Connection, settings: Settings) -> tuple[str, str]:
    """The demo dispatch center with a fresh API key (keys are stored hashed, so a new one)."""
    row = await conn.fetchrow("SELECT id FROM dispatch_centers WHERE name = $1", DEMO_CENTER_NAME)
    if row is None:
        center = await create_center(conn, name=DEMO_CENTER_NAME, callback_url=None)
        return center["id"], center["api_key"]
    api_key = generate_token("dsp")
    await conn.execute(
        "UPDATE dispatch_centers SET api_key_hash = $2, webhook_secret = $3 WHERE id = $1",
        row["id"],
        hash_token(api_key),
        new_webhook_secret(),
    )
    return row["id"], api_key


async def _demo_volunteer_tokens(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """Fresh tokens for a few active demo volunteers with valid certificates: (id, name, token)."""
    rows = await conn.fetch(
        """SELECT id, name FROM volunteers
           WHERE status = 'active' AND cert_expires_on > current_date + 30
             AND home_district = '370202'
           ORDER BY id LIMIT $1""",
        DEMO_VOLUNTEERS,
    )
    issued = []
    for row in rows:
        token = generate_token("vol")
        await conn.execute(
            "UPDATE volunteers SET token_hash = $2 WHERE id = $1", row["id"], hash_token(token)
        )
        issued.append((row["id"], row["name"], token))
    return issued


async def prepare_demo(settings: Settings) -> Settings:
    """Everything `make run` does before serving; prints the tokens and URLs to try."""
    from rescue.demo.loader import load_demo

    await db.migrate_dsn(settings.database_url)
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            empty = not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM aeds)")
        if empty:
            print("loading the synthetic Qingdao demo data ...", file=sys.stderr)
            report = await load_demo(pool, area=load_service_area())
            print(f"demo data loaded: {report}", file=sys.stderr)
        async with pool.acquire() as conn:
            center_id, api_key = await _demo_center(conn, settings)
            volunteers = await _demo_volunteer_tokens(conn)
    finally:
        await pool.close()
    base = settings.base_url
    lines = [
        "",
        "AED rescue network: synthetic Qingdao demo (1,983 AEDs, 110,000 volunteers)",
        f"  service         {base}   (health {base}/readyz, API {base}/openapi.json)",
        f"  consoles        {base}/ui/   (admin, dispatch, volunteer)",
        f"  admin token     {settings.admin_token}",
        f"  dispatch key    {api_key}   (center {center_id})",
    ]
    for vid, name, token in volunteers:
        lines.append(f"  volunteer token {token}   ({name}, {vid})")
    lines += [
        "",
        f"  export ADMIN={settings.admin_token} DISPATCH={api_key}",
        f'  curl -s -H "Authorization: Bearer $ADMIN" "{base}/v1/aeds?district=370202&limit=3"',
        "  (the README's tour has more)",
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
    return settings
