"""Keeping tokens out of the access log: a phone's WebSocket may carry its token as `?token=`.

`rescue.logs.SafeAccessLogger` covers `python -m rescue` (run_app's access_log_class). This
module covers every other runner (aiohttp's default AccessLogger in tests, gunicorn's aiohttp
worker, which cannot be given a logger class): a filter on the `aiohttp.access` and
`gunicorn.access` loggers redacts whatever access line reaches them.
"""

from __future__ import annotations

import logging
import re

_SECRET_RE = re.compile(r"((?:^|[?&;])(?:access_)?token=)[^&;\s\"']*", re.IGNORECASE)
_MARK = "[redacted]"
ACCESS_LOGGERS = ("aiohttp.access", "gunicorn.access")


def redact(text: str) -> str:
    """The text with the value of every `token=` query parameter replaced."""
    if "token=" not in text.lower():
        return text
    return _SECRET_RE.sub(lambda m: m.group(1) + _MARK, text)


class RedactTokens(logging.Filter):
    """Redacts `token=` values in a record's message, arguments and request-line extra."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        line = getattr(record, "first_request_line", None)
        if isinstance(line, str):
            record.first_request_line = redact(line)
        return True


_FILTER = RedactTokens()


def install_log_redaction() -> None:
    """Add the redacting filter to the access loggers (idempotent, process-wide)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
