"""The embedded Valkey as the launcher runs it: killed and restarted on its port without losing
an acknowledged write, and a data folder of a run without the append-only file kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from terrascale.common.embedded import EmbeddedValkey

DURABLE = {"appendonly": "yes", "appendfsync": "always"}

pytestmark = pytest.mark.slow


def test_a_killed_valkey_restarts_on_its_port_with_every_acknowledged_write(
    tmp_path: Path,
) -> None:
    valkey = EmbeddedValkey(tmp_path, persist=True, config=DURABLE)
    try:
        address = valkey.start()
        with Redis(host=address.host, port=address.port) as client:
            client.xadd("stream", {"n": "1"})
        valkey.kill()
        again = valkey.start()
        assert again == address
        with Redis(host=again.host, port=again.port) as client:
            assert client.xlen("stream") == 1
    finally:
        valkey.stop()


def test_a_snapshot_of_an_earlier_run_is_kept_when_the_append_only_file_is_switched_on(
    tmp_path: Path,
) -> None:
    earlier = EmbeddedValkey(tmp_path, persist=True)
    address = earlier.start()
    with Redis(host=address.host, port=address.port) as client:
        client.xadd("stream", {"n": "1"})
    earlier.stop()  # saves the snapshot

    valkey = EmbeddedValkey(tmp_path, persist=True, config=DURABLE)
    try:
        address = valkey.start()
        with Redis(host=address.host, port=address.port) as client:
            assert client.xlen("stream") == 1
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            client.xadd("stream", {"n": "2"})
        valkey.kill()
        address = valkey.start()
        with Redis(host=address.host, port=address.port, decode_responses=True) as client:
            assert client.xlen("stream") == 2
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
    finally:
        valkey.stop()
