"""Alembic environment of the Post Service."""

from terrascale.common.migrations import run_env
from terrascale.posts.config import get_settings
from terrascale.posts.models import Base

# Importing the models registers every table of this service on its metadata.
run_env(metadata=Base.metadata, default_url=lambda: get_settings().sqlalchemy_url)
