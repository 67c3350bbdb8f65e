"""The 110,000 synthetic demo volunteers, generated column by column with numpy (about a second).

Names follow Jiaodong surname frequencies; phone numbers are fictitious 11-digit mobiles whose
4th and 5th digits are always "00"; certificate numbers are unique (issuer prefix, year of issue,
a counter permuted so neighbours differ). Certificates are valid three years: a fixed share has
expired, a fixed share expires within 30 days. Dates are offsets from `today`; everything else
depends on the seed only. Every column has its own random stream, so volunteer i is the same
whatever the count, and day positions (rescue.demo.positions) need home districts only.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from rescue.demo import vocab
from rescue.demo.constants import (
    AT_MS,
    DEMO_SEED,
    DISTRICT_SHARES,
    VOLUNTEER_COUNT,
    VOLUNTEER_PREFIX,
    demo_today,
)
from rescue.ids import seeded_id

__all__ = ["DemoVolunteer", "generate_volunteers", "home_districts"]

# Independent random streams, so that one column can be regenerated without the others.
_HOME_STREAM = 1
_PEOPLE_STREAM = 2

EXPIRED_SHARE = 0.08
EXPIRING_SHARE = 0.03
SUSPENDED_SHARE = 0.01
QUIET_SHARE = 0.18
TWO_CHAR_GIVEN_SHARE = 0.72
TRAVEL_MODES = (("walk", 0.80), ("bike", 0.15), ("car", 0.05))
CERTIFICATE_YEARS = 3
# Counters are permuted by an affine map modulo 10**6 (a bijection: the factor is coprime to 10).
_PERMUTATION_MODULUS = 1_000_000
_CERT_FACTOR, _CERT_OFFSET = 738_457, 104_729
_PHONE_FACTOR, _PHONE_OFFSET = 316_087, 52_321


class DemoVolunteer(NamedTuple):
    """One demo volunteer: the `volunteers` columns it fills, in COPY order (no token)."""

    id: str
    name: str
    phone: str
    cert_number: str
    cert_issuer: str
    cert_issued_on: dt.date
    cert_expires_on: dt.date
    travel_mode: str
    status: str
    quiet_hours: str | None
    home_district: str


def home_districts(*, seed: int = DEMO_SEED, count: int = VOLUNTEER_COUNT) -> NDArray[np.str_]:
    """Each demo volunteer's home district adcode, weighted like the AEDs."""
    rng = np.random.default_rng([seed, _HOME_STREAM])
    codes = np.array(list(DISTRICT_SHARES))
    shares = np.array(list(DISTRICT_SHARES.values()))
    result: NDArray[np.str_] = codes[rng.choice(len(codes), size=count, p=shares / shares.sum())]
    return result


def generate_volunteers(
    *, seed: int = DEMO_SEED, today: dt.date | None = None, count: int = VOLUNTEER_COUNT
) -> list[DemoVolunteer]:
    """The demo volunteers, identical for the same seed and day (volunteer i whatever the count)."""
    if not 0 < count <= _PERMUTATION_MODULUS:
        raise ValueError(f"count must be between 1 and {_PERMUTATION_MODULUS}")
    today = today or demo_today()
    columns = _Columns(seed)
    index = np.arange(count, dtype=np.int64)

    surnames = [s for s, _ in vocab.SURNAMES]
    weights = np.array([w for _, w in vocab.SURNAMES])
    surname = columns.next().choice(len(surnames), size=count, p=weights / weights.sum()).tolist()
    first = columns.next().integers(0, len(vocab.GIVEN_CHARS), size=count).tolist()
    second = columns.next().integers(0, len(vocab.GIVEN_CHARS), size=count).tolist()
    two_chars = (columns.next().random(count) < TWO_CHAR_GIVEN_SHARE).tolist()
    chars = vocab.GIVEN_CHARS
    names = [
        surnames[s] + chars[a] + (chars[b] if two else "")
        for s, a, b, two in zip(surname, first, second, two_chars, strict=True)
    ]

    prefix = columns.next().integers(0, len(vocab.PHONE_PREFIXES), size=count).tolist()
    phone_serial = ((index * _PHONE_FACTOR + _PHONE_OFFSET) % _PERMUTATION_MODULUS).tolist()
    phones = [
        f"{vocab.PHONE_PREFIXES[p]}00{s:06d}" for p, s in zip(prefix, phone_serial, strict=True)
    ]

    issuer_weights = np.array([w for _, _, w in vocab.ISSUERS])
    issuer = columns.next().choice(
        len(vocab.ISSUERS), size=count, p=issuer_weights / issuer_weights.sum()
    )
    expires = _expiry_dates(columns, today, count)
    issued = [_years_before(day, CERTIFICATE_YEARS) for day in expires]
    cert_serial = ((index * _CERT_FACTOR + _CERT_OFFSET) % _PERMUTATION_MODULUS).tolist()
    issuers = [vocab.ISSUERS[i] for i in issuer.tolist()]
    cert_numbers = [
        f"{code}-{day.year}-{serial:06d}"
        for (_, code, _), day, serial in zip(issuers, issued, cert_serial, strict=True)
    ]

    modes = [m for m, _ in TRAVEL_MODES]
    mode = columns.next().choice(len(modes), size=count, p=[p for _, p in TRAVEL_MODES]).tolist()
    suspended = (columns.next().random(count) < SUSPENDED_SHARE).tolist()
    quiet_options = [q for q, _ in vocab.QUIET_HOURS]
    quiet_weights = np.array([w for _, w in vocab.QUIET_HOURS])
    quiet = columns.next().choice(
        len(quiet_options), size=count, p=quiet_weights / quiet_weights.sum()
    )
    has_quiet = (columns.next().random(count) < QUIET_SHARE).tolist()

    return list(
        map(
            DemoVolunteer,
            _ids(count),
            names,
            phones,
            cert_numbers,
            [name for name, _, _ in issuers],
            issued,
            expires,
            [modes[m] for m in mode],
            ["suspended" if s else "active" for s in suspended],
            [
                quiet_options[q] if h else None
                for q, h in zip(quiet.tolist(), has_quiet, strict=True)
            ],
            home_districts(seed=seed, count=count).tolist(),
        )
    )


class _Columns:
    """A fresh random stream per column: volunteer i is the same whatever the count."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._column = 0

    def next(self) -> np.random.Generator:
        self._column += 1
        return np.random.default_rng([self._seed, _PEOPLE_STREAM, self._column])


def _expiry_dates(columns: _Columns, today: dt.date, count: int) -> list[dt.date]:
    """Certificate expiry dates: some past, some within 30 days, the rest up to three years on."""
    r = columns.next().random(count)
    expired = -columns.next().integers(1, 731, size=count)
    expiring = columns.next().integers(1, 31, size=count)
    later = columns.next().integers(31, 365 * CERTIFICATE_YEARS + 1, size=count)
    offsets = np.where(
        r < EXPIRED_SHARE, expired, np.where(r < EXPIRED_SHARE + EXPIRING_SHARE, expiring, later)
    )
    days: list[dt.date] = (np.datetime64(today, "D") + offsets).tolist()
    return days


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@functools.cache
def _counter_suffixes() -> tuple[str, ...]:
    """The last two id characters for each 10-bit value, taken from rescue.ids itself."""
    return tuple(seeded_id(VOLUNTEER_PREFIX, AT_MS, n)[-2:] for n in range(1024))


def _ids(count: int) -> list[str]:
    """The same ids as rescue.ids.seeded_id for 1..count, without encoding each from scratch."""
    if count >= 1 << 20:
        return [seeded_id(VOLUNTEER_PREFIX, AT_MS, n) for n in range(1, count + 1)]
    head = seeded_id(VOLUNTEER_PREFIX, AT_MS, 0)[:-4]
    pairs = _counter_suffixes()
    return [head + pairs[n >> 10] + pairs[n & 1023] for n in range(1, count + 1)]
