"""The demo's fixed seed, sizes and deterministic ids."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from rescue.demo.districts import AED_COUNT, PLANS
from rescue.ids import seeded_id

__all__ = [
    "AED_COUNT",
    "AED_PREFIX",
    "AT_MS",
    "DEMO_SEED",
    "DISTRICT_SHARES",
    "VOLUNTEER_COUNT",
    "VOLUNTEER_PREFIX",
    "aed_id",
    "demo_today",
    "id_prefix",
    "volunteer_id",
    "volunteer_index",
]

DEMO_SEED = 1983
VOLUNTEER_COUNT = 110_000
# The fixed time part of every demo id (2025-01-01T00:00:00+08:00): the same ids on every load.
AT_MS = 1_735_660_800_000
AED_PREFIX = "aed"
VOLUNTEER_PREFIX = "vol"
ZONE = ZoneInfo("Asia/Shanghai")

# Each district's share of the AEDs; volunteers' home districts follow the same weights.
DISTRICT_SHARES: dict[str, float] = {plan.adcode: plan.aeds / AED_COUNT for plan in PLANS}

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_COUNTER_BITS = 80


def demo_today() -> dt.date:
    """Today in Qingdao: the demo's dates (expiries, inspections) are relative to it."""
    return dt.datetime.now(ZONE).date()


def aed_id(index: int) -> str:
    """The id of the demo AED number `index` (0-based)."""
    return seeded_id(AED_PREFIX, AT_MS, index + 1)


def volunteer_id(index: int) -> str:
    """The id of the demo volunteer number `index` (0-based)."""
    return seeded_id(VOLUNTEER_PREFIX, AT_MS, index + 1)


def id_prefix(prefix: str) -> str:
    """The text every demo id of this kind starts with (prefix and fixed time part)."""
    # 26 characters carry 130 bits; the low 80 (16 characters) are the counter.
    return seeded_id(prefix, AT_MS, 0)[: -(_COUNTER_BITS // 5)]


def volunteer_index(volunteer: int | str) -> int:
    """The 0-based index of a demo volunteer given by index or id; ValueError if not one."""
    if isinstance(volunteer, int):
        index = volunteer
    else:
        head = id_prefix(VOLUNTEER_PREFIX)
        tail = volunteer[len(head) :]
        if not volunteer.startswith(head) or len(tail) != _COUNTER_BITS // 5:
            raise ValueError(f"not a demo volunteer id: {volunteer!r}")
        value = 0
        for char in tail:
            digit = _ALPHABET.find(char)
            if digit < 0:
                raise ValueError(f"not a demo volunteer id: {volunteer!r}")
            value = value * 32 + digit
        index = value - 1
    if not 0 <= index < VOLUNTEER_COUNT:
        raise ValueError(f"no demo volunteer number {index}")
    return index
