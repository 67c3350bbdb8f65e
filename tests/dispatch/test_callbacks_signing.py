"""Standard Webhooks signing and verification, and the pure parts of the callbacks."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from dispatch.callback_sender import backoff_s, callback_body
from dispatch.callbacks import event_stage, event_time, is_callback_event
from dispatch.signing import SignatureError, sign, signed_headers, verify

# The test vector of the Standard Webhooks reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def vector_headers(signature: str = EXPECTED) -> dict[str, str]:
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": signature,
    }


def test_sign_reproduces_the_reference_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_the_whsec_prefix_is_optional() -> None:
    assert sign(SECRET.removeprefix("whsec_"), MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_signed_headers_carry_id_timestamp_and_signature() -> None:
    assert signed_headers(SECRET, MSG_ID, TIMESTAMP, BODY) == vector_headers()


def test_verify_accepts_the_reference_vector() -> None:
    verify(SECRET, vector_headers(), BODY, now=TIMESTAMP)
    verify(SECRET, vector_headers(), BODY.decode(), now=TIMESTAMP + 299)


def test_verify_accepts_one_good_signature_among_several() -> None:
    others = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavX="
    verify(SECRET, vector_headers(f"{others} {EXPECTED}"), BODY, now=TIMESTAMP)


def test_verify_reads_header_names_in_any_case() -> None:
    headers = {k.title(): v for k, v in vector_headers().items()}
    verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_a_tampered_body_fails() -> None:
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(SECRET, vector_headers(), b'{"test": 2432232315}', now=TIMESTAMP)


def test_a_wrong_secret_fails() -> None:
    other = "whsec_" + "A" * 43 + "="
    with pytest.raises(SignatureError, match="no matching signature"):
        verify(other, vector_headers(), BODY, now=TIMESTAMP)


def test_a_changed_id_or_timestamp_fails() -> None:
    headers = {**vector_headers(), "webhook-id": "msg_other"}
    with pytest.raises(SignatureError):
        verify(SECRET, headers, BODY, now=TIMESTAMP)
    headers = {**vector_headers(), "webhook-timestamp": str(TIMESTAMP + 1)}
    with pytest.raises(SignatureError):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_a_signature_of_another_version_fails() -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, vector_headers(EXPECTED.replace("v1,", "v2,")), BODY, now=TIMESTAMP)


def test_an_old_or_future_timestamp_fails() -> None:
    with pytest.raises(SignatureError, match="too old"):
        verify(SECRET, vector_headers(), BODY, now=TIMESTAMP + 301)
    with pytest.raises(SignatureError, match="too new"):
        verify(SECRET, vector_headers(), BODY, now=TIMESTAMP - 301)
    with pytest.raises(SignatureError, match="too old"):
        verify(SECRET, vector_headers(), BODY, now=TIMESTAMP + 61, tolerance_s=60)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_fails(missing: str) -> None:
    headers = vector_headers()
    del headers[missing]
    with pytest.raises(SignatureError, match=missing):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_a_non_integer_timestamp_fails() -> None:
    headers = {**vector_headers(), "webhook-timestamp": "hello"}
    with pytest.raises(SignatureError, match="not an integer"):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not base64!", MSG_ID, TIMESTAMP, BODY)


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(1, 15):
        ceiling = min(300.0, 2.0 ** (attempt - 1))
        samples = [backoff_s(attempt, base_s=1.0, max_s=300.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # Full jitter spreads the delays over the whole range.
        assert min(samples) < ceiling * 0.1 and max(samples) > ceiling * 0.9
    assert backoff_s(10_000, base_s=1.0, max_s=300.0, rng=rng) <= 300.0


def test_every_incident_event_is_a_callback_and_nothing_else() -> None:
    data = {"incident_id": "inc_1"}
    for kind in ("incident.created", "offer.accepted", "responder.status", "guidance.marker"):
        assert is_callback_event(kind, data)
    assert not is_callback_event("aed.updated", data)
    assert not is_callback_event("offer.created", {})


def test_creation_sorts_first_and_the_end_last_among_simultaneous_events() -> None:
    assert event_stage("incident.created") < event_stage("offer.created")
    assert event_stage("offer.created") < event_stage("incident.closed")
    assert event_stage("offer.created") < event_stage("incident.cancelled")


def test_event_time_accepts_datetimes_text_and_unix_seconds() -> None:
    at = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    assert event_time(at) == at
    assert event_time("2026-05-01T16:30:00+08:00") == at
    assert event_time(at.timestamp()) == at
    assert event_time(datetime(2026, 5, 1, 8, 30)) == at


def test_the_body_is_the_envelope_in_its_documented_order() -> None:
    payload = {"data": {"x": "急救"}, "at": "t", "external_id": "e", "incident_id": "i"}
    body = callback_body({**payload, "type": "offer.created", "id": "evt_1", "extra": 1})
    assert body.decode() == (
        '{"id": "evt_1", "type": "offer.created", "incident_id": "i", "external_id": "e", '
        '"at": "t", "data": {"x": "急救"}}'
    )
