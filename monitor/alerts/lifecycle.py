"""The pending → firing → resolved life of an alert, as a pure step function.

Each (rule, segment) has an :class:`AlertState`. ``step`` takes it and the rule's check on
the next window and returns the new state and the transition, if any. A breach must hold
for ``for_windows`` consecutive windows before the alert fires (a flap inside that
stretch goes back to inactive without a notification); the first window that does not
breach resolves a firing alert. A window the rule did not judge (fewer events than its
``min_count``) changes nothing: the alert stays as it was, as if the window were missing.
Research backtests and the live stages share this code, so they fire the same alerts.

>>> state = AlertState()
>>> state, t = step(state, Check(True, 4.0, ""), for_windows=2)
>>> state.status, t
('pending', 'pending')
>>> state, t = step(state, Check(True, 4.0, ""), for_windows=2)
>>> state.status, t
('firing', 'firing')
>>> state, t = step(state, Check(False, float("nan"), "12 events", judged=False), for_windows=2)
>>> state.status, t
('firing', None)
>>> state, t = step(state, Check(False, 4.0, ""), for_windows=2)
>>> state.status, t
('inactive', 'resolved')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from monitor.alerts.rules import Check

Status = Literal["inactive", "pending", "firing"]
Transition = Literal["pending", "firing", "resolved", "cleared"]


@dataclass(frozen=True)
class AlertState:
    status: Status = "inactive"
    consecutive: int = 0  # consecutive breached windows so far


def step(
    state: AlertState, check: Check, for_windows: int
) -> tuple[AlertState, Transition | None]:
    """Advance one window. ``cleared`` is a pending alert that stopped before firing."""
    if not check.judged:
        return state, None
    if not check.breached:
        if state.status == "firing":
            return AlertState(), "resolved"
        if state.status == "pending":
            return AlertState(), "cleared"
        return state, None
    consecutive = state.consecutive + 1
    if consecutive >= for_windows:
        if state.status == "firing":
            return AlertState("firing", consecutive), None
        return AlertState("firing", consecutive), "firing"
    if state.status == "pending":
        return AlertState("pending", consecutive), None
    return AlertState("pending", consecutive), "pending"
