"""Alembic environment of the Graph Service."""

from terrascale.common.migrations import run_env
from terrascale.graph.config import get_settings
from terrascale.graph.models import FollowingEdge

# Importing the models registers every table of this service on the shared metadata.
run_env(metadata=FollowingEdge.metadata, default_url=lambda: get_settings().sqlalchemy_url)
