"""What the peer runners of bench/drift_calibration.py share (runs in every peer's venv).

bench/drift_calibration.py writes a data directory once:

- ``plan.json``: the cells (``id``, ``family``, ``n``, ``windows``, ``path``,
  ``report_check``), each family's column kind and reference files, and the family-wise
  layout (its columns and their kinds, one file per segment);
- ``references/*.parquet``: the reference draws (column ``x``; the family-wise reference
  has one column per report column);
- ``cells/*.parquet``: one file per cell, one row group per window, in window order
  (column ``x``); ``familywise/*.parquet``: one file per segment, one row group per window.

A runner reads the plan, decides drift on every window with its tool and prints one JSON
line: ``{"tool", "version", ..., "variants": {name: {"cells": {id: {"flags": "0110...",
"seconds": ...}}, "familywise": {...}}}}``; flags are per window, in order, as a string of
0 and 1. Only numpy, pandas and pyarrow are needed here; tqdm is used when installed.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

tqdm_package: ModuleType | None
try:
    import tqdm as tqdm_package
except ImportError:  # Evidently's venv has no tqdm
    tqdm_package = None


def load_plan(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "plan.json").read_text())


def reference_frame(data_dir: Path, plan: dict[str, Any], family: str, index: int) -> pd.DataFrame:
    return pd.read_parquet(data_dir / plan["references"][family][index])


def window_frames(data_dir: Path, path: str, windows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """The first ``windows`` windows of a cell or segment file, one frame each, in order."""
    file = pq.ParquetFile(data_dir / path)
    if file.num_row_groups < windows:
        raise SystemExit(f"{path} holds {file.num_row_groups} windows, the plan says {windows}")
    for index in range(windows):
        yield index, file.read_row_group(index).to_pandas()


def windows_frame(data_dir: Path, path: str, indices: list[int]) -> pd.DataFrame:
    """Some windows of a file, concatenated in the given order (for chunked tools)."""
    file = pq.ParquetFile(data_dir / path)
    return file.read_row_groups(indices).to_pandas()


def flags_text(flags: list[bool]) -> str:
    return "".join("1" if f else "0" for f in flags)


class Progress:
    """A tqdm bar on stderr, or a line every 10% where tqdm is not installed."""

    def __init__(self, total: int, description: str) -> None:
        self.total, self.description, self.done = total, description, 0
        self.bar = tqdm_package.tqdm(total=total, desc=description, file=sys.stderr, unit="win",
                                     smoothing=0.05) if tqdm_package else None
        self.start = time.perf_counter()
        self.next_report = 0.1

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.total and self.done / self.total >= self.next_report:
            print(f"{self.description}: {self.done}/{self.total} windows, "
                  f"{time.perf_counter() - self.start:.0f} s", file=sys.stderr, flush=True)
            while self.next_report <= self.done / self.total:
                self.next_report += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def total_windows(plan: dict[str, Any]) -> int:
    familywise = plan.get("familywise")
    extra = familywise["windows"] * len(familywise["segments"]) if familywise else 0
    return sum(cell["windows"] for cell in plan["cells"]) + extra


def emit(tool: str, version: str, figures: dict[str, Any]) -> None:
    print(json.dumps({
        "tool": tool,
        "version": version,
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        **figures,
    }, default=float))
    sys.stdout.flush()
