"""Near misses: which protected (light) skeletons are within a few edits of each name in a batch.

A vectorised join instead of one comparison per (name, protected name) pair: each string gets a
few bucket keys -- its length and some of its first and last characters -- and a name is compared
only with the protected names sharing a key.  The keys are chosen so that a one-character edit
anywhere leaves at least one of them whole (see `_LONG_KEYS`); two edits that break them all
(both ends of the name) no longer make a convincing imitation.  A letter-set check drops most of
the remaining pairs, and one `rapidfuzz.process.cpdist` call measures the rest (OSA distance: a
transposition is one edit).  Pure: numpy arrays in, (row, target, techniques) out.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from monitor.detect.names import line_lengths
from monitor.detect.permutations import MIN_TYPO_LEN


def max_distance(length: int) -> int:
    """Largest skeleton edit distance still called a near miss of a target this long (0 = never)."""
    if length < MIN_TYPO_LEN:
        return 0
    return 1 if length <= 8 else 2 if length <= 13 else 3


# Letters of a (light) skeleton -> 0..25; anything else (never in a skeleton) -> 26.
_CODE = np.full(256, 26, dtype=np.int64)
_CODE[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)] = np.arange(26)
_TABLE_BITS = 18
_TABLE_MASK = (1 << _TABLE_BITS) - 1
# Bucket keys: which first (c0..c3) and last (z3..z0) characters of a string a key is made of.
# A one-character edit at any position of a string of six or more leaves one of the five
# four-character keys whole (each misses a different pair of positions); five-character strings
# use the four three-character keys, as four characters would not survive a transposition.
_LONG_KEYS = (("c0", "c1", "c2", "c3"), ("c0", "c1", "c2", "z0"), ("c0", "c1", "z1", "z0"),
              ("c0", "z2", "z1", "z0"), ("z3", "z2", "z1", "z0"))
_SHORT_KEYS = (("c0", "c1", "c2"), ("z2", "z1", "z0"), ("c0", "c1", "z0"), ("c0", "z1", "z0"))


def _keys(lengths: np.ndarray, chars: dict, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, owner of each key): the bucket keys of strings of these `lengths`, whose end
    characters are given as codes in `chars` (c0 c1 c2 c3: the first four; z3 z2 z1 z0: the
    last four); strings of five characters get the short keys, longer ones the long keys."""
    keys, whose = [], []
    short = lengths == MIN_TYPO_LEN
    for kind, (family, pick) in enumerate(((_LONG_KEYS, ~short), (_SHORT_KEYS, short))):
        rows = np.flatnonzero(pick)
        if not len(rows):
            continue
        base = lengths[rows] * 16 + kind * 8
        picked = {part: chars[part][rows] for part in ("c0", "c1", "c2", "c3", "z3", "z2", "z1", "z0")}
        for n, parts in enumerate(family):
            key = base + n
            for part in parts:
                key = key * 27 + picked[part]
            keys.append(key)
            whose.append(owners[rows])
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(keys), np.concatenate(whose)


def _end_codes(codes, starts, lengths) -> dict:
    """Codes of the first four and last four characters of each string (clipped to it)."""
    last = starts + lengths - 1
    return {"c0": codes[starts], "c1": codes[starts + 1], "c2": codes[starts + 2],
            "c3": codes[np.minimum(starts + 3, last)], "z0": codes[last], "z1": codes[last - 1],
            "z2": codes[last - 2], "z3": codes[np.maximum(last - 3, starts)]}


def _presence(codes, starts) -> np.ndarray:
    """A bit per letter present in each string: an edit changes at most two of them."""
    if not len(starts):
        return starts
    bits = np.left_shift(1, codes)
    if starts[-1] == len(bits):  # the last line is empty (a name of separators only)
        bits = np.append(bits, 0)
    return np.bitwise_or.reduceat(bits, starts) & ((1 << 26) - 1)  # not \n


class NearMissIndex:
    """Protected (light) skeletons by bucket key, for the vectorised near-miss join."""

    def __init__(self, entries: Iterable[tuple[str, int, int]]) -> None:
        entries = [e for e in entries if max_distance(len(e[0]))]
        self._choices = [skel for skel, _, _ in entries]
        self._owners = [(tid, extra) for _, tid, extra in entries]
        self._limits = np.array([max_distance(len(s)) for s in self._choices], dtype=np.int64)
        self._max = int(self._limits.max()) if entries else 0
        if not entries:
            return
        blob = "\n".join(self._choices)
        codes = _CODE[np.frombuffer(blob.encode("ascii"), dtype=np.uint8)]
        lengths = line_lengths(blob)
        starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
        self._letters = _presence(codes, starts)
        ends = _end_codes(codes, starts, lengths)
        # one row per (entry, query length it can be a near miss of)
        lows = np.maximum(MIN_TYPO_LEN, lengths - self._limits)
        spans = lengths + self._limits + 1 - lows
        entry = np.repeat(np.arange(len(entries)), spans)
        length = np.repeat(lows, spans) + np.arange(len(entry)) - np.repeat(np.cumsum(spans) - spans,
                                                                          spans)
        keys, owners = _keys(length, {part: c[entry] for part, c in ends.items()}, entry)
        # keys grouped by slot (their low bits): a query finds its group with two reads
        order = np.argsort(keys & _TABLE_MASK, kind="stable")
        self._keys, self._entries = keys[order], owners[order]
        slots = np.bincount(self._keys & _TABLE_MASK, minlength=1 << _TABLE_BITS)
        self._count = slots.astype(np.int32)
        self._start = (np.cumsum(slots) - slots).astype(np.int32)

    def search(self, skels: list[str]) -> Iterator[tuple[int, int, int]]:
        """(row, target id, extra techniques) for each near miss of ``skels[row]``."""
        return self.search_block("\n".join(skels)) if skels else iter(())

    def search_block(self, blob: str, lengths: np.ndarray | None = None
                     ) -> Iterator[tuple[int, int, int]]:
        """Like `search`, for skeletons joined by newlines (with their `lengths` if known): only
        the lines compared are ever cut out of the block."""
        if not self._choices:
            return
        chars = np.frombuffer(blob.encode("ascii"), dtype=np.uint8)
        if not len(chars):
            return
        if lengths is None:
            lengths = line_lengths(blob)
        starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
        rows = np.flatnonzero(lengths >= MIN_TYPO_LEN)
        if not len(rows):
            return
        codes = _CODE[chars]
        qkeys, qrows = _keys(lengths[rows], _end_codes(codes, starts[rows], lengths[rows]), rows)
        slot = qkeys & _TABLE_MASK
        count = self._count[slot]
        sel = np.flatnonzero(count)
        qkeys, qrows, lo, count = qkeys[sel], qrows[sel], self._start[slot[sel]], count[sel]
        total = int(count.sum())
        if not total:
            return
        letters = _presence(codes, starts)
        for part in _parts(qrows, count, total):
            yield from self._join(blob, starts, lengths, letters, qkeys[part], qrows[part],
                                  lo[part], count[part])

    def _join(self, blob, starts, lengths, letters, qkeys, qrows, lo, count
              ) -> Iterator[tuple[int, int, int]]:
        total = int(count.sum())
        first = np.repeat(np.cumsum(count) - count, count)
        at = np.repeat(lo, count) + np.arange(total) - first
        same = self._keys[at] == np.repeat(qkeys, count)  # a slot may hold other keys too
        pair_entries, pair_rows = self._entries[at[same]], np.repeat(qrows, count)[same]
        # Letters present differ in at most two per edit: most unrelated pairs stop here.
        near = (np.bitwise_count(letters[pair_rows] ^ self._letters[pair_entries])
                <= 2 * self._limits[pair_entries])
        pairs = np.sort(pair_rows[near] * len(self._choices) + pair_entries[near])
        if not len(pairs):
            return
        pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]  # a pair once
        pair_rows, pair_entries = np.divmod(pairs, len(self._choices))
        queries = [blob[a:a + n] for a, n in zip(starts[pair_rows].tolist(),
                                                 lengths[pair_rows].tolist())]
        choices = [self._choices[e] for e in pair_entries.tolist()]
        dist = process.cpdist(queries, choices, scorer=OSA.distance, score_cutoff=self._max)
        close = np.flatnonzero(dist <= self._limits[pair_entries])
        for row, entry in zip(pair_rows[close].tolist(), pair_entries[close].tolist()):
            tid, extra = self._owners[entry]
            yield row, tid, extra


PAIRS_PER_JOIN = 1 << 18  # bounds the join's arrays whatever the names (hostile input)


def _parts(qrows: np.ndarray, count: np.ndarray, total: int) -> list:
    """Index arrays splitting the query keys into joins of about PAIRS_PER_JOIN pairs each, a
    row's keys always in the same join (so a pair is measured once)."""
    if total <= PAIRS_PER_JOIN:
        return [slice(None)]
    order = np.argsort(qrows, kind="stable")
    cum = np.cumsum(count[order])
    rows = qrows[order]
    row_starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    cuts = np.searchsorted(cum, np.arange(PAIRS_PER_JOIN, total, PAIRS_PER_JOIN), "left") + 1
    cuts = np.unique(row_starts[np.minimum(np.searchsorted(row_starts, cuts), len(row_starts) - 1)])
    bounds = [0, *[c for c in cuts.tolist() if c > 0], len(order)]
    return [order[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
