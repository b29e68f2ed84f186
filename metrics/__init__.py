"""The built-in metric library: pure aggregates with mergeable states and no I/O.

Every aggregate here is a frozen definition (see :mod:`metrics.base`) whose state merges
exactly, so research, batch and streaming store bit-identical values. Ranking metrics
(:mod:`metrics.ranking`) read a ``list[str]`` field: the ranked list of items shown.
Performance estimated without labels (:mod:`metrics.estimation`) reads a classifier's
scores and a calibration fitted on labelled reference data. Assertions
(:mod:`metrics.assertions`) count the events that violate a rule and keep a sample of
them that is the same in every stage; consistency checks (:mod:`metrics.key_consistency`)
count the keys whose events disagree on a field within a window. Data expectations
(:mod:`metrics.expectations`, :mod:`metrics.uniqueness`) are shares of events failing a
check, summed per window by :mod:`metrics.validation`.
"""

from metrics.aggregates import count, mean, null_rate, rate, share, sum_of
from metrics.assertions import assertion
from metrics.base import Aggregate, State, aggregate_from_dict
from metrics.classification import accuracy, auc, precision, recall

# The report is exported as drift_report: binding it as `drift` would hide the
# metrics.drift subpackage behind a function.
from metrics.drift import (
    ReferenceProfile,
    chi2,
    chi2_gof,
    hellinger,
    jensenshannon,
    js,
    ks,
    psi,
    wasserstein,
)
from metrics.drift import drift as drift_report
from metrics.estimation.aggregate import cbpe, estimated_performance
from metrics.expectations import (
    expect_in_range,
    expect_in_set,
    expect_match,
    expect_no_unknown_fields,
    expect_not_null,
)
from metrics.key_consistency import consistency
from metrics.ranking import catalogue_coverage, hit_rate, mrr, ndcg
from metrics.tails import quantiles
from metrics.uniqueness import expect_unique
from metrics.validation import validation_summary

__all__ = [
    "Aggregate",
    "ReferenceProfile",
    "State",
    "accuracy",
    "aggregate_from_dict",
    "assertion",
    "auc",
    "catalogue_coverage",
    "cbpe",
    "chi2",
    "chi2_gof",
    "consistency",
    "count",
    "drift_report",
    "estimated_performance",
    "expect_in_range",
    "expect_in_set",
    "expect_match",
    "expect_no_unknown_fields",
    "expect_not_null",
    "expect_unique",
    "hellinger",
    "hit_rate",
    "jensenshannon",
    "js",
    "ks",
    "mean",
    "mrr",
    "ndcg",
    "null_rate",
    "precision",
    "psi",
    "quantiles",
    "rate",
    "recall",
    "share",
    "sum_of",
    "validation_summary",
    "wasserstein",
]
