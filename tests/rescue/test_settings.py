"""Settings: read once from the environment, a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo import Crs
from rescue.settings import VARIABLES, Settings, SettingsError

GOOD = {"RESCUE_ADMIN_TOKEN": "a-secret-of-enough-length"}


def test_defaults() -> None:
    settings = Settings.from_env(GOOD)
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/rescue"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.time_budget_s == 300
    assert settings.position_ttl_s == 120
    assert str(settings.timezone) == "Asia/Shanghai"
    assert settings.default_crs is Crs.WGS84
    assert round(settings.travel_model.reach_m(300)) == 429


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            **GOOD,
            "RESCUE_DEFAULT_CRS": "GCJ02",
            "RESCUE_TIME_BUDGET_S": "240",
            "RESCUE_PORT": "9000",
        }
    )
    assert settings.default_crs is Crs.GCJ02
    assert settings.time_budget_s == 240
    assert settings.port == 9000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RESCUE_TIME_BUDGET_S", "five minutes"),
        ("RESCUE_TIME_BUDGET_S", "-1"),
        ("RESCUE_TIMEZONE", "Mars/Olympus"),
        ("RESCUE_DEFAULT_CRS", "utm"),
        ("RESCUE_PORT", "70000"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("RESCUE_DETOUR_FACTOR", "abc"),
        ("RESCUE_ADMIN_TOKEN", "short"),
        ("RESCUE_DEMO", "maybe"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({**GOOD, variable: value})


def test_admin_token_is_required_outside_the_demo() -> None:
    with pytest.raises(SettingsError, match="RESCUE_ADMIN_TOKEN"):
        Settings.from_env({})
    demo = Settings.from_env({"RESCUE_DEMO": "1"})
    assert len(demo.admin_token) > 30
    assert demo.admin_token not in repr(demo)


def test_every_variable_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [variable for variable in VARIABLES if f"`{variable}`" not in readme]
    assert missing == []


def test_maintenance_commands_do_not_need_the_admin_token() -> None:
    settings = Settings.from_env({}, require_admin_token=False)
    assert settings.admin_token == ""
