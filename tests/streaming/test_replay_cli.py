"""``monitor stream replay`` against the session's broker."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import stream_cmd
from monitor.cli.main import cli
from streaming.broker import create_topics, free_port
from tests.streaming.helpers import all_events, read_topic
from tests.streaming.producer_threads import producers_closed


def replay(*args: str) -> Result:
    return CliRunner().invoke(cli, ["stream", "replay", *args], catch_exceptions=False)


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    """120 good events with three lines that do not parse among them."""
    lines = [json.dumps({"ts": f"2026-05-01T00:{n // 60:02d}:{n % 60:02d}Z", "n": n,
                         "latency_ms": 10.0 + n, "country": "SE" if n % 2 else "US",
                         **({"user_id": n % 7} if n % 10 else {})})
             for n in range(120)]
    lines.insert(10, '{"ts": "2026-05-01T00:00:10Z", "n": ')  # cut short
    lines.insert(50, '["an", "array"]')
    lines.insert(90, "not json at all")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_sends_the_good_events_and_reports_the_rest(bootstrap: str, topic: str,
                                                           events_file: Path) -> None:
    result = replay(str(events_file), "--topic", topic, "--bootstrap", bootstrap,
                    "--batch", "25", "--key", "user_id")
    assert result.exit_code == 0, result.output
    assert "skipping 3 rows of" in result.stderr
    assert "2 malformed JSON" in result.stderr and "1 not a JSON object" in result.stderr
    assert f"created topic {topic} with 4 partitions" in result.stderr
    assert "120/120 [" not in result.stderr  # no progress bar: stderr is not a terminal
    assert "sent 120 events in " in result.stdout
    assert "failed 0; skipped 3 rows that did not parse" in result.stdout

    messages = read_topic(bootstrap, topic, events=120)
    events = all_events(messages)
    assert sorted(e["n"] for e in events) == list(range(120))
    assert all(len(m.events) <= 25 for m in messages)
    by_n = {e["n"]: e for e in events}
    assert by_n[7] == {"ts": "2026-05-01T00:00:07Z", "n": 7, "latency_ms": 17.0,
                       "country": "SE", "user_id": 0}
    assert "user_id" not in by_n[20]  # a missing value is left out, not sent as NaN


def test_the_topic_comes_from_the_app(bootstrap: str, events_file: Path) -> None:
    create_topics(bootstrap, {"replay-home": 2})
    before = len(all_events(read_topic(bootstrap, "replay-home", events=0, linger=0.2)))
    result = replay(str(events_file), "--bootstrap", bootstrap)
    assert result.exit_code == 2  # no app, no topic
    assert "which topic?" in result.output
    result = CliRunner().invoke(cli, ["--app", "tests.streaming.stream_app:mon", "stream",
                                      "replay", str(events_file), "--bootstrap", bootstrap])
    assert result.exit_code == 0, result.output
    assert "to replay-home at" in result.stdout
    assert len(all_events(read_topic(bootstrap, "replay-home", events=before + 120))) == (
        before + 120)


def test_several_stream_topics_need_a_choice(bootstrap: str, events_file: Path) -> None:
    app = ["--app", "tests.streaming.stream_app:two", "stream", "replay", str(events_file),
           "--bootstrap", bootstrap]
    result = CliRunner().invoke(cli, app)
    assert result.exit_code == 1
    assert "several streams with topics: home (replay-home), search (replay-search)" in (
        result.output)
    result = CliRunner().invoke(cli, [*app, "--stream", "nope"])
    assert "the app has no stream 'nope'; it has home, search" in result.output


def test_speed_keeps_the_gaps_between_events(bootstrap: str, topic: str,
                                             tmp_path: Path) -> None:
    # Four events a minute apart, compressed 600x: 0.1 s apart, 0.3 s in all.
    path = tmp_path / "paced.jsonl"
    path.write_text("".join(json.dumps({"ts": 1_777_593_600_000 + 60_000 * n, "n": n}) + "\n"
                            for n in range(4)))
    started = time.monotonic()
    result = replay(str(path), "--topic", topic, "--bootstrap", bootstrap, "--speed", "600",
                    "--partitions", "1", "--batch", "1")
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert "replaying 0.05 h of event time at 600x" in result.stderr
    assert 0.3 <= took < 5
    messages = read_topic(bootstrap, topic, events=4)
    assert [e["n"] for e in all_events(messages)] == [0, 1, 2, 3]
    assert len(messages) == 4
    # Paced on the clock from the start (0.1 s apart): spread over about 0.3 s, not sent
    # at once. A send delayed on a loaded machine shortens the next gap (73 ms for 100
    # was seen), so the gaps are not checked one by one.
    offsets = [m.timestamp - messages[0].timestamp for m in messages]
    assert offsets == sorted(offsets) and 200 <= offsets[-1] < 2_000, offsets
    result = replay(str(path), "--topic", topic, "--speed", "2", "--as-fast-as-possible")
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_no_broker_is_a_clear_error(events_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_cmd, "CONNECT_TIMEOUT_S", 0.3)
    address = f"127.0.0.1:{free_port()}"
    result = replay(str(events_file), "--topic", "t", "--bootstrap", address)
    assert result.exit_code == 1
    assert f"no Kafka broker answered at {address}" in result.output
    assert "monitor broker" in result.output


def test_a_missing_file_is_a_clear_error(bootstrap: str, tmp_path: Path) -> None:
    result = replay(str(tmp_path / "none.jsonl"), "--topic", "t", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert "no event file matches" in result.output


@pytest.mark.parametrize(("name", "lines"), [
    ("events.jsonl", []), ("events.jsonl", ["", "  "]), ("events.jsonl", ["not json", '{"ts": ']),
    ("events.csv", []), ("events.csv", [""]), ("events.csv", ["ts,n"]),
], ids=["empty", "blank lines", "nothing parses", "empty csv", "blank csv", "csv header"])
def test_a_file_without_events_has_nothing_to_send(
    bootstrap: str, topic: str, tmp_path: Path, name: str, lines: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Said plainly, exit 0 (a file with no events is not a failure to send, e.g. an
    export of a quiet hour), and no Kafka client errors on the way out; a 0-byte CSV
    failed with 'Empty CSV file'."""
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    caplog.set_level(logging.WARNING)
    with producers_closed():
        result = replay(str(path), "--topic", topic, "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output
    assert f"nothing to send: {path} holds no events" in result.stdout
    assert "sent 0 events" not in result.output
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_nan_or_infinity_the_file_held_is_sent_as_it_was(bootstrap: str, topic: str,
                                                           tmp_path: Path) -> None:
    """A NaN is JSON's NaN on the topic, not a field left out (which the worker reads as
    null and accepts while research rejects the event as 'is NaN'); infinity is sent too
    (it failed the replay: 'not encodable'); a null is still left out."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"ts": "2026-05-01T00:00:00Z", "n": 0, "latency_ms": NaN}\n'
        '{"ts": "2026-05-01T00:00:01Z", "n": 1, "latency_ms": null}\n'
        '{"ts": "2026-05-01T00:00:02Z", "n": 2, "latency_ms": 2.5}\n'
        '{"ts": "2026-05-01T00:00:03Z", "n": 3, "latency_ms": -Infinity}\n')
    result = replay(str(path), "--topic", topic, "--bootstrap", bootstrap, "--partitions", "1")
    assert result.exit_code == 0, result.output
    assert "sent 4 events" in result.stdout and "failed 0" in result.stdout
    messages = read_topic(bootstrap, topic, events=4)
    assert b'"latency_ms":NaN' in b"".join(m.value for m in messages)
    by_n = {e["n"]: e for e in all_events(messages)}
    assert math.isnan(by_n[0]["latency_ms"])
    assert "latency_ms" not in by_n[1] and by_n[2]["latency_ms"] == 2.5
    assert by_n[3]["latency_ms"] == -math.inf
