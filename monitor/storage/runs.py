"""Batch runs: what ran over which windows, how it ended, and how long it took."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.engine import Connection

from monitor.storage.models import ERROR_CHARS, BatchRunRow, table_of
from monitor.storage.records import BatchRun
from monitor.storage.types import to_utc, utc_now

RUNS = table_of(BatchRunRow)
RUN_STATUSES = ("running", "succeeded", "failed")


def start_run(conn: Connection, metric: str, version: int, window_start: datetime,
              window_end: datetime, *, started_at: datetime | None = None) -> int:
    """Record a run as running; returns its id for :func:`finish_run`."""
    [run_id] = start_runs(conn, [(metric, version)], window_start, window_end,
                          started_at=started_at)
    return run_id


def start_runs(conn: Connection, metrics: Sequence[tuple[str, int]], window_start: datetime,
               window_end: datetime, *, started_at: datetime | None = None) -> list[int]:
    """Record a run of each (metric, version) over the same windows as running, in one
    statement (a batch slice's metrics); their ids, in the order of ``metrics``."""
    if not metrics:
        return []
    at = utc_now() if started_at is None else to_utc(started_at)
    rows = [{"metric": metric, "metric_version": version, "window_start": window_start,
             "window_end": window_end, "status": "running", "rows_read": 0,
             "windows_written": 0, "error": None, "started_at": at}
            for metric, version in metrics]
    ids = conn.execute(insert(RUNS).returning(RUNS.c.id, sort_by_parameter_order=True),
                       rows).scalars().all()
    return [int(run_id) for run_id in ids]


def finish_run(conn: Connection, run_id: int, *, status: str, rows_read: int,
               windows_written: int, error: str | None = None,
               finished_at: datetime | None = None) -> None:
    """Close a run as succeeded or failed; the error text is cut to a bounded length.

    A run recorded as succeeded stays so: its windows were stored in the same transaction.
    (A failure reported after it — the commit's acknowledgement lost with a cut
    connection — does not undo that.) A run closed as failed, e.g. as abandoned, takes the
    status its own process reports at its end.
    """
    finish_runs(conn, {run_id: windows_written}, status=status, rows_read=rows_read,
                error=error, finished_at=finished_at)


def finish_runs(conn: Connection, windows_written: Mapping[int, int], *, status: str,
                rows_read: int, error: str | None = None,
                finished_at: datetime | None = None) -> None:
    """:func:`finish_run` for several runs of the same rows (run id -> windows written),
    in one statement; a LookupError if one is not recorded."""
    if status not in RUN_STATUSES[1:]:
        raise ValueError(f"a run finishes as {' or '.join(RUN_STATUSES[1:])}, not {status!r}")
    if not windows_written:
        return
    if error is not None and len(error) > ERROR_CHARS:
        error = error[: ERROR_CHARS - 1] + "…"
    ids = list(windows_written)
    written = (case(windows_written, value=RUNS.c.id) if len(set(windows_written.values())) > 1
               else next(iter(windows_written.values())))
    updated = set(conn.execute(
        update(RUNS).where(RUNS.c.id.in_(ids), RUNS.c.status != "succeeded").values(
            status=status, rows_read=rows_read, windows_written=written, error=error,
            finished_at=utc_now() if finished_at is None else to_utc(finished_at))
        .returning(RUNS.c.id)).scalars())
    if rest := [run_id for run_id in ids if run_id not in updated]:
        known = set(conn.execute(select(RUNS.c.id).where(RUNS.c.id.in_(rest))).scalars())
        if missing := [run_id for run_id in rest if run_id not in known]:
            raise LookupError(f"no batch run with id {missing[0]}")


def close_abandoned_runs(conn: Connection, metrics: Sequence[str], reason: str, *,
                         finished_at: datetime | None = None) -> int:
    """Close every ``running`` run of ``metrics`` as failed, with ``reason`` as its error
    (the caller says why they are abandoned); returns how many were closed."""
    if not metrics:
        return 0
    result = conn.execute(
        update(RUNS).where(RUNS.c.status == "running", RUNS.c.metric.in_(list(metrics)))
        .values(status="failed", error=reason[:ERROR_CHARS],
                finished_at=utc_now() if finished_at is None else to_utc(finished_at)))
    return int(result.rowcount)


def succeeded_until(conn: Connection, metric: str, version: int) -> datetime | None:
    """The latest window end a succeeded run of that version of ``metric`` covered."""
    r = RUNS.c
    end = conn.execute(select(func.max(r.window_end)).where(
        r.metric == metric, r.metric_version == version, r.status == "succeeded")).scalar()
    return None if end is None else to_utc(end)


def recent_runs(conn: Connection, metric: str | None = None, limit: int = 50) -> list[BatchRun]:
    """Latest runs first."""
    query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(limit)
    if metric is not None:
        query = query.where(RUNS.c.metric == metric)
    return [BatchRun(**row._mapping) for row in conn.execute(query)]
