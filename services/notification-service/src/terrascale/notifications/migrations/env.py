"""Alembic environment of the Notification Service."""

from terrascale.common.migrations import run_env
from terrascale.notifications.config import get_settings
from terrascale.notifications.models import Base

run_env(metadata=Base.metadata, default_url=lambda: get_settings().sqlalchemy_url)
