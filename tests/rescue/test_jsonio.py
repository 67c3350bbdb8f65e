"""The fast JSON of the busy paths writes what the standard library wrote, compactly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import pytest

from rescue import jsonio

PAYLOAD = {
    "id": "inc_01",
    "name": "市南区 AED 3",
    "lat": 36.0671,
    "eta_s": 212,
    "ok": True,
    "none": None,
    "list": [1, 2.5, "x", {"nested": [False]}],
}


def test_compact_utf8_as_the_standard_library_wrote_it() -> None:
    expected = json.dumps(PAYLOAD, ensure_ascii=False, separators=(",", ":"))
    assert jsonio.dumps_text(PAYLOAD) == expected
    assert jsonio.dumps(PAYLOAD) == expected.encode()
    assert jsonio.loads(jsonio.dumps(PAYLOAD)) == PAYLOAD


def test_datetimes_go_to_default_as_before() -> None:
    at = dt.datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=dt.UTC)
    value = {"at": at, "day": dt.date(2026, 12, 6)}
    assert jsonio.dumps_text(value, default=str) == json.dumps(
        value, default=str, separators=(",", ":")
    )
    with pytest.raises(TypeError):
        jsonio.dumps({"at": at})


def test_what_json_could_not_encode_is_still_an_error() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    with pytest.raises(TypeError):
        jsonio.dumps(Point(1))
    with pytest.raises(TypeError):
        jsonio.dumps({"s": {1, 2}})


def test_keys_that_are_not_strings_are_written_as_strings() -> None:
    assert jsonio.dumps_text({1: "a", "b": 2}) == json.dumps(
        {1: "a", "b": 2}, separators=(",", ":")
    )


def test_integers_beyond_64_bits_are_written_as_the_standard_library_wrote_them() -> None:
    value = {"big": 2**70, "small": -(2**64), "名": [1]}
    assert jsonio.dumps_text(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    with pytest.raises(TypeError):
        jsonio.dumps({"big": 2**70, "at": dt.datetime.now(dt.UTC)})


def test_a_non_finite_float_is_null() -> None:
    assert jsonio.dumps_text({"v": math.nan, "w": math.inf}) == '{"v":null,"w":null}'
