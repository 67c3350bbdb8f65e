"""JSON on the service's busy paths (the alert's statement and response, the bus's events, the
callbacks' queued payloads, the phones' and the guidance sockets' messages), through orjson, a
C encoder and decoder several times the standard library's speed: in process, an alert's draft,
statement and rendering took 0.15-0.2 ms less (BENCHMARKS.md, session 15).

Output is compact UTF-8, as `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` wrote
it (Chinese names are not escaped; responses, written with the default separators before, are
now compact too). As with `json.dumps`, a value it cannot encode raises
TypeError (orjson's error is one): datetimes and dataclasses go to `default`, which callers that
passed `default=str` still pass, instead of orjson's own rules for them; keys that are not
strings are written as strings. An integer beyond 64 bits, which orjson refuses (a client's
free-form guidance `signal` may carry one), is written by the standard library instead. Unlike
`json.dumps`, a non-finite float is written `null` (`json.dumps` wrote `NaN`, which is not JSON,
and which PostgreSQL refuses). `loads` reads an integer beyond 64 bits as a float: nothing the
service stores or streams holds one (the integers it takes are bounded where validated).

Left on the standard library: the check of an event's data where it is made (`new_event`: a
non-finite float is an error there), the callbacks' bodies (their signed bytes keep their
spacing), the alert's request hash (`sort_keys`; it must not change between versions), request
bodies (their error messages), and what runs once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
)

loads = orjson.loads


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """The value as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits, or what json.dumps refuses too (then it raises).
        text = json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))
        return text.encode()


def dumps_text(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """The value as compact JSON text."""
    return dumps(value, default=default).decode()
