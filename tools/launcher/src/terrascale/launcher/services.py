"""The services the launcher starts, in start order."""

from __future__ import annotations

from dataclasses import dataclass, replace

DEFAULT_PORT_BASE = 5000
# A worker serves its health, readiness and metrics this far above its service's port.
WORKER_PORT_OFFSET = 10


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    module: str  # ``python -m <module> start`` migrates then serves; ``worker`` consumes events
    port: int
    database: str
    has_worker: bool = False
    signs_tokens: bool = False  # only the signer gets the private key
    # Further physical databases its logical shards are spread over (ADR 0013).
    shard_databases: tuple[str, ...] = ()

    @property
    def databases(self) -> tuple[str, ...]:
        """Its own database first, then its shard databases."""
        return (self.database, *self.shard_databases)

    @property
    def worker_port(self) -> int:
        return self.port + WORKER_PORT_OFFSET

    def port_for(self, command: str) -> int:
        """The port the process running ``command`` (``start`` or ``worker``) listens on."""
        return self.worker_port if command == "worker" else self.port

    def ports(self) -> tuple[int, ...]:
        return (self.port, self.worker_port) if self.has_worker else (self.port,)


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("user-service", "terrascale.users", 5000, "terrascale_users", signs_tokens=True),
    ServiceSpec(
        "graph-service",
        "terrascale.graph",
        5001,
        "terrascale_graph",
        has_worker=True,
        shard_databases=("terrascale_graph_1", "terrascale_graph_2", "terrascale_graph_3"),
    ),
    ServiceSpec(
        "post-service",
        "terrascale.posts",
        5002,
        "terrascale_posts",
        has_worker=True,
        shard_databases=("terrascale_posts_1", "terrascale_posts_2", "terrascale_posts_3"),
    ),
    ServiceSpec(
        "timeline-service", "terrascale.timelines", 5003, "terrascale_timelines", has_worker=True
    ),
    ServiceSpec(
        "notification-service",
        "terrascale.notifications",
        5004,
        "terrascale_notifications",
        has_worker=True,
    ),
)


def services_from(port_base: int) -> tuple[ServiceSpec, ...]:
    """The services with their ports moved so that the first listens on ``port_base``."""
    shift = port_base - DEFAULT_PORT_BASE
    return tuple(replace(spec, port=spec.port + shift) for spec in SERVICES)
