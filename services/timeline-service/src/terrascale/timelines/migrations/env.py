"""Alembic environment of the Timeline Service."""

from terrascale.common.migrations import run_env
from terrascale.timelines.config import get_settings
from terrascale.timelines.models import Base

run_env(metadata=Base.metadata, default_url=lambda: get_settings().sqlalchemy_url)
