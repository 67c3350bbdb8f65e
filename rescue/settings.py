"""Settings, read once from the environment at start-up (never at import)."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geo import Crs, TravelModel


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must be zero or more")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port, 0-65535")
    return value


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or (not parts.hostname and not parts.path):
            raise ValueError(f"expected a {' or '.join(schemes)}:// URL")
        return raw

    return parse


def _timezone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown IANA time zone") from exc


def _crs(raw: str) -> Crs:
    try:
        return Crs(raw.strip().lower())
    except ValueError as exc:
        raise ValueError("expected wgs84, gcj02 or bd09") from exc


# The markers a volunteer can report (API.md), which reward rules may name.
_REWARD_MARKERS = frozenset(
    {
        "aed_collected",
        "arrived",
        "cpr_started",
        "aed_arrived",
        "pads_attached",
        "shock_delivered",
        "rosc",
        "handed_over",
    }
)


def _reward_rules(raw: str) -> tuple[tuple[str, ...], ...]:
    """Comma-separated rules, any of which makes a mission eligible; `a+b`: both needed."""
    rules = []
    for text in raw.split(","):
        markers = tuple(m.strip() for m in text.split("+"))
        if not text.strip() or any(m not in _REWARD_MARKERS for m in markers):
            raise ValueError(
                "expected rules like 'arrived,pads_attached' or 'arrived+cpr_started' made of "
                + ", ".join(sorted(_REWARD_MARKERS))
            )
        rules.append(markers)
    return tuple(rules)


def _metronome(raw: str) -> int:
    value = int(raw)
    if not 100 <= value <= 120:
        raise ValueError("must be a compression rate from 100 to 120 per minute")
    return value


def _token(raw: str) -> str:
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters")
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the service; see the README's settings table."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/rescue"
    redis_url: str = "redis://127.0.0.1:6379/0"
    admin_token: str = field(default="", repr=False)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    default_crs: Crs = Crs.WGS84
    time_budget_s: int = 300
    max_time_budget_s: int = 600
    position_ttl_s: int = 120
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    demo: bool = False
    demo_fleet: int = 8000
    max_body_bytes: int = 1_048_576
    redis_max_connections: int = 100
    max_import_bytes: int = 20_971_520
    detour_factor: float = 1.4
    walk_mps: float = 2.0
    bike_mps: float = 4.0
    car_mps: float = 6.0
    aed_retrieval_s: float = 20.0
    aed_indoor_s: float = 30.0
    aed_per_floor_s: float = 15.0
    offers_aed: int = 3
    offers_cpr: int = 3
    offer_ttl_s: int = 120
    escalation_window_s: int = 45
    escalation_step_s: int = 120
    # Accepted responders an incident needs per role before escalation stops.
    needed_aed: int = 1
    needed_cpr: int = 1
    callback_max_attempts: int = 12
    bus_claim_idle_ms: int = 30_000
    bus_max_deliveries: int = 10
    callback_backoff_base_s: float = 1.0
    callback_backoff_max_s: float = 300.0
    # Volunteers' protection (dispatch/missions.py): a mission earns the reward when any rule
    # is met (a rule: markers that must all be reported); insurance covers from acceptance
    # until hand-over, withdrawal or the incident's end, plus this margin.
    reward_rules: tuple[tuple[str, ...], ...] = (("arrived",),)
    insurance_margin_s: int = 3600
    # The guidance session's metronome (compressions per minute).
    metronome_per_min: int = 110

    @property
    def travel_model(self) -> TravelModel:
        """The travel model built from the travel settings."""
        return TravelModel(
            detour_factor=self.detour_factor,
            walk_mps=self.walk_mps,
            bike_mps=self.bike_mps,
            car_mps=self.car_mps,
            aed_retrieval_s=self.aed_retrieval_s,
            aed_indoor_s=self.aed_indoor_s,
            aed_per_floor_s=self.aed_per_floor_s,
        )

    @property
    def base_url(self) -> str:
        """The URL clients reach this service at, for links in responses."""
        return self.public_url or f"http://{self.host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (tests, the demo)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_admin_token: bool = True
    ) -> Settings:
        """Read every setting from the environment; a bad value names its variable.

        Only serving needs the admin token: maintenance commands (migrate, imports) do not.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (variable, parse) in _VARIABLES.items():
            raw = env.get(variable)
            if raw is None or (raw == "" and name != "admin_token"):
                continue
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{variable}={raw!r} is invalid: {exc}") from None
        settings = cls(**values)
        if settings.max_time_budget_s < settings.time_budget_s:
            raise SettingsError(
                "RESCUE_MAX_TIME_BUDGET_S must be at least RESCUE_TIME_BUDGET_S "
                f"({settings.max_time_budget_s} < {settings.time_budget_s})"
            )
        try:
            settings.travel_model  # noqa: B018 - validates the combination
        except ValueError as exc:
            raise SettingsError(f"travel model settings are invalid: {exc}") from None
        if not settings.admin_token:
            if not settings.demo and not require_admin_token:
                return settings
            if not settings.demo:
                raise SettingsError(
                    "RESCUE_ADMIN_TOKEN is not set: set it to a secret of at least 16 characters "
                    "(only the demo, RESCUE_DEMO=1, generates one)"
                )
            settings = settings.replace(admin_token=generate_token("adm"))
        return settings


def generate_token(prefix: str) -> str:
    """A new random bearer token with a readable role prefix."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "database_url": ("DATABASE_URL", _url("postgresql", "postgres")),
    "redis_url": ("REDIS_URL", _url("redis", "rediss", "unix")),
    "admin_token": ("RESCUE_ADMIN_TOKEN", _token),
    "timezone": ("RESCUE_TIMEZONE", _timezone),
    "default_crs": ("RESCUE_DEFAULT_CRS", _crs),
    "time_budget_s": ("RESCUE_TIME_BUDGET_S", _positive_int),
    "max_time_budget_s": ("RESCUE_MAX_TIME_BUDGET_S", _positive_int),
    "position_ttl_s": ("RESCUE_POSITION_TTL_S", _positive_int),
    "host": ("RESCUE_HOST", str),
    "port": ("RESCUE_PORT", _port),
    "public_url": ("RESCUE_PUBLIC_URL", _url("http", "https")),
    "demo": ("RESCUE_DEMO", _parse_bool),
    "demo_fleet": ("RESCUE_DEMO_FLEET", _non_negative_int),
    "max_body_bytes": ("RESCUE_MAX_BODY_BYTES", _positive_int),
    "redis_max_connections": ("RESCUE_REDIS_MAX_CONNECTIONS", _positive_int),
    "max_import_bytes": ("RESCUE_MAX_IMPORT_BYTES", _positive_int),
    "detour_factor": ("RESCUE_DETOUR_FACTOR", _positive_float),
    "walk_mps": ("RESCUE_WALK_MPS", _positive_float),
    "bike_mps": ("RESCUE_BIKE_MPS", _positive_float),
    "car_mps": ("RESCUE_CAR_MPS", _positive_float),
    "aed_retrieval_s": ("RESCUE_AED_RETRIEVAL_S", _non_negative_float),
    "aed_indoor_s": ("RESCUE_AED_INDOOR_S", _non_negative_float),
    "aed_per_floor_s": ("RESCUE_AED_PER_FLOOR_S", _non_negative_float),
    "offers_aed": ("RESCUE_OFFERS_AED", _non_negative_int),
    "offers_cpr": ("RESCUE_OFFERS_CPR", _non_negative_int),
    "offer_ttl_s": ("RESCUE_OFFER_TTL_S", _positive_int),
    "escalation_window_s": ("RESCUE_ESCALATION_WINDOW_S", _positive_int),
    "escalation_step_s": ("RESCUE_ESCALATION_STEP_S", _positive_int),
    "needed_aed": ("RESCUE_NEEDED_AED", _non_negative_int),
    "needed_cpr": ("RESCUE_NEEDED_CPR", _non_negative_int),
    "callback_max_attempts": ("RESCUE_CALLBACK_MAX_ATTEMPTS", _positive_int),
    "bus_claim_idle_ms": ("RESCUE_BUS_CLAIM_IDLE_MS", _positive_int),
    "bus_max_deliveries": ("RESCUE_BUS_MAX_DELIVERIES", _positive_int),
    "callback_backoff_base_s": ("RESCUE_CALLBACK_BACKOFF_BASE_S", _positive_float),
    "callback_backoff_max_s": ("RESCUE_CALLBACK_BACKOFF_MAX_S", _positive_float),
    "reward_rules": ("RESCUE_REWARD_RULES", _reward_rules),
    "insurance_margin_s": ("RESCUE_INSURANCE_MARGIN_S", _non_negative_int),
    "metronome_per_min": ("RESCUE_METRONOME_PER_MIN", _metronome),
}

VARIABLES = {variable: name for name, (variable, _) in _VARIABLES.items()}
