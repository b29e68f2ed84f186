"""Monitoring a music-streaming homepage recommender.

The homepage is a stack of carousels ranked per user by a model. What the business cares
about is whether the user's most-used carousel is near the top, so the headline metric is
the rank of that carousel (P50 and P95 per country, 1 = top); around it are the usual
suspects: latency tails, score and feature drift against the training data, click-through
and a feature's null rate; a consistency check that a user's homepages agree on their
favourite carousel within the hour, and an input expectation (the favourite is a
personal carousel) with its validation summary. The score is the ranker's predicted
chance of a click: how well it tells clickers apart is estimated from the scores alone as
they arrive (``click_auc_estimate``) and realized from the click outcomes, a label stream
that arrives minutes to half an hour late (``click_auc_realized``, in every stage). Every
rule is tuned on the generated week (:mod:`examples.music_home_events`) to catch its
:data:`INCIDENTS` and stay quiet elsewhere; ``tests/test_example_backtest.py`` holds it to
that.

Load it with ``--app examples.music_home:mon`` (or ``MONITOR_APP``). Generate data with::

    python -m examples.music_home --out data/home.jsonl --reference-out data/training.jsonl \
        --labels-out data/outcomes.jsonl

The training reference that drift metrics compare against is declared as
``mon.reference("training", ...)``: the path in ``$MUSIC_HOME_TRAINING`` if set, else
``data/training.jsonl`` relative to the working directory (where the command above and
``scripts/demo.sh`` write it). Pass ``--reference FILE`` to ``monitor research`` to use
another. The click outcomes are the stream ``outcomes``, read from ``$MUSIC_HOME_OUTCOMES``
or ``data/outcomes.jsonl`` (``--labels FILE`` to ``monitor research``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import metrics
from examples.music_home_events import (
    CAROUSELS,
    DEFAULT_EVENTS_PER_HOUR,
    DEFAULT_START,
    FEATURE_SHIFT,
    INCIDENTS,
    LATENCY_SPIKE,
    MODEL_ROLLOUT,
    REFERENCE_DAYS,
    Incident,
    click_outcomes,
    file_format,
    generate_events,
    generate_reference,
    parse_start,
    write_events,
)
from metrics import ReferenceProfile
from monitor import Labels, Monitor, Threshold
from monitor.references import fit_reference

__all__ = [
    "FEATURE_SHIFT",
    "INCIDENTS",
    "LATENCY_SPIKE",
    "MODEL_ROLLOUT",
    "SCHEMA",
    "TRAINING_ENV",
    "Incident",
    "main",
    "mon",
    "training_profile",
]

TRAINING_ENV = "MUSIC_HOME_TRAINING"
DEFAULT_TRAINING = "data/training.jsonl"

SCHEMA = {
    "view_id": "int",
    "user_id": "int",
    "country": "str",
    "device": "str",
    "model_version": "str",
    "carousels_served": "int",
    "carousels_shown": "list[str]",
    "fav_carousel": "str",
    "fav_carousel_rank": "int",
    "score": "float",
    "latency_ms": "float",
    "clicked": "bool",
    "clicked_carousel": "str?",
    "session_length_s": "float?",
    "tracks_played_7d": "int?",
}
FEATURES = ["session_length_s", "tracks_played_7d"]
# A user's favourite carousel is one of their own, never an editorial one.
PERSONAL_CAROUSELS = list(CAROUSELS)
OUTCOMES_ENV = "MUSIC_HOME_OUTCOMES"
DEFAULT_OUTCOMES = "data/outcomes.jsonl"

mon = Monitor("music_home")
mon.stream("home", topic="home-events", table="home_events", time="ts", schema=SCHEMA)
mon.stream("outcomes", topic="home-outcomes", table="home_outcomes",
           files=os.environ.get(OUTCOMES_ENV, DEFAULT_OUTCOMES), time="ts",
           schema={"view_id": "int", "click": "bool"})
mon.reference("training", os.environ.get(TRAINING_ENV, DEFAULT_TRAINING))


@mon.metric(
    "fav_rank", "home", aggregate=metrics.quantiles(ps=(0.5, 0.95)), window="1h",
    segment_by=["country"],
    alerts=[
        Threshold("p50", above=3.5, for_windows=2, severity="critical",
                  name="favourite carousel median rank worse than 3"),
        Threshold("p95", above=8.5, for_windows=2, severity="critical",
                  name="favourite carousel P95 rank worse than 8"),
    ],
    owner="home-personalization",
    description="Rank of the user's most-used carousel on the homepage (1 = top), P50 and "
                "P95 per country. A ranker that buries what people come for hurts "
                "retention long before it shows in clicks.",
)
def fav_rank(events: pd.DataFrame) -> pd.Series:
    """Where the user's favourite carousel landed on the homepage they were served."""
    return events["fav_carousel_rank"]


mon.metric(
    "click_ndcg", "home", metrics.ndcg("carousels_shown", "clicked_carousel", k=10),
    window="1h", segment_by=["country"],
    alerts=[Threshold("ndcg", below=0.6, for_windows=2, severity="critical",
                      name="clicked carousels ranked low (NDCG@10 under 0.6)")],
    owner="home-personalization",
    description="NDCG@10 of the carousel each user clicked, per country: 1 when the click "
                "is on the top carousel, 0.5 on the third, 0 below the tenth; homepages "
                "without a click are left out. ~0.85 normally; quiet hours of a small "
                "country dip to ~0.75 by chance, a ranker that buries the carousels people "
                "click drops it under 0.5.",
)

mon.metric(
    "latency", "home", metrics.quantiles("latency_ms", ps=(0.5, 0.95, 0.99, 0.999)),
    window="1h",
    alerts=[Threshold("p99", above=1000.0, for_windows=2, severity="critical",
                      name="homepage P99 latency over 1s")],
    owner="home-platform",
    description="Homepage response time, P50 to P99.9. The tail is what users feel: a "
                "slow backend for a few percent of requests moves P99, not P50.",
)

mon.metric(
    "click_auc_estimate", "home", metrics.estimated_performance("score", "click", "training"),
    window="1h", segment_by=["country"],
    alerts=[Threshold("estimated_roc_auc", below=0.68, for_windows=2, severity="critical",
                      name="estimated click AUC under 0.68")],
    owner="home-ml",
    description="ROC AUC of the score as a click prediction, estimated per country from the "
                "scores alone (CBPE, calibrated on the training sample's clicks), so it "
                "moves the hour the traffic does, before any click is counted. ~0.78 "
                "normally (no hour under 0.73); a ranker that buries the favourite carousel "
                "leaves only the weak signals to tell clickers apart and takes it to ~0.6. "
                "It trusts the training calibration: a broken feature that inflates scores "
                "can raise it.",
)

mon.metric(
    "click_auc_realized", "home", metrics.auc("click", "score"), window="1h",
    segment_by=["country"],
    labels=Labels("outcomes", on="view_id", horizon="2h", mature_at=0.95),
    owner="home-ml",
    description="ROC AUC of the score against the clicks that came back, per country: the "
                "realized value of click_auc_estimate, drawn beside it on the Performance "
                "page. A click is reported within minutes, a view without one when its "
                "session times out (30 min), 3% never; a window is mature once 95% of its "
                "views are labelled or 2 h have passed. ~0.78 normally, ~0.58 in the BR "
                "rollout. No alert rule: an hour of a small country holds a few hundred "
                "views, so its realized AUC has a sampling error of up to 0.07 (1 SD); "
                "hours at 0.6 and two in a row under 0.68 happen by chance. The estimate, "
                "read from the scores alone, does not wander like that and carries the "
                "alert.",
)

mon.metric(
    "score_psi", "home", metrics.psi("score", "training"), window="1h",
    alerts=[Threshold("psi", above=0.45, for_windows=2,
                      name="score distribution shifted")],
    owner="home-ml",
    description="Population stability index of the ranker's score against the training "
                "sample (100 quantile bins). Prediction drift is the first sign of "
                "training-serving skew. The score is a click prediction that follows where "
                "the ranker puts the favourite carousel, so a ranker change in one country "
                "(a fifth of traffic) moves it to ~0.3: that is click_auc_estimate's and "
                "fav_rank's to catch. This rule waits for a PSI over 0.45, a skew across "
                "all traffic (a feature pipeline bug: 0.6 and up); chance gives an hour "
                "0.05-0.17.",
)

mon.metric(
    "feature_drift", "home",
    metrics.drift_report(FEATURES, "training", method="wasserstein"),
    window="1h",
    alerts=[Threshold("n_drifted", above=0.5, for_windows=2, name="a model feature drifted")],
    owner="home-ml",
    description="Drift of the ranker's features against the training sample: normed "
                "Wasserstein distance per feature, a feature drifted when its distance is "
                "beyond what the hour's count gives by chance (1% false alarms over the "
                "features, Benjamini-Hochberg) and at least 0.1, Evidently's threshold "
                "(the heavy-tailed session length reaches ~0.18 by chance in an hour of "
                "a few hundred events).",
)

mon.metric(
    "ctr", "home", metrics.rate("clicked"), window="1h", segment_by=["country"],
    alerts=[Threshold("rate", below=0.18, for_windows=2, name="click-through below 18%")],
    owner="home-growth",
    description="Share of homepage views with a click, per country (~0.32 normally). "
                "Small countries at night see single hours near 0.2 by chance, so it "
                "takes two in a row.",
)

mon.metric(
    "session_null_rate", "home", metrics.null_rate("session_length_s"), window="1h",
    alerts=[Threshold("null_rate", above=0.08, for_windows=2,
                      name="session_length_s missing for over 8% of events")],
    owner="home-data",
    description="Share of events without session_length_s: a broken feature pipeline "
                "shows up here before it shows up in the model.",
)


mon.metric(
    "fav_consistency", "home",
    metrics.consistency("fav_carousel", key="user_id", k=20),
    window="1h",
    alerts=[Threshold("violating_keys", above=5.0, severity="critical",
                      name="users shown two different favourite carousels in an hour")],
    owner="home-personalization",
    description="Users whose homepages disagree, within the hour, on which carousel the "
                "ranker promoted as their favourite: it comes from their profile, so it "
                "should not change from one view to the next. Zero normally; a ranker "
                "that serves pages without the profile (a cold cache) makes users who "
                "reload see two. The state keeps every user of the hour up to 20,000 "
                "(a uniform sample past that, flagged by exact=0) and 20 of the users who "
                "disagree, with the carousels they saw (monitor assertions export).",
)

# Input expectations, with a validation summary of them per hour (home.expectations).
mon.expectations(
    "home",
    [metrics.expect_in_set("fav_carousel", values=PERSONAL_CAROUSELS, tolerance=0.01)],
    owner="home-data",
)


def training_profile(reference: pd.DataFrame) -> ReferenceProfile:
    """The reference profile "training" fitted from raw reference events (such as
    :func:`generate_reference` gives): every column the metrics compare and the score's
    calibration against clicks, as the research stage fits it from the declared file.
    Store it (``SqlStore.save_profile``) for the batch and streaming stages."""
    calibrations = sorted({pair for metric in mon.metrics.values()
                           for pair in metric.aggregate.reference_calibrations()})
    return fit_reference(reference, mon.streams["home"].schema, name="training",
                         calibrations=tuple(calibrations))


# -- the generator's command line ------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.music_home",
        description="Write seeded homepage events with known incidents (see INCIDENTS).",
    )
    parser.add_argument("--out", required=True, type=Path,
                        help="events file: .jsonl, .csv or .parquet")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default=DEFAULT_START.isoformat(),
                        help="UTC start, on the hour (default %(default)s)")
    parser.add_argument("--events-per-hour", type=float, default=DEFAULT_EVENTS_PER_HOUR,
                        help="mean events per hour over a day (default %(default)s)")
    parser.add_argument("--reference-out", type=Path,
                        help="also write the training sample: the days before --start, "
                             "without incidents")
    parser.add_argument("--reference-days", type=int, default=REFERENCE_DAYS)
    parser.add_argument("--labels-out", type=Path,
                        help="also write the click outcomes of the events, as they arrive "
                             "late (the label stream 'outcomes')")
    args = parser.parse_args(argv)
    if args.days < 1 or args.reference_days < 1:
        parser.error("--days and --reference-days must be at least 1")
    try:
        for path in (args.out, args.reference_out, args.labels_out):
            if path is not None:
                file_format(path)
        start = parse_start(args.start)
        events = generate_events(start=start, days=args.days, seed=args.seed,
                                 events_per_hour=args.events_per_hour)
        write_events(events, args.out)
        print(f"wrote {len(events)} events to {args.out}", file=sys.stderr)
        if args.labels_out is not None:
            labels = click_outcomes(events, seed=args.seed)
            write_events(labels, args.labels_out)
            print(f"wrote {len(labels)} click outcomes to {args.labels_out}", file=sys.stderr)
        if args.reference_out is not None:
            reference = generate_reference(start=start, days=args.reference_days,
                                           seed=args.seed, events_per_hour=args.events_per_hour)
            write_events(reference, args.reference_out)
            print(f"wrote {len(reference)} reference events to {args.reference_out}",
                  file=sys.stderr)
    except ValueError as err:
        parser.error(str(err))
    for incident in INCIDENTS:
        first, last = incident.window(start)
        until = "the end" if last is None else f"{last:%Y-%m-%d %H:%M}"
        print(f"incident {incident.name}: {first:%Y-%m-%d %H:%M} to {until} UTC in "
              f"{incident.segment}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
