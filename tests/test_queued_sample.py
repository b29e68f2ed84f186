"""The queued sample keeps exactly what a BottomK fed the same candidates keeps — ids,
order and each id's smallest record — however the candidates are batched, trimmed,
restored and merged, and holds a bounded number of them whatever it is fed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from metrics.bottom_k import BottomK, id_hashes
from metrics.queued_sample import ColumnBatch, QueuedSample, kth_distinct, queue_bound
from metrics.sample_records import Taken, as_is, float_texts, object_array, take_column

PARTS = ('{"fields":{"x":', '},"id":', "}")


def candidates(rng: np.random.Generator, n: int, ids: int) -> tuple[list[str], np.ndarray]:
    """n candidates of at most ``ids`` distinct ids (so ids repeat), each with a value."""
    return ([f"v{i}" for i in rng.integers(0, ids, n)],
            np.round(rng.normal(size=n), int(rng.integers(0, 4))))


def batch(texts: list[str], values: np.ndarray) -> ColumnBatch:
    return ColumnBatch(id_hashes(texts), object_array(texts), PARTS,
                       (Taken(float_texts, values), Taken(as_is, object_array(
                           [f'"{t}"' for t in texts]))))


def records(texts: list[str], values: np.ndarray) -> list[str]:
    return [f'{{"fields":{{"x":{v!r}}},"id":"{t}"}}' for t, v in zip(texts, values.tolist(),
                                                                      strict=True)]


def reference(texts: list[str], values: np.ndarray, k: int) -> list[tuple[str, str]]:
    sample: BottomK[str] = BottomK(k)
    sample.offer_many(zip(texts, id_hashes(texts).tolist(), records(texts, values),
                          strict=True))
    return list(sample.items())


@pytest.mark.parametrize("seed", range(6))
def test_any_batching_trimming_and_merging_keeps_what_bottom_k_keeps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 7, 100]))
    n = int(rng.integers(500, 6_000))
    texts, values = candidates(rng, n, ids=int(rng.choice([5, n // 3, 10 * n])))
    parts: list[QueuedSample] = []
    cuts = np.sort(rng.choice(np.arange(1, n), size=int(rng.integers(1, 60)), replace=False))
    for start, stop in zip([0, *cuts.tolist()], [*cuts.tolist(), n], strict=True):
        sample = parts[-1] if parts and rng.random() < 0.7 else QueuedSample(k)
        if sample is not (parts[-1] if parts else None):
            parts.append(sample)
        chunk = batch(texts[start:stop], values[start:stop])
        # a chunk's batch holds rows of other groups too: each sample takes some of it
        at = np.flatnonzero(rng.random(stop - start) < 0.8)
        other = np.setdiff1d(np.arange(stop - start), at)
        sample.add(chunk, at)
        if len(other):
            parts.append(QueuedSample(k))
            parts[-1].add(chunk, other)
        if rng.random() < 0.2:  # stored and read back, as a stage does
            stored = parts.pop(rng.integers(len(parts)))
            restored = QueuedSample(k)
            restored.restore([(t, h, r) for (t, r), h in zip(
                stored.items(), id_hashes([t for t, _ in stored.items()]).tolist(),
                strict=True)])
            parts.append(restored)
    order = random.Random(seed)
    while len(parts) > 1:
        i = order.randrange(len(parts) - 1)
        parts[i].merge(parts.pop(i + 1))
    assert parts[0].items() == reference(texts, values, k)


@pytest.mark.parametrize("seed", range(4))
def test_reads_between_adds_change_nothing(seed: int) -> None:
    """Read (serialized, compared, listed) after some adds and not others, as the
    streaming stage reads the states a micro-batch touched: each read spells what was
    queued since the last, and the sample is what one read at the end makes."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 10, 100]))
    texts, values = candidates(rng, 4_000, ids=int(rng.choice([50, 1_000, 40_000])))
    read, unread = QueuedSample(k), QueuedSample(k)
    for start in range(0, len(texts), 40):
        chunk = batch(texts[start:start + 40], values[start:start + 40])
        at = np.arange(len(chunk.hashes))
        read.add(chunk, at)
        unread.add(batch(texts[start:start + 40], values[start:start + 40]), at)
        if rng.random() < 0.7:
            joined = read.joined_records()
            assert joined == ",".join(record for _, record in read.items())
            assert read.joined_records() is joined  # kept while nothing was added
    assert read == unread
    assert read.items() == unread.items() == reference(texts, values, k)
    assert read.joined_records() == ",".join(r for _, r in reference(texts, values, k))


def test_memory_is_bounded_however_many_candidates_and_repeats() -> None:
    """A million candidates, a tenth of them one id over and over (its records differ),
    one that hashes low enough to stay in the sample: the sample never holds more than
    the bound the module states."""
    rng = np.random.default_rng(3)
    k = 50
    names = [f"same{i}" for i in range(10_000)]
    same = names[int(np.argmin(id_hashes(names)))]
    sample = QueuedSample(k)
    most = 0
    all_texts: list[str] = []
    all_values: list[np.ndarray] = []
    for i in range(250):
        texts = [f"id{j}" for j in range(i * 4_000, (i + 1) * 4_000)]
        texts[::10] = [same] * 400
        values = rng.normal(size=4_000)
        chunk = batch(texts, values)
        # as an assertion offers them: at most the k lowest distinct hashes of a chunk
        bound = min(sample.bound(), kth_distinct(chunk.hashes, k) or sample.bound())
        sample.add(chunk, np.flatnonzero(chunk.hashes <= bound))
        most = max(most, sample.entries)
        all_texts += texts
        all_values.append(values)
    assert most <= 3 * queue_bound(k) + k, most
    assert sample.items() == reference(all_texts, np.concatenate(all_values), k)


def test_stored_and_live_candidates_mix() -> None:
    rng = np.random.default_rng(9)
    texts, values = candidates(rng, 3_000, ids=2_000)
    stored = QueuedSample(20)
    stored.add(batch(texts[:1_000], values[:1_000]), np.arange(1_000))
    restored = QueuedSample(20)
    entries = [(t, int(h), r) for (t, r), h in zip(
        stored.items(), id_hashes([t for t, _ in stored.items()]), strict=True)]
    assert restored.restore(entries) == 20
    restored.add(batch(texts[1_000:], values[1_000:]), np.arange(2_000))
    assert restored.items() == reference(texts, values, 20)
    assert not restored._queue  # spelled once read


def test_kth_distinct_counts_a_repeated_hash_once() -> None:
    hashes = np.array([4, 4, 4, 1, 9, 2], dtype=np.uint64)
    assert kth_distinct(hashes, 3) == 4
    assert kth_distinct(hashes, 4) == 9
    assert kth_distinct(hashes, 5) is None


def test_batches_spelled_differently_are_gathered_apart() -> None:
    """A kept field that is a float in some chunks and an integer in others (research on
    raw frames): a trim gathers each kind into its own batch, never casting one to the
    other (an integer 3 is spelled "3", a float 3.0 "3.0")."""
    rng = np.random.default_rng(4)
    sample = QueuedSample(30)
    texts_all: list[str] = []
    wanted: list[str] = []
    for i in range(40):
        texts = [f"id{j}" for j in range(i * 50, (i + 1) * 50)]
        ints = rng.integers(0, 5, 50)
        column = take_column(ints.astype(float) if i % 2 else ints, np.arange(50))
        chunk = ColumnBatch(id_hashes(texts), object_array(texts), PARTS,
                            (column, Taken(as_is, object_array([f'"{t}"' for t in texts]))))
        sample.add(chunk, np.arange(50))
        texts_all += texts
        wanted += [f'{{"fields":{{"x":{float(v) if i % 2 else int(v)!r}}},"id":"{t}"}}'
                   for t, v in zip(texts, ints.tolist(), strict=True)]
    reference: BottomK[str] = BottomK(30)
    reference.offer_many(zip(texts_all, id_hashes(texts_all).tolist(), wanted, strict=True))
    assert sample.items() == list(reference.items())
    assert any('"x":3.0' in r for _, r in sample.items()) and any(
        '"x":3}' in r for _, r in sample.items())
