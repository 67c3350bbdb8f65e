"""Loading the synthetic demo into PostgreSQL: idempotent, in one transaction, in seconds.

Rows are generated (in a thread: it is CPU work), copied in bulk into temporary tables and
inserted with ON CONFLICT DO NOTHING, so a second load creates nothing. Volunteers' tokens stay
NULL: `make run` issues a few on demand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass

import asyncpg

from geo import ServiceArea
from rescue.demo import queries
from rescue.demo.aeds import DemoAed, generate_aeds
from rescue.demo.constants import (
    AED_PREFIX,
    DEMO_SEED,
    VOLUNTEER_PREFIX,
    aed_id,
    id_prefix,
    volunteer_id,
)
from rescue.demo.volunteers import DemoVolunteer, generate_volunteers

logger = logging.getLogger(__name__)

__all__ = ["DemoCounts", "DemoReport", "demo_counts", "demo_loaded", "generate_demo", "load_demo"]


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What a load generated and what it actually created (0 on a second load)."""

    aeds_generated: int
    volunteers_generated: int
    aeds_created: int
    volunteers_created: int
    generate_s: float
    load_s: float

    def __str__(self) -> str:
        return (
            f"{self.aeds_created} of {self.aeds_generated} AEDs and {self.volunteers_created} of"
            f" {self.volunteers_generated} volunteers created (generated in"
            f" {self.generate_s:.1f} s, loaded in {self.load_s:.1f} s)"
        )


@dataclass(frozen=True, slots=True)
class DemoCounts:
    """How many demo rows the database holds."""

    aeds: int
    volunteers: int


def generate_demo(
    area: ServiceArea, *, seed: int = DEMO_SEED, today: dt.date | None = None
) -> tuple[list[DemoAed], list[DemoVolunteer]]:
    """The demo's AED and volunteer rows (pure, CPU-bound: about a second)."""
    return generate_aeds(area, seed=seed, today=today), generate_volunteers(seed=seed, today=today)


async def load_demo(
    pool_or_conn: asyncpg.Pool | asyncpg.Connection,
    *,
    area: ServiceArea,
    seed: int = DEMO_SEED,
    today: dt.date | None = None,
) -> DemoReport:
    """Generate the demo and insert what is missing, in one transaction."""
    started = time.perf_counter()
    aeds, volunteers = await asyncio.to_thread(generate_demo, area, seed=seed, today=today)
    generated = time.perf_counter()
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            created = await _insert(conn, aeds, volunteers)
    else:
        created = await _insert(pool_or_conn, aeds, volunteers)
    report = DemoReport(
        aeds_generated=len(aeds),
        volunteers_generated=len(volunteers),
        aeds_created=created[0],
        volunteers_created=created[1],
        generate_s=generated - started,
        load_s=time.perf_counter() - generated,
    )
    logger.info("demo data: %s", report)
    return report


async def _insert(
    conn: asyncpg.Connection, aeds: list[DemoAed], volunteers: list[DemoVolunteer]
) -> tuple[int, int]:
    async with conn.transaction():
        await conn.execute(queries.CREATE_AED_STAGE)
        await conn.execute(queries.CREATE_VOLUNTEER_STAGE)
        await conn.copy_records_to_table(
            queries.AED_STAGE, records=aeds, columns=queries.AED_COLUMNS
        )
        await conn.copy_records_to_table(
            queries.VOLUNTEER_STAGE, records=volunteers, columns=queries.VOLUNTEER_COLUMNS
        )
        aeds_created = _row_count(await conn.execute(queries.INSERT_AEDS))
        volunteers_created = _row_count(await conn.execute(queries.INSERT_VOLUNTEERS))
        if aeds_created or volunteers_created:
            await conn.execute(queries.ANALYZE)
    return aeds_created, volunteers_created


def _row_count(status: str) -> int:
    """The row count of a command tag such as 'INSERT 0 1983'."""
    return int(status.rsplit(" ", 1)[-1])


async def demo_loaded(conn: asyncpg.Connection) -> bool:
    """Whether the demo has been loaded (its first AED and first volunteer exist)."""
    return bool(await conn.fetchval(queries.DEMO_PRESENT, aed_id(0), volunteer_id(0)))


async def demo_counts(conn: asyncpg.Connection) -> DemoCounts:
    """How many demo AEDs and volunteers (by their ids) the database holds."""
    aeds = await conn.fetchval(queries.COUNT_AEDS, id_prefix(AED_PREFIX) + "%")
    volunteers = await conn.fetchval(queries.COUNT_VOLUNTEERS, id_prefix(VOLUNTEER_PREFIX) + "%")
    return DemoCounts(aeds=int(aeds), volunteers=int(volunteers))
