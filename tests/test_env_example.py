"""`.env.example` documents every setting of every service with its real default, and nothing
that no service reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AnyUrl, SecretStr
from pydantic_settings import BaseSettings

from terrascale.common.events import EventSettings
from terrascale.graph.config import GraphSettings
from terrascale.notifications.config import NotificationSettings
from terrascale.posts.config import PostSettings
from terrascale.timelines.config import TimelineSettings
from terrascale.users.config import UserSettings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(\S*)")
SETTINGS: list[type[BaseSettings]] = [
    UserSettings,
    GraphSettings,
    PostSettings,
    TimelineSettings,
    NotificationSettings,
    EventSettings,
]


def documented() -> dict[str, tuple[str, bool]]:
    """NAME -> (value, active); commented-out lines document optional or per-service settings."""
    found: dict[str, tuple[str, bool]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := ASSIGNMENT.match(line):
            found[match.group(2)] = (match.group(3), match.group(1) is None)
    return found


def as_text(default: object) -> str:
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    if isinstance(default, AnyUrl):
        return str(default).rstrip("/")
    return str(default)


def test_every_setting_is_documented_and_nothing_else() -> None:
    known = {name.upper() for model in SETTINGS for name in model.model_fields}
    assert set(documented()) == known


@pytest.mark.parametrize("model", SETTINGS, ids=lambda model: model.__name__)
def test_active_lines_hold_the_defaults(model: type[BaseSettings]) -> None:
    for name, (value, active) in documented().items():
        field = model.model_fields.get(name.lower())
        if field is None or not active:
            continue
        assert value == as_text(field.default), (
            f"{name}: .env.example {value!r}, code {field.default!r}"
        )


def test_settings_without_defaults_are_commented_out() -> None:
    for name, (_, active) in documented().items():
        for model in SETTINGS:
            field = model.model_fields.get(name.lower())
            if field is not None and active:
                assert field.default is not None, f"{name} has no default; comment it out"
