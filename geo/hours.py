"""Opening hours in OpenStreetMap syntax, evaluated at a local wall-clock time.

Parsing and evaluation are done by opening-hours-py (a Rust implementation of the OSM
specification); this module adds caching, a readable error and the project's rule that an
"unknown" state counts as closed.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime

import opening_hours
from opening_hours import OpeningHours

__all__ = [
    "InvalidOpeningHours",
    "OpeningHours",
    "is_open",
    "parse_opening_hours",
    "validate_opening_hours",
]

# The parser's message is ascii art; these pick out the column and the "= expected ..." line.
_POSITION = re.compile(r"-->\s*\d+:(\d+)")
_HINT = re.compile(r"^\s*=\s*(.+)$", re.MULTILINE)
# The stub shipped with opening-hours-py omits ParserError although the module raises it.
_ParserError: type[Exception] = getattr(opening_hours, "ParserError", ValueError)


class InvalidOpeningHours(ValueError):
    """An opening_hours text that does not follow the OpenStreetMap syntax."""

    def __init__(self, expr: str, detail: str) -> None:
        self.expr = expr
        self.detail = detail
        super().__init__(f"invalid opening hours {expr!r}: {detail}")

    def __reduce__(self) -> tuple[type[InvalidOpeningHours], tuple[str, str]]:
        return type(self), (self.expr, self.detail)


def _describe(error: Exception) -> str:
    """One line out of the parser's multi-line, ascii-art message."""
    text = str(error)
    position = _POSITION.search(text)
    hint = _HINT.search(text)
    parts = []
    if position:
        parts.append(f"at column {position.group(1)}")
    if hint:
        parts.append(hint.group(1).strip())
    if parts:
        return ", ".join(parts)
    return text.strip().splitlines()[0] if text.strip() else "syntax error"


@functools.lru_cache(maxsize=4096)
def parse_opening_hours(expr: str) -> OpeningHours:
    """Parse an opening_hours text (cached: many AEDs share one), raising InvalidOpeningHours."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidOpeningHours(str(expr), "empty")
    try:
        return OpeningHours(expr)
    except _ParserError as error:
        raise InvalidOpeningHours(expr, _describe(error)) from None


def validate_opening_hours(expr: str) -> None:
    """Raise InvalidOpeningHours unless expr is valid OpenStreetMap opening_hours syntax."""
    parse_opening_hours(expr)


def is_open(expr: str, at_local: datetime) -> bool:
    """Whether the place is open at a naive local time; "unknown" counts as closed."""
    if at_local.tzinfo is not None:
        raise ValueError("at_local must be a naive local time in the deployment's zone")
    return parse_opening_hours(expr).is_open(at_local)
