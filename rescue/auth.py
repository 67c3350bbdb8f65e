"""Bearer tokens: who is calling, and whether that role may do this."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from aiohttp import web

from rescue.errors import ApiError

# Positive lookups are cached so a phone's position updates do not query PostgreSQL (a 10 s
# TTL made every active token miss every 10 s: ~9 % of a worker under 3,000 updates/s).
# Revocation does not wait for the TTL: rotation forgets the entry here and publishes it to
# the other workers (volunteers.channels, Redis pub/sub -> Authenticator.forget_subject). The
# TTL only bounds a revocation that was not heard (Redis down at rotation, a worker
# resubscribing at that moment).
_CACHE_TTL_S = 300.0
_CACHE_MAX = 200_000


class Role(enum.StrEnum):
    """The three kinds of caller."""

    ADMIN = "admin"
    DISPATCH = "dispatch"
    VOLUNTEER = "volunteer"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    role: Role
    id: str


def hash_token(token: str) -> bytes:
    """The stored form of a token (SHA-256: tokens are long random strings, not passwords)."""
    return hashlib.sha256(token.encode()).digest()


_LOOKUPS = {
    Role.DISPATCH: "SELECT id FROM dispatch_centers WHERE api_key_hash = $1",
    Role.VOLUNTEER: "SELECT id FROM volunteers WHERE token_hash = $1",
}


class Authenticator:
    """Resolves bearer tokens to principals."""

    def __init__(self, *, admin_token: str, pool: asyncpg.Pool) -> None:
        self._admin_hash = hash_token(admin_token)
        self._pool = pool
        # Keyed by the raw token, so a cached token costs one dict lookup and no SHA-256 (~1 %
        # of a worker under position updates). Revocation names the stored hash, so each
        # entry's hash maps back to its token and forgetting the hash drops the entry at once.
        self._cache: dict[str, tuple[float, Principal, bytes]] = {}
        self._token_of_hash: dict[bytes, str] = {}
        # Bumped by every revocation: a look-up that was in flight across one (it may have read
        # the token before the rotation committed) answers but does not cache what it read.
        self._revocations = 0
        # One look-up per token at a time: the requests that miss while it runs (a phone's
        # burst, every phone at once after a reconnect or a restart) wait for its answer.
        self._inflight: dict[str, asyncio.Task[Principal | None]] = {}

    def forget(self, token_hash: bytes) -> None:
        """Drop a cached token (after rotation)."""
        self._revoked()
        token = self._token_of_hash.pop(token_hash, None)
        if token is not None:
            self._cache.pop(token, None)

    def forget_subject(self, subject_id: str) -> None:
        """Drop every cached token of a subject."""
        self._revoked()
        for token in [t for t, (_, p, _) in self._cache.items() if p.id == subject_id]:
            _, _, digest = self._cache.pop(token)
            self._token_of_hash.pop(digest, None)

    def _revoked(self) -> None:
        self._revocations += 1
        # A request from now on must not take the answer of a look-up that began before.
        self._inflight.clear()

    async def resolve(self, token: str) -> Principal | None:
        """The principal a token belongs to, or None."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        digest = hash_token(token)
        if hmac.compare_digest(digest, self._admin_hash):
            return Principal(Role.ADMIN, "admin")  # never cached: returns before the cache
        lookup = self._inflight.get(token)
        if lookup is None:
            # A task of its own: a caller that gives up (its client went away) does not cancel
            # the answer the others wait for.
            lookup = asyncio.create_task(self._lookup(token, digest, now))
            self._inflight[token] = lookup
            lookup.add_done_callback(lambda done: self._done(token, done))
        return await asyncio.shield(lookup)

    def _done(self, token: str, lookup: asyncio.Task[Principal | None]) -> None:
        if self._inflight.get(token) is lookup:
            del self._inflight[token]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: every caller may have gone

    async def _lookup(self, token: str, digest: bytes, now: float) -> Principal | None:
        revocations = self._revocations
        prefix = token.split("_", 1)[0]
        roles = {"dsp": [Role.DISPATCH], "vol": [Role.VOLUNTEER]}.get(
            prefix, [Role.DISPATCH, Role.VOLUNTEER]
        )
        async with self._pool.acquire() as conn:
            for role in roles:
                subject = await conn.fetchval(_LOOKUPS[role], digest)
                if subject is not None:
                    principal = Principal(role, subject)
                    if revocations != self._revocations:
                        return principal
                    if len(self._cache) >= _CACHE_MAX:
                        self._cache.clear()
                        self._token_of_hash.clear()
                    # Jittered, so the tokens cached together do not all expire together.
                    ttl = _CACHE_TTL_S * (0.9 + 0.2 * random.random())
                    self._cache[token] = (now + ttl, principal, digest)
                    self._token_of_hash[digest] = token
                    return principal
        return None


def bearer_token(request: web.Request) -> str | None:
    """The token from `Authorization: Bearer`, or `?token=` on a WebSocket upgrade."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return request.query.get("token") or None
    return None


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)


def requires(*roles: Role) -> Callable[[H], H]:
    """Mark a handler with the roles allowed to call it (enforced by the auth middleware)."""

    def mark(handler: H) -> H:
        handler.__dict__["allowed_roles"] = frozenset(roles)
        return handler

    return mark


def allowed_roles(handler: Any) -> frozenset[Role] | None:
    """The roles a handler allows, None when it is public."""
    return getattr(handler, "allowed_roles", None)


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller of a handler that requires a role."""
    return request[PRINCIPAL]


def unauthorized() -> ApiError:
    """401: no token, or a token this service does not know."""
    return ApiError(
        401,
        "unauthorized",
        "a valid bearer token is required",
        headers={"WWW-Authenticate": 'Bearer realm="rescue"'},
    )


def forbidden(message: str = "this token's role may not do this") -> ApiError:
    """403: a valid token of the wrong role, or an action this principal may not take."""
    return ApiError(403, "forbidden", message)
