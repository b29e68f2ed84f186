"""Reference data read from a file and profiled: it needs no time column, only the
columns its metrics compare, and errors name what is missing or wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics.drift import ReferenceProfile
from monitor.references import References, fit_reference
from monitor.schema import Schema

SCHEMA = Schema.parse({"x": "float", "rating": "int", "device": "str", "user": "str"})


def reference_frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "rating": rng.integers(1, 6, size=n),
        "device": rng.choice(["ios", "web"], size=n),
    })


def write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "reference.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_reference_file_without_a_time_column_fits(tmp_path: Path) -> None:
    frame = reference_frame()
    references = References(paths={"training": write(tmp_path, frame)})
    profile = references.profile("training", SCHEMA, ["x", "rating", "device"])
    expected = ReferenceProfile.fit(frame.astype({"rating": "float64"}), name="training",
                                    categorical=["device"])
    assert profile == expected
    # nor does a field nobody compares ("user", not nullable) have to be there
    assert set(profile) == {"x", "rating", "device"}


def test_a_time_column_that_is_there_is_ignored(tmp_path: Path) -> None:
    frame = reference_frame().assign(ts=["2026-01-01T00:00:00Z", "not a time"] * 200)
    profile = fit_reference(frame, SCHEMA, ["x"], name="training")
    assert profile.column("x").n == len(frame)


def test_a_compared_column_the_reference_lacks_is_named(tmp_path: Path) -> None:
    references = References(paths={"training": write(tmp_path, reference_frame())})
    with pytest.raises(ValueError, match=r"reference 'training' has no column\(s\) 'user'"):
        references.profile("training", SCHEMA, ["x", "user"])


def test_every_row_rejected_says_why() -> None:
    frame = reference_frame(10).assign(x="fast")
    with pytest.raises(ValueError, match=r"all 10 rows were rejected \(10 field 'x' is not a "
                                         "number\\)"):
        fit_reference(frame, SCHEMA, ["x", "device"], name="training")
    with pytest.raises(ValueError, match="reference 'training' has no rows"):
        fit_reference(frame.iloc[:0], SCHEMA, ["x"], name="training")
