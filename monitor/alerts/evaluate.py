"""Live evaluation: new windows of a metric through its alert rules, inside the caller's
transaction.

A stage's store calls :func:`evaluate_windows` with an
:class:`~monitor.alerts.ports.EvaluationStore` bound to the transaction in which it stores
the windows. The values, the alert transitions and the notifications they queue then
commit together or not at all (a transactional outbox): a crash can neither lose a
notification for stored values nor send one for values that were rolled back.

Each (rule, segment) walks its new windows in window order with the stored values of
the windows before them as history — the same rule code, lifecycle and history as the
research backtest, so the stages fire what the backtest predicted. A window at or before
the last one evaluated for an alert is skipped, so storing windows again is harmless.
A metric joined to labels is judged only on the mature prefix of each segment's windows
as of ``now`` (:mod:`monitor.label_maturity`): a half-labelled window waits, unevaluated,
until a later store of it is mature, so it never pages.

Firing transitions queue a notification, and so do the resolutions of alerts that were
announced; pending and cleared (a breach that stopped within ``for_windows``) only go to
the history. A firing on a window that ended more than ``notify_within`` before ``now``
(a backfill over old data) is not announced — nobody should be paged about last month —
unless the alert is still firing on a recent window: then it is announced once, late.
For a metric joined to labels "recent" reaches back its horizon further: its windows are
judged when mature, which can be up to a horizon after they end.
``notified_at`` on the alert state is when its episode was last announced; the
dispatcher repeats announced alerts that stay firing.

An alert no rule evaluates any more stays where it was forever unless something ends it:
its rule was removed, or edited so that its title changed (a title derived from the
rule's parameters), or it belongs to an older version of the metric. So each evaluation
first ends those of its metric and stage — a firing one resolved, a pending one cleared,
on the last window it saw, with a detail that says why — and the resolution of an
announced one is sent like any other. The same ending is :func:`end_alerts`, for the
alerts of a stage that stopped computing the metric's windows (batch, at the boundary
from which streaming counts them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.alerts.examples import examples_note
from monitor.alerts.explain import explained
from monitor.alerts.lifecycle import AlertState
from monitor.alerts.ports import EvaluationStore, HistoryRequest, PositionSave
from monitor.alerts.records import (
    AlertKey,
    AlertTransition,
    Notification,
    NotificationKind,
    StoredAlert,
    alert_labels,
    with_examples,
)
from monitor.alerts.rules import Point, Rule
from monitor.alerts.walk import Position, Walked, walk
from monitor.label_maturity import mature_prefix
from monitor.spec import MetricSpec
from monitor.storage.records import WindowResult, check_stage
from monitor.times import to_utc, utc_now

log = logging.getLogger(__name__)

NOTIFY_WITHIN = timedelta(days=1)


@dataclass(frozen=True)
class MetricWindows:
    """New windows of one metric version, to evaluate with other metrics' in one go."""

    metric: MetricSpec
    version: int
    results: Sequence[WindowResult]


def evaluate_windows(
    alerts: EvaluationStore,
    metric: MetricSpec,
    version: int,
    stage: str,
    results: Sequence[WindowResult],
    now: datetime | None = None,
    *,
    notify_within: timedelta = NOTIFY_WITHIN,
    notify: bool = True,
) -> list[AlertTransition]:
    """Evaluate ``metric``'s rules on ``results``; record the alert states, the
    transitions and the notifications in ``alerts``; return the transitions in window
    order per alert.

    Runs inside the caller's transaction and commits nothing itself: ``alerts`` must be
    bound to the transaction that stores ``results`` (the history of earlier windows is
    read from the stored values), as :class:`monitor.storage.store.SqlStore` does::

        with database.begin() as conn:
            results.write_windows(conn, metric.name, version, "batch", windows)
            evaluate_windows(SqlAlertTransaction(conn), metric, version, "batch", windows)

    ``monitor alerts dispatch`` (or :func:`monitor.notifiers.service.start_dispatcher_thread`)
    then delivers what was queued. ``results`` may hold
    any windows and segments in any order; only windows newer than an alert's last
    evaluated window are evaluated. With ``notify`` False the alerts are evaluated and
    recorded but announce nothing new (another stage owns the metric's notifications);
    the resolution of an alert that was announced is still sent. Alerts of the metric in
    ``stage`` that no rule evaluates any more (see above) are ended first.
    """
    return evaluate_metrics(alerts, stage, [MetricWindows(metric, version, results)], now,
                            notify_within=notify_within, notify=notify)


def evaluate_metrics(
    alerts: EvaluationStore,
    stage: str,
    pieces: Sequence[MetricWindows],
    now: datetime | None = None,
    *,
    notify_within: timedelta = NOTIFY_WITHIN,
    notify: bool = True,
) -> list[AlertTransition]:
    """:func:`evaluate_windows` for several metrics (a batch slice's), with the same
    reads and writes of alert states for all of them: their orphans read, their states
    created and locked, saved, their transitions and notifications recorded, each in one
    statement, not one a metric. Each metric is judged as it would be alone (an
    evaluation reads only its own metric's values and alerts); the transitions are
    returned, recorded and queued metric by metric in the order of ``pieces``. A metric
    with no windows is left as :func:`evaluate_windows` leaves it: untouched. A metric
    may be given once (two versions of one would end each other's alerts)."""
    check_stage(stage)
    pieces = [piece for piece in pieces if piece.results]
    if not pieces:
        return []
    names = [piece.metric.name for piece in pieces]
    if len(set(names)) != len(names):
        raise ValueError(f"a metric is given twice in one evaluation: {names}")
    now = to_utc(utc_now() if now is None else now)
    orphans: dict[str, list[StoredAlert]] = {name: [] for name in names}
    for alert in alerts.orphaned_alerts(stage, {
            (piece.metric.name, piece.version): {rule.title for rule in piece.metric.alerts}
            for piece in pieces}):
        orphans[alert.key.metric].append(alert)
    each = [_MetricRules.of(piece, stage, now) for piece in pieces]
    labels = {key: labelled for rules in each for key, labelled in rules.labels.items()}
    positions = alerts.lock_positions([key for rules in each for key in rules.rules], labels,
                                      now)
    due = [_due(alerts, piece, rules, positions, now)
           for piece, rules in zip(pieces, each, strict=True)]
    histories = _histories(alerts, [one for metric in due for one in metric])
    recorded = _Recorded()  # kept in one statement of each once every metric is walked
    for piece, rules, metric_due in zip(pieces, each, due, strict=True):
        _end(orphans[piece.metric.name], piece.version, now, recorded)
        for one in metric_due:
            _walk(piece, stage, one, rules.labels[one.key], histories.get(one.key, []), now,
                  notify_within, notify, recorded)
    return recorded.keep(alerts, now)


@dataclass
class _Recorded:
    """What an evaluation keeps, in the order it happened: the alerts' transitions, the
    notifications to queue and where each alert stands."""

    transitions: list[AlertTransition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    saves: list[PositionSave] = field(default_factory=list)

    def keep(self, alerts: EvaluationStore, now: datetime) -> list[AlertTransition]:
        """Save the positions, record the transitions and queue the notifications (a
        statement each, whatever the number of alerts); the transitions."""
        alerts.save_positions(self.saves)
        alerts.record_events(self.transitions, now)
        alerts.enqueue(self.notifications)
        return self.transitions


@dataclass
class _MetricRules:
    """A metric's windows by segment (the mature prefix, for a metric joined to labels)
    and its alerts: the rule, severity and labels of each (rule, segment)."""

    by_segment: dict[str, list[WindowResult]]
    rules: dict[AlertKey, Rule]
    labels: dict[AlertKey, tuple[str, dict[str, str]]]

    @classmethod
    def of(cls, piece: MetricWindows, stage: str, now: datetime) -> _MetricRules:
        metric = piece.metric
        by_segment: dict[str, list[WindowResult]] = {}
        for result in piece.results:
            by_segment.setdefault(result.segment, []).append(result)
        labels: dict[AlertKey, tuple[str, dict[str, str]]] = {}
        rules: dict[AlertKey, Rule] = {}
        for segment in sorted(by_segment):
            by_segment[segment].sort(key=lambda r: r.window_start)
            if metric.labels is not None:  # rules wait for mature windows, in window order
                by_segment[segment] = _mature(metric, by_segment[segment], now)
            for rule in metric.alerts:
                key = AlertKey(metric.name, piece.version, stage, rule.title, segment)
                rules[key] = rule
                labels[key] = (rule.severity, alert_labels(metric, rule, segment, stage))
        return cls(by_segment, rules, labels)


@dataclass(frozen=True)
class _Due:
    """An alert with new windows to walk, from the position it was locked at."""

    key: AlertKey
    rule: Rule
    position: Position
    notified_at: datetime | None
    windows: list[WindowResult]


def _due(alerts: EvaluationStore, piece: MetricWindows, metric_rules: _MetricRules,
         positions: dict[AlertKey, tuple[Position, datetime | None]], now: datetime
         ) -> list[_Due]:
    """A metric's (rule, segment)s with windows after their last evaluated one, in rule
    order; not those whose windows wait for a stored window still immature."""
    metric = piece.metric
    due = []
    for key, rule in metric_rules.rules.items():
        position, notified_at = positions[key]
        segment = metric_rules.by_segment[key.segment]
        windows = [w for w in segment
                   if position.last_window is None or w.window_start > position.last_window]
        late = [w for w in segment if position.last_window is not None
                and w.window_start < position.last_window]
        if late:
            log.info("alert %s: %d window(s) before the last evaluated (%s) not evaluated; "
                     "windows of a segment must come in order", key, len(late),
                     position.last_window)
        if not windows:
            continue
        if metric.labels is not None and _immature_before(alerts, key, metric, position,
                                                          windows[0].window_start, now):
            continue  # rules wait for it: passing it now would skip it for good
        due.append(_Due(key, rule, position, notified_at, windows))
    return due


def _histories(alerts: EvaluationStore, due: Sequence[_Due]) -> dict[AlertKey, list[Point]]:
    """The stored windows each alert's rule compares its first new window with, oldest
    first (as :class:`monitor.alerts.walk.History` keeps them): the previous
    ``history_needed`` ones, or all within ``history_span`` before it, of at least
    ``min_count`` events; read together for every alert. A rule that looks at no
    history is not asked."""
    asked = [alert for alert in due
             if alert.rule.history_span is not None or alert.rule.history_needed > 0]
    found = alerts.value_histories([
        HistoryRequest(alert.key, alert.rule.field or "", alert.windows[0].window_start,
                       span=alert.rule.history_span, last=alert.rule.history_needed,
                       min_count=alert.rule.min_count) for alert in asked])
    return {alert.key: points for alert, points in zip(asked, found, strict=True)}


def _walk(piece: MetricWindows, stage: str, alert: _Due, labelled: tuple[str, dict[str, str]],
          history: list[Point], now: datetime, notify_within: timedelta, notify: bool,
          recorded: _Recorded) -> None:
    """Walk an alert through its new windows from its locked position, with the stored
    ``history`` before them; add the transitions, notifications and its position to
    ``recorded``."""
    metric, version = piece.metric, piece.version
    key, rule, position, notified_at, windows = (alert.key, alert.rule, alert.position,
                                                 alert.notified_at, alert.windows)
    transitions, notifications = recorded.transitions, recorded.notifications
    field = rule.field or ""
    walked = walk(rule, position, history,
                  [(w.window_start, w.window_end, w.values.get(field, math.nan), w.rows)
                   for w in windows])
    severity, alert_labels_ = labelled
    by_start = {w.window_start: w for w in windows}
    found = [AlertTransition(key, s.transition, s.window_start, s.window_end, s.value,
                             s.check.bound,
                             explained(metric, field, s, by_start[s.window_start].values,
                                       by_start[s.window_start].rows),
                             severity, alert_labels_)
             for s in walked.steps]
    transitions.extend(found)
    recent = now - notify_within
    if metric.labels is not None:  # a window may become mature only its horizon later
        recent -= timedelta(microseconds=metric.labels.horizon_ns // 1_000)
    for transition in found:
        if transition.transition == "firing":
            if notify and to_utc(transition.window_end) >= recent:
                note = examples_note(metric, version, stage,
                                     by_start[transition.window_start])
                notifications.append(_notification(transition, "firing", now,
                                                   examples=note))
                notified_at = now
            else:
                log.info("alert %s fired on window %s: %s", key, transition.window_start,
                         "too old to notify" if notify else "not notified from this stage")
        elif transition.transition == "resolved":
            if notified_at is not None:  # resolve only what was announced
                notifications.append(_notification(transition, "resolved", now))
            notified_at = None
    last = windows[-1]
    if (notify and walked.position.state.status == "firing" and notified_at is None
            and to_utc(last.window_end) >= recent and walked.last is not None):
        # it fired on old windows (a backfill, a stage catching up) and is firing now
        value, check = walked.last
        since = walked.position.active_since or last.window_start
        current = AlertTransition(key, "firing", last.window_start, last.window_end, value,
                                  check.bound, check.detail, severity, alert_labels_)
        notifications.append(_notification(current, "firing", now, episode=since,
                                           examples=examples_note(metric, version,
                                                                  stage, last)))
        notified_at = now
    # what its reminders name while it fires: the examples of the last window, the
    # window a reminder reports (the dispatcher builds reminders from the stored row)
    examples = (examples_note(metric, version, stage, last)
                if walked.position.state.status == "firing" else None)
    recorded.saves.append(_saved(key, walked, last.window_end, severity, alert_labels_,
                                 notified_at, now, examples))


def _mature(metric: MetricSpec, windows: list[WindowResult], now: datetime
            ) -> list[WindowResult]:
    """The mature prefix of a segment's windows (:mod:`monitor.label_maturity`)."""
    assert metric.labels is not None
    horizon = timedelta(microseconds=metric.labels.horizon_ns // 1_000)
    mature = mature_prefix(metric.labels.mature_at, horizon,
                           [(w.window_end, w.values.get("label_coverage", math.nan))
                            for w in windows], now)
    if mature < len(windows):
        log.info("metric %s: %d window(s) from %s wait for their labels before alert rules "
                 "judge them", metric.name, len(windows) - mature, windows[mature].window_start)
    return windows[:mature]


def _immature_before(alerts: EvaluationStore, key: AlertKey, metric: MetricSpec,
                     position: Position, first: datetime, now: datetime) -> bool:
    """Whether a stored window of the alert's segment after its last evaluated window and
    before ``first`` is still immature: stored by an earlier slice or run, it waits, and
    the windows after it wait with it. Only windows whose horizon is still open can be
    immature, so only those are read."""
    assert metric.labels is not None
    horizon = timedelta(microseconds=metric.labels.horizon_ns // 1_000)
    width = timedelta(microseconds=metric.windows.width_ns // 1_000)
    since = to_utc(now) - horizon - width
    if position.last_window is not None:
        since = max(since, to_utc(position.last_window))
    if since >= to_utc(first):
        return False
    [history] = alerts.value_histories([HistoryRequest(key, "label_coverage", first,
                                                       span=to_utc(first) - since, last=0,
                                                       min_count=0)])
    stored = [p for p in history
              if p.start is not None and (position.last_window is None
                                          or p.start > to_utc(position.last_window))]
    ends = [(p.start + width, p.value) for p in stored if p.start is not None]
    return mature_prefix(metric.labels.mature_at, horizon, ends, now) < len(ends)


def end_alerts(alerts: EvaluationStore, metric: MetricSpec, version: int, stage: str,
               why: str, now: datetime | None = None) -> list[AlertTransition]:
    """End every active alert of ``metric`` in ``stage`` (a firing one resolved, a pending
    one cleared, on the last window it saw, with ``why`` as the detail), recording the
    transitions and queueing the resolutions of announced ones, inside the caller's
    transaction; for a stage that no longer computes the metric's windows."""
    check_stage(stage)
    now = to_utc(utc_now() if now is None else now)
    recorded = _Recorded()
    _end(alerts.orphaned_alerts(stage, {(metric.name, version): set()}), version, now,
         recorded, why)
    return recorded.keep(alerts, now)


def _end(orphans: Sequence[StoredAlert], version: int, now: datetime, recorded: _Recorded,
         why: str | None = None) -> None:
    """End the active alerts ``orphans`` of a metric (whose rules no longer evaluate them,
    or, with ``why``, for that reason): add their transitions, the resolutions to send (of
    announced alerts only) and their inactive positions to ``recorded``."""
    for alert in orphans:
        transition = _orphan_ended(alert, version, now, why)
        recorded.transitions.append(transition)
        if transition.transition == "resolved" and alert.notified_at is not None:
            recorded.notifications.append(_notification(transition, "resolved", now))
        log.info("alert %s ended: %s", alert.key, transition.detail)
        recorded.saves.append(PositionSave(
            alert.key, Position(AlertState(), alert.last_window_start),
            last_window_end=alert.last_window_end, value=transition.value,
            bound=transition.bound, detail=transition.detail, severity=alert.severity,
            labels=alert.labels, notified_at=None, now=now))


def _orphan_ended(alert: StoredAlert, version: int, now: datetime,
                  why: str | None = None) -> AlertTransition:
    """The transition that ends ``alert``, on the last window it saw."""
    if why is None and alert.key.version == version:
        why = f"rule {alert.key.rule!r} removed or changed"
    elif why is None:
        why = f"metric version {alert.key.version} replaced by version {version}"
    return AlertTransition(
        alert.key, "resolved" if alert.status == "firing" else "cleared",
        alert.last_window_start or now, alert.last_window_end or now,
        math.nan if alert.value is None else alert.value,
        math.nan if alert.bound is None else alert.bound, why, alert.severity, alert.labels)


def _saved(key: AlertKey, walked: Walked, last_window_end: datetime, severity: str,
           labels: dict[str, str], notified_at: datetime | None, now: datetime,
           examples: str | None = None) -> PositionSave:
    value, check = walked.last if walked.last is not None else (math.nan, None)
    return PositionSave(
        key, walked.position, last_window_end=last_window_end, value=value,
        bound=check.bound if check is not None else math.nan,
        detail=check.detail if check is not None else "", severity=severity, labels=labels,
        notified_at=notified_at if walked.position.state.status == "firing" else None,
        now=now, examples=examples)


def _notification(transition: AlertTransition, kind: NotificationKind, now: datetime,
                  episode: datetime | None = None, examples: str | None = None
                  ) -> Notification:
    """The notification of a transition; its key names the alert, the kind and the window
    (or, for a late announcement, the episode's first window), so it is queued once.
    ``examples`` (an assertion's example ids, :mod:`monitor.alerts.examples`) goes on a
    line of its own after the detail: the message only, not the alert's history, whose
    detail stays the backtest's."""
    if episode is None:
        key = transition.key.digest(kind, to_utc(transition.window_start).isoformat())
    else:
        key = transition.key.digest(kind, "episode", to_utc(episode).isoformat())
    return Notification(key, kind, transition.key, transition.severity, transition.labels,
                        transition.window_start, transition.window_end, transition.value,
                        transition.bound, with_examples(transition.detail, examples), now)
