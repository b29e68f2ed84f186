"""Performance estimated without labels (CBPE) for a binary classifier's scores.

The aggregate reads one column, the score, from the window's events; the labels it
estimates are not there yet. It names a reference profile, like drift does, and binds a
profile holding the calibration of the score against the label, fitted on labelled
reference data (:mod:`metrics.estimation.calibration`); the profile's id joins the
aggregate's id, so refitting the reference makes a new metric version. The state counts
scores per calibration bin on each side of the threshold (:mod:`metrics.estimation.state`):
integers, so values are bit-identical whatever the chunking. The values are the expected
ROC AUC, accuracy, precision, recall and F1 with a sampling error each
(:mod:`metrics.estimation.expected`).

What it relies on, as CBPE does: the probability of a positive given the score is the same
in the window as in the reference. A covariate shift (the inputs move, the relation of
label to inputs stays) keeps that when the score orders rows as the true probability does;
a concept shift breaks it, and the estimate with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from metrics.base import ColumnKind
from metrics.drift.binding import ReferenceBound, split_reference
from metrics.drift.profile import ReferenceProfile
from metrics.estimation.calibration import ScoreCalibration
from metrics.estimation.expected import FIELDS, expected_performance
from metrics.estimation.state import ScoreCountsState
from metrics.groups import Groups

__all__ = ["EstimatedPerformance", "cbpe", "estimated_performance"]


@dataclass(frozen=True)
class EstimatedPerformance(ReferenceBound):
    """Estimated ROC AUC, accuracy, precision, recall and F1 of ``score`` against the
    reference's ``label``, a row predicted positive when its score is at least
    ``threshold``; each with ``<field>_sampling_error``, one standard deviation of the
    realized value around the estimate (see :mod:`metrics.estimation.expected`)."""

    score: str
    label: str
    reference: str
    threshold: float = 0.5
    profile_id: str | None = field(default=None, kw_only=True)
    profile: ReferenceProfile | None = field(default=None, kw_only=True, compare=False,
                                             repr=False)
    kind = "estimated_performance"

    def __post_init__(self) -> None:
        for role, column in (("score", self.score), ("label", self.label)):
            if not isinstance(column, str) or not column:
                raise ValueError(f"{self.kind} needs the name of the {role} column, got "
                                 f"{column!r}")
        if (isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float)
                or not math.isfinite(self.threshold)):
            raise ValueError(f"{self.kind}: the threshold must be a finite number, got "
                             f"{self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))
        super().__post_init__()

    def check_profile(self, profile: ReferenceProfile) -> None:
        profile.calibration(self.score, self.label)

    def reference_calibrations(self) -> tuple[tuple[str, str], ...]:
        return ((self.score, self.label),)

    def columns(self) -> dict[str, ColumnKind]:
        return {self.score: "numeric"}

    def fields(self) -> tuple[str, ...]:
        return FIELDS

    def new_state(self) -> ScoreCountsState:
        return ScoreCountsState(self._calibration, self.threshold)

    def state_from_bytes(self, data: bytes) -> ScoreCountsState:
        return self.new_state().load(data)

    def update_groups(self, states: Sequence[Any], frame: pd.DataFrame, groups: Groups
                      ) -> None:
        if states:
            states[0].update_groups(states, frame, groups)

    def value(self, state: ScoreCountsState) -> dict[str, float]:
        return expected_performance(state.below, state.above,
                                    self._calibration.probabilities())

    @property
    def _calibration(self) -> ScoreCalibration:
        return self.bound_profile().calibration(self.score, self.label)


def estimated_performance(score: str, label: str, reference: str | ReferenceProfile,
                          threshold: float = EstimatedPerformance.threshold
                          ) -> EstimatedPerformance:
    """ROC AUC, accuracy, precision, recall and F1 of a binary classifier estimated from its
    ``score`` alone, before labels arrive (confidence-based performance estimation, as
    NannyML's CBPE), each with a sampling error; see :class:`EstimatedPerformance`.

    ``reference`` is a profile's name, bound later (a Monitor fits the calibration from the
    data file declared with ``mon.reference``), or a fitted profile holding the calibration
    of ``score`` against ``label``. Scores may be any finite numbers that grow with the
    chance of a positive; a row is predicted positive when its score is at least
    ``threshold``. ``cbpe`` is the same function.

    To alert on the estimate, put a rule on one of its estimates, e.g.
    ``Threshold(field="estimated_roc_auc", below=0.75)``, not on a ``*_sampling_error``
    field: a sampling error is one standard deviation (the dashboard, like NannyML, draws a
    band of 3). ``monitor.performance_pairs`` says which label-joined metric realizes it.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.random(20_000)
    >>> labelled = pd.DataFrame({"score": scores, "clicked": rng.random(20_000) < scores})
    >>> profile = ReferenceProfile.fit(labelled, ["score"], name="training",
    ...                                calibrations=[("score", "clicked")])
    >>> agg = estimated_performance("score", "clicked", profile)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"score": rng.random(5_000) ** 0.5}))  # shifted up
    >>> values = agg.value(state)
    >>> round(values["estimated_accuracy"], 2), round(values["estimated_roc_auc"], 2)
    (0.75, 0.8)
    >>> round(values["estimated_roc_auc_sampling_error"], 3)
    0.006
    """
    return EstimatedPerformance(score, label, threshold=threshold,
                                **split_reference(reference))


cbpe = estimated_performance
