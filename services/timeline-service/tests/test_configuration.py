"""The Timeline Service's defaults, and every one of its settings documented in its README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from terrascale.common.settings import ConfigError, ServiceSettings, load_settings
from terrascale.timelines.config import TimelineSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_name_this_service_and_follow_the_design() -> None:
    settings = TimelineSettings(_env_file=None)  # pyright: ignore[reportCallIssue]
    assert settings.service_name == "timeline-service"
    assert settings.port == 5003
    assert settings.postgres_db == "terrascale_timelines"
    assert settings.cache_key_prefix == "terrascale:timelines:"
    assert settings.timeline_max_posts == 800
    assert settings.celebrity_follower_threshold == 10_000
    assert settings.timeline_active_days == 30


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POST_SERVICE_URL", "ftp://x"),
        ("TIMELINE_MAX_POSTS", "5"),
        ("TIMELINE_ACTIVE_DAYS", "0"),
        ("FANOUT_BATCH_SIZE", "0"),
        ("UPSTREAM_TIMEOUT_SECONDS", "0"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(TimelineSettings, _env_file=None)


def test_every_setting_of_this_service_is_in_its_readme() -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README.read_text()))
    own = {
        name.upper()
        for name, field in TimelineSettings.model_fields.items()
        if name not in ServiceSettings.model_fields
        or field.default != ServiceSettings.model_fields[name].default
    }
    assert own <= documented, f"not in README.md: {sorted(own - documented)}"
