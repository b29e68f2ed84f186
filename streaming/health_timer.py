"""What a worker's event loop tells its :class:`~streaming.worker_metrics.WorkerHealth`:
that it runs (the liveness probe), that the group assigned it partitions (none, for a
standby), and the consumer's high-water marks when asked."""

from __future__ import annotations

import logging
from typing import Any

from faust.types import TP

from streaming.worker_metrics import HEARTBEAT_S, WorkerHealth

log = logging.getLogger(__name__)


def watch(app: Any, health: WorkerHealth) -> None:
    """A timer on ``app`` (a Faust app) beating every HEARTBEAT_S."""

    async def beat() -> None:
        health.beat()
        if health.offset_lag:
            health.note_highwaters(_highwaters(app, health))

    beat.__name__ = "monitor_health_beat"
    app.timer(HEARTBEAT_S, name="monitor.health.beat")(beat)

    @app.on_partitions_assigned.connect
    async def assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        health.note_assignment(len(assigned))


def _highwaters(app: Any, health: WorkerHealth) -> dict[tuple[str, int], int]:
    """The consumer's high-water mark of each owned partition it has one for (from fetch
    responses: known once a fetch answered)."""
    found = {}
    for topic, partition in health.owned():
        try:
            highwater = app.consumer.highwater(TP(topic, partition))
        except Exception as err:  # not fetched yet, or the consumer is being rebuilt
            log.debug("no high-water mark for %s[%d]: %s", topic, partition, err)
            continue
        if highwater is not None and highwater >= 0:
            found[(topic, partition)] = int(highwater)
    return found
