"""How notifications are paced: group wait, repeat interval, resolved notices, retries.

The defaults are Alertmanager's where it has one (group_wait 30 s, repeat_interval 4 h,
send_resolved on). Retries back off exponentially from ``retry_initial`` to
``retry_max``; a notification that still cannot be delivered after ``give_up_after`` is
marked failed so that one dead channel does not hold the queue forever.

>>> policy = Policy(retry_initial=timedelta(seconds=1), retry_max=timedelta(seconds=5))
>>> [policy.retry_delay(n).total_seconds() for n in range(1, 6)]
[1.0, 2.0, 4.0, 5.0, 5.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Policy:
    group_wait: timedelta = timedelta(seconds=30)
    group_by: tuple[str, ...] = ("metric",)
    repeat_interval: timedelta = timedelta(hours=4)
    send_resolved: bool = True
    retry_initial: timedelta = timedelta(seconds=2)
    retry_max: timedelta = timedelta(minutes=5)
    give_up_after: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        for name in ("repeat_interval", "retry_initial", "retry_max", "give_up_after"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.group_wait < timedelta(0):
            raise ValueError(f"group_wait must not be negative, not {self.group_wait}")

    def retry_delay(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt (1 = the first)."""
        exponent = min(max(attempts - 1, 0), 32)
        return min(self.retry_initial * 2**exponent, self.retry_max)

    def repeat_due(self, notified_at: datetime | None, now: datetime) -> bool:
        """Whether a firing alert last announced at ``notified_at`` should be repeated
        (never for one that was not announced: old, or owned by another stage)."""
        return notified_at is not None and now - notified_at >= self.repeat_interval

    def gave_up(self, created_at: datetime, now: datetime) -> bool:
        return now - created_at >= self.give_up_after
