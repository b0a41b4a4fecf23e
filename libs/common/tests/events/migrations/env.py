"""Alembic environment of the event tests: the outbox tables and a demo consumer's table."""

from sqlalchemy import MetaData
from sqlalchemy.engine import URL

from terrascale.common.db import NAMING_CONVENTION
from terrascale.common.events.outbox import define_outbox_tables
from terrascale.common.migrations import run_env


def _no_default_url() -> URL:
    raise RuntimeError("the event tests always pass the database URL")


metadata = MetaData(naming_convention=NAMING_CONVENTION)
define_outbox_tables(metadata)
run_env(metadata=metadata, default_url=_no_default_url)
