"""Predictions and the labels that come for them, with every awkward case, and a reference
join written the slow, obvious way (a loop per prediction) to check the real one against.

The labels are shuffled and hold: late labels (hours after their prediction's window
closed), early ones (stamped before their prediction, within ``early``), labels outside
the horizon, duplicates with different values (a later one, and one at the same time as
the first), labels for ids no prediction has, and refused ones (an empty id, a null id, a
value that is not a boolean).
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd

import metrics
from monitor import Labels, Monitor, Threshold

START = pd.Timestamp("2026-03-02T00:00:00Z")
HOURS = 6
END = START + pd.Timedelta(hours=HOURS)
HORIZON = pd.Timedelta("1D")
EARLY = pd.Timedelta("10min")
PREDICTION_SCHEMA = {"prediction_id": "str", "score": "float", "predicted": "bool",
                     "device": "str"}
LABEL_SCHEMA = {"prediction_id": "str", "clicked": "bool"}
# the app `--app tests.label_data:cli_app` loads: test_label_cli.py's fixture sets it
cli_app: Monitor
REFUSED = 3  # labels refused: an empty id, a null id, a value that is no boolean


def label_app(prefix: str = "", prediction_files: str | None = None,
              label_files: str | None = None, mature_at: float = 0.9,
              lateness: str = "0s", topics: tuple[str, str] | None = None) -> Monitor:
    """Two metrics joined to the labels; the streams are tables, or files when given (and
    topics, when given: (predictions, labels))."""
    mon = Monitor("labels")
    mon.stream("home", schema=PREDICTION_SCHEMA, files=prediction_files,
               table=None if prediction_files else "label_predictions",
               topic=None if topics is None else topics[0])
    mon.stream("outcomes", schema=LABEL_SCHEMA, files=label_files,
               table=None if label_files else "label_outcomes",
               topic=None if topics is None else topics[1])
    source = Labels("outcomes", on="prediction_id", horizon="1d", early="10m",
                    mature_at=mature_at)
    mon.metric(f"{prefix}click_auc", "home", metrics.auc("clicked", "score"), window="1h",
               segment_by=["device"], labels=source, alerts=[Threshold(below=0.55)],
               lateness=lateness)
    mon.metric(f"{prefix}click_accuracy", "home", metrics.accuracy("clicked", "predicted"),
               window="1h", labels=source, lateness=lateness)
    return mon


def predictions(seed: int = 15, n: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, HOURS * 3_600_000, n))
    score = rng.random(n)
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(offsets, unit="ms"),
        "prediction_id": [f"p{i}" for i in range(n)],
        "score": score,
        "predicted": score > 0.5,
        "device": rng.choice(["ios", "web"], n).astype(object),
    })


def labels_for(preds: pd.DataFrame, seed: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    horizon_ms = HORIZON // pd.Timedelta("1ms")
    early_ms = EARLY // pd.Timedelta("1ms")
    for ts, pid, score in zip(preds["ts"], preds["prediction_id"], preds["score"],
                              strict=True):
        draw = rng.random()
        if draw < 0.2:
            continue  # never labelled
        if draw < 0.25:
            delay = int(rng.integers(-early_ms, 0))  # early: stamped before the prediction
        elif draw < 0.3:
            delay = horizon_ms + int(rng.integers(1, 3_600_000))  # outside the horizon
        else:
            delay = int(rng.integers(0, horizon_ms + 1))  # late: up to the horizon
        clicked = bool(rng.random() < score)
        rows.append({"ts": ts + pd.Timedelta(delay, unit="ms"), "prediction_id": pid,
                     "clicked": clicked})
        if rng.random() < 0.1:  # a revised label, later: the first one still wins
            rows.append({"ts": ts + pd.Timedelta(delay + int(rng.integers(1, 10**7)),
                                                 unit="ms"),
                         "prediction_id": pid, "clicked": not clicked})
        elif rng.random() < 0.05:  # a contradicting label at the same time: a tie
            rows.append({"ts": ts + pd.Timedelta(delay, unit="ms"), "prediction_id": pid,
                         "clicked": not clicked})
        elif rng.random() < 0.05:  # sent twice
            rows.append(dict(rows[-1]))
    for j in range(60):  # ids no prediction has
        rows.append({"ts": START + pd.Timedelta(minutes=5 * j), "prediction_id": f"x{j}",
                     "clicked": True})
    rows += [{"ts": START + pd.Timedelta("1h"), "prediction_id": "", "clicked": True},
             {"ts": START + pd.Timedelta("2h"), "prediction_id": None, "clicked": True},
             {"ts": START + pd.Timedelta("3h"), "prediction_id": "p1", "clicked": "maybe"}]
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=int(rng.integers(1 << 30))).reset_index(
        drop=True)


def reference_join(preds: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Each prediction with its label as the rule says, one prediction at a time: the
    candidates stamped in [t - early, t + horizon], the earliest wins, a tie goes to the
    label whose JSON sorts first. Labels with a bad id or value are left out."""
    by_id: dict[str, list[tuple[pd.Timestamp, str, bool]]] = defaultdict(list)
    for ts, pid, clicked in zip(labels["ts"], labels["prediction_id"], labels["clicked"],
                                strict=True):
        if not isinstance(pid, str) or not pid.strip() or not isinstance(clicked, bool):
            continue
        key = json.dumps({"clicked": clicked, "prediction_id": pid}, sort_keys=True,
                         separators=(",", ":"))
        by_id[pid].append((pd.Timestamp(ts), key, clicked))
    clicked_of: list[bool | None] = []
    for ts, pid in zip(preds["ts"], preds["prediction_id"], strict=True):
        found = [c for c in by_id.get(pid, []) if ts - EARLY <= c[0] <= ts + HORIZON]
        clicked_of.append(min(found)[2] if found else None)
    return preds.assign(clicked=np.array(clicked_of, dtype=object))  # True, False or None


def reference_values(joined: pd.DataFrame) -> pd.DataFrame:
    """Per hour (of the prediction) and segment: accuracy, binned AUC, coverage and counts,
    from numpy and scipy on the reference join."""
    from scipy.stats import mannwhitneyu

    rows = []
    frame = joined.assign(window=joined["ts"].dt.floor("1h"))
    for segment, part in [("*", frame), *[(f"device={d}", g) for d, g in
                                          frame.groupby("device")]]:
        for window, rows_of in part.groupby("window"):
            known = rows_of[rows_of["clicked"].notna()]
            clicked = known["clicked"].astype(bool).to_numpy()
            bins = np.minimum((known["score"].to_numpy() * 1000).astype(int), 999)
            auc = float(mannwhitneyu(bins[clicked], bins[~clicked]).statistic
                        / (clicked.sum() * (~clicked).sum()))
            accuracy = float(np.mean(clicked == known["predicted"].to_numpy()))
            rows.append({"segment": segment, "window_start": window, "auc": auc,
                         "accuracy": accuracy, "labelled": len(known),
                         "predictions": len(rows_of),
                         "label_coverage": len(known) / len(rows_of)})
    return pd.DataFrame(rows)
