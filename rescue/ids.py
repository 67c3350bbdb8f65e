"""Opaque, time-sortable identifiers: `<prefix>_<26 Crockford base32 chars>` (ULID layout)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# Every pair of digits, by the value of its ten bits: an id is 13 look-ups.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = range(120, -10, -10)


def _encode(value: int) -> str:
    """A value below 2**128 as 26 base-32 digits, most significant first (130 bits, the first
    two zero), ten bits at a time: an alert makes about 15 ids, and the loop of 26 divmods on
    a 128-bit int this replaced cost more than twice as much."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(prefix: str, *, at_ms: int | None = None) -> str:
    """A new id sorting by creation time: 48 bits of milliseconds, 80 random bits."""
    ms = int(time.time() * 1000) if at_ms is None else at_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(value)}"


def seeded_id(prefix: str, at_ms: int, n: int) -> str:
    """A deterministic id for generated data (the demo): time part plus a counter."""
    return f"{prefix}_{_encode((at_ms << 80) | n)}"
