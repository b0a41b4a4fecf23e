"""Waiting that never loses a cancellation.

Before Python 3.12, ``asyncio.wait_for`` can swallow a cancellation that arrives as its timeout
fires, and some client libraries still use it; a consumer killed at that moment would keep
running. Loops here wait with ``asyncio.timeout`` and re-raise a cancellation someone swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``event`` is set, whichever comes first."""
    if seconds <= 0 or event.is_set():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def raise_if_cancelled() -> None:
    """Re-raise a cancellation of the current task that a library call swallowed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
