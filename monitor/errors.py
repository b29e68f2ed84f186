"""Errors a user can act on: each names the metric or stream and the problem."""

from __future__ import annotations


class MonitorError(Exception):
    """Base of the errors the platform raises on purpose."""


class DefinitionError(MonitorError, ValueError):
    """A metric or stream definition is wrong; raised at registration."""

    def __init__(self, subject: str, problem: str) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"{subject}: {problem}")


class MetricComputeError(MonitorError, RuntimeError):
    """A metric failed on real data (e.g. its per-event function returned the wrong length)."""

    def __init__(self, metric: str, problem: str) -> None:
        self.metric = metric
        self.problem = problem
        super().__init__(f"metric {metric!r}: {problem}")


def first_line(err: BaseException) -> str:
    """The first line of an error's message; for a driver error (SQLAlchemy wraps it in
    ``orig``), without the SQL and parameters that follow."""
    return (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
