"""Guidance participant tokens: derived, never stored in plain.

A 120 system that retries an alert must get the same plan, guidance token included, yet tokens
are stored hashed only. So a participant's token is not random: it is an HMAC-SHA256 of
"session_id:participant_id" under a key derived from the deployment's secret (the admin token),
and only its sha256 (rescue.auth.hash_token) is stored in guidance_participants.token_hash.
The token can be recomputed by the service, never by anyone without the secret, and a lookup
by hash finds the participant. Rotating RESCUE_ADMIN_TOKEN leaves issued tokens valid (their
hashes are stored) but a replay after the rotation would answer a token that does not match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_PREFIX = "gds"
_KEY_CONTEXT = b"rescue/guidance-participant-token/v1"


def derive_token_key(secret: str) -> bytes:
    """The HMAC key for participant tokens, derived from the deployment's secret."""
    return hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()


def participant_token(key: bytes, *, session_id: str, participant_id: str) -> str:
    """The bearer token of one guidance participant (the same every time it is derived)."""
    mac = hmac.new(key, f"{session_id}:{participant_id}".encode(), hashlib.sha256).digest()
    return f"{TOKEN_PREFIX}_{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
