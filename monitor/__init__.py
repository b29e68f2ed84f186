"""domain-monitor: metrics that mature from research to batch to streaming without a rewrite."""

from monitor.alerts.rules import Anomaly, Change, Threshold
from monitor.errors import DefinitionError, MetricComputeError
from monitor.labels import Labels
from monitor.registry import Monitor
from monitor.spec import OVERALL, MetricSpec, StreamSpec

__all__ = [
    "OVERALL",
    "Anomaly",
    "Change",
    "DefinitionError",
    "Labels",
    "MetricComputeError",
    "MetricSpec",
    "Monitor",
    "StreamSpec",
    "Threshold",
]
