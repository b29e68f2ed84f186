"""Packed counts and texts: any counts and texts round-trip, in the narrowest width, and
bytes that do not add up are refused with a reason."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics.packed import Reader, pack_counts, pack_texts


@given(counts=st.lists(st.integers(0, 2**63 - 1), max_size=50),
       texts=st.lists(st.text(), max_size=50))
def test_counts_and_texts_round_trip(counts: list[int], texts: list[str]) -> None:
    data = pack_counts(np.array(counts, dtype=np.int64)) + pack_texts(texts)
    reader = Reader(data, "a test")
    assert reader.counts(len(counts)).tolist() == counts
    assert reader.texts(len(texts)) == texts
    reader.end()


@pytest.mark.parametrize(("largest", "width"), [
    (0, 1), (255, 1), (256, 2), (65_535, 2), (65_536, 4), (2**32 - 1, 4), (2**32, 8),
    (2**63 - 1, 8)])
def test_counts_take_the_narrowest_width(largest: int, width: int) -> None:
    data = pack_counts(np.array([1, largest], dtype=np.int64))
    assert data[0] == width and len(data) == 1 + 2 * width


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="negative count"):
        pack_counts(np.array([1, -2]))


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x03\x01\x02\x03", "bad count width 3"),
    (b"\x01\x01", "end early"),
    (b"\x08" + b"\xff" * 16, "over 2"),
])
def test_bad_counts_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=f"a test: .*{reason}"):
        Reader(data, "a test").counts(2)


def text_bytes(lengths: list[int], block: bytes) -> bytes:
    return (pack_counts(np.array(lengths, dtype=np.int64)) + struct.pack("<Q", len(block))
            + block)


@pytest.mark.parametrize(("data", "reason"), [
    (text_bytes([1, 1], b"\xff\xfe"), "not UTF-8"),
    (text_bytes([1, 2], b"abcd"), "add up to 3, the texts hold 4"),
    (text_bytes([5, 2**62], b"abcdefg"), "a text of 4611686018427387904 code points"),
    (text_bytes([1, 1], b"ab")[:-1], "end early"),
])
def test_bad_texts_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=f"a test: .*{reason}"):
        Reader(data, "a test").texts(2)


def test_trailing_bytes_are_refused() -> None:
    reader = Reader(pack_texts(["a"]) + b"x", "a test")
    assert reader.texts(1) == ["a"]
    with pytest.raises(ValueError, match="1 bytes of trailing data"):
        reader.end()
