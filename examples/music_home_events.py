"""A seeded, vectorised generator of music-streaming homepage events, with known incidents.

Each event is one homepage served to a user (``view_id``, its number in time order): who
(``user_id``, ``country``, ``device``), which ranker served it (``model_version``), how
many carousels it showed (``carousels_served``) and in which order (``carousels_shown``,
best first), where the user's most-used carousel landed (``fav_carousel``,
``fav_carousel_rank``, 1 = top), the ranker's ``score`` (its predicted chance of a click),
the response ``latency_ms``, whether the user ``clicked`` and on which carousel
(``clicked_carousel``: mostly the favourite), and two model features with some nulls
(``session_length_s``, ``tracks_played_7d``). The click outcomes also come as a label
stream of their own, late and some never (:func:`click_outcomes`).

Traffic follows each country's local day (quiet at night, a commute bump and an evening
peak) and the users of a country are a fixed population, so the same seed gives the same
events. Three incidents are injected at fixed hours after the start (:data:`INCIDENTS`);
the reference sample (:func:`generate_reference`) covers the days before the start and
has none of them.

>>> events = generate_events(start=DEFAULT_START, days=1, seed=3, events_per_hour=50)
>>> sorted(events["country"].unique())
['BR', 'DE', 'IN', 'SE', 'US']
>>> bool(events["ts"].is_monotonic_increasing), bool(events["fav_carousel_rank"].min() >= 1)
(True, True)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CAROUSELS",
    "DEFAULT_EVENTS_PER_HOUR",
    "DEFAULT_START",
    "FEATURE_SHIFT",
    "INCIDENTS",
    "LATENCY_SPIKE",
    "MODEL_ROLLOUT",
    "REFERENCE_DAYS",
    "Incident",
    "click_outcomes",
    "file_format",
    "generate_events",
    "generate_reference",
    "parse_start",
    "write_events",
]

DEFAULT_START = pd.Timestamp("2026-03-02T00:00:00Z")  # a Monday, UTC midnight
DEFAULT_EVENTS_PER_HOUR = 1500  # the mean over a day; the real rate follows local time
REFERENCE_DAYS = 2  # the training sample: this many days before the start

STABLE_MODEL = "home-ranker-2026.02.3"
CANARY_MODEL = "home-ranker-2026.03.0"


@dataclass(frozen=True)
class Incident:
    """Something that went wrong, from ``start_hour`` to ``end_hour`` (hours after the
    start of the data; ``None``: until the end), visible in ``segment``
    (``"*"`` for all traffic, else a segment label such as ``"country=BR"``)."""

    name: str
    start_hour: int
    end_hour: int | None
    segment: str
    description: str

    def window(self, start: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp | None]:
        """The incident's [begin, end) in UTC for data starting at ``start``."""
        begin = start + pd.Timedelta(hours=self.start_hour)
        end = None if self.end_hour is None else start + pd.Timedelta(hours=self.end_hour)
        return begin, end

    def active(self, hour: np.ndarray) -> np.ndarray:
        """Which events, by hour after the start, fall inside the incident."""
        inside = hour >= self.start_hour
        return inside if self.end_hour is None else inside & (hour < self.end_hour)


LATENCY_SPIKE = Incident(
    "latency_spike", 60, 64, "*",
    "Day 3, 12:00-16:00 UTC: a cache cluster fails over and ~6% of homepage requests wait "
    "on a cold backend (x14 latency). P99 jumps several-fold; P50 barely moves. The cold "
    "backend has no user profiles: it ranks the editorial top_hits in the favourite "
    "carousel's place, and most users reload such a slow page seconds later (a warm "
    "replica serves their own favourite), so their homepages disagree within the hour.",
)
MODEL_ROLLOUT = Incident(
    "model_rollout", 108, 118, "country=BR",
    f"Day 5, 12:00-22:00 UTC: ranker {CANARY_MODEL} is rolled out to Brazil only and "
    "demotes personal carousels: the favourite carousel drops ~4 places (rank P50/P95 "
    "worse, click-through down) in BR; rolled back at 22:00.",
)
FEATURE_SHIFT = Incident(
    "feature_shift", 132, None, "*",
    "Day 6, 12:00 UTC onwards: a feature-pipeline migration counts tracks_played_7d over "
    "28 days instead of 7 (values ~x3.6, so scores shift up) and stops sending "
    "session_length_s from web clients (null rate up).",
)
INCIDENTS = (LATENCY_SPIKE, MODEL_ROLLOUT, FEATURE_SHIFT)

# -- the world ------------------------------------------------------------------------

COUNTRIES = ("US", "BR", "IN", "DE", "SE")
COUNTRY_SHARE = np.array([0.32, 0.22, 0.18, 0.16, 0.12])
UTC_OFFSET_HOURS = np.array([-6.0, -3.0, 5.5, 1.0, 1.0])
COUNTRY_LATENCY = np.array([1.0, 1.25, 1.6, 0.9, 0.85])  # distance to the edge

DEVICES = ("ios", "android", "web")
DEVICE_SHARE = np.array([  # per country, in COUNTRIES order
    [0.50, 0.35, 0.15],
    [0.25, 0.65, 0.10],
    [0.12, 0.80, 0.08],
    [0.40, 0.42, 0.18],
    [0.48, 0.34, 0.18],
])
DEVICE_LATENCY_MS = np.array([95.0, 120.0, 160.0])  # median per device
DEVICE_CAROUSELS = np.array([12, 12, 16])  # carousels a homepage shows, at most
DEVICE_CTR = np.array([0.44, 0.40, 0.35])  # click-through with the favourite on top
CLICK_RANK_DECAY = 0.3  # each place further down keeps 30% of what the favourite adds ...
CLICK_FLOOR = 0.15  # ... over a floor: some click whatever the order
CLICK_LISTENING = 0.4  # heavy listeners click more: x (tracks per week / median) ** this
LISTENING_MEDIAN = 60.0
SCORE_NOISE = 0.25  # the ranker's error, in log-odds
DEVICE_SESSION = np.array([1.0, 0.9, 1.4])

CAROUSELS = ("recently_played", "made_for_you", "daily_mix", "discover_weekly",
             "jump_back_in", "release_radar", "liked_songs", "your_podcasts")
CAROUSEL_SHARE = np.array([0.25, 0.22, 0.15, 0.12, 0.10, 0.08, 0.05, 0.03])
# Editorial carousels fill the rest of a homepage (nobody's favourite).
EDITORIAL = ("top_hits", "new_releases", "chill", "workout", "focus", "party", "throwbacks",
             "charts", "mood_booster", "indie_picks", "live_radio", "trending", "sleep",
             "local_heroes", "acoustic", "latin_hits")
ALL_CAROUSELS = np.asarray(CAROUSELS + EDITORIAL, dtype=object)
FAVOURITE_CLICK = 0.8  # a click is on the favourite carousel, else on one of the top 3
# The latency spike's cold backend knows no user: it ranks an editorial default in the
# favourite's place, and most users reload such a slow page a few seconds later.
COLD_FAVOURITE = len(CAROUSELS) + EDITORIAL.index("top_hits")
RELOADED = 0.6
RELOAD_DELAY_S = 6.0

USERS = 100_000
SESSION_TIMEOUT_S = 1800.0  # a view's "no click" is known when its session times out
LOST_OUTCOMES = 0.03  # views whose outcome never arrives
TRACKS_NULL = 0.015  # no listening history yet
SESSION_NULL = 0.03  # no previous session


@dataclass(frozen=True)
class _Users:
    """A fixed population: each user's device, favourite carousel and habits; the users of
    a country have contiguous ids."""

    device: np.ndarray
    favourite: np.ndarray
    rank_p: np.ndarray  # how well the ranker knows them: P(favourite on top)
    listening: np.ndarray  # mean tracks played in 7 days
    visits: np.ndarray  # cumulative homepage visit weight, users of a country together
    visits_before: np.ndarray  # the cumulative weight before each country's first user
    visits_of_country: np.ndarray
    last_of_country: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Users:
        sizes = np.round(COUNTRY_SHARE / COUNTRY_SHARE.sum() * USERS).astype(np.int64)
        country = np.repeat(np.arange(len(COUNTRIES)), sizes)
        n = len(country)
        cumulative = DEVICE_SHARE.cumsum(axis=1)[country]
        device = (rng.random(n)[:, None] > cumulative).sum(axis=1)
        listening = rng.lognormal(np.log(60.0), 0.9, n)
        visits = np.cumsum(np.sqrt(listening))  # heavy listeners open the app more often
        last_of_country = sizes.cumsum() - 1
        before = np.concatenate([[0.0], visits[last_of_country[:-1]]])
        return cls(
            device=device,
            favourite=rng.choice(len(CAROUSELS), size=n, p=CAROUSEL_SHARE),
            rank_p=rng.uniform(0.38, 0.56, n),
            listening=listening,
            visits=visits,
            visits_before=before,
            visits_of_country=visits[last_of_country] - before,
            last_of_country=last_of_country,
        )


def _traffic_shape(local_hour: np.ndarray) -> np.ndarray:
    """Relative traffic by local hour: a night trough, a commute bump, an evening peak."""
    evening = np.exp(-0.5 * ((local_hour - 19.0) / 3.5) ** 2)
    commute = 0.45 * np.exp(-0.5 * ((local_hour - 8.0) / 1.5) ** 2)
    day = np.exp(-0.5 * ((local_hour - 13.0) / 4.0) ** 2) * 0.5
    return 0.35 + evening + commute + day


_MEAN_SHAPE = float(_traffic_shape(np.arange(0.5, 24.0, 1.0)).mean())


# -- events ---------------------------------------------------------------------------


def generate_events(
    *,
    start: pd.Timestamp = DEFAULT_START,
    days: int = 7,
    seed: int = 1,
    events_per_hour: float = DEFAULT_EVENTS_PER_HOUR,
    incidents: bool | Sequence[Incident] = True,
) -> pd.DataFrame:
    """Homepage events for ``days`` days from ``start`` (UTC), sorted by ``ts``, with the
    :data:`INCIDENTS` injected (``True``), none (``False``), or those given: some of
    :data:`INCIDENTS`, possibly moved to other hours (``dataclasses.replace``).

    Moving an incident changes only the events it touches: the random draws are the same
    whichever hours the incidents have.
    """
    chosen = _chosen_incidents(incidents)
    population, events, _ = np.random.SeedSequence(seed).spawn(3)
    users = _Users.draw(np.random.default_rng(population))
    return _simulate(users, events, parse_start(start), 0, days * 24, events_per_hour,
                     chosen)


def _chosen_incidents(incidents: bool | Sequence[Incident]) -> tuple[Incident, ...]:
    if isinstance(incidents, bool):
        return INCIDENTS if incidents else ()
    known = {incident.name for incident in INCIDENTS}
    names = [incident.name for incident in incidents]
    unknown = sorted(set(names) - known)
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"incidents must be distinct ones of {sorted(known)} (moved or "
                         f"not), got {names}")
    return tuple(incidents)


def click_outcomes(events: pd.DataFrame, *, seed: int = 1) -> pd.DataFrame:
    """The label stream of ``events``: for each view, its outcome ``click`` stamped when it
    reaches the labels' pipeline, sorted by ``ts``.

    A click is reported a few minutes after the view (median 90 s, one in a hundred after
    more than 15 minutes); a view without a click is reported as such when its session
    times out, 30-35 minutes after it; the outcomes of :data:`LOST_OUTCOMES` of the views
    (an app closed offline) never arrive. Drawn from a stream of the seed's own, so the
    events' fields do not depend on it.

    >>> events = generate_events(start=DEFAULT_START, days=1, seed=3, events_per_hour=50)
    >>> labels = click_outcomes(events, seed=3)
    >>> bool(labels["view_id"].isin(events["view_id"]).all()), len(labels) < len(events)
    (True, True)
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
    n = len(events)
    click = events["clicked"].to_numpy(dtype=bool)
    delay_s = np.where(click, rng.lognormal(np.log(90.0), 1.0, n),
                       SESSION_TIMEOUT_S + rng.uniform(0.0, 300.0, n))
    arrives = rng.random(n) >= LOST_OUTCOMES
    ts = events["ts"] + pd.to_timedelta(np.round(delay_s * 1000.0), unit="ms")
    labels = pd.DataFrame({"ts": ts, "view_id": events["view_id"], "click": click})[arrives]
    return labels.sort_values("ts", kind="stable").reset_index(drop=True)


def generate_reference(
    *,
    start: pd.Timestamp = DEFAULT_START,
    days: int = REFERENCE_DAYS,
    seed: int = 1,
    events_per_hour: float = DEFAULT_EVENTS_PER_HOUR,
) -> pd.DataFrame:
    """The training sample: the same users over the ``days`` days before ``start``, with
    no incident, labelled: each view's outcome joined as ``click`` (the label stream's
    column, see :func:`click_outcomes`), which the score is calibrated against."""
    population, _, reference = np.random.SeedSequence(seed).spawn(3)
    users = _Users.draw(np.random.default_rng(population))
    sample = _simulate(users, reference, parse_start(start), -days * 24, days * 24,
                       events_per_hour, incidents=())
    return sample.assign(click=sample["clicked"])


def _simulate(
    users: _Users,
    seeds: np.random.SeedSequence,
    start: pd.Timestamp,
    first_hour: int,
    hours: int,
    events_per_hour: float,
    incidents: tuple[Incident, ...],
) -> pd.DataFrame:
    if hours < 1:
        raise ValueError(f"need at least one hour of events, got {hours}")
    if not events_per_hour > 0:
        raise ValueError(f"events_per_hour must be positive, got {events_per_hour}")
    # The homepages' order comes from a stream of its own, so adding it left every other
    # field of a seed's events as it was (the example's rules are tuned on them).
    rng, order_rng = np.random.default_rng(seeds), np.random.default_rng(seeds.spawn(1)[0])

    # How many events each (hour, country) gets, from the country's local time of day.
    hour_of_data = np.arange(first_hour, first_hour + hours)
    hour_starts = start + pd.to_timedelta(hour_of_data, unit="h")
    utc_hour = (hour_starts.hour.to_numpy() + 0.5)[:, None]
    local = (utc_hour + UTC_OFFSET_HOURS[None, :]) % 24.0
    weekend = np.isin(hour_starts.day_of_week.to_numpy(), (5, 6))[:, None]
    rate = (events_per_hour * COUNTRY_SHARE[None, :] * _traffic_shape(local) / _MEAN_SHAPE
            * np.where(weekend, 1.1, 1.0))
    counts = rng.poisson(rate)
    n = int(counts.sum())
    hour = np.repeat(np.repeat(hour_of_data, len(COUNTRIES)), counts.ravel())
    country = np.repeat(np.tile(np.arange(len(COUNTRIES)), hours), counts.ravel())

    # Each event is one user of that country; heavy listeners come back more often.
    draw = users.visits_before[country] + rng.random(n) * users.visits_of_country[country]
    user = np.minimum(np.searchsorted(users.visits, draw, side="right"),
                      users.last_of_country[country])  # rounding may land one past the end
    device = users.device[user]
    start_ms = start.value // 1_000_000
    ts_ms = start_ms + hour * 3_600_000 + rng.integers(0, 3_600_000, n)

    # Where the favourite carousel lands: the ranker usually puts it near the top.
    carousels = DEVICE_CAROUSELS[device] - rng.integers(0, 3, n)
    rank = np.minimum(rng.geometric(users.rank_p[user]), carousels)
    model = np.full(n, STABLE_MODEL, dtype=object)
    if incidents:
        canary = _active(incidents, MODEL_ROLLOUT, hour) & (country == COUNTRIES.index("BR"))
        model[canary] = CANARY_MODEL
        demoted = rank + 3 + rng.poisson(1.0, n)
        rank = np.where(canary, np.minimum(demoted, carousels), rank)

    # Latency: lognormal by device and distance, with a heavy tail of slow requests.
    latency = (DEVICE_LATENCY_MS[device] * COUNTRY_LATENCY[country]
               * rng.lognormal(0.0, 0.42, n))
    slow = rng.random(n) < 0.015
    latency[slow] *= 2.0 + 2.0 * rng.pareto(2.5, int(slow.sum()))
    cold = np.zeros(n, dtype=bool)
    if incidents:
        cold = _active(incidents, LATENCY_SPIKE, hour) & (rng.random(n) < 0.06)
        latency[cold] *= rng.lognormal(np.log(14.0), 0.35, int(cold.sum()))

    # Features: listening over the last 7 days, and the previous session's length.
    shifted = _active(incidents, FEATURE_SHIFT, hour)
    tracks = rng.poisson(users.listening[user] * np.where(shifted, 3.6, 1.0)).astype(np.float64)
    tracks[rng.random(n) < TRACKS_NULL] = np.nan
    session = np.round(
        rng.lognormal(np.log(540.0), 0.85, n) * DEVICE_SESSION[device], 1)
    session[rng.random(n) < SESSION_NULL] = np.nan
    session[shifted & (device == DEVICES.index("web"))] = np.nan

    # A view is clicked when the favourite is in the first screen (the chance falls off
    # with its rank down to a floor), more by heavy listeners, less on a slow page.
    on_screen = DEVICE_CTR[device] * (CLICK_FLOOR + (1.0 - CLICK_FLOOR)
                                      * CLICK_RANK_DECAY ** (rank - 1))
    engaged = (users.listening[user] / LISTENING_MEDIAN) ** CLICK_LISTENING
    p_click = np.minimum(on_screen * engaged, 0.95) * np.where(latency > 2000.0, 0.6, 1.0)

    # The score is the ranker's predicted chance of a click: what it knows (the place it
    # gave the favourite, the device, tracks_played_7d for listening; a null count is
    # imputed as the median) and not what it cannot (the page's latency), with noise.
    known = np.where(np.isnan(tracks), LISTENING_MEDIAN, tracks)
    predicted = np.minimum(on_screen * (np.maximum(known, 1.0) / LISTENING_MEDIAN)
                           ** CLICK_LISTENING, 0.95)
    z = np.log(predicted / (1.0 - predicted)) + SCORE_NOISE * rng.normal(0.0, 1.0, n)
    score = np.round(1.0 / (1.0 + np.exp(-z)), 4)
    clicked = rng.random(n) < p_click

    favourite = np.where(cold, COLD_FAVOURITE, users.favourite[user])
    shown, clicked_on = _homepages(order_rng, favourite, rank, carousels, clicked)

    frame = pd.DataFrame({
        "ts": pd.to_datetime(ts_ms, unit="ms", utc=True),
        "user_id": user,
        "country": np.asarray(COUNTRIES, dtype=object)[country],
        "device": np.asarray(DEVICES, dtype=object)[device],
        "model_version": model,
        "carousels_served": carousels,
        "carousels_shown": shown,
        "fav_carousel": ALL_CAROUSELS[favourite],
        "fav_carousel_rank": rank,
        "score": score,
        "latency_ms": np.round(latency, 1),
        "clicked": clicked,
        "clicked_carousel": clicked_on,
        "session_length_s": session,
        "tracks_played_7d": pd.array(tracks, dtype="Int64"),
    })
    if cold.any():  # drawn from a stream of their own: the other events stay as they were
        reload_rng = np.random.default_rng(seeds.spawn(1)[0])
        frame = pd.concat([frame, _reloads(reload_rng, frame, cold, users.favourite[user])],
                          ignore_index=True)
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    # The prediction id the click outcomes are joined on: the view's place in time order.
    frame.insert(1, "view_id", np.arange(1, len(frame) + 1, dtype=np.int64))
    return frame


def _reloads(rng: np.random.Generator, frame: pd.DataFrame, cold: np.ndarray,
             favourite: np.ndarray) -> pd.DataFrame:
    """The views of users who reloaded a slow homepage of the cold backend
    (:data:`RELOADED` of them, a few seconds later): the same page from a warm replica,
    with the user's own favourite in the place the cold one gave the editorial default,
    at a warm latency."""
    again = np.flatnonzero(cold & (rng.random(len(frame)) < RELOADED))
    reloads = frame.iloc[again].copy()
    delay_ms = np.round(rng.lognormal(np.log(RELOAD_DELAY_S), 0.5, len(again)) * 1000.0)
    reloads["ts"] = reloads["ts"] + pd.to_timedelta(delay_ms, unit="ms")
    device = reloads["device"].map(DEVICES.index).to_numpy()
    country = reloads["country"].map(COUNTRIES.index).to_numpy()
    latency = (DEVICE_LATENCY_MS[device] * COUNTRY_LATENCY[country]
               * rng.lognormal(0.0, 0.42, len(again)))
    reloads["latency_ms"] = np.round(latency, 1)
    fallback, pages, clicks = ALL_CAROUSELS[COLD_FAVOURITE], [], []
    for page, own, click in zip(reloads["carousels_shown"].tolist(),
                                ALL_CAROUSELS[favourite[again]].tolist(),
                                reloads["clicked_carousel"].tolist(), strict=True):
        swap = {fallback: own, own: fallback}  # the favourite may be further down already
        pages.append([swap.get(item, item) for item in page])
        clicks.append(None if click is None else swap.get(click, click))
    reloads["carousels_shown"] = pd.Series(pages, index=reloads.index, dtype=object)
    reloads["clicked_carousel"] = pd.Series(clicks, index=reloads.index, dtype=object)
    reloads["fav_carousel"] = ALL_CAROUSELS[favourite[again]]
    return reloads


def _active(incidents: tuple[Incident, ...], which: Incident, hour: np.ndarray) -> np.ndarray:
    """Which events, by hour after the start, fall inside ``which`` as ``incidents`` has
    it (never, when it is not among them)."""
    for incident in incidents:
        if incident.name == which.name:
            return incident.active(hour)
    return np.zeros(len(hour), dtype=bool)


def _homepages(rng: np.random.Generator, favourite: np.ndarray, rank: np.ndarray,
               carousels: np.ndarray, clicked: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
    """Each homepage's carousels in order (the favourite at its rank, the other places
    drawn at random from the rest) and the carousel clicked (None without a click)."""
    n, kinds = len(favourite), len(ALL_CAROUSELS)
    keys = rng.random((n, kinds))
    keys[np.arange(n), favourite] = 2.0  # sorts last: never among the others
    others = ALL_CAROUSELS[np.argsort(keys, axis=1)[:, : int(carousels.max()) - 1]]
    shown = []
    for row, place, length, fav in zip(others.tolist(), rank.tolist(), carousels.tolist(),
                                       ALL_CAROUSELS[favourite].tolist(), strict=True):
        page = row[: length - 1]
        page.insert(place - 1, fav)
        shown.append(page)
    on_favourite = rng.random(n) < FAVOURITE_CLICK
    top = rng.integers(0, 3, n)
    clicked_on = np.full(n, None, dtype=object)
    for i in np.flatnonzero(clicked).tolist():
        clicked_on[i] = shown[i][rank[i] - 1] if on_favourite[i] else shown[i][top[i]]
    return shown, clicked_on


def parse_start(start: pd.Timestamp | str) -> pd.Timestamp:
    """The start of the data as a UTC timestamp; ValueError unless it is on the hour."""
    ts = pd.Timestamp(start)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts != ts.floor("h"):
        raise ValueError(f"start must be on the hour (windows and incidents are hourly): {ts}")
    return ts


# -- files ----------------------------------------------------------------------------


def write_events(events: pd.DataFrame, path: str | Path) -> Path:
    """Write events as JSON lines (.jsonl/.json/.ndjson), CSV or Parquet, by suffix.

    ``ts`` is ISO 8601 UTC with milliseconds in text files and a UTC timestamp in Parquet.
    """
    path = Path(path)
    kind = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        events.to_parquet(path, index=False)
        return path
    text = events.copy()
    for column in text.columns:  # a list (carousels_shown) as a JSON array, not Python's repr
        if text[column].map(lambda v: isinstance(v, list)).any():
            text[column] = text[column].map(
                lambda v: json.dumps(v) if isinstance(v, list) else v)
    millis = text["ts"].dt.tz_convert(None).to_numpy().astype("datetime64[ms]")
    text["ts"] = np.char.add(np.datetime_as_string(millis, unit="ms"), "Z").astype(object)
    if kind == "csv":
        text.to_csv(path, index=False)
    else:
        text.to_json(path, orient="records", lines=True)
    return path


def file_format(path: Path) -> str:
    """``"jsonl"``, ``"csv"`` or ``"parquet"`` from the suffix; ValueError for anything else."""
    kinds = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
             ".parquet": "parquet", ".pq": "parquet"}
    try:
        return kinds[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"cannot tell the format of {path}: use .jsonl, .csv or .parquet"
        ) from None
