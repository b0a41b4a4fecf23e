"""Alembic environment of the User Service."""

from terrascale.common.db import Base
from terrascale.common.migrations import run_env
from terrascale.users import models  # noqa: F401 - registers the tables on Base.metadata
from terrascale.users.config import get_settings

run_env(metadata=Base.metadata, default_url=lambda: get_settings().sqlalchemy_url)
