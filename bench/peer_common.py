"""What every runner of bench/peers.py shares: loading the data, timing, memory, JSON out.

Stdlib, numpy and pandas only: the runners run in the peers' own virtual environments
(.peers/evidently, .peers/nannyml), which do not have the project installed.

A runner is ``python bench/peer_X.py DATA_DIR [--repeats N]``. It loads
``DATA_DIR/reference.parquet``, ``DATA_DIR/current.parquet`` and ``DATA_DIR/meta.json``
(the column lists), then calls :func:`measure` on its report, which runs it ``repeats``
times and returns the best time and the memory the first run took on top of what the
process held before it (the data, the imports). Memory comes from Linux's high-water mark
of the resident set (``VmHWM``), reset just before the run through
``/proc/self/clear_refs`` so that loading the data does not count; ``ru_maxrss`` (the
peak over the whole process) is reported too. The runner prints one JSON object as its
last line.
"""

from __future__ import annotations

import gc
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

MIB = 1024 * 1024


def load(data_dir: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], float]:
    """Reference frame, current frame, meta (numeric, categorical, shifted), load seconds."""
    start = time.perf_counter()
    directory = Path(data_dir)
    reference = pd.read_parquet(directory / "reference.parquet")
    current = pd.read_parquet(directory / "current.parquet")
    meta = json.loads((directory / "meta.json").read_text())
    return reference, current, meta, time.perf_counter() - start


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, rest = line.split(":")
                values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak() -> bool:
    """Reset the resident-set high-water mark (Linux >= 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> float:
    return _status()["VmRSS"] / MIB


def measure(run: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Run ``run`` ``repeats`` times: best and every time, the first run's extra memory.

    Returns ``result`` (the last run's return value), ``seconds`` (best), ``all_seconds``,
    ``rss_before_mib`` (resident set before the first run: interpreter, imports, data),
    ``extra_mib`` (the first run's resident high-water mark above that) and
    ``peak_rss_mib`` (the first run's high-water mark, whole process) and
    ``loading_peak_rss_mib`` (``ru_maxrss`` before it: the peak of loading the data).
    """
    gc.collect()
    before = _status()["VmRSS"]
    loading_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    reset = _reset_peak()
    times = []
    start = time.perf_counter()
    result = run()
    times.append(time.perf_counter() - start)
    peak = _status()["VmHWM"]
    for _ in range(repeats - 1):
        del result  # so that a run does not hold two results at once
        gc.collect()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return {
        "result": result,
        "seconds": min(times),
        "all_seconds": times,
        "rss_before_mib": before / MIB,
        "loading_peak_rss_mib": loading_peak / MIB,
        "peak_rss_mib": peak / MIB,
        "extra_mib": (peak - before) / MIB if reset else float("nan"),
        "peak_reset": reset,
    }


def emit(tool: str, version: str, figures: dict[str, Any]) -> None:
    """Print the runner's JSON line, with ``ru_maxrss`` over all the runs (since the reset)."""
    figures = {k: v for k, v in figures.items() if k != "result"}
    print(json.dumps({
        "tool": tool,
        "version": version,
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "numpy": __import__("numpy").__version__,
        **figures,
        "runs_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB,
    }, default=float))
    sys.stdout.flush()
