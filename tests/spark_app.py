"""The example app's metrics over event files, for the Spark engine's tests (loaded as
``--app tests.spark_app:mon``, and imported by Spark's Python workers, which find it on
PYTHONPATH).

Every metric of :mod:`examples.music_home` is kept as it is, bound to the same streams
declared with ``files=`` (``$SPARK_TEST_EVENTS``, ``$SPARK_TEST_OUTCOMES``), since the
Spark engine reads a stream's files. Two metrics of its own make faults: one raises on
the third day's events, one holds its task until the test lets it go (``$SPARK_TEST_GATE``:
a folder) so that an executor can be killed while its task is known to be running.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pandas as pd

import metrics
from examples.music_home import mon as example
from examples.music_home_events import DEFAULT_START
from monitor import Monitor

EVENTS_ENV, OUTCOMES_ENV, GATE_ENV = "SPARK_TEST_EVENTS", "SPARK_TEST_OUTCOMES", "SPARK_TEST_GATE"
RELEASE = "release"  # the file in the gate folder that lets held tasks go on
GATE_LIMIT_S = 300.0  # a held task gives up (and fails) if the test never releases it
FAILING_DAY = DEFAULT_START + pd.Timedelta(days=2)
EXAMPLE_METRICS = tuple(example.metrics)

mon = Monitor("spark_home")
home = example.streams["home"]
outcomes = example.streams["outcomes"]
mon.stream("home", schema=home.schema.to_dict(), time=home.time,
           files=os.environ.get(EVENTS_ENV, "data/home-*.parquet"))
mon.stream("outcomes", schema=outcomes.schema.to_dict(), time=outcomes.time,
           files=os.environ.get(OUTCOMES_ENV, "data/outcomes.jsonl"))
for reference, path in example.references.items():
    mon.reference(reference, path)
for name, spec in example.metrics.items():  # the same definitions, on these streams
    labels = (None if spec.labels is None else
              dataclasses.replace(spec.labels, stream=mon.streams[spec.labels.stream.name]))
    mon.metrics[name] = dataclasses.replace(spec, stream=mon.streams["home"], labels=labels)


class InjectedTaskError(BaseException):
    """Not an Exception: a per-event function's Exception sends the events it fails on
    to dead letters (monitor.engine.derive), while this one fails the task, as a fault
    of the metric's code or of the executor would."""


@mon.metric("breaks_on_day_3", "home", aggregate=metrics.mean(), window="1h")
def breaks_on_day_3(events: pd.DataFrame) -> pd.Series:
    """Latency, but it fails the task on any event of the third day."""
    ts = events["ts"]
    if ((ts >= FAILING_DAY) & (ts < FAILING_DAY + pd.Timedelta(days=1))).any():
        raise InjectedTaskError("injected failure on the third day's events")
    return events["latency_ms"]


def hold(gate: Path) -> None:
    """Wait for ``gate/release``, having left ``gate/started-PID``."""
    (gate / f"started-{os.getpid()}").touch()
    deadline = time.monotonic() + GATE_LIMIT_S
    while not (gate / RELEASE).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test did not release {gate} in {GATE_LIMIT_S:g} s")
        time.sleep(0.05)


@mon.metric("gated_latency", "home", aggregate=metrics.quantiles(ps=(0.5, 0.99)),
            window="1h")
def gated_latency(events: pd.DataFrame) -> pd.Series:
    """Latency; where ``$SPARK_TEST_GATE`` names a folder, the Python process computing it
    first leaves a file named by its pid there (``started-PID``), then waits for the file
    ``release`` (registration's trial call on sample events too, so a Python worker may
    hold while it loads this module for a task). A task is then known to be running, by
    which process, until the test says otherwise, however fast the machine is."""
    if gate := os.environ.get(GATE_ENV):
        hold(Path(gate))
    return events["latency_ms"]
