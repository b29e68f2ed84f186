"""bench/server_cpu.py: the local Postgres server's CPU seconds, which bench/batch.py sets
beside its own to bound what spreading a run over the machine's cores could give."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from bench.batch import cores_floor
from bench.server_cpu import postgres_cpu_seconds


def test_a_query_the_server_works_on_is_counted_even_after_its_backend_ends(
        postgres_url: str) -> None:
    before = postgres_cpu_seconds()
    assert before is not None, "the tests' Postgres runs on this machine"
    engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    start = time.perf_counter()
    with engine.connect() as conn:  # its backend ends as the connection closes
        conn.execute(sa.text("SELECT sum(sqrt(i)) FROM generate_series(1, 3000000) AS i"))
    wall = time.perf_counter() - start
    engine.dispose()
    time.sleep(0.2)  # the postmaster reaps the ended backend (its time goes to cutime)
    after = postgres_cpu_seconds()
    assert after is not None
    # the server worked through the query (a share of its wall time however busy the
    # machine), and no more CPU than the machine's cores had in that time
    assert max(0.1, 0.25 * wall) <= after - before <= wall * (os.cpu_count() or 1) + 0.5


def test_the_cores_floor_spreads_client_and_server_seconds_over_the_cores() -> None:
    assert cores_floor(3.0, 1.0) == 4.0 / (os.cpu_count() or 1)
    assert cores_floor(3.0, None) is None
