"""Background work waits for the alerts in flight on its worker, within a bound."""

from __future__ import annotations

import asyncio

from rescue.foreground import Foreground


async def test_idle_at_once_when_no_alert_is_in_flight() -> None:
    assert await Foreground(max_wait_s=60).idle() is True


async def test_idle_waits_for_the_last_alert_in_flight() -> None:
    foreground = Foreground(max_wait_s=60)
    with foreground.busy():
        with foreground.busy():
            waiter = asyncio.create_task(foreground.idle())
            done, _ = await asyncio.wait({waiter}, timeout=0.05)
            assert not done
        assert foreground.in_flight == 1
        done, _ = await asyncio.wait({waiter}, timeout=0.05)
        assert not done  # one still in flight
    assert await waiter is True
    assert foreground.in_flight == 0


async def test_idle_gives_up_after_its_bound() -> None:
    foreground = Foreground(max_wait_s=0.01)
    with foreground.busy():
        assert await foreground.idle() is False
    assert await foreground.idle() is True


async def test_an_alert_that_fails_is_no_longer_in_flight() -> None:
    foreground = Foreground(max_wait_s=60)
    try:
        with foreground.busy():
            raise ValueError("conflict")
    except ValueError:
        pass
    assert foreground.in_flight == 0
    assert await foreground.idle() is True


async def test_current_at_once_when_no_alert_is_in_flight() -> None:
    assert await Foreground(max_wait_s=60).current() is True


async def test_current_waits_for_the_alerts_in_flight_then_not_for_later_ones() -> None:
    foreground = Foreground(max_wait_s=60)
    first = foreground.busy()
    first.__enter__()
    waiter = asyncio.create_task(foreground.current())
    done, _ = await asyncio.wait({waiter}, timeout=0.05)
    assert not done
    with foreground.busy():  # began after the waiter: not waited for
        first.__exit__(None, None, None)
        assert await asyncio.wait_for(waiter, timeout=30) is True
        assert foreground.in_flight == 1


async def test_current_gives_up_after_its_bound() -> None:
    foreground = Foreground(max_wait_s=0.01)
    with foreground.busy():
        assert await foreground.current() is False
    assert await foreground.current() is True
