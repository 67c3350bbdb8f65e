"""Opaque, time-sortable identifiers: `<prefix>_<26 Crockford base32 chars>` (ULID layout)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str, *, at_ms: int | None = None) -> str:
    """A new id sorting by creation time: 48 bits of milliseconds, 80 random bits."""
    ms = int(time.time() * 1000) if at_ms is None else at_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(value, 26)}"


def seeded_id(prefix: str, at_ms: int, n: int) -> str:
    """A deterministic id for generated data (the demo): time part plus a counter."""
    return f"{prefix}_{_encode((at_ms << 80) | n, 26)}"
