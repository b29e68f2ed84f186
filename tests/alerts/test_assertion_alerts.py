"""A firing assertion's notification names example ids of the window that fired and the
command that exports the rest: in batch and in streaming, checked against the stored
sample, delivered to a real webhook receiver and SMTP server, and the command run."""

from __future__ import annotations

import json
import random
import re
import shlex
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

import metrics
from monitor import Monitor, Threshold
from monitor.alerts.evaluate import evaluate_windows
from monitor.alerts.examples import SHOWN, examples_note
from monitor.alerts.records import Notification
from monitor.alerts.settings import AlertSettings
from monitor.assertion_examples import window_examples
from monitor.batch.runner import BatchRunner
from monitor.cli.main import cli
from monitor.research import run
from monitor.spec import MetricSpec
from monitor.stage_switch import EPOCH
from monitor.storage import alert_states, outbox, results
from monitor.storage.alert_store import SqlAlertTransaction
from monitor.storage.database import Database
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from streaming.alert_hook import evaluate_alerts
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.alerts.conftest import dispatcher_for
from tests.alerts.helpers import Clock, hour, latency_metric
from tests.alerts.servers import SmtpServer, WebhookReceiver, body_text
from tests.frame_source import FrameSource
from tests.streaming.clock import Clock as StreamClock

HOURS = 4
INCIDENT_HOUR = 2  # strangers get sure scores from then on: the rule fires on it
# hours before now, so the windows are recent enough to be announced (live evaluation
# announces no firing older than a day)
START = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=HOURS + 1)
END = START + pd.Timedelta(hours=HOURS)
EXPORT = re.compile(r"all sampled: `(monitor assertions export [^`]+)`")


def assertion_app() -> tuple[Monitor, MetricSpec]:
    mon = Monitor("assertion-alerts")
    mon.stream("home", topic="assert-alert-events",
               schema={"view_id": "int", "user_id": "str", "country": "str",
                       "score": "float", "new_user": "bool"})
    spec = mon.metric("sure_about_strangers", "home",
                      metrics.assertion("score > 0.8 and new_user", id="view_id",
                                        keep=("user_id", "score"), k=8),
                      window="1h", segment_by=["country"], owner="home-ranking",
                      alerts=[Threshold("violation_rate", above=0.1, name="strangers")])
    return mon, spec


def incident_events(seed: int = 18) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 1_600
    offsets = np.sort(rng.integers(0, HOURS * 3_600_000, n))
    ts = START + pd.to_timedelta(offsets, unit="ms")
    incident = np.asarray(ts >= START + pd.Timedelta(hours=INCIDENT_HOUR))
    score = np.where(incident, 0.5 + rng.random(n) / 2, rng.random(n) * 0.8).round(6)
    return pd.DataFrame({
        "ts": ts, "view_id": rng.permutation(n) + 10_000,
        "user_id": rng.integers(0, 300, n).astype(str).astype(object),
        "country": rng.choice(["SE", "BR"], n).astype(object),
        "score": score, "new_user": rng.random(n) < 0.5,
    })


def firing_notes(database: Database) -> list[Notification]:
    with database.connect() as conn:
        return [n for _, n in outbox.unrouted(conn) if n.kind == "firing"]


def check_against_stored_sample(store: SqlStore, spec: MetricSpec, version: int,
                                stage: str, notes: list[Notification]) -> None:
    """Each firing notification names the first ids of its window's stored sample, with
    the counts of that window, and an export command for exactly that window."""
    assert {n.alert.segment for n in notes} == {"*", "country=BR", "country=SE"}
    with store.database.connect() as conn:
        history = {(e.key.segment, e.window_start): e.detail
                   for e in alert_states.events_of(conn, spec.name, stage)
                   if e.transition == "firing"}
    for note in notes:
        assert note.window_start == START + pd.Timedelta(hours=INCIDENT_HOUR)
        [stored] = store.read_states(spec.name, version, stage, note.window_start,
                                     note.window_end, note.alert.segment)
        sample = [e["id"] for _, e in window_examples(spec.aggregate, [stored])]
        assert len(sample) == 8  # the window holds more violations than k
        [violations] = store.read_values(metric=spec.name, stage=stage,
                                         segment=note.alert.segment, since=note.window_start,
                                         until=note.window_end).query(
            "field == 'violations'")["value"]
        ids, command = note.notes
        assert ids == (f"example ids {', '.join(map(str, sample[:SHOWN]))} "
                       f"({SHOWN} of the 8 sampled, {violations:.0f} violations)")
        # the rule's finding first, as the alert's history keeps it (without the ids)
        assert note.finding == history[(note.alert.segment, note.window_start)]
        found = EXPORT.fullmatch(command)
        assert found is not None, command
        assert shlex.split(found[1])[3:] == [
            spec.name, "--stage", stage, "--version", str(version), "--segment",
            note.alert.segment, "--since", note.window_start.isoformat().replace("+00:00", "Z"),
            "--until", note.window_end.isoformat().replace("+00:00", "Z"),
            "--out", f"{spec.name}.jsonl"]


def run_export(command: str, url: str, out: Path) -> list[dict[str, object]]:
    """The command a message gives, as a person would paste it, on the results database."""
    pasted = EXPORT.fullmatch(command)
    assert pasted is not None, command
    args = shlex.split(pasted[1])[1:]
    args[args.index("--out") + 1] = str(out)
    result = CliRunner().invoke(cli, [*args, "--database-url", url])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def promote(store: SqlStore, spec: MetricSpec, stage: str) -> int:
    version = store.register_metric(spec).version
    store.record_stage_change(spec.name, version, "batch", by="test", reason="alerts")
    if stage == "streaming":
        store.record_stage_change(spec.name, version, stage, by="test", reason="alerts",
                                  effective_from=EPOCH)
    return version


def test_batch_alert_names_ids_of_the_firing_windows_sample_and_how_to_export_the_rest(
    database: Database, settings: AlertSettings, clock: Clock,
    webhook: WebhookReceiver, smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    app, spec = assertion_app()
    store = SqlStore(database)
    version = promote(store, spec, "batch")
    events = incident_events()
    BatchRunner(store, lambda m: FrameSource(events)).run_many(
        batch_targets(app, store), since=START, until=END, now=END + pd.Timedelta("5min"))
    notes = firing_notes(database)
    check_against_stored_sample(store, spec, version, "batch", notes)

    overall = next(n for n in notes if n.alert.segment == "*")
    exported = run_export(overall.notes[1], database.url, tmp_path / "out.jsonl")
    [stored] = store.read_states(spec.name, version, "batch", overall.window_start,
                                 overall.window_end, "*")
    assert [line["id"] for line in exported] == [
        e["id"] for _, e in window_examples(spec.aggregate, [stored])]
    assert {line["window_start"] for line in exported} == {
        overall.window_start.isoformat().replace("+00:00", "Z")}

    clock.now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    dispatcher = dispatcher_for(database, settings, clock)
    dispatcher.run_once()
    clock.advance(seconds=31)
    dispatcher.run_once()
    [message] = webhook.bodies
    sections = "\n".join(b["text"]["text"] for b in message["blocks"]
                         if b["type"] == "section")
    [mail] = smtp_server.messages
    plain = body_text(mail, "plain").replace("\r\n", "\n")
    html = body_text(mail, "html")
    for note in notes:
        ids, command = note.notes
        assert ids in sections and ids in plain and ids in html
        assert command.replace("'*'", "&#x27;*&#x27;") in html
        assert f"  {ids}\n  {command}\n" in plain  # below the alert's line
    assert overall.notes[1] in sections  # '*' needs no escaping for Slack
    # the text fallback stays one line per alert
    assert len(message["text"].splitlines()) == len(notes)


def test_streaming_alert_names_the_same_examples_as_batch(
    database: Database, tmp_path: Path,
) -> None:
    """The stream processor (no Kafka) closes windows with alert evaluation in their
    transaction; its messages name the ids of its stored sample, which are the batch
    stage's for the same events."""
    app, spec = assertion_app()
    store = SqlStore(database)
    version = promote(store, spec, "streaming")
    events = incident_events()
    clock = StreamClock()
    partitions = 3
    stage = StreamProcessor(SqlStreamStore(database), app.streams["home"],
                            "assert-alert-events", partitions,
                            batch_targets(app, store, stages=("streaming",)),
                            StreamSettings(idle_timeout_s=5), after_final=evaluate_alerts,
                            clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)
    stage.assign(range(partitions))
    rng = random.Random(3)
    for partition in range(partitions):
        mine = [e for e in event_dicts(events) if int(str(e["user_id"])) % partitions
                == partition]
        offset = 0
        while mine:
            size = rng.randint(1, 40)
            stage.handle([RawMessage(partition, offset, encode_events(mine[:size]))])
            mine, offset = mine[size:], offset + 1
            clock.later(0.1)
            stage.tick()
    clock.later(6)
    stage.tick()
    notes = firing_notes(database)
    check_against_stored_sample(store, spec, version, "streaming", notes)
    overall = next(n for n in notes if n.alert.segment == "*")
    exported = run_export(overall.notes[1], database.url, tmp_path / "streamed.jsonl")
    assert [line["stage"] for line in exported] == ["streaming"] * 8

    computed = {(w.segment, pd.Timestamp(w.window_start)): w for w in run(spec, events).windows}
    for note in notes:  # the ids research (and so batch) keeps for the same events
        window = computed[(note.alert.segment, pd.Timestamp(note.window_start))]
        sample = [e["id"] for _, e in window_examples(spec.aggregate, [window])]
        assert note.notes[0].startswith(f"example ids {', '.join(map(str, sample[:SHOWN]))} ")


def test_a_reminder_names_the_examples_of_the_alerts_last_window(
    database: Database, settings: AlertSettings, clock: Clock,
    webhook: WebhookReceiver, smtp_server: SmtpServer,
) -> None:
    """The dispatcher builds a reminder from the alert's stored row: it names the example
    ids of the last window the alert was evaluated on (the window the reminder reports),
    read from that window's stored sample, and the command that exports them."""
    app, spec = assertion_app()
    store = SqlStore(database)
    version = promote(store, spec, "batch")
    BatchRunner(store, lambda m: FrameSource(incident_events())).run_many(
        batch_targets(app, store), since=START, until=END, now=END + pd.Timedelta("5min"))
    clock.now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    dispatcher = dispatcher_for(database, settings, clock)
    for _ in range(2):  # the first messages, after the group wait
        dispatcher.run_once()
        clock.advance(seconds=31)
    clock.advance(hours=4)
    queued = 0
    for _ in range(2):  # the reminders, queued and sent
        queued += dispatcher.run_once().repeats
        clock.advance(seconds=31)
    assert queued == 3  # one a segment, counted on Postgres too
    _first, reminder = webhook.bodies
    assert reminder["text"].startswith("STILL FIRING")
    sections = "\n".join(b["text"]["text"] for b in reminder["blocks"]
                         if b["type"] == "section")
    last = END - pd.Timedelta(hours=1)
    for segment in ("*", "country=BR", "country=SE"):
        [stored] = store.read_states(spec.name, version, "batch", last, END, segment)
        sample = [e["id"] for _, e in window_examples(spec.aggregate, [stored])]
        [violations] = store.read_values(metric=spec.name, stage="batch", segment=segment,
                                         since=last, until=END).query(
            "field == 'violations'")["value"]
        assert (f"example ids {', '.join(map(str, sample[:SHOWN]))} ({SHOWN} of the "
                f"{len(sample)} sampled, {violations:.0f} violations)") in sections
    since = f"--since {last.isoformat().replace('+00:00', 'Z')}"
    assert sections.count(since) == 3 and "--since" not in sections.replace(since, "")
    [_, mail] = smtp_server.messages
    plain = body_text(mail, "plain")
    assert plain.count("example ids ") == 3


def test_a_resolution_and_a_metric_that_is_no_assertion_name_no_examples(
    database: Database,
) -> None:
    app, spec = assertion_app()
    store = SqlStore(database)
    promote(store, spec, "batch")
    events = incident_events()
    calm = events.assign(score=events["score"].where(
        pd.to_datetime(events["ts"]) < START + pd.Timedelta(hours=3), 0.0))
    BatchRunner(store, lambda m: FrameSource(calm)).run_many(
        batch_targets(app, store), since=START, until=END, now=END + pd.Timedelta("5min"))
    with database.connect() as conn:
        overall = [n for _, n in outbox.unrouted(conn) if n.alert.segment == "*"]
    assert [n.kind for n in overall] == ["firing", "resolved"]
    assert len(overall[0].notes) == 2 and overall[1].notes == ()
    [window] = hour(0, {"*": 1500.0})
    assert examples_note(latency_metric(), 1, "batch", window) is None


def test_a_late_announcement_names_examples_of_the_window_it_is_made_on(
    database: Database,
) -> None:
    """An alert that fired on a window too old to page and still fires on a recent one is
    announced once, on the recent window: the ids are of that window's sample."""
    _, spec = assertion_app()
    events = incident_events()
    windows = [w for w in run(spec, events).windows if w.segment == "*"]
    last = max(windows, key=lambda w: w.window_start)
    with database.begin() as conn:
        results.write_windows(conn, spec.name, 1, "batch", windows)
        found = evaluate_windows(SqlAlertTransaction(conn), spec, 1, "batch", windows,
                                 END.to_pydatetime() + timedelta(minutes=10),
                                 notify_within=timedelta(minutes=30))
    assert [(t.transition, t.window_start) for t in found] == [
        ("firing", START + pd.Timedelta(hours=INCIDENT_HOUR))]  # on the older window
    [note] = firing_notes(database)
    assert note.window_start == last.window_start  # announced on the recent one
    sample = [e["id"] for _, e in window_examples(spec.aggregate, [last])]
    assert note.notes[0].startswith(f"example ids {', '.join(map(str, sample[:SHOWN]))} "
                                    f"({SHOWN} of the 8 sampled")
    assert f"--since {last.window_start.isoformat().replace('+00:00', 'Z')}" in note.notes[1]
