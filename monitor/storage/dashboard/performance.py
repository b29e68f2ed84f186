"""Estimated and realized performance side by side: the pairs of the registered metrics
(:mod:`monitor.performance_pairs`) and, for one pair, each window's estimate, its sampling
error, the realized value and the label coverage, read from the stored values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from monitor.performance_pairs import (
    PerformancePair,
    declarable,
    performance_pairs,
    sampling_error_field,
)
from monitor.storage import definitions
from monitor.storage.dashboard.read_only import ReadOnly
from monitor.storage.dashboard.records import DEFAULT_MAX_POINTS, TimeRange
from monitor.storage.dashboard.values import ValueQueries
from monitor.storage.records import MetricDefinition
from monitor.values import STAGES

SIDE_BY_SIDE_COLUMNS = ["segment", "window_start", "estimate", "sampling_error", "realized",
                        "label_coverage", "labelled", "predictions", "windows"]
COVERAGE_FIELDS = ("label_coverage", "labelled", "predictions")


class PerformanceQueries:
    """Estimates of performance and the label-joined metrics that realize them."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read
        self._values = ValueQueries(read)

    def definitions(self) -> dict[str, MetricDefinition]:
        """The current definition of every registered metric, by name."""
        with self._read.session() as conn:
            return {d.name: d for d in definitions.list_definitions(conn)}

    def pairs(self, declared: Mapping[str, str] | None = None) -> list[PerformancePair]:
        """The pairs among the current definitions, automatic and ``declared`` (a realized
        metric's name -> its estimate's; see :func:`performance_pairs`)."""
        return performance_pairs(_specs(self.definitions()), declared)

    def declarable(self, estimate: str) -> list[str]:
        """The metrics that could be declared to realize ``estimate`` (see
        :func:`monitor.performance_pairs.declarable`)."""
        return declarable(_specs(self.definitions()), estimate)

    def shared_stages(self, pair: PerformancePair) -> list[str]:
        """The stages both metrics of ``pair`` (current versions) have values in."""
        found = self.definitions()
        stages = [set(self._values.stages_with_values(name, found[name].version))
                  for name in (pair.estimate, pair.realized) if name in found]
        if len(stages) < 2:
            return []
        return [stage for stage in STAGES if stage in stages[0] & stages[1]]

    def side_by_side(self, estimate: str, estimated_field: str, span: TimeRange, *,
                     stage: str, segments: Sequence[str], pair: PerformancePair | None = None,
                     max_points: int = DEFAULT_MAX_POINTS) -> pd.DataFrame:
        """One row per (segment, plotted window) of ``stage`` over ``span`` (columns
        :data:`SIDE_BY_SIDE_COLUMNS`): field ``estimated_field`` of metric ``estimate`` and
        its sampling error (one standard deviation), and, where labels have arrived, the
        value realized by ``pair`` with the label coverage and its counts; NaN where a side
        has no value (all of the realized side without a pair). Windows are bucketed as
        :meth:`ValueQueries.series` does (``windows`` > 1: means over a bucket), on the
        estimate's window width.
        """
        if pair is not None and (pair.estimate, pair.estimated_field) != (estimate,
                                                                         estimated_field):
            raise ValueError(f"the pair realizes {pair.estimated_field} of {pair.estimate!r}, "
                             f"not {estimated_field} of {estimate!r}")
        found = self.definitions()
        names = [estimate] + ([pair.realized] if pair else [])
        missing = [name for name in names if name not in found]
        if missing:
            raise ValueError(f"no metric named {missing[0]!r} is registered")
        window = found[estimate].window

        def read(name: str, fields: list[str]) -> pd.DataFrame:
            return self._values.series(name, found[name].version, span, window=window,
                                       fields=fields, segments=list(segments),
                                       stages=[stage], max_points=max_points)

        error_field = sampling_error_field(estimated_field)
        renamed = {estimated_field: "estimate", error_field: "sampling_error"}
        merged = _wide(read(estimate, [estimated_field, error_field]), renamed)
        if pair is not None:
            realized = _wide(read(pair.realized, [pair.realized_field, *COVERAGE_FIELDS]),
                             {pair.realized_field: "realized", "windows": "windows_realized"})
            merged = merged.join(realized, how="outer")
            merged["windows"] = merged["windows"].fillna(merged.pop("windows_realized"))
        for column in SIDE_BY_SIDE_COLUMNS[2:]:
            if column not in merged:
                merged[column] = float("nan")
        frame = merged.reset_index()
        frame["windows"] = frame["windows"].fillna(1).astype("int64")
        frame = frame.sort_values(["segment", "window_start"], kind="stable")
        return frame[SIDE_BY_SIDE_COLUMNS].reset_index(drop=True)

    def stages(self, estimate: str, pair: PerformancePair | None = None) -> list[str]:
        """The stages ``estimate`` has values in, those the realized metric of ``pair`` has
        values in too first (each group in stage order, latest stage first)."""
        found = self.definitions()
        if estimate not in found:
            return []
        own = self._values.stages_with_values(estimate, found[estimate].version)
        shared = set(self.shared_stages(pair)) if pair is not None else set()
        return ([s for s in reversed(own) if s in shared]
                + [s for s in reversed(own) if s not in shared])


def _wide(series: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """A series frame with one column per field, indexed by (segment, window_start)."""
    if series.empty:
        index = pd.MultiIndex.from_arrays(
            [pd.Series(dtype="object"), pd.Series(dtype="datetime64[ns, UTC]")],
            names=["segment", "window_start"])
        return pd.DataFrame({names.get("windows", "windows"): pd.Series(dtype="float64")},
                            index=index)
    # one stage: a (segment, window, field) has one row
    wide = series.set_index(["segment", "window_start", "field"])["value"].unstack("field")
    windows = series.groupby(["segment", "window_start"])["windows"].max()
    wide = wide.assign(windows=windows.astype("float64"))
    wide.columns = [names.get(str(c), str(c)) for c in wide.columns]
    return wide


def _specs(found: Mapping[str, MetricDefinition]) -> dict[str, Mapping[str, object]]:
    return {name: definition.spec for name, definition in found.items()}
