"""The AED inventory's client-facing errors."""

from __future__ import annotations

import asyncpg

from rescue.errors import ApiError, conflict, not_found


def aed_not_found(aed_id: str) -> ApiError:
    """404 for an unknown AED id."""
    return not_found("AED", aed_id)


def serial_no_taken(serial_no: str | None) -> ApiError:
    """409: another AED already has this serial number."""
    return conflict("serial_no_taken", f"serial_no {serial_no!r} belongs to another AED")


def unique_violation(exc: asyncpg.UniqueViolationError, serial_no: str | None) -> ApiError:
    """The 409 for a unique constraint an AED write ran into."""
    if exc.constraint_name == "aeds_serial_no_key":
        return serial_no_taken(serial_no)
    return conflict("aed_conflict", "the AED conflicts with another one")
