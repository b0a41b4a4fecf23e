from __future__ import annotations

import pytest

from terrascale.common.settings import ConfigError, ServiceSettings, load_settings


def load(**env: str) -> ServiceSettings:
    return load_settings(ServiceSettings, _env_file=None)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "POSTGRES_HOST", "CACHE_TTL_SECONDS", "LOG_LEVEL", "DEBUG"):
        monkeypatch.delenv(name, raising=False)


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("cache_ttl_seconds", "17")
    monkeypatch.setenv("Redis_Host", "cache.internal")
    settings = load()
    assert settings.cache_ttl_seconds == 17
    assert settings.redis_host == "cache.internal"


def test_postgres_parts_build_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    monkeypatch.setenv("POSTGRES_DB", "accounts")
    monkeypatch.setenv("POSTGRES_USER", "svc")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss%word")
    url = load().sqlalchemy_url
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.username) == (
        "db.internal",
        6543,
        "accounts",
        "svc",
    )
    assert url.password == "p@ss%word"


def test_database_url_overrides_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "ignored")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@laptop:5433/dev")
    url = load().sqlalchemy_url
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+asyncpg",
        "laptop",
        5433,
        "dev",
    )


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load().log_level == "DEBUG"


@pytest.mark.parametrize(
    ("debug", "log_format", "expected"),
    [("false", None, "json"), ("true", None, "console"), ("true", "json", "json")],
)
def test_debug_selects_console_logs_unless_format_is_set(
    monkeypatch: pytest.MonkeyPatch, debug: str, log_format: str | None, expected: str
) -> None:
    monkeypatch.setenv("DEBUG", debug)
    if log_format:
        monkeypatch.setenv("LOG_FORMAT", log_format)
    assert load().log_renderer == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CACHE_TTL_SECONDS", "soon"),
        ("CACHE_TTL_SECONDS", "0"),
        ("POSTGRES_PORT", "70000"),
        ("REDIS_PORT", "-1"),
        ("LOG_LEVEL", "chatty"),
        ("DEBUG", "perhaps"),
        ("OTLP_ENDPOINT", "not a url"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load()
    message = str(raised.value)
    assert variable in message
    assert "Traceback" not in message


def test_bad_database_url_is_reported_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "::secret-password::")
    with pytest.raises(ConfigError) as raised:
        load()
    assert "DATABASE_URL" in str(raised.value)
    assert "secret-password" not in str(raised.value)
