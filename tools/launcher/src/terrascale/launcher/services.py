"""The services the launcher starts, in start order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    module: str  # run as ``python -m <module> start``: migrate, then Gunicorn
    port: int
    database: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="user-service", module="terrascale.users", port=5000, database="terrascale_users"
    ),
)
