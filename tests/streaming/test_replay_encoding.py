"""``monitor stream replay`` of files with bytes that are not UTF-8: the bad line is
skipped and counted with its reason, every other event is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.main import cli
from tests.streaming.helpers import all_events, read_topic

GOOD_CSV = [b"2026-05-01T00:00:%02dZ,%d,SE\n" % (n, n) for n in range(20)]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_replay_skips_the_line_that_is_not_utf8(bootstrap: str, topic: str, tmp_path: Path,
                                                suffix: str) -> None:
    if suffix == "csv":
        lines = [b"ts,n,country\n", *GOOD_CSV]
        lines.insert(5, b"2026-05-01T00:00:59Z,99,S\xffE\n")
        lines.insert(9, b"2026-05-01T00:00:58Z,98,S\xffE,surplus\n")
    else:
        lines = [b'{"ts": "2026-05-01T00:00:%02dZ", "n": %d, "country": "SE"}\n' % (n, n)
                 for n in range(20)]
        lines.insert(5, b'{"ts": "2026-05-01T00:00:59Z", "n": 99, "country": "S\xffE"}\n')
        lines.insert(9, b'{"ts": "2026-05-01T00:00:58Z", "n": 98, "country": "\xc3"}\n')
    path = tmp_path / f"events.{suffix}"
    path.write_bytes(b"".join(lines))

    result = CliRunner().invoke(cli, ["stream", "replay", str(path), "--topic", topic,
                                      "--bootstrap", bootstrap, "--partitions", "1"],
                                catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "skipping 2 rows of" in result.stderr
    assert "2 not UTF-8 text" in result.stderr
    assert "sent 20 events in " in result.stdout
    events = all_events(read_topic(bootstrap, topic, events=20))
    assert sorted(e["n"] for e in events) == list(range(20))
    assert {e["country"] for e in events} == {"SE"}
