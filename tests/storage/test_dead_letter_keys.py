"""Dead letters with a key are stored once per (source, key), on SQLite and Postgres."""

from __future__ import annotations

import pytest

from monitor.storage.database import Database
from monitor.storage.dead_letters import write_dead_letters
from monitor.storage.models import DEAD_LETTER_KEY_CHARS
from monitor.storage.records import DeadLetter
from monitor.storage.store import SqlStore

SOURCE = "stream:home-events"


def letter(key: str | None, source: str = SOURCE, reason: str = "invalid JSON") -> DeadLetter:
    return DeadLetter(source, reason, b"{not json", key=key)


def test_a_dead_letter_written_twice_with_the_same_key_is_one_row(store: SqlStore) -> None:
    assert store.write_dead_letters([letter("home-events/0/17/0")]) == 1
    assert store.write_dead_letters([letter("home-events/0/17/0")]) == 0  # a replay
    assert [(d.source, d.key) for d in store.recent_dead_letters()] == [
        (SOURCE, "home-events/0/17/0")]


def test_keys_are_per_source_and_letters_without_a_key_are_kept_every_time(
    store: SqlStore,
) -> None:
    written = store.write_dead_letters([
        letter("home-events/0/17/0"), letter("home-events/0/17/1"),
        letter("home-events/0/17/0", source="stream:other"), letter(None), letter(None),
        letter("home-events/0/17/1"),  # twice in one call: once
    ])
    assert written == 5
    stored = sorted((d.source, d.key or "") for d in store.recent_dead_letters())
    assert stored == [(SOURCE, ""), (SOURCE, ""), (SOURCE, "home-events/0/17/0"),
                      (SOURCE, "home-events/0/17/1"), ("stream:other", "home-events/0/17/0")]


def test_a_keyed_letter_in_a_transaction_that_rolls_back_is_stored_by_its_retry(
    database: Database,
) -> None:
    with pytest.raises(RuntimeError), database.begin() as conn:
        write_dead_letters(conn, [letter("home-events/1/5/0")])
        raise RuntimeError("the micro-batch's store failed")
    with database.begin() as conn:
        assert write_dead_letters(conn, [letter("home-events/1/5/0")]) == 1
    assert len(SqlStore(database).recent_dead_letters()) == 1


def test_a_key_too_long_is_refused_with_its_limit(store: SqlStore) -> None:
    with pytest.raises(ValueError, match=f"1 to {DEAD_LETTER_KEY_CHARS} characters"):
        store.write_dead_letters([letter("k" * (DEAD_LETTER_KEY_CHARS + 1))])
