"""The Graph Service's defaults, and every one of its settings documented in its README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from terrascale.common.settings import ConfigError, ServiceSettings, load_settings
from terrascale.graph.config import GraphSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_name_this_service() -> None:
    settings = GraphSettings(_env_file=None)  # pyright: ignore[reportCallIssue]
    assert settings.service_name == "graph-service"
    assert settings.otel_service_name == "graph-service"
    assert settings.port == 5001
    assert settings.postgres_db == "terrascale_graph"
    assert settings.cache_key_prefix == "terrascale:graph:"
    assert str(settings.user_service_url) == "http://localhost:5000/"
    assert settings.user_service_timeout_seconds == 1.0


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_URL", "http://users.internal:8080")
    monkeypatch.setenv("user_service_timeout_seconds", "0.5")
    settings = load_settings(GraphSettings, _env_file=None)
    assert str(settings.user_service_url) == "http://users.internal:8080/"
    assert settings.user_service_timeout_seconds == 0.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [("USER_SERVICE_URL", "ftp://x"), ("USER_SERVICE_TIMEOUT_SECONDS", "0")],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(GraphSettings, _env_file=None)


def test_every_setting_of_this_service_is_in_its_readme() -> None:
    """The shared settings are documented in the root README; this service's own ones (and
    the defaults it changes) must be in its README."""
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README.read_text()))
    own = {
        name.upper()
        for name, field in GraphSettings.model_fields.items()
        if name not in ServiceSettings.model_fields
        or field.default != ServiceSettings.model_fields[name].default
    }
    assert own <= documented, f"not in README.md: {sorted(own - documented)}"
