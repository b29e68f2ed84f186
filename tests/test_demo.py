"""`monitor demo --duration 60` from a fresh folder on the embedded defaults: values in
every stage, the latency incident's alerts fired (latency, the consistency check and the
input expectation; no alarm before it), the realized click AUC joined to the click
outcomes streamed live (equal to research's), the dashboard answering while it runs, and
no process left behind."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd

from monitor.cli.demo_cmd import HISTORY_HOURS, ROLLOUT_HOURS

MONITOR = str(Path(sys.executable).with_name("monitor"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_demo_runs_every_stage_fires_the_incident_alert_and_stops_everything(
    tmp_path: Path,
) -> None:
    port = free_port()
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONITOR_DATABASE_URL", "MONITOR_KAFKA_BOOTSTRAP",
                        "MONITOR_SLACK_WEBHOOK_URL", "MONITOR_SMTP_URL")}
    started = pd.Timestamp.now(tz="UTC").floor("h")
    answered: list[int] = []

    def probe() -> None:  # the dashboard must answer while the demo runs
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not answered:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    answered.append(reply.status)
            except OSError:
                time.sleep(1)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    result = subprocess.run(
        [MONITOR, "demo", "--duration", "60", "--workdir", str(workdir), "--port", str(port)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert answered == [200], output[-3000:]

    pids = [int(p) for p in re.findall(r"\(pid (\d+)", output)]
    assert len(pids) >= 5, output  # broker, worker, scheduler, dispatcher, dashboard
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"pid {pid} still runs"
    assert "everything stopped" in output
    # No progress bar ("live: 40%|...| 800/2000 [00:07<00:10, ...]") in a log.
    assert not re.search(r" \[\d+:\d+<", output), output[-3000:]

    with sqlite3.connect(workdir / "demo.sqlite") as db:
        stages = dict(db.execute("SELECT stage, COUNT(*) FROM metric_values "
                                 "WHERE metric NOT LIKE '%.dead_letters' GROUP BY stage"))
        alerts = db.execute("SELECT metric, transition, window_start FROM alert_events "
                            "WHERE stage = 'streaming' ORDER BY id").fetchall()
    assert set(stages) == {"research", "batch", "streaming"} and min(stages.values()) > 0
    # The live part starts at the hour the demo began; the latency spike is 4-8 h in.
    origin = _origin(output, started)
    spike = origin + pd.Timedelta(hours=4)
    fired = [(m, pd.Timestamp(w, tz="UTC")) for m, t, w in alerts if t == "firing"]
    assert ("latency", spike + pd.Timedelta(hours=1)) in fired, alerts
    # No alarm before the incident. A single breached window is pending, not an alarm
    # (the rules fire after two): drift flags are decided at a 1% false-alarm rate per
    # window, so one pending among the demo's windows is expected now and then.
    early = [a for a in alerts if pd.Timestamp(a[2], tz="UTC") < spike and a[1] == "firing"]
    assert early == []
    assert "ALERT FIRING: latency" in output
    # The failover's cold backend ranks without user profiles: the consistency check
    # (users shown two favourites in an hour) and the input expectation (the favourite is
    # a personal carousel) with its summary fire in its first hour, as research has it.
    for name in ("fav_consistency", "home.in_set.fav_carousel", "home.expectations"):
        assert (name, spike) in fired, (name, alerts)
    # The BR ranker rollout, an hour into the failover: the click AUC estimated from the
    # scores alone fires at the end of its second hour, while its outcomes still come in.
    rollout = origin + pd.Timedelta(hours=ROLLOUT_HOURS[0] - HISTORY_HOURS)
    assert ("click_auc_estimate", rollout + pd.Timedelta(hours=1)) in fired, alerts
    _realized_auc_streams_with_its_outcomes(workdir, origin, rollout, tmp_path)


def _realized_auc_streams_with_its_outcomes(workdir: Path, origin: pd.Timestamp,
                                            rollout: pd.Timestamp, tmp_path: Path) -> None:
    """The click outcomes were streamed live: the worker joined them to the views and
    stored click_auc_realized for the live windows, equal to research's on what was sent,
    and low in Brazil during the rollout. Windows whose outcomes were all sent more than
    15 s before the live part ended (4 event-time hours of 16) are compared; the worker
    has had time to absorb them."""
    with sqlite3.connect(workdir / "demo.sqlite") as db:
        stored = pd.read_sql_query(
            "SELECT window_start, segment, field, value FROM metric_values "
            "WHERE metric = 'click_auc_realized' AND stage = 'streaming'", db)
    stored["window_start"] = pd.to_datetime(stored["window_start"], utc=True)
    settled = stored[stored["window_start"] < origin + pd.Timedelta(hours=11)]
    overall = settled[(settled["segment"] == "*") & (settled["field"] == "label_coverage")]
    assert len(overall) == 11 and overall["window_start"].min() == origin, stored
    # ~97% of views get an outcome (3% never do): the labels came in through the stream
    assert overall["value"].between(0.9, 1.0).all(), overall
    brazil = settled[(settled["segment"] == "country=BR") & (settled["field"] == "auc")]
    during = brazil["window_start"] >= rollout
    # ~0.78 before, ~0.58 during; one hour of Brazil has a sampling error up to 0.07
    assert brazil[~during]["value"].mean() > 0.7 > brazil[during]["value"].mean(), brazil

    data = workdir / "data"
    research_csv = tmp_path / "research-live.csv"
    result = subprocess.run(
        [MONITOR, "--app", "examples.music_home:mon", "research", "run",
         "click_auc_realized", "--data", str(data / "live.jsonl"),
         "--labels", str(data / "live-outcomes.jsonl"),
         "--no-store",
         "--out", str(research_csv)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "MUSIC_HOME_TRAINING": str(data / "training.jsonl")})
    assert result.returncode == 0, result.stderr[-3000:]
    research = pd.read_csv(research_csv)
    research["window_start"] = pd.to_datetime(research["window_start"], utc=True)
    keys = ["window_start", "segment", "field"]
    both = settled.merge(research[[*keys, "value"]], on=keys, how="left",
                         suffixes=("_streaming", "_research"))
    assert len(both) > 0 and both["value_research"].notna().all(), both
    streamed, researched = both["value_streaming"], both["value_research"]
    differ = both[(streamed != researched) & ~(streamed.isna() & researched.isna())]
    assert differ.empty, differ


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0
    except OSError:
        return True


def _origin(output: str, fallback: pd.Timestamp) -> pd.Timestamp:
    """The demo's "now": the end of the history it printed."""
    found = re.search(r"--until (\S+)", output)
    return pd.Timestamp(found.group(1)).tz_convert("UTC") if found else fallback


def test_the_demo_refuses_to_empty_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    result = subprocess.run([MONITOR, "demo", "--workdir", str(tmp_path), "--duration", "10"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "not a folder an earlier demo made" in result.stderr
    assert precious.read_text() == "mine"
