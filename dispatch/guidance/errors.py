"""Errors of guidance sessions: HTTP ones before the socket opens, message ones after."""

from __future__ import annotations

from rescue.errors import ApiError


class GuidanceError(Exception):
    """A client message refused; answered as {"type": "error", "error": {code, message}}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        """The error message sent on the socket."""
        return {"type": "error", "error": {"code": self.code, "message": self.message}}


class SessionClosed(GuidanceError):
    """The session's incident was closed or cancelled."""

    def __init__(self) -> None:
        super().__init__("session_closed", "the session is closed: its incident has ended")


def session_token_required() -> ApiError:
    """401: no guidance token, or one this service does not know."""
    return ApiError(
        401,
        "unauthorized",
        "a guidance session token is required (the plan's or the accepted offer's "
        "guidance.token), as `Authorization: Bearer` or, on the WebSocket, `?token=`",
        headers={"WWW-Authenticate": 'Bearer realm="rescue-guidance"'},
    )


def not_this_session() -> ApiError:
    """403: a valid token that is not a participant's of this session."""
    return ApiError(403, "forbidden", "this token is not a participant's of this session")
