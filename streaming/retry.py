"""The streaming worker's retry of a step that writes to the database.

A database outage must not lose a micro-batch: the step is retried, holding the batch
unacknowledged, until it succeeds — waiting 0.5 s, then twice as long each time, at most
:data:`MAX_BACKOFF_S`, so a worker resumes within a few seconds of the database coming
back. When the worker is told to stop, the wait ends at once and the step gives up
(:class:`StoppedBeforeStored`): its messages stay unacknowledged, and whoever owns the
partitions next replays them from the stored offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from monitor.storage.outages import Backoff
from streaming.processor_process import ProcessorGone, describe, looks_like_an_outage

log = logging.getLogger("streaming.worker")
T = TypeVar("T")

MAX_BACKOFF_S = 5.0


class StoppedBeforeStored(RuntimeError):
    """The worker stopped while a step could not be done; nothing it held was
    acknowledged."""


class StoreRetry:
    """Retries a blocking step (run on ``executor``) until it succeeds or ``stop`` is set."""

    def __init__(self, backoff_s: float, stop: asyncio.Event,
                 executor: Executor | None = None, max_backoff_s: float = MAX_BACKOFF_S
                 ) -> None:
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stop = stop
        self.executor = executor  # where the step runs (None: the event loop's default)

    async def until_done(self, step: Callable[[], T], what: str) -> T:
        delays = Backoff(self.backoff_s, self.max_backoff_s).delays()
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await loop.run_in_executor(self.executor, step)
            except ProcessorGone:
                raise  # nothing to wait for: the worker stops, the next one resumes
            except Exception as err:
                if self.stop.is_set():
                    raise StoppedBeforeStored(f"{what}: stopped before it was stored; it "
                                              "will be replayed from the stored offsets") from err
                delay = next(delays)
                if looks_like_an_outage(err):
                    log.warning("%s failed (%s); retrying in %.1f s", what, describe(err),
                                delay)
                else:  # retried all the same: giving up would drop the batch
                    log.error("%s failed (%s): this does not look like an outage. If the "
                              "database was not upgraded for this version, run `monitor db "
                              "upgrade`; otherwise it is a bug, please report this line. "
                              "Nothing is acknowledged or lost; retrying in %.1f s", what,
                              describe(err), delay)
                await sleep_unless(self.stop, delay)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
