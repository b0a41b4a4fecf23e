"""The event backbone: envelopes, a transactional outbox, a relay and a consumer runner over
Redis Streams or NATS JetStream. docs/events.md describes the events; docs/adr/0007 the design.

Producer: ``record_event(session, Envelope.wrap(UserCreated(...), source=...))`` in the
transaction of the change, and one ``OutboxRelay(...).run_until(stop)`` task per process.
Consumer: ``ConsumerRunner(bus, group=..., categories=[...], handler=...).run_until(stop)``.
"""

from terrascale.common.events.bus import DeadLetter, EventBus, Outcome, Received
from terrascale.common.events.connect import connect_bus, create_event_redis
from terrascale.common.events.consumer import ConsumerRunner, Handler, idempotent_handler
from terrascale.common.events.envelope import Envelope
from terrascale.common.events.nats_jetstream import NatsJetStreamBus
from terrascale.common.events.outbox import (
    add_inbox_age_index,
    create_outbox_tables,
    define_outbox_tables,
    drop_inbox_age_index,
    drop_outbox_tables,
    mark_processed_once,
    record_event,
    record_events,
)
from terrascale.common.events.partitioning import CATEGORIES, category_of, partition_for
from terrascale.common.events.redis_streams import RedisStreamsBus
from terrascale.common.events.relay import OutboxRelay
from terrascale.common.events.schemas import (
    EVENT_TYPES,
    EventData,
    FollowCreated,
    FollowDeleted,
    InvalidEventError,
    PostCreated,
    PostDeleted,
    UserCreated,
    UserUpdated,
)
from terrascale.common.events.settings import EventSettings, load_event_settings
from terrascale.common.events.settled import events_settled

__all__ = [
    "CATEGORIES",
    "EVENT_TYPES",
    "ConsumerRunner",
    "DeadLetter",
    "Envelope",
    "EventBus",
    "EventData",
    "EventSettings",
    "FollowCreated",
    "FollowDeleted",
    "Handler",
    "InvalidEventError",
    "NatsJetStreamBus",
    "OutboxRelay",
    "Outcome",
    "PostCreated",
    "PostDeleted",
    "Received",
    "RedisStreamsBus",
    "UserCreated",
    "UserUpdated",
    "add_inbox_age_index",
    "category_of",
    "connect_bus",
    "create_event_redis",
    "create_outbox_tables",
    "define_outbox_tables",
    "drop_inbox_age_index",
    "drop_outbox_tables",
    "events_settled",
    "idempotent_handler",
    "load_event_settings",
    "mark_processed_once",
    "partition_for",
    "record_event",
    "record_events",
]
