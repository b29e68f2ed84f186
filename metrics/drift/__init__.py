"""Data drift against a fitted reference profile.

Fit a profile once on reference data, save it, and compare current windows against it::

    profile = ReferenceProfile.fit(training_df, name="training")
    profile.save("training.profile.json")

    report = drift(["latency", "device"], "training")        # defined by name ...
    report = report.bind_reference(ReferenceProfile.load("training.profile.json"))
    state = report.new_state()                                # ... compared once bound
    state.update(current_df)
    report.value(state)

The state is counts over the reference bins, so it merges exactly and every statistic
(:mod:`metrics.drift.stats`) comes from counts.
"""

from metrics.drift.aggregates import (
    KS,
    PSI,
    Chi2,
    Chi2GoF,
    ColumnDrift,
    Hellinger,
    JensenShannon,
    Wasserstein,
    chi2,
    chi2_gof,
    hellinger,
    jensenshannon,
    js,
    ks,
    psi,
    wasserstein,
)
from metrics.drift.columns import CategoricalProfile, NumericProfile
from metrics.drift.profile import ProfileColumnError, ReferenceProfile
from metrics.drift.report import Drift, drift
from metrics.drift.state import BinCountsState, ColumnCounts

__all__ = [
    "KS",
    "PSI",
    "BinCountsState",
    "CategoricalProfile",
    "Chi2",
    "Chi2GoF",
    "ColumnCounts",
    "ColumnDrift",
    "Drift",
    "Hellinger",
    "JensenShannon",
    "NumericProfile",
    "ProfileColumnError",
    "ReferenceProfile",
    "Wasserstein",
    "chi2",
    "chi2_gof",
    "drift",
    "hellinger",
    "jensenshannon",
    "js",
    "ks",
    "psi",
    "wasserstein",
]
