"""The JSON error edge: one exception type for every client-facing error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem with one field of the input."""

    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        """The API's `details` entry."""
        return {"field": self.field, "problem": self.problem}


class ApiError(Exception):
    """An error answered to the client as `{"error": {code, message, details}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Iterable[Problem] = (),
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON body of the error response."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": [d.as_dict() for d in self.details],
            }
        }


def invalid(field: str, problem: str, *, code: str = "invalid_input") -> ApiError:
    """A 400 about one field."""
    return ApiError(400, code, f"{field}: {problem}", [Problem(field, problem)])


def invalid_many(problems: list[Problem]) -> ApiError:
    """A 400 listing every bad field."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ApiError(400, "invalid_input", f"{first.field}: {first.problem}{more}", problems)


def not_found(what: str, ident: str) -> ApiError:
    """A 404 for a missing resource."""
    return ApiError(404, "not_found", f"{what} {ident!r} does not exist")


def conflict(code: str, message: str) -> ApiError:
    """A 409: the request conflicts with the current state."""
    return ApiError(409, code, message)


def unavailable(dependency: str, retry_after_s: int = 5) -> ApiError:
    """A 503: a dependency is down."""
    return ApiError(
        503,
        f"{dependency}_unavailable",
        f"{dependency} is unavailable, retry shortly",
        headers={"Retry-After": str(retry_after_s)},
    )
