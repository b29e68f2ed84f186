"""Statements of one batch run against the results database, and the time spent evaluating
alert rules: bench/batch.py's ``ours`` (the example week in Postgres, the example metrics).

    PYTHONPATH=<tree> .venv/bin/python bench/batch_statements.py [--days 7] [--recent] [--trace]

Counts the statements by kind, those sent while alert rules are evaluated apart (by the
storage function that sent them, with ``--trace``, which slows evaluation), then prints a
digest of the stored alert rows (ids and times of writing left out), so two versions' runs
can be compared row for row. Run it against the tree under test: it times the store's
evaluation, whichever of ``evaluate_windows`` / ``evaluate_metrics`` that version calls.
The run is a process's first, so its wall time includes the drift tests' simulations:
take wall times from bench/batch.py. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import monitor.storage.store as store_module
from bench.example_store import example_batch_store, load_example_events
from bench.postgres import throwaway_database
from examples.music_home_events import DEFAULT_START
from monitor.batch.runner import BatchRunner
from monitor.batch.sources import TableSource

ALERT_TABLES = ("alert_states", "alert_events", "alert_notifications")
EVALUATIONS = ("evaluate_windows", "evaluate_metrics")  # what a version's store calls


class Statements:
    """Counts the statements on an engine, and apart those sent while ``evaluating``."""

    def __init__(self, engine: sa.Engine, trace: bool) -> None:
        self.all: Counter[str] = Counter()
        self.evaluation: Counter[tuple[str, str]] = Counter()
        self.evaluating = False
        self.seconds = 0.0
        self.trace = trace
        sa.event.listen(engine, "before_cursor_execute", self.seen)

    def seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        kind = statement.split()[0].upper()
        self.all[kind] += 1
        if self.evaluating:
            self.evaluation[(kind, _sender() if self.trace else "")] += 1

    def timed(self, evaluate: Callable[..., Any]) -> Callable[..., Any]:
        def evaluated(*args: Any, **kwargs: Any) -> Any:
            self.evaluating, start = True, time.perf_counter()
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.evaluating = False
        return evaluated


def _sender() -> str:
    """The storage function that sent the statement."""
    for frame in reversed(traceback.extract_stack()):
        if "/monitor/storage/" in frame.filename:
            return f"{Path(frame.filename).stem}.{frame.name}"
    return "?"


def digests(engine: sa.Engine) -> dict[str, str]:
    """A digest of each alert table's rows, ids and times of writing left out."""
    found = {}
    with engine.connect() as conn:
        for table in ALERT_TABLES:
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            kept = [i for i, name in enumerate(result.keys())
                    if name not in ("id", "at") and not name.endswith("_at")]
            rows = sorted(repr(tuple(row[i] for i in kept)) for row in result)
            found[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--events-per-hour", type=float, default=3000)
    parser.add_argument("--recent", action="store_true",
                        help="evaluate as of an hour after the last window (alerts announced)")
    parser.add_argument("--trace", action="store_true",
                        help="name the storage function of each evaluation statement")
    args = parser.parse_args()
    with throwaway_database("monitor_bench_statements") as url:
        run(url, args)


def run(url: str, args: argparse.Namespace) -> None:
    engine = sa.create_engine(url)
    start, end = DEFAULT_START, DEFAULT_START + pd.Timedelta(days=args.days)
    rows, _ = load_example_events(engine, args.days, 1, args.events_per_hour)
    store, targets = example_batch_store(url, "statements", 1, args.events_per_hour)
    runner = BatchRunner(store, lambda m: TableSource(engine, m.stream), read_ahead=False)
    statements = Statements(store.database.engine, args.trace)
    for name in EVALUATIONS:
        if hasattr(store_module, name):
            setattr(store_module, name, statements.timed(getattr(store_module, name)))
    began = time.perf_counter()
    summaries = runner.run_many(targets, since=start, until=end,
                                now=end + pd.Timedelta("1h") if args.recent else None)
    wall = time.perf_counter() - began
    assert all(s.rows_read == rows for s in summaries)
    stored = digests(engine)
    store.close()
    engine.dispose()

    evaluation = sum(statements.evaluation.values())
    print(f"{len(targets)} metrics, {sum(s.slices for s in summaries)} metric slices: "
          f"{sum(statements.all.values())} statements ({dict(statements.all)}), "
          f"{evaluation} of them evaluating alert rules in {statements.seconds:.3f} s; "
          f"run {wall:.2f} s")
    for (kind, sender), count in statements.evaluation.most_common():
        print(f"  {count:5} {kind:7} {sender}")
    print(json.dumps({"statements": sum(statements.all.values()),
                      "evaluation_statements": evaluation,
                      "evaluation_seconds": statements.seconds, "digests": stored}))


if __name__ == "__main__":
    main()
