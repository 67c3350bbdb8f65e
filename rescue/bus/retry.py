"""Helpers of the bus's long-running loops: backoff, quiet outage logs, cancellation."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def raise_if_cancelling() -> None:
    """Re-raise a cancellation a library swallowed (Python 3.11's asyncio.wait_for can, when
    the awaited call finishes in the same instant), so a long-running loop still stops."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Backoff:
    """Exponential backoff with jitter, capped; reset after a success."""

    def __init__(self, *, base_s: float = 0.1, cap_s: float = 5.0) -> None:
        self._base = base_s
        self._cap = cap_s
        self._failures = 0

    def reset(self) -> None:
        """Forget the failures."""
        self._failures = 0

    def delay(self) -> float:
        """The next delay (counts a failure)."""
        self._failures += 1
        exp = self._base * float(2 ** min(self._failures - 1, 16))
        return min(self._cap, exp) * random.uniform(0.8, 1.0)

    async def sleep(self) -> None:
        """Wait the next delay."""
        await asyncio.sleep(self.delay())


class Outage:
    """Logs the first failure of a dependency as a warning, the repeats at debug, the recovery."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self.failures = 0

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self.failures > 0

    def failed(self, exc: BaseException) -> None:
        """Note a failure; an unexpected kind of error is logged with its traceback."""
        self.failures += 1
        if self.failures == 1:
            trace = None if is_outage(exc) else exc
            self._logger.warning(
                "%s: %s unavailable (%s); retrying", self._what, *_describe(exc), exc_info=trace
            )
        else:
            self._logger.debug("%s: still failing (%r)", self._what, exc)

    def recovered(self) -> None:
        """Note a success; logs once when it ends an outage."""
        if self.failures:
            self._logger.info("%s: recovered after %d failures", self._what, self.failures)
        self.failures = 0


def is_outage(exc: BaseException) -> bool:
    """Whether the error means a dependency is unreachable (rather than a bug)."""
    return isinstance(
        exc,
        RedisConnectionError
        | RedisTimeoutError
        | OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError,
    )


def _describe(exc: BaseException) -> tuple[str, str]:
    module = type(exc).__module__
    if module.startswith("redis"):
        dependency = "redis"
    elif module.startswith("asyncpg"):
        dependency = "postgresql"
    else:
        dependency = "a dependency"
    return dependency, f"{type(exc).__name__}: {exc}"


async def last_try(write: Callable[[], Awaitable[None]], log: logging.Logger, what: str) -> None:
    """Run a write once more while stopping, for at most a second; if it fails, log what is
    left undone (the bus delivers or publishes it again, at least once)."""
    try:
        async with asyncio.timeout(1.0):
            await write()
    except (Exception, asyncio.CancelledError) as exc:
        log.warning("bus: stopped with %s: %r", what, exc)
