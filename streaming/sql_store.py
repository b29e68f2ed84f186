"""The stream processor's ports over the results database: each call one transaction of
the repository functions in :mod:`streaming.state_store`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from monitor.spec import MetricSpec
from monitor.storage.alert_store import SqlAlertTransaction
from monitor.storage.database import Database
from monitor.storage.dead_letters import write_dead_letters
from monitor.storage.records import DeadLetter, WindowResult
from monitor.storage.results import write_metrics_windows
from streaming import state_store
from streaming.partition import PartitionState
from streaming.ports import AfterFinal, Cutoff, Marks, StoredPartition


class SqlStreamStore:
    """The partition store and the window sink of one database; ``owner`` names the
    worker in the checkpoints it writes (see ``monitor stream status``)."""

    def __init__(self, database: Database, owner: str | None = None) -> None:
        self.database = database
        self.owner = owner

    def __repr__(self) -> str:
        return f"SqlStreamStore({self.database.display_url!r})"

    # -- PartitionStore -------------------------------------------------------------------

    def load_partitions(self, topic: str, partitions: Iterable[int],
                        targets: Mapping[str, tuple[MetricSpec, int]]
                        ) -> dict[int, StoredPartition]:
        with self.database.begin() as conn:
            return {partition: StoredPartition(
                        state_store.load_checkpoint(conn, topic, partition),
                        *state_store.load_partials(conn, topic, partition, targets))
                    for partition in partitions}

    def store_partitions(self, states: Sequence[PartitionState], versions: Mapping[str, int],
                         *, count_metric: str, stage: str,
                         counts: Mapping[tuple[datetime, datetime, str], int],
                         samples: Sequence[DeadLetter]) -> None:
        with self.database.begin() as conn:
            state_store.store_partitions(conn, states, versions, self.owner)
            state_store.add_counts(conn, count_metric, stage, counts)
            if samples:
                write_dead_letters(conn, samples)

    # -- WindowSink -----------------------------------------------------------------------

    def marks(self, topic: str) -> Marks:
        with self.database.connect() as conn:
            return _marks(conn, topic, lock=False)

    def close_windows(self, topic: str, due: Callable[[Marks], Mapping[str, Cutoff]],
                      stage: str, after_final: AfterFinal | None = None
                      ) -> dict[str, list[WindowResult]]:
        with self.database.begin() as conn:
            cutoffs = due(_marks(conn, topic, lock=True))
            closed: dict[str, dict[tuple[str, datetime], WindowResult]] = {}
            # the first values, judged; then the corrections merged into them (see
            # streaming.partition: what came after a partition's idle mark passed)
            for corrections in (False, True):
                found = state_store.final_windows(conn, topic, cutoffs, stage,
                                                  corrections=corrections)
                write_metrics_windows(conn, stage, ((cutoffs[key].metric.name,
                                                     cutoffs[key].version, results)
                                                    for key, results in found.items()))
                if after_final is not None:
                    alerts = SqlAlertTransaction(conn)
                    for key, results in found.items():
                        after_final(alerts, cutoffs[key].metric, cutoffs[key].version,
                                    results)
                for key, results in found.items():
                    closed.setdefault(key, {}).update(
                        ((r.segment, r.window_start), r) for r in results)
            state_store.delete_partials(conn, topic, [cutoffs[name] for name in closed])
            return {name: list(results.values()) for name, results in closed.items()}


def _marks(conn: Connection, topic: str, *, lock: bool) -> Marks:
    """The checkpoints (locked until the transaction ends with ``lock``: windows are closed
    by one worker at a time and no partial is stored halfway through), then the earliest
    open windows."""
    checkpoints = state_store.load_checkpoints(conn, topic, lock=lock)
    return Marks(checkpoints, state_store.earliest_open_ends(conn, topic))


if TYPE_CHECKING:  # mypy checks that SqlStreamStore implements the ports
    from streaming.ports import StreamStore

    def _implements_ports(store: SqlStreamStore) -> StreamStore:
        return store
