"""Background work waits for the alerts in flight on its worker (cooperatively, within a bound).

A worker's event loop runs its requests and its background work (escalation waves, the bus's
consumers, callbacks) in turn: whenever an alert awaits Redis or PostgreSQL, the loop runs what
else is ready, and an alert whose reply has arrived resumes only once that piece of work
yields. A wave's pieces (its search at the wider reach, its plan) take milliseconds of CPU, so
an alert that happened to await while a wave was ready came back late by one of them: the
paced phases' slowest alerts were those sent while the waves ran.

Before such a piece, background work calls `await foreground.idle()`: it returns at once when
no alert is in flight on this worker, else when the last one finishes, or after `max_wait_s`
at most, so that a steady stream of alerts delays background work by a bounded amount and
never stops it. An alert marks itself in flight with `with foreground.busy():`. Background work
here: a wave's pieces (dispatch.escalation), each read of a bus consumer (rescue.bus), each
callback POST (dispatch.callback_sender).

A phone's position update (volunteers.routes, `PUT /v1/me/location`) calls `await
foreground.current()` instead: it waits only for the alerts in flight when it came (the same
bound), not for the worker to have none. It is one of thousands a second, each superseded by
the next, and its body's parsing, checks, Redis write and response are work an alert would
otherwise wait behind; but with alerts back to back on its worker, waiting for none would hold
every update for the whole bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

# The longest a piece of background work waits for the alerts in flight: an alert takes ~10 ms
# of its worker's time; a steady stream of them delays each piece by this, never stops it.
MAX_WAIT_S = 0.02


class Foreground:
    """The alerts in flight on this worker; waits for there to be none (idle) or for those in
    flight now to end (current)."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S) -> None:
        self.max_wait_s = max_wait_s
        # One future per alert in flight, done when it ends (idle() and current() wait for them).
        self._alerts: set[asyncio.Future[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._alerts)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark one alert in flight for the block's duration."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._alerts.add(ended)
        try:
            yield
        finally:
            self._alerts.discard(ended)
            ended.set_result(None)

    async def idle(self) -> bool:
        """Wait until no alert is in flight, `max_wait_s` at most; whether none is.

        Always yields to the event loop once, as `asyncio.sleep(0)` would, so that what is
        ready (an alert's resumption first of all) runs before the caller's next piece.
        """
        await asyncio.sleep(0)
        if self._alerts:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_wait_s):
                    while self._alerts:  # those in flight now, then any started meanwhile
                        await asyncio.wait(list(self._alerts))
        return not self._alerts

    async def current(self) -> bool:
        """Wait until the alerts in flight now have ended (not those that start meanwhile),
        `max_wait_s` at most; whether they have. Returns at once when none is in flight."""
        if not self._alerts:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait_s):
                await asyncio.wait(list(self._alerts))
                return True
        return False
