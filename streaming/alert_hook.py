"""The streaming stage's alert hook: a metric's alert rules evaluated on its final windows
in the transaction that stores them (see :data:`streaming.ports.AfterFinal`), so the
outbox is written with the values; ``monitor alerts dispatch`` delivers.

A module-level function: the worker hands it to its processor's process by name.
"""

from __future__ import annotations

from monitor.alerts.evaluate import evaluate_windows
from monitor.alerts.ports import EvaluationStore
from monitor.spec import MetricSpec
from monitor.storage.records import WindowResult
from streaming.processor import STAGE


def evaluate_alerts(alerts: EvaluationStore, metric: MetricSpec, version: int,
                    windows: list[WindowResult]) -> None:
    """Alert rules on the final windows, recorded through the closing transaction's
    ``alerts`` store."""
    evaluate_windows(alerts, metric, version, STAGE, windows)
