"""Coarser windows from stored states: daily from hourly, without rescanning raw data.

States merge exactly, so merging the stored hourly states of a day gives the state — and
the values — that computing the day directly would give, bit for bit. The rolled-up
values are stored under the metric's name with the coarse window appended
(``latency@1d``), next to the fine ones, in the same stage.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Protocol

import pandas as pd

from monitor.partials import PartialKey, merge_stored
from monitor.spec import MetricSpec
from monitor.storage.ports import ResultSink, StateStore
from monitor.storage.records import StoredState, window_results
from monitor.windows import Windows


class RollupStore(ResultSink, StateStore, Protocol):
    """Reading the fine states and writing the coarse windows."""


def rollup_name(metric: str, window: str) -> str:
    return f"{metric}@{window}"


def coarse_spec(metric: MetricSpec, window: str) -> MetricSpec:
    """The metric with a coarser window; ValueError unless it tiles the metric's windows."""
    coarse = Windows.parse(window)
    fine = metric.windows
    if coarse.width_ns <= fine.width_ns or coarse.width_ns % fine.width_ns:
        raise ValueError(
            f"cannot roll metric {metric.name!r} up from {metric.window} windows to {window}: "
            f"the coarse window must be a multiple of {metric.window}"
        )
    return dataclasses.replace(metric, name=rollup_name(metric.name, window), window=window)


def rollup(
    store: RollupStore,
    metric: MetricSpec,
    version: int,
    window: str,
    since: datetime,
    until: datetime,
    stage: str = "batch",
) -> int:
    """Merge ``metric``'s stored states into ``window``-wide windows over ``[since, until)``
    (aligned outward to whole coarse windows) and store them; returns the windows written.

    The range is cut to whole coarse windows, and a coarse window is the merge of the
    fine states stored in it (fine windows without events have no state, as in a direct
    computation) — so roll up only what the batch stage has already computed, e.g. up to
    the watermark.
    """
    coarse = coarse_spec(metric, window)
    start = coarse.windows.start_of(pd.Timestamp(since))
    end = coarse.windows.start_of(pd.Timestamp(until))
    if end <= start:
        return 0
    fine = store.read_states(metric.name, version, stage, start.to_pydatetime(),
                             end.to_pydatetime())
    partials = merge_stored(metric.aggregate,
                            ((_coarse_key(coarse, s), s.state, s.rows) for s in fine))
    results = window_results(coarse, partials)
    store.write_windows(coarse.name, version, stage, results)
    return len({r.window_start for r in results})


def _coarse_key(coarse: MetricSpec, fine: StoredState) -> PartialKey:
    """The coarse window a fine window's state belongs to."""
    return (coarse.name, fine.segment,
            coarse.windows.start_of(pd.Timestamp(fine.window_start)).value)
