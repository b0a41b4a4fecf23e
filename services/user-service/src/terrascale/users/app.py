"""User Service application factory (``uvicorn --factory terrascale.users.app:create_app``)."""

from __future__ import annotations

from fastapi import FastAPI

from terrascale.common.app import create_service_app
from terrascale.users import __version__
from terrascale.users.config import UserSettings, get_settings
from terrascale.users.router import router

DESCRIPTION = """\
Accounts and profiles of TerraScale. Reads are cache-aside through Redis: `cached` tells whether an
answer came from the cache. Ids are 64-bit, time-sortable, and sent as strings.
Errors are RFC 9457 `application/problem+json` documents.
"""


def create_app(settings: UserSettings | None = None) -> FastAPI:
    return create_service_app(
        settings=settings or get_settings(),
        title="TerraScale User Service",
        version=__version__,
        description=DESCRIPTION,
        routers=[router],
    )
