"""The engine every stage shares: event chunks in, per (metric, segment, window) states out.

It takes validated events of one stream (see :mod:`monitor.schema`), runs each metric's
per-event function, splits the rows by window and segment, and updates one partial state
per (metric, segment, window). Research feeds it a whole DataFrame, batch feeds it chunks
from a table, streaming feeds it micro-batches — the stored values come out the same
because states merge exactly, and every stage values them through
:func:`monitor.partials.partial_values`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.arrow_lists import arrow_lists, holds_arrow_lists, python_lists
from metrics.frame_columns import column_values
from metrics.groups import Groups
from metrics.row_memo import RowMemo
from monitor.errors import DefinitionError
from monitor.partials import Partial, PartialKey, partial_values
from monitor.per_event import check_per_event_result
from monitor.segments import escape, label_value
from monitor.spec import OVERALL, MetricSpec
from monitor.string_lists import LIST_OF_STR
from monitor.values import MetricValue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedEvents:
    """Events a metric's per-event function failed on, left out of that metric's states
    (see :func:`derive`); each stage turns them into dead letters."""

    metric: str  # the metric's name
    rows: np.ndarray  # positions in the events given to Engine.update, ascending
    problems: list[str]  # per row, what the function did ("raised ValueError: ...")

    @property
    def reason(self) -> str:
        """A label to count dead letters by (no colon: a stage appends the problem)."""
        return f"per-event function of metric {self.metric!r} failed"

    def reasons(self) -> list[str]:
        """Per row, the reason and the problem."""
        return [f"{self.reason}: {problem}" for problem in self.problems]


class Engine:
    """Running states for a set of metrics, all fed from one stream's events.

    Its states are keyed by each metric's name, or by the keys of ``metrics`` when it is a
    mapping: the streaming stage keeps two versions of one metric apart that way while
    the new one takes over (see :mod:`streaming.plan`)."""

    def __init__(self, metrics: Iterable[MetricSpec] | Mapping[str, MetricSpec]) -> None:
        self.metrics = (dict(metrics) if isinstance(metrics, Mapping)
                        else {m.name: m for m in metrics})
        streams = {m.stream.name for m in self.metrics.values()}
        if len(streams) > 1:
            raise ValueError(f"an engine reads one stream; got {', '.join(sorted(streams))}")
        self.partials: dict[PartialKey, Partial] = {}
        # the events per-event functions failed on, until the stage takes them
        self.failed: list[FailedEvents] = []

    def update(self, events: pd.DataFrame, skip: Mapping[str, np.ndarray] | None = None
               ) -> set[PartialKey]:
        """Absorb validated events (event time as UTC datetimes); the keys it touched.

        ``skip`` maps a metric's name to a boolean mask of the rows it must leave out (in
        streaming, the events that are late for that metric's windows).

        Each row's window and segment are worked out once per chunk and shared by the
        metrics; each metric then updates all the states the chunk touches in one call of
        its aggregate's ``update_groups``.

        A per-event function that fails on some events leaves them out of its metric
        only (see :func:`derive`): they are added to :attr:`failed`, which the stage takes
        with :meth:`take_failed` and turns into dead letters.
        """
        touched: set[PartialKey] = set()
        if events.empty or not self.metrics:
            return touched
        codes = _ChunkCodes(events, next(iter(self.metrics.values())).stream.time)
        # per set of rows (which metrics leave out), what aggregates computed per row: an
        # expectation and the validation summary that holds it judge each row once
        memos: dict[bytes | None, RowMemo] = {}
        as_python: list[pd.DataFrame] = []  # the events with Python lists, made once
        for name, metric in self.metrics.items():
            mask = None if skip is None else skip.get(name)
            keep = None if mask is None or not mask.any() else ~mask
            if keep is not None and not keep.any():
                continue
            as_lists = functools.partial(_python_list_events, events, keep, as_python)
            rows = (as_lists() if _reads_lists_otherwise(metric, events)
                    else events if keep is None else events[keep])
            frame, failed = _input_columns(metric, rows, as_lists)
            if failed:
                positions = np.arange(len(events)) if keep is None else np.flatnonzero(keep)
                self.failed.append(FailedEvents(metric.name, positions[[r for r, _ in failed]],
                                                [problem for _, problem in failed]))
                keep = np.ones(len(events), dtype=bool) if keep is None else keep.copy()
                keep[self.failed[-1].rows] = False
                if not keep.any():
                    continue
            keys, groups = codes.groups(name, metric, keep)
            partials = [self._partial(metric, key) for key in keys]
            states = [p.state for p in partials]
            shares = getattr(metric.aggregate, "update_groups_memo", None)
            if shares is not None and metric.per_event is None:  # reads the events alone
                rows_key = None if keep is None else np.packbits(keep).tobytes()
                shares(states, frame, groups, memos.setdefault(rows_key, RowMemo()))
            else:
                metric.aggregate.update_groups(states, frame, groups)
            for partial, added in zip(partials, groups.sizes().tolist(), strict=True):
                partial.rows += added
            touched.update(keys)
        return touched

    def take_failed(self) -> list[FailedEvents]:
        """The events per-event functions failed on since the last call (and forget them)."""
        failed, self.failed = self.failed, []
        return failed

    def _partial(self, metric: MetricSpec, key: PartialKey) -> Partial:
        partial = self.partials.get(key)
        if partial is None:
            partial = self.partials[key] = Partial(metric.aggregate.new_state())
        return partial

    def values(self, stage: str) -> list[MetricValue]:
        """The values of every partial, one record per field."""
        valued: dict[PartialKey, dict[str, float]] = {}
        for metric in self.metrics.values():
            valued.update(partial_values(metric, self.partials))
        return [
            value
            for key, partial in sorted(self.partials.items())
            for value in value_records(self.metrics[key[0]], key, partial, stage, valued[key])
        ]


OVERALL_LABELS = [OVERALL]


def _groups_by_code(metric: str, window_starts: np.ndarray, codes: np.ndarray,
                    labels: list[str]) -> tuple[list[PartialKey], Groups]:
    """One group per (segment, window) code present; ``code = window * len(labels) +
    segment``."""
    present, dense = _dense(codes)
    per_window = len(labels)
    keys = [(metric, labels[code % per_window], int(window_starts[code // per_window]))
            for code in present.tolist()]
    return keys, Groups(dense, len(keys))


def _dense(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` for small non-negative codes (a window's
    index times the segments, plus a segment's): counted, not sorted, in one pass."""
    if not len(codes):
        return np.unique(codes, return_inverse=True)
    present = np.flatnonzero(np.bincount(codes))
    position = np.zeros(int(present[-1]) + 1, dtype=np.intp)
    position[present] = np.arange(len(present))
    return present, position[codes]


def _both(overall: Groups, segments: Groups) -> Groups:
    """Every row in its overall group and in its segment's group."""
    rows = np.arange(len(overall.codes))
    return Groups(np.concatenate([overall.codes, segments.codes + overall.n]),
                  overall.n + segments.n, np.concatenate([rows, rows]))


class _ChunkCodes:
    """Each row's window (per window width) and segment (per segment columns), computed
    once per chunk for all the metrics that share them."""

    def __init__(self, events: pd.DataFrame, time: str) -> None:
        self.events = events
        self.times_ns = events[time].to_numpy(dtype="datetime64[ns]").view(np.int64)
        self._windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._segments: dict[tuple[str, ...], tuple[list[str], np.ndarray]] = {}
        # The groups of the metrics that keep every row, per (window width, segment
        # columns): the metrics of a stream mostly share them, and with them the order
        # Groups sorts its rows in once (keys under a placeholder name, see groups).
        self._shared: dict[tuple[int, tuple[str, ...]], tuple[list[PartialKey], Groups]] = {}

    def windows(self, metric: MetricSpec) -> tuple[np.ndarray, np.ndarray]:
        """The distinct window starts (ns) and each row's index into them."""
        width = metric.windows.width_ns
        if width not in self._windows:
            starts, codes = np.unique(metric.windows.starts_ns(self.times_ns),
                                      return_inverse=True)
            self._windows[width] = (starts, codes.astype(np.int64))
        return self._windows[width]

    def segments(self, columns: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
        if columns not in self._segments:
            self._segments[columns] = _segment_codes(self.events, columns)
        return self._segments[columns]

    def groups(self, name: str, metric: MetricSpec, keep: np.ndarray | None
               ) -> tuple[list[PartialKey], Groups]:
        """The partial keys (under ``name``) a metric's rows (those ``keep`` marks, or all)
        touch, and the groups that put every row in its overall window and its segment's
        window."""
        if keep is not None:
            return self._groups(name, metric, keep)
        shared = (metric.windows.width_ns, tuple(metric.segment_by))
        if shared not in self._shared:
            self._shared[shared] = self._groups("", metric, None)
        keys, groups = self._shared[shared]
        return [(name, segment, start) for _, segment, start in keys], groups

    def _groups(self, name: str, metric: MetricSpec, keep: np.ndarray | None
                ) -> tuple[list[PartialKey], Groups]:
        window_starts, window_codes = self.windows(metric)
        if keep is not None:
            window_codes = window_codes[keep]
        keys, groups = _groups_by_code(name, window_starts, window_codes,
                                       OVERALL_LABELS)
        if not metric.segment_by:
            return keys, groups
        labels, segment_codes = self.segments(metric.segment_by)
        if keep is not None:
            segment_codes = segment_codes[keep]
        combined = window_codes * len(labels) + segment_codes
        segment_keys, segment_groups = _groups_by_code(name, window_starts, combined,
                                                       labels)
        return keys + segment_keys, _both(groups, segment_groups)


def _reads_lists_otherwise(metric: MetricSpec, events: pd.DataFrame) -> bool:
    """Whether the metric's aggregate reads a column of Arrow lists other than as a ranked
    list (a consistency check compares lists whole, an assertion keeps them): it is given
    Python lists then, as every other source gives them."""
    if metric.per_event is not None:
        return False  # reads the function's output
    # told by the dtypes: ``events[name]`` builds a Series, ~20 µs a column a chunk (an
    # assertion reads its id and kept fields too, a rate one column)
    return any(kind != LIST_OF_STR and name in events.columns
               and holds_arrow_lists(column_values(events, name).dtype)
               for name, kind in metric.aggregate.columns().items())


def _python_list_events(events: pd.DataFrame, keep: np.ndarray | None,
                        made: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows ``keep`` of ``events`` as a per-event function (or an aggregate that does
    not read them as ranked lists) is given them in every stage: a ranked list held in
    an Arrow column by the batch stage's reads (:mod:`metrics.arrow_lists`, which the
    ranking aggregates read as it is) becomes Python lists, as every other source gives
    them, converted once per chunk (kept in ``made``)."""
    if not made:
        held = {name: arrow_lists(events[name]) for name, dtype in events.dtypes.items()
                if isinstance(dtype, pd.ArrowDtype)}
        converted = events
        if any(lists is not None for lists in held.values()):
            converted = events.copy(deep=False)
            for name, lists in held.items():
                if lists is not None:
                    converted[name] = python_lists(lists)
        made.append(converted)
    return made[0] if keep is None else made[0][keep]


def _input_columns(metric: MetricSpec, events: pd.DataFrame,
                   function_events: Callable[[], pd.DataFrame]
                   ) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The events the aggregate reads, with the per-event function's output added as a
    column named after the metric, less the events it failed on; and those (position
    in ``events``, problem). (Aggregates pick their columns by name, so the other
    columns ride along: selecting a subset cost a millisecond per call.) The function
    is given ``function_events()``: the same rows, lists as Python lists."""
    if metric.per_event is None:
        return events, []
    values, failed = derive(metric, function_events())
    frame = events.copy(deep=False)  # copy-on-write: the caller's frame is not touched
    if failed:
        ok = np.ones(len(events), dtype=bool)
        ok[[row for row, _ in failed]] = False
        frame = frame[ok]
        log.warning("metric %r: per-event function failed on %d of %d events, left out of "
                    "it as dead letters (the first: %s)", metric.name, len(failed),
                    len(events), failed[0][1])
    frame[metric.name] = values
    return frame, failed


class _Failed(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def derive(metric: MetricSpec, events: pd.DataFrame
           ) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """A metric's per-event function over ``events``: its values for the events it did not
    fail on (in order) and, for the others, (position, problem).

    The rule for a failure at run time: when the function raises on a chunk, or returns
    something that is not one value per event of the kind its aggregate reads, it is run
    again on each half of the chunk, then on their halves, down to single events. The
    events it fails on alone are the ones it failed on; the others take their values
    from the smallest parts it succeeded on. For a function whose value for an event
    depends on that event only (what a per-event function is), that is the same set of
    events and the same values whatever the chunking, so every stage leaves out the same
    events, and a chunk with one bad event costs about 2 log2(n) more calls, not n.
    """
    parts: list[np.ndarray] = []
    failed: list[tuple[int, str]] = []
    _run_halving(metric, events, 0, len(events), parts, failed)
    if not parts:
        return np.array([], dtype=float), failed
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), failed


def _run_halving(metric: MetricSpec, events: pd.DataFrame, start: int, stop: int,
                 parts: list[np.ndarray], failed: list[tuple[int, str]]) -> None:
    try:
        parts.append(_run(metric, events if stop - start == len(events)
                          else events.iloc[start:stop]))
    except _Failed as err:
        if stop - start == 1:
            failed.append((start, err.problem))
            return
        middle = (start + stop) // 2
        _run_halving(metric, events, start, middle, parts, failed)
        _run_halving(metric, events, middle, stop, parts, failed)


def _run(metric: MetricSpec, events: pd.DataFrame) -> np.ndarray:
    """The function's values for ``events``; a _Failed saying what went wrong."""
    assert metric.per_event is not None
    subject = f"metric {metric.name!r}"
    try:
        derived = metric.per_event.function(events)
        checked = check_per_event_result(
            subject, derived, len(events), metric.aggregate.columns()[metric.name]
        )
    except DefinitionError as err:
        raise _Failed(err.problem) from None
    except Exception as err:  # the user's function: say which and what it raised
        raise _Failed(f"{metric.per_event.path} raised {type(err).__name__}: {err}"
                      ) from None
    return checked.to_numpy()


def _segment_codes(events: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """A code per row for its combination of segment values, and each code's label (as
    :func:`monitor.segments.segment_label` makes it, one distinct value at a time)."""
    codes = np.zeros(len(events), dtype=np.int64)
    parts_per_column: list[list[str]] = []
    for column in columns:
        column_codes, uniques = pd.factorize(events[column], use_na_sentinel=False)
        name = escape(column)
        parts_per_column.append([f"{name}={label_value(u)}" for u in uniques])
        codes = codes * len(uniques) + column_codes
    labels = parts_per_column[0]
    for parts in parts_per_column[1:]:
        labels = [f"{prefix},{part}" for prefix in labels for part in parts]
    return labels, codes


def value_records(
    metric: MetricSpec, key: PartialKey, partial: Partial, stage: str,
    values: Mapping[str, float],
) -> list[MetricValue]:
    """One record per field of a partial's stored ``values`` (from
    :func:`monitor.partials.partial_values`)."""
    _, segment, start_ns = key
    start = pd.Timestamp(start_ns, unit="ns", tz="UTC")
    end = pd.Timestamp(start_ns + metric.windows.width_ns, unit="ns", tz="UTC")
    return [MetricValue(metric.name, stage, segment, start, end, field, value, partial.rows)
            for field, value in values.items()]
