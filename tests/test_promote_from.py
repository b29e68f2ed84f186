"""`monitor promote --from`: a stage switch into or out of streaming at a window boundary
that no worker has read past, on SQLite and on Postgres; what the command says it means,
and where `monitor metrics history` and `list` show the boundary."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from click.testing import CliRunner, Result

import metrics
from monitor import Monitor
from monitor.cli.main import cli
from monitor.stage_switch import switch_boundary
from monitor.storage.models import StreamCheckpointRow, table_of
from monitor.storage.store import SqlStore

APP = Monitor("promote-from-test")
APP.stream("home", schema={"latency_ms": "float"}, topic="home-events")
LATENCY = APP.metric("latency", "home", metrics.quantiles("latency_ms", ps=(0.5,)),
                     window="1h")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


def promote(url: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--app", "tests.test_promote_from:APP", "promote", "latency", "--reason", "test",
         *args], env={"MONITOR_DATABASE_URL": url, "USER": "ana"}, catch_exceptions=False)


def in_batch(url: str) -> None:
    with SqlStore.open(url) as store:
        store.register_metric(LATENCY)
        store.record_stage_change("latency", 1, "batch", by="ana", reason="test")


def worker_read_until(url: str, latest: datetime) -> None:
    """A checkpoint of partition 0 of the metric's topic that absorbed an event at
    ``latest`` (its event watermark a little before: the highest times are set aside)."""
    with SqlStore.open(url) as store, store.database.begin() as conn:
        conn.execute(sa.insert(table_of(StreamCheckpointRow)).values(
            topic="home-events", partition=0, offset=41, events=42, owner="host/1",
            watermark=at(11, 50), event_watermark=at(11, 55), updated_at=at(12, 11),
            event_time_top=f"{pd.Timestamp(latest).value},{pd.Timestamp(at(11, 58)).value}"))


def test_a_boundary_a_worker_read_past_is_refused_with_what_to_do(results_url: str) -> None:
    in_batch(results_url)
    worker_read_until(results_url, at(12, 10))
    refused = promote(results_url, "--to", "streaming", "--from", "2026-03-02T12:00:00Z")
    assert refused.exit_code == 1, refused.output
    assert ("cannot switch streaming from 2026-03-02T12:00:00Z: streaming has read topic "
            "'home-events' partition 0 up to 2026-03-02T12:10:00Z") in refused.output
    assert "give a later --from (from 2026-03-02T13:00:00Z)" in refused.output
    assert "Traceback" not in refused.output

    promoted = promote(results_url, "--to", "streaming", "--from", "2026-03-02T13:00:00Z")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output.splitlines()[1] == (
        "latency version 1 -> streaming from 2026-03-02T13:00:00Z: batch keeps the windows "
        "before it; running workers switch within their --lifecycle-poll (5 s by default)")
    with SqlStore.open(results_url) as store:
        assert store.stage_history("latency")[-1].effective_from == at(13)

    demoted = promote(results_url, "--to", "batch", "--from", "2026-03-02T14:00:00Z")
    assert demoted.exit_code == 0, demoted.output
    assert demoted.output.splitlines()[1] == (
        "latency version 1 leaves streaming at 2026-03-02T14:00:00Z: streaming counts the "
        "windows before it, batch computes the windows from it; running workers stop within "
        "their --lifecycle-poll (5 s by default)")


def test_a_boundary_must_start_a_window(results_url: str) -> None:
    in_batch(results_url)
    refused = promote(results_url, "--to", "streaming", "--from", "2026-03-02T12:30:00Z")
    assert refused.exit_code == 1, refused.output
    assert ("metric 'latency': a switch must be at a window boundary; "
            "2026-03-02T12:30:00+00:00 is not (try 2026-03-02T12:00:00+00:00 or "
            "2026-03-02T13:00:00+00:00)") in refused.output
    with SqlStore.open(results_url) as store:  # nothing changed
        current = store.current_definition("latency")
        assert current is not None and current.stage == "batch"


def test_by_default_the_switch_is_the_first_boundary_after_the_lead(results_url: str) -> None:
    in_batch(results_url)
    worker_read_until(results_url, at(12, 10))  # older than the lead: no matter
    lead = pd.Timedelta("15min")
    before = switch_boundary(["1h"], datetime.now(UTC), lead)
    promoted = promote(results_url, "--to", "streaming")
    after = switch_boundary(["1h"], datetime.now(UTC), lead)
    assert promoted.exit_code == 0, promoted.output
    stated = {f"latency version 1 -> streaming from {b.isoformat().replace('+00:00', 'Z')}:"
              for b in (before, after)}
    assert promoted.output.splitlines()[1].split(" batch")[0] in stated

    runner = CliRunner()
    env = {"MONITOR_DATABASE_URL": results_url}
    listed = runner.invoke(cli, ["--app", "tests.test_promote_from:APP", "metrics", "list"],
                           env=env, catch_exceptions=False)
    row = next(line for line in listed.output.splitlines() if line.startswith("latency"))
    assert {f"streaming from {b:%Y-%m-%d %H:%M}" for b in (before, after)} & {
        " ".join(row.split()[2:6])}
    history = runner.invoke(cli, ["metrics", "history", "latency"], env=env,
                            catch_exceptions=False)
    assert history.output.splitlines()[-1].split()[5] in {
        b.isoformat().replace("+00:00", "Z") for b in (before, after)}
