"""Alembic environment of the User Service."""

from terrascale.common.migrations import run_env
from terrascale.users.config import get_settings
from terrascale.users.models import UserAccount

# Importing the models registers every table of this service on the shared metadata.
run_env(metadata=UserAccount.metadata, default_url=lambda: get_settings().sqlalchemy_url)
