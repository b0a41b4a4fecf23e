"""The Notification Service's defaults, and every one of its settings documented in its
README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from terrascale.common.settings import ConfigError, ServiceSettings, load_settings
from terrascale.notifications.config import NotificationSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_name_this_service() -> None:
    settings = NotificationSettings(_env_file=None)  # pyright: ignore[reportCallIssue]
    assert settings.service_name == "notification-service"
    assert settings.otel_service_name == "notification-service"
    assert settings.port == 5004
    assert settings.postgres_db == "terrascale_notifications"
    assert settings.cache_key_prefix == "terrascale:notifications:"
    assert settings.notification_heartbeat_seconds == 15.0
    assert settings.notification_poll_seconds == 5.0


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFICATION_HEARTBEAT_SECONDS", "2.5")
    monkeypatch.setenv("notification_poll_seconds", "1")
    settings = load_settings(NotificationSettings, _env_file=None)
    assert settings.notification_heartbeat_seconds == 2.5
    assert settings.notification_poll_seconds == 1.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOTIFICATION_HEARTBEAT_SECONDS", "0"),
        ("NOTIFICATION_HEARTBEAT_SECONDS", "often"),
        ("NOTIFICATION_POLL_SECONDS", "-1"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(NotificationSettings, _env_file=None)


def test_every_setting_of_this_service_is_in_its_readme() -> None:
    """The shared settings are documented in the root README; this service's own ones (and
    the defaults it changes) must be in its README."""
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README.read_text()))
    own = {
        name.upper()
        for name, field in NotificationSettings.model_fields.items()
        if name not in ServiceSettings.model_fields
        or field.default != ServiceSettings.model_fields[name].default
    }
    assert own <= documented, f"not in README.md: {sorted(own - documented)}"
