"""The documented configuration matches the code: every setting is in .env.example with its
real default, and nothing there is unknown to the service."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from terrascale.users.config import UserSettings

ENV_EXAMPLE = Path(__file__).resolve().parents[3] / ".env.example"
ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(\S*)")


def documented() -> dict[str, tuple[str, bool]]:
    """NAME -> (value, active); commented-out lines document optional settings."""
    found: dict[str, tuple[str, bool]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := ASSIGNMENT.match(line):
            found[match.group(1)] = (match.group(2), not line.startswith("#"))
    return found


def test_every_setting_is_documented_and_nothing_else() -> None:
    assert set(documented()) == {name.upper() for name in UserSettings.model_fields}


def test_documented_values_are_the_defaults() -> None:
    for name, (value, active) in documented().items():
        default = UserSettings.model_fields[name.lower()].default
        if not active:
            assert default is None, f"{name} has a default; document it uncommented"
            continue
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if isinstance(default, bool):
            default = str(default).lower()
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        assert value == str(default), f"{name}: .env.example says {value!r}, code says {default!r}"
