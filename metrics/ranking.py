"""Ranking quality of a recommender: NDCG@k, MRR, hit rate@k and catalogue coverage.

Each event carries a ranked list (``shown``: a ``list[str]`` field, best first) and the
item the user engaged with (``clicked``: a ``str`` field, null when there was none).

- NDCG, MRR and hit rate score the events that have both a list and an engagement; an
  event without an engagement has no relevant item (its ideal DCG is 0), so it is left out
  rather than scored 0, as classification leaves out an unlabelled row. An engaged item
  that is not in the list (or not in its top ``k``) scores 0. With one relevant item the
  ideal DCG is 1, so NDCG is the DCG, ``1 / log2(1 + rank)``.
- An item listed twice counts at its first (best) rank.

All three come from one exact state: the number of scored events and, per rank, how many
engaged items sat there. Counts merge by integer addition, so any chunking or merge order
gives the same state; the value is then computed exactly from the counts and rounded once
(``Fraction``), so it is bit-identical in every stage. MRR is the correctly rounded mean of
``1 / rank``; NDCG the correctly rounded mean of the per-rank gains, each gain being the
float ``1.0 / math.log2(1 + rank)``.

Catalogue coverage is the share of a catalogue that appeared in the top ``k`` of any list
of the window. Its state is the set of items seen, which merges exactly by union.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from metrics.base import Aggregate, ColumnKind
from metrics.counters import ratio
from metrics.groups import Groups
from metrics.ranked_lists import hit_ranks, ranked_lists, top_items

__all__ = ["MRR", "NDCG", "CatalogueCoverage", "HitRate", "RankState", "SeenItemsState",
           "catalogue_coverage", "hit_rate", "mrr", "ndcg"]


def _check_k(kind: str, k: object, optional: bool) -> None:
    if k is None and optional:
        return
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        hint = " or None for the whole list" if optional else ""
        raise ValueError(f"{kind}: k must be an integer of at least 1{hint}, got {k!r}")


def _check_column(kind: str, role: str, column: object) -> None:
    if not isinstance(column, str) or not column:
        raise ValueError(f"{kind}: {role} must name a column, got {column!r}")


# -- NDCG, MRR and hit rate: counts of engaged items per rank ------------------------------

class RankState:
    """How many events were scored, and per rank how many engaged items sat there."""

    __slots__ = ("clicked", "engaged", "hits", "k", "shown")

    def __init__(self, shown: str, clicked: str, k: int | None) -> None:
        self.shown, self.clicked, self.k = shown, clicked, k
        self.engaged = 0  # events with a list and an engagement
        self.hits: dict[int, int] = {}  # rank (1-based) -> engaged items found there

    def update(self, frame: pd.DataFrame) -> None:
        engaged, ranks = hit_ranks(frame, self.shown, self.clicked, self.k)
        self.add(int(np.count_nonzero(engaged)), ranks[ranks > 0])

    def add(self, engaged: int, ranks: np.ndarray) -> None:
        """Count ``engaged`` scored events whose hits sat at ``ranks`` (misses left out)."""
        self.engaged += engaged
        found, counts = np.unique(ranks, return_counts=True)
        for rank, n in zip(found.tolist(), counts.tolist(), strict=True):
            self.hits[rank] = self.hits.get(rank, 0) + n

    def merge(self, other: Self) -> None:
        mine = (self.shown, self.clicked, self.k)
        theirs = (other.shown, other.clicked, other.k)
        if mine != theirs:
            raise ValueError(f"cannot merge a rank state of (shown, clicked, k) {theirs} into "
                             f"one of {mine}")
        self.engaged += other.engaged
        for rank, n in other.hits.items():
            self.hits[rank] = self.hits.get(rank, 0) + n

    def hit_count(self) -> int:
        return sum(self.hits.values())

    def mean_gain(self, gain: Any) -> float:
        """The mean over scored events of ``gain(rank)`` (0 for a miss), rounded once;
        ``gain`` gives an exact Fraction (or int) per rank. NaN with no scored event."""
        if not self.engaged:
            return float("nan")
        total = sum((n * gain(rank) for rank, n in sorted(self.hits.items())), Fraction(0))
        return float(total / self.engaged)

    def to_bytes(self) -> bytes:
        hits = [[rank, self.hits[rank]] for rank in sorted(self.hits)]
        return json.dumps({"engaged": self.engaged, "hits": hits},
                          separators=(",", ":")).encode()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output."""
        try:
            raw = json.loads(data)
            engaged = raw["engaged"]
            hits = {rank: n for rank, n in raw["hits"]}
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"not rank state bytes ({err})") from None
        numbers = [engaged, *hits, *hits.values()]
        if not all(type(x) is int for x in numbers) or engaged < sum(hits.values()) or any(
                rank < 1 or n < 1 or (self.k is not None and rank > self.k)
                for rank, n in hits.items()):
            raise ValueError(f"not rank state bytes for k={self.k}: {data[:200]!r}")
        self.engaged, self.hits = engaged, hits
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RankState)
                and (self.shown, self.clicked, self.k) == (other.shown, other.clicked, other.k)
                and self.engaged == other.engaged and self.hits == other.hits)

    def __repr__(self) -> str:
        return (f"RankState({self.shown!r}, {self.clicked!r}, k={self.k}, "
                f"engaged={self.engaged}, hits={self.hit_count()})")


@dataclass(frozen=True)
class _RankAggregate(Aggregate):
    """An aggregate of where the engaged item sat in the ranked list."""

    shown: str
    clicked: str
    k: int | None
    k_optional: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_column(self.kind, "shown", self.shown)
        _check_column(self.kind, "clicked", self.clicked)
        if self.shown == self.clicked:
            raise ValueError(f"{self.kind}: shown and clicked are both {self.shown!r}; the "
                             "ranked list and the engaged item are two columns")
        _check_k(self.kind, self.k, self.k_optional)

    def columns(self) -> dict[str, ColumnKind]:
        return {self.shown: "list[str]", self.clicked: "str"}

    def fields(self) -> tuple[str, ...]:
        return (self.kind,)

    def new_state(self) -> RankState:
        return RankState(self.shown, self.clicked, self.k)

    def state_from_bytes(self, data: bytes) -> RankState:
        return self.new_state().load(data)

    def update_groups(self, states: Sequence[RankState], frame: pd.DataFrame, groups: Groups
                      ) -> None:
        # The ranks once for the whole chunk, then counted per (group, rank) in one pass.
        engaged, ranks = hit_ranks(frame, self.shown, self.clicked, self.k)
        per_entry = ranks if groups.rows is None else ranks[groups.rows]
        hit = per_entry > 0
        width = int(ranks.max(initial=0)) + 1  # a key per (group, rank): group * width + rank
        keys = groups.codes[hit].astype(np.int64) * width + per_entry[hit]
        found, counts = np.unique(keys, return_counts=True)
        for state, n in zip(states, groups.sums(engaged).tolist(), strict=True):
            state.engaged += n
        for key, n in zip(found.tolist(), counts.tolist(), strict=True):
            group, rank = divmod(key, width)
            hits = states[group].hits
            hits[rank] = hits.get(rank, 0) + n


@dataclass(frozen=True)
class NDCG(_RankAggregate):
    """Normalised discounted cumulative gain at ``k``, one relevant item per event."""

    k: int
    kind = "ndcg"

    def value(self, state: RankState) -> dict[str, float]:
        return {"ndcg": state.mean_gain(_exact_gain)}


@dataclass(frozen=True)
class MRR(_RankAggregate):
    """Mean reciprocal rank of the engaged item (within the top ``k``, when given)."""

    k: int | None = None
    kind = "mrr"
    k_optional = True

    def value(self, state: RankState) -> dict[str, float]:
        return {"mrr": state.mean_gain(_reciprocal)}


@dataclass(frozen=True)
class HitRate(_RankAggregate):
    """The share of engaged items that were in the top ``k``."""

    k: int
    kind = "hit_rate"

    def value(self, state: RankState) -> dict[str, float]:
        return {"hit_rate": ratio(state.hit_count(), state.engaged)}


def discount(rank: int) -> float:
    """The DCG gain of the one relevant item at ``rank``: ``1 / log2(1 + rank)``, as the
    float every stage uses (Python's ``math.log2``, not numpy's, whose last bit may
    depend on the CPU's vector unit)."""
    return 1.0 / math.log2(1 + rank)


@lru_cache(maxsize=4096)
def _exact_gain(rank: int) -> Fraction:
    return Fraction(discount(rank))


def _reciprocal(rank: int) -> Fraction:
    return Fraction(1, rank)


# -- catalogue coverage: the set of items seen ---------------------------------------------

class SeenItemsState:
    """The distinct items that appeared in the top ``k`` of the lists seen (only those of
    the catalogue, when there is one)."""

    __slots__ = ("catalogue", "items", "k", "shown")

    def __init__(self, shown: str, k: int | None, catalogue: frozenset[str] | None) -> None:
        self.shown, self.k, self.catalogue = shown, k, catalogue
        self.items: set[str] = set()

    def update(self, frame: pd.DataFrame) -> None:
        self.add(ranked_lists(frame, self.shown))

    def add(self, lists: Sequence[Any] | np.ndarray) -> None:
        """Absorb the top ``k`` of ``lists`` (None for a null)."""
        seen = set(top_items(lists, self.k))
        self.items |= seen if self.catalogue is None else seen & self.catalogue

    def merge(self, other: Self) -> None:
        mine, theirs = (self.shown, self.k), (other.shown, other.k)
        if mine != theirs or self.catalogue != other.catalogue:
            raise ValueError(f"cannot merge a coverage state of (shown, k) {theirs} into one "
                             f"of {mine}, or over another catalogue")
        self.items |= other.items

    def to_bytes(self) -> bytes:
        return json.dumps(sorted(self.items), ensure_ascii=False,
                          separators=(",", ":")).encode()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output."""
        try:
            items = json.loads(data)
        except ValueError as err:
            raise ValueError(f"not coverage state bytes ({err})") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"not coverage state bytes: {data[:200]!r}")
        if self.catalogue is not None and not self.catalogue.issuperset(items):
            raise ValueError("stored coverage state holds items outside the catalogue")
        self.items = set(items)
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SeenItemsState)
                and (self.shown, self.k, self.catalogue) == (other.shown, other.k,
                                                             other.catalogue)
                and self.items == other.items)

    def __repr__(self) -> str:
        return f"SeenItemsState({self.shown!r}, k={self.k}, items={len(self.items)})"


@dataclass(frozen=True)
class CatalogueCoverage(Aggregate):
    """The share of a catalogue shown in the top ``k`` of the window's lists.

    Give the ``catalogue`` (its items; the state then keeps only those, and items outside
    it do not count) or only its size (``catalogue_size``; every distinct item counts, so
    a value above 1 says the size is too small). The catalogue is kept sorted, so its order
    does not change the metric's identity; a large one is better given by its size.
    """

    shown: str
    catalogue: tuple[str, ...] | None = None
    catalogue_size: int | None = None
    k: int | None = None
    kind = "catalogue_coverage"

    def __post_init__(self) -> None:
        _check_column(self.kind, "shown", self.shown)
        _check_k(self.kind, self.k, optional=True)
        if (self.catalogue is None) == (self.catalogue_size is None):
            raise ValueError(f"{self.kind}: give either catalogue=[item ids] or "
                             "catalogue_size=N, not both or neither")
        if self.catalogue is not None:
            items = self.catalogue
            if isinstance(items, str) or not all(isinstance(i, str) for i in items):
                raise ValueError(f"{self.kind}: catalogue must be a list of item ids "
                                 f"(strings), got {items!r}"[:300])
            if not items:
                raise ValueError(f"{self.kind}: the catalogue is empty")
            if len(set(items)) != len(items):
                raise ValueError(f"{self.kind}: the catalogue lists an item twice")
            object.__setattr__(self, "catalogue", tuple(sorted(items)))
        elif isinstance(self.catalogue_size, bool) or not isinstance(
                self.catalogue_size, int) or self.catalogue_size < 1:
            raise ValueError(f"{self.kind}: catalogue_size must be an integer of at least 1, "
                             f"got {self.catalogue_size!r}")

    @cached_property
    def _catalogue_set(self) -> frozenset[str] | None:  # not part of the id
        return None if self.catalogue is None else frozenset(self.catalogue)

    @property
    def size(self) -> int:
        """The number of items in the catalogue."""
        if self.catalogue is not None:
            return len(self.catalogue)
        assert self.catalogue_size is not None
        return self.catalogue_size

    def columns(self) -> dict[str, ColumnKind]:
        return {self.shown: "list[str]"}

    def fields(self) -> tuple[str, ...]:
        return ("coverage",)

    def new_state(self) -> SeenItemsState:
        return SeenItemsState(self.shown, self.k, self._catalogue_set)

    def state_from_bytes(self, data: bytes) -> SeenItemsState:
        return self.new_state().load(data)

    def update_groups(self, states: Sequence[SeenItemsState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        lists = ranked_lists(frame, self.shown)  # read once, then cut per group
        for state, part in zip(states, groups.split(lists), strict=True):
            state.add(part)

    def value(self, state: SeenItemsState) -> dict[str, float]:
        return {"coverage": ratio(len(state.items), self.size)}


# Presets: functions that return specs, as the rest of the library does.
def ndcg(shown: str, clicked: str, k: int) -> NDCG:
    """NDCG@``k`` of the engaged item ``clicked`` in the ranked list ``shown`` (field
    ``ndcg``): the mean of ``1 / log2(1 + rank)`` over events with an engagement, 0 when
    the item is not in the top ``k``.

    >>> agg = ndcg("carousels", "clicked_carousel", k=3)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({
    ...     "carousels": [["mix", "new", "top"], ["top", "mix"], ["new"], ["mix", "new"]],
    ...     "clicked_carousel": ["mix", "mix", "top", None]}))
    >>> agg.value(state)  # (1 + 1/log2(3) + 0) / 3 events with a click
    {'ndcg': 0.5436432511904858}
    """
    return NDCG(shown, clicked, k)


def mrr(shown: str, clicked: str, k: int | None = None) -> MRR:
    """Mean reciprocal rank of the engaged item ``clicked`` in ``shown`` (field ``mrr``)
    over events with an engagement; 0 for an item not in the list (or not in its top ``k``).

    >>> agg = mrr("carousels", "clicked_carousel")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({
    ...     "carousels": [["mix", "new", "top"], ["top", "mix"], ["new"]],
    ...     "clicked_carousel": ["top", "mix", "mix"]}))
    >>> agg.value(state)  # (1/3 + 1/2 + 0) / 3
    {'mrr': 0.2777777777777778}
    """
    return MRR(shown, clicked, k)


def hit_rate(shown: str, clicked: str, k: int) -> HitRate:
    """The share of events with an engagement whose engaged item ``clicked`` was in the top
    ``k`` of ``shown`` (field ``hit_rate``).

    >>> agg = hit_rate("carousels", "clicked_carousel", k=2)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({
    ...     "carousels": [["mix", "new", "top"], ["top", "mix"], ["new"], ["mix"]],
    ...     "clicked_carousel": ["top", "mix", "new", None]}))
    >>> agg.value(state)
    {'hit_rate': 0.6666666666666666}
    """
    return HitRate(shown, clicked, k)


def catalogue_coverage(shown: str, *, catalogue: Sequence[str] | None = None,
                       catalogue_size: int | None = None, k: int | None = None
                       ) -> CatalogueCoverage:
    """The share of the catalogue that appeared in the top ``k`` of the window's lists
    ``shown`` (field ``coverage``); give the ``catalogue`` or its ``catalogue_size``.

    >>> agg = catalogue_coverage("carousels", catalogue=["mix", "new", "top", "jazz"], k=2)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"carousels": [["mix", "new", "top"], ["mix"], None]}))
    >>> agg.value(state)  # mix and new of 4
    {'coverage': 0.5}
    """
    return CatalogueCoverage(shown, None if catalogue is None else tuple(catalogue),
                             catalogue_size, k)

