"""The command line: `python -m rescue serve | migrate | demo load | demo run | aeds import`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from aiohttp import web

from rescue import db
from rescue.settings import Settings, SettingsError

logger = logging.getLogger(__name__)


def _settings(*, demo: bool = False, serving: bool = True) -> Settings:
    import os

    env = dict(os.environ)
    if demo:
        env["RESCUE_DEMO"] = "1"
    try:
        return Settings.from_env(env, require_admin_token=serving)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(settings: Settings) -> None:
    """Run the service in this process (gunicorn runs several: see the README)."""
    import uvloop

    from rescue.app import create_app
    from rescue.heap import settle_on_startup
    from rescue.logs import SafeAccessLogger

    app = create_app(settings=settings)
    app.on_startup.append(settle_on_startup)  # last, as the gunicorn workers do
    # The event loop the gunicorn workers run too (see BENCHMARKS.md for why uvloop).
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log_class=SafeAccessLogger,
        print=None,
        loop=uvloop.new_event_loop(),
    )


async def _migrate(settings: Settings) -> None:
    applied = await db.migrate_dsn(settings.database_url)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")


async def _demo_load(settings: Settings) -> None:
    from rescue.area import load_service_area
    from rescue.demo.loader import load_demo

    await db.migrate_dsn(settings.database_url)
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        report = await load_demo(pool, area=load_service_area())
    finally:
        await pool.close()
    print(f"demo data: {report}")


async def _aeds_import(settings: Settings, path: Path) -> int:
    from rescue.aeds.service import import_file
    from rescue.area import load_service_area

    await db.migrate_dsn(settings.database_url)
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        report = await import_file(pool, load_service_area(), settings, path)
    finally:
        await pool.close()
    print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    return 1 if report.get("rejected") else 0


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    from rescue.logs import configure_logging

    parser = argparse.ArgumentParser(prog="python -m rescue", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service (RESCUE_HOST, RESCUE_PORT)")
    commands.add_parser("migrate", help="create the database if missing and apply migrations")
    demo = commands.add_parser("demo", help="the embedded Qingdao demo")
    demo_commands = demo.add_subparsers(dest="demo_command", required=True)
    demo_commands.add_parser("load", help="load the synthetic demo data (idempotent)")
    demo_commands.add_parser(
        "run", help="migrate, load the demo if the inventory is empty, print tokens, serve"
    )
    aeds = commands.add_parser("aeds", help="the AED inventory")
    aed_commands = aeds.add_subparsers(dest="aeds_command", required=True)
    importer = aed_commands.add_parser("import", help="import AEDs from a CSV/GeoJSON/OSM file")
    importer.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    configure_logging()

    if args.command == "serve":
        serve(_settings())
    elif args.command == "migrate":
        asyncio.run(_migrate(_settings(serving=False)))
    elif args.command == "demo" and args.demo_command == "load":
        asyncio.run(_demo_load(_settings(demo=True)))
    elif args.command == "demo" and args.demo_command == "run":
        from rescue.demo.run import prepare_demo

        settings = _settings(demo=True)
        settings = asyncio.run(prepare_demo(settings))
        serve(settings)
    elif args.command == "aeds" and args.aeds_command == "import":
        if not args.file.is_file():
            print(f"error: no such file: {args.file}", file=sys.stderr)
            raise SystemExit(2)
        raise SystemExit(asyncio.run(_aeds_import(_settings(serving=False), args.file)))
