"""Identifiers: the ULID layout, in Crockford's base32, sorting by time."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from rescue.ids import new_id, seeded_id

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def digits(value: int) -> str:
    """The reference: 26 base-32 digits of value, most significant first."""
    out = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        out.append(ALPHABET[rem])
    return "".join(reversed(out))


@given(st.integers(min_value=0, max_value=2**48 - 1), st.integers(min_value=0, max_value=2**80 - 1))
def test_seeded_id_is_the_values_26_digits(at_ms: int, n: int) -> None:
    assert seeded_id("x", at_ms, n) == "x_" + digits((at_ms << 80) | n)


def test_the_extremes_and_a_known_id() -> None:
    assert seeded_id("vol", 0, 0) == "vol_" + "0" * 26
    assert seeded_id("vol", 2**48 - 1, 2**80 - 1) == "vol_7" + "z" * 25
    # 2025-01-01T00:00:00Z, counter 1, as the divmod loop before it gave.
    assert seeded_id("vol", 1_735_689_600_000, 1) == "vol_01jgfjjz000000000000000001"


def test_new_ids_sort_by_their_millisecond_and_are_distinct() -> None:
    stamps = sorted(random.Random(7).sample(range(2**40, 2**47), 200))
    ids = [new_id("evt", at_ms=ms) for ms in stamps]
    assert sorted(ids) == ids
    assert all(len(i) == 30 and set(i[4:]) <= set(ALPHABET) for i in ids)
    assert len({new_id("evt", at_ms=stamps[0]) for _ in range(1000)}) == 1000
    # The time part is the id's first ten digits.
    assert all(i[4:14] == digits(ms << 80)[:10] for i, ms in zip(ids, stamps, strict=True))
