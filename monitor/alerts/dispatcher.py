"""The dispatcher: delivers queued notifications, Alertmanager-style, with retries.

Each round (:meth:`Dispatcher.run_once`) is four short steps, each its own transaction,
so a dispatcher killed anywhere resumes from what the rows say:

1. **repeat** — firing alerts last notified ``repeat_interval`` ago queue a reminder;
2. **route** — each new notification is silenced (an active silence matches it), muted
   (a resolved notice with ``send_resolved`` off) or given one delivery per channel of
   its route;
3. **group** — deliveries waiting on a channel are grouped by the ``group_by`` labels
   once the oldest has waited ``group_wait``; a group becomes one message whose key
   (the idempotency key) is fixed from then on;
4. **send** — messages go out per channel in the order their alerts happened, less any
   notification a silence created since covers (say, during an outage). A failed
   send is retried with exponential backoff, and later messages on that channel wait
   behind it, so a channel never shows an alert's resolution before its firing. A
   message is given up (status failed) after a permanent error or ``give_up_after``.

Delivery is at least once: a message is marked sent after the channel accepted it, so
a dispatcher killed between the two sends it again — with the same idempotency key, for
the receiver to recognise. The store lets one dispatcher run a round at a time (see
:meth:`~monitor.alerts.ports.DispatchStore.exclusive`). The dispatcher talks only to its
ports: the store (:class:`~monitor.alerts.ports.DispatchStore`) and the channels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.alerts.grouping import ready_groups
from monitor.alerts.policy import Policy
from monitor.alerts.ports import Channel, DeliveryError, DispatchStore, scrub
from monitor.alerts.records import Message, Notification, with_examples
from monitor.alerts.routing import Route, channels_for
from monitor.alerts.silences import Silence, silencing
from monitor.times import utc_now

log = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    """What one round did."""

    repeats: int = 0
    routed: int = 0
    silenced: int = 0
    messages_sent: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    skipped: bool = False  # another dispatcher held the lock

    def __str__(self) -> str:
        if self.skipped:
            return "another dispatcher is running a round; skipped"
        return (f"{self.messages_sent} messages sent, {self.failed_attempts} failed attempts "
                f"(retrying), {self.gave_up} given up, {self.routed} notifications routed, "
                f"{self.silenced} silenced, {self.repeats} repeats")


class Dispatcher:
    """Delivers the outbox of one store to its channels."""

    def __init__(
        self,
        store: DispatchStore,
        channels: Mapping[str, Channel],
        *,
        routes: Sequence[Route] = (),
        policy: Policy | None = None,
        clock: Callable[[], datetime] = utc_now,
        secrets: Sequence[str] = (),
        missing: Callable[[str], str] = lambda channel: f"channel {channel} is not configured",
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.routes = list(routes)
        self.policy = policy or Policy()
        self.clock = clock
        self.secrets = tuple(secrets)
        self.missing = missing

    def run_once(self) -> DispatchReport:
        report = DispatchReport()
        with self.store.exclusive() as mine:
            if not mine:
                report.skipped = True
                return report
            self._repeat(report)
            self._route(report)
            self._group()
            self._send(report)
        return report

    def run(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        """Rounds every ``poll_seconds`` until ``stop`` is set; a database outage is
        logged and retried, never fatal."""
        while not stop.is_set():
            try:
                report = self.run_once()
                if report.messages_sent or report.failed_attempts or report.gave_up:
                    log.info("alert dispatch: %s", report)
            except Exception as err:  # e.g. the database is down: a loop must outlive it
                problem = scrub(f"{type(err).__name__}: {err}", self.secrets)
                log.warning("alert dispatch round failed, trying again in %.1f s: %s",
                            poll_seconds, problem)
            stop.wait(poll_seconds)

    # -- steps ----------------------------------------------------------------------------

    def _repeat(self, report: DispatchReport) -> None:
        now = self.clock()
        with self.store.begin() as tx:
            reminders = []
            for alert in tx.active_alerts(status=("firing",)):
                if alert.last_window_start is None or alert.last_window_end is None:
                    continue
                if not self.policy.repeat_due(alert.notified_at, now):
                    continue
                reminders.append(Notification(
                    alert.key.digest("repeat", now.isoformat()), "repeat", alert.key,
                    alert.severity, alert.labels, alert.last_window_start,
                    alert.last_window_end, alert.value, alert.bound,
                    with_examples(alert.detail, alert.examples), now))
                tx.mark_notified(alert.key, now)
            report.repeats += tx.enqueue(reminders)

    def _route(self, report: DispatchReport) -> None:
        now = self.clock()
        with self.store.begin() as tx:
            active = tx.active_silences(now)
            for notification_id, note in tx.unrouted():
                report.routed += 1
                if note.kind == "resolved" and not self.policy.send_resolved:
                    tx.route(notification_id, outcome="muted", now=now)
                    continue
                silence = silencing(active, note.labels, now)
                if silence is not None:
                    report.silenced += 1
                    log.info("notification %s silenced by silence %s (%s)", note.key,
                             silence.id, silence.describe())
                    tx.route(notification_id, outcome="silenced", now=now,
                             silence_id=silence.id)
                    continue
                wanted = channels_for(note.labels, self.routes, list(self.channels))
                ready = [c for c in wanted if c in self.channels]
                failed = {c: self.missing(c) for c in wanted if c not in self.channels}
                for channel, reason in failed.items():
                    log.warning("notification %s routed to %s: %s", note.key, channel, reason)
                tx.route(notification_id, outcome="routed" if wanted else "unrouted",
                         now=now, channels=ready, failed=failed)

    def _group(self) -> None:
        now = self.clock()
        with self.store.begin() as tx:
            groups = ready_groups(tx.waiting(), now, self.policy.group_wait,
                                  self.policy.group_by)
            for group in groups:
                tx.assign_message([m.delivery_id for m in group.members], group.message_key)

    def _send(self, report: DispatchReport) -> None:
        with self.store.read() as tx:
            messages = tx.pending_messages()
            active = tx.active_silences(self.clock())
        blocked: set[str] = set()
        for message in messages:
            if message.channel in blocked:
                continue
            now = self.clock()
            if message.next_attempt_at is not None and message.next_attempt_at > now:
                blocked.add(message.channel)  # in backoff; later messages wait behind it
                continue
            message = self._unsilenced(message, active, now, report)
            if not message.delivery_ids:
                continue
            channel = self.channels.get(message.channel)
            try:
                if channel is None:
                    raise DeliveryError(self.missing(message.channel))
                channel.send(message.key, message.notifications)
            except Exception as err:  # a channel bug must not stop the other channels
                self._failed(message, err, report, blocked)
                continue
            with self.store.begin() as tx:
                tx.mark_sent(message, self.clock())
            report.messages_sent += 1
            log.info("sent %s message %s with %d notification(s)", message.channel,
                     message.key, len(message.notifications))

    def _unsilenced(self, message: Message, active: Sequence[Silence], now: datetime,
                    report: DispatchReport) -> Message:
        """The message less what a silence created since it was routed now covers."""
        muted: dict[int, Silence] = {}
        for delivery_id, note in zip(message.delivery_ids, message.notifications, strict=True):
            silence = silencing(active, note.labels, now)
            if silence is not None:
                muted[delivery_id] = silence
        if not muted:
            return message
        report.silenced += len(muted)
        with self.store.begin() as tx:
            for silence in {s.id: s for s in muted.values()}.values():
                ids = [d for d, s in muted.items() if s.id == silence.id]
                tx.mark_silenced(ids, silence.id)
        log.info("%d notification(s) of %s message %s silenced before sending", len(muted),
                 message.channel, message.key)
        return message.without(list(muted))

    def _failed(self, message: Message, err: Exception, report: DispatchReport,
                blocked: set[str]) -> None:
        transient = err.transient if isinstance(err, DeliveryError) else True
        problem = str(err) if isinstance(err, DeliveryError) else f"{type(err).__name__}: {err}"
        problem = scrub(problem, self.secrets)
        now = self.clock()
        attempts = message.attempts + 1
        if not transient or self.policy.gave_up(message.created_at, now):
            report.gave_up += 1
            retry_at = None
            log.error("giving up on %s message %s after %d attempt(s): %s", message.channel,
                      message.key, attempts, problem)
        else:
            report.failed_attempts += 1
            delay = self.policy.retry_delay(attempts)
            retry_at = now + delay
            blocked.add(message.channel)
            log.warning("%s message %s failed (attempt %d), retrying in %.0f s: %s",
                        message.channel, message.key, attempts, delay.total_seconds(), problem)
        with self.store.begin() as tx:
            tx.mark_failed_attempt(message, problem, retry_at=retry_at)


class DispatcherThread:
    """A dispatcher looping in a daemon thread, for the demo and the scheduler."""

    def __init__(self, dispatcher: Dispatcher, poll_seconds: float = 1.0) -> None:
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=dispatcher.run, args=(self._stop, poll_seconds),
                                        name="alert-dispatcher", daemon=True)

    def start(self) -> DispatcherThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> DispatcherThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
