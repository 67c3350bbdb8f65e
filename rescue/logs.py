"""Logging set-up, and an access log that never prints a token."""

from __future__ import annotations

import logging
import re

from aiohttp.web_log import AccessLogger

_TOKEN_QUERY = re.compile(r"([?&]token=)[^&\s]*", re.IGNORECASE)


def scrub(text: str) -> str:
    """Replace `token=` query values (WebSocket tokens) with a placeholder."""
    return _TOKEN_QUERY.sub(r"\1[redacted]", text)


class SafeAccessLogger(AccessLogger):
    """aiohttp's access logger with `?token=` values redacted from every logged field."""

    def _format_line(self, request, response, time):  # type: ignore[no-untyped-def]
        return [
            (key, scrub(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]


def configure_logging(level: str = "INFO") -> None:
    """Plain, timestamped log lines on stderr."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
