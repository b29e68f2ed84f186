"""Input a stage could not use, kept with the reason and an excerpt of the payload."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from monitor.storage.insert_ignore import insert_ignore
from monitor.storage.models import (
    DEAD_LETTER_KEY_CHARS,
    NAME_LENGTH,
    PAYLOAD_EXCERPT_CHARS,
    DeadLetterRow,
    table_of,
)
from monitor.storage.records import DeadLetter
from monitor.storage.types import to_utc, utc_now
from monitor.storage.upsert import BATCH_ROWS, batched

DEAD_LETTERS = table_of(DeadLetterRow)
KEY = ("source", "source_key")  # unique: a keyed letter is stored once
CUT = "…"


def excerpt(payload: str | bytes, limit: int = PAYLOAD_EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of the payload, ending in … when it was cut.

    >>> excerpt("x" * 5000)[-3:], len(excerpt("x" * 5000))
    ('xx…', 1000)
    >>> excerpt(b'{"ts": \\xff}'), excerpt("a\\x00b")
    ('{"ts": \\ufffd}', 'a\\ufffdb')
    """
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    text = text.replace("\x00", "\ufffd")  # Postgres text cannot hold NUL
    return text if len(text) <= limit else text[: limit - len(CUT)] + CUT


def write_dead_letters(conn: Connection, letters: Iterable[DeadLetter]) -> int:
    """Store ``letters``; returns how many rows were added.

    A letter with a key is stored once: one whose (source, key) is stored already is left
    out (insert-or-ignore), so writing it again in a retried transaction, a rerun or a
    replay adds nothing. A letter without a key is added every time.
    """
    now = utc_now()
    keyed: list[dict[str, object]] = []
    unkeyed: list[dict[str, object]] = []
    for letter in letters:
        row: dict[str, object] = {
            "source": _source(letter.source), "source_key": _key(letter.key),
            "reason": letter.reason.replace("\x00", "\ufffd"),
            "payload": excerpt(letter.payload),
            "created_at": now if letter.created_at is None else to_utc(letter.created_at)}
        (unkeyed if letter.key is None else keyed).append(row)
    written = 0
    for batch in batched(unkeyed, BATCH_ROWS):
        conn.execute(insert(DEAD_LETTERS), batch)
        written += len(batch)
    for batch in batched(keyed, BATCH_ROWS):
        written += insert_ignore(conn, DEAD_LETTERS, batch, KEY)
    return written


def _source(source: str) -> str:
    if not source or len(source) > NAME_LENGTH:
        raise ValueError(f"a dead letter's source needs 1 to {NAME_LENGTH} characters, "
                         f"got {source[:NAME_LENGTH]!r}...")
    return source


def _key(key: str | None) -> str | None:
    if key is not None and not 0 < len(key) <= DEAD_LETTER_KEY_CHARS:
        raise ValueError(f"a dead letter's key needs 1 to {DEAD_LETTER_KEY_CHARS} characters, "
                         f"got {key[:DEAD_LETTER_KEY_CHARS]!r}...")
    return key


def recent_dead_letters(conn: Connection, source: str | None = None,
                        limit: int = 100) -> list[DeadLetter]:
    """Latest first."""
    d = DEAD_LETTERS.c
    query = select(d.source, d.reason, d.payload, d.created_at, d.source_key).order_by(
        d.created_at.desc(), d.id.desc()).limit(limit)
    if source is not None:
        query = query.where(d.source == source)
    return [DeadLetter(row.source, row.reason, row.payload, row.created_at, row.source_key)
            for row in conn.execute(query)]
