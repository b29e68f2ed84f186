"""build_app fixes glibc's mmap threshold before it starts the processors' processes:
forked children inherit malloc's settings, so a threshold set after the fork would leave
each processor with the dynamic one (see streaming.malloc_tuning), which kept a
micro-batch's freed buffers resident."""

from __future__ import annotations

from typing import Any

import pytest

import streaming.worker
from examples.music_home import mon
from streaming.worker import WorkerSettings, build_app, streamable


def test_the_threshold_is_fixed_before_any_processor_process_starts(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    happened: list[str] = []

    class StartedProcess:
        def __init__(self, spec: Any, sink: Any) -> None:
            happened.append(f"process {spec.stream.topic}")

    def fix_threshold() -> bool:
        happened.append("threshold")
        return True

    monkeypatch.setattr(streaming.worker, "fix_mmap_threshold", fix_threshold)
    monkeypatch.setattr(streaming.worker, "ProcessorProcess", StartedProcess)
    monkeypatch.setattr(streaming.worker, "ensure_topics",
                        lambda bootstrap, topics, partitions: dict.fromkeys(topics, 2))
    monkeypatch.setattr(streaming.worker, "faust_app", lambda settings: object())
    monkeypatch.setattr(streaming.worker, "_wire", lambda *args, **kwargs: None)
    settings = WorkerSettings(bootstrap="localhost:1", group="g")
    metrics = [m for m in mon.metrics.values() if streamable(m, settings)]
    assert metrics  # the example has streaming metrics, so processes are started

    build_app(settings, "sqlite://", "examples.music_home:mon", metrics)

    assert happened[0] == "threshold"
    assert happened.count("threshold") == 1
    assert any(step.startswith("process ") for step in happened[1:])
