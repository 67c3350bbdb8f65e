"""A real 120-center callback receiver for tests: verifies signatures, records what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from dispatch.signing import SignatureError, verify

PATH = "/120/callbacks"


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and what it answered."""

    headers: dict[str, str]
    body: bytes
    status: int
    problem: str | None

    @property
    def webhook_id(self) -> str | None:
        """The webhook-id header."""
        return self.headers.get("webhook-id")

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class Receiver:
    """The 120 center's endpoint: 204 for a well-signed callback, 401 otherwise, 503 on demand.

    `events` holds the accepted callbacks' bodies in arrival order; `requests` every request.
    Set `secret` (the center's webhook secret) before callbacks arrive.
    """

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.events: list[dict[str, Any]] = []
        self.requests: list[Received] = []
        self._fail_next = 0
        self._fail_numbers: set[int] = set()
        self._fail_status = 503
        self._server: TestServer | None = None
        self._changed = asyncio.Event()

    def fail_next(self, count: int, *, status: int = 503) -> None:
        """Answer the next `count` requests with `status` (before looking at them)."""
        self._fail_next = count
        self._fail_status = status

    def fail_requests(self, *numbers: int, status: int = 503) -> None:
        """Answer the requests of these numbers (1 the first this receiver gets) with `status`."""
        self._fail_numbers.update(numbers)
        self._fail_status = status

    @property
    def url(self) -> str:
        """The callback URL to give the dispatch center."""
        assert self._server is not None, "start() the receiver first"
        return str(self._server.make_url(PATH))

    @property
    def event_ids(self) -> list[str]:
        """Ids of the accepted callbacks, in arrival order."""
        return [e["id"] for e in self.events]

    async def start(self) -> Receiver:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post(PATH, self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            await self._server.close()

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` callbacks were accepted; the accepted callbacks."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{len(self.events)} of {count} callbacks arrived in {timeout} s: "
                    f"{[(r.status, r.problem) for r in self.requests]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return list(self.events)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, problem = 204, None
        if self._fail_next > 0 or len(self.requests) + 1 in self._fail_numbers:
            self._fail_next = max(self._fail_next - 1, 0)
            status, problem = self._fail_status, "told to fail"
        elif self.secret is None:
            status, problem = 500, "the receiver has no secret"
        else:
            try:
                verify(self.secret, request.headers, body)
            except SignatureError as exc:
                status, problem = 401, str(exc)
        self.requests.append(Received(headers, body, status, problem))
        if status == 204:
            self.events.append(json.loads(body))
        self._changed.set()
        if status == 204:
            return web.Response(status=204)
        return web.json_response({"error": problem}, status=status)
