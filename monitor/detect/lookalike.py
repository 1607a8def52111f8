"""Which protected namespaces does a Hub name imitate?  Pure: no network, no database, no clock.

Screening is two passes over a batch of names:

1. O(1) look-ups, per name, in two reverse indexes built once from the protected names:
   - normal form (`normalise`) of every permutation (`permutations.py`) -> target + techniques;
   - skeleton (`skeleton`) of each protected name and of its structural variants (affix, ai
     suffix, word order, plural, version) -> target, so a homoglyph on top of one of those
     (``meta-IIama``, ``meta-IIama-official``) still lands in one look-up.
2. Only for names neither index knew: `rapidfuzz.process.cdist` between their skeletons and the
   protected skeletons, bucketed by length, with a length-aware cutoff (`max_distance`) -> the
   ``near_miss`` technique.  Names under five characters skip this pass: short names only match
   through the high-confidence rules of the index.

A protected name never matches itself, a case variant of itself, or another protected name; an
allowlisted name never matches anything.

The score is how alike the two names look once homoglyphs and separators are folded: the
normalised Levenshtein similarity of their skeletons (1.0 = indistinguishable), raised to a floor
for techniques that add whole words but are deceptive by design (`SCORE_FLOORS`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from itertools import count, islice
from typing import Iterable, Iterator, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from monitor.detect.names import (MAX_LEN, compact, is_valid_name, normalise, separator_runs,
                                  skeleton, validate_name)
from monitor.detect.permutations import (MIN_TYPO_LEN, STRUCTURAL, TECHNIQUE_BIT, TECHNIQUE_RANK,
                                         mask_of, ranked_permutations, strip_affix, techniques_of)

SCORE_FLOORS = {"ai_suffix": 0.9, "word_reorder": 0.85, "plural": 0.85, "affix": 0.8,
                "version": 0.8}
CHUNK = 65536          # names folded and looked up per batch
CDIST_ROWS = 16384     # queries per cdist call: bounds the result matrix to rows x targets bytes

_BITS = 24             # packed index value: target id << _BITS | technique mask
_TECH_MASK = (1 << _BITS) - 1
_STRUCTURAL = mask_of(STRUCTURAL)
_HOMOGLYPH, _SEPARATOR, _HYPHENATION, _NEAR_MISS = (
    TECHNIQUE_BIT[t] for t in ("homoglyph", "separator", "hyphenation", "near_miss"))
_OUTSIDE_ALPHABET = re.compile(r"[^A-Za-z0-9._\n-]")  # newline is the batch separator
_FLOORS = tuple((TECHNIQUE_BIT[t], floor) for t, floor in SCORE_FLOORS.items())


def max_distance(length: int) -> int:
    """Largest skeleton edit distance still called a near miss of a target this long (0 = never)."""
    if length < MIN_TYPO_LEN:
        return 0
    return 1 if length <= 8 else 2 if length <= 13 else 3


@dataclass(frozen=True)
class Match:
    """`name` imitates the protected `target` through `techniques` (most likely first)."""

    name: str
    target: str
    techniques: tuple[str, ...]
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "target": self.target, "techniques": list(self.techniques),
                "score": self.score}


def _score(name_skel: str, target_skel: str, mask: int) -> float:
    score = Levenshtein.normalized_similarity(name_skel, target_skel)
    for bit, floor in _FLOORS:
        if mask & bit and floor > score:
            score = floor
    return round(score, 3)


def _sort_key(m: Match) -> tuple:
    return (-m.score, TECHNIQUE_RANK[m.techniques[0]], m.target.lower())


def _derived(low: str, variant: str) -> int:
    """Techniques that turn `variant` into `low` when both share a skeleton."""
    mask = _HOMOGLYPH if compact(low) != compact(variant) else 0
    ours, theirs = separator_runs(low), separator_runs(variant)
    if len(ours) > len(theirs):
        mask |= _HYPHENATION
    elif ours != theirs or (not mask and low != variant):
        mask |= _SEPARATOR
    return mask


class Screener:
    """Screens Hub names against protected namespaces.  Build once, screen many."""

    def __init__(self, protected: Sequence[str], allow: Sequence[str] = ()) -> None:
        targets: list[str] = []
        seen: set[str] = set()
        for name in protected:
            reason = validate_name(name)
            if reason:
                raise ValueError(f"protected name {name!r}: {reason}")
            if name.lower() not in seen:
                seen.add(name.lower())
                targets.append(name)
        self.targets: tuple[str, ...] = tuple(targets)
        self._skeletons = [skeleton(t) for t in targets]
        self._exempt = frozenset(seen | {a.lower() for a in allow if isinstance(a, str)})
        # normal form -> packed (target, techniques), or a tuple of them if several targets share it
        self._perm: dict[str, int | tuple[int, ...]] = {}
        # skeleton -> ((target id, variant it is the skeleton of, structural techniques), ...)
        self._skel: dict[str, tuple[tuple[int, str, int], ...]] = {}
        self._interned: dict[int, int] = {}
        for tid, target in enumerate(targets):
            self._index(tid, target)
        self._interned = {}
        self._near = self._near_miss_buckets()

    # --- building ------------------------------------------------------------------------------

    def _index(self, tid: int, target: str) -> None:
        low = target.lower()
        self._add_skeleton(skeleton(target), tid, low, 0)
        self._add_perm(normalise(target), tid, _SEPARATOR)  # Meta_Llama, -meta-llama, meta..llama
        for cand, (mask, _tier) in ranked_permutations(target).items():
            self._add_perm(normalise(cand), tid, mask)
            if mask & _STRUCTURAL:
                self._add_skeleton(skeleton(cand), tid, cand, mask & _STRUCTURAL)

    def _add_perm(self, key: str, tid: int, mask: int) -> None:
        intern = self._interned.setdefault
        packed = intern(tid << _BITS | mask, tid << _BITS | mask)
        old = self._perm.get(key)
        if old is None:
            self._perm[key] = packed
            return
        entries = list(old) if isinstance(old, tuple) else [old]
        for i, entry in enumerate(entries):
            if entry >> _BITS == tid:
                entries[i] = intern(entry | mask, entry | mask)
                break
        else:
            entries.append(packed)
        self._perm[key] = entries[0] if len(entries) == 1 else tuple(entries)

    def _add_skeleton(self, key: str, tid: int, variant: str, mask: int) -> None:
        old = self._skel.get(key, ())
        if all(entry[0] != tid for entry in old):  # first variant wins: the target itself
            self._skel[key] = old + ((tid, variant, mask),)

    def _near_miss_buckets(self) -> dict[int, tuple[list[str], list[tuple[int, int]], np.ndarray, int]]:
        """query length -> (choice skeletons, (target id, extra techniques), max distance per choice,
        cutoff for cdist)."""
        choices: list[tuple[str, int, int]] = []
        for tid, (target, skel) in enumerate(zip(self.targets, self._skeletons)):
            if len(skel) >= MIN_TYPO_LEN:
                choices.append((skel, tid, 0))
            core = strip_affix(target.lower())
            if core and len(skeleton(core)) >= MIN_TYPO_LEN and skeleton(core) != skel:
                choices.append((skeleton(core), tid, TECHNIQUE_BIT["affix"]))
        buckets = {}
        for length in range(MIN_TYPO_LEN, MAX_LEN + 1):
            near = [c for c in choices if abs(len(c[0]) - length) <= max_distance(len(c[0]))]
            if near:
                limits = np.array([max_distance(len(c[0])) for c in near], dtype=np.uint8)
                buckets[length] = ([c[0] for c in near], [(c[1], c[2]) for c in near], limits,
                                   int(limits.max()))
        return buckets

    # --- screening -----------------------------------------------------------------------------

    def screen(self, name: str) -> tuple[Match, ...]:
        """Every protected name `name` imitates, best first; () if none (or if `name` is invalid)."""
        return tuple(self._screen_batch([name]))

    def screen_many(self, names: Iterable[str]) -> Iterator[Match]:
        """Matches for many names, in input order (best first within a name).  Invalid names are
        skipped: validate first (`screen_stream` does) if they must be reported."""
        it = iter(names)
        while batch := list(islice(it, CHUNK)):
            yield from self._screen_batch(batch)

    def _screen_batch(self, names: list[str]) -> Iterator[Match]:
        names, blob = _valid_batch(names)
        if not names:
            return
        norms = normalise(blob).split("\n")
        skels = skeleton(blob).split("\n")
        perm_hits = list(map(self._perm.get, norms))
        skel_hits = list(map(self._skel.get, skels))
        hits = [i for i, p, s in zip(count(), perm_hits, skel_hits) if p is not None or s is not None]
        found: dict[int, list[Match]] = {}
        for i in hits:
            if names[i].lower() not in self._exempt:
                found[i] = self._explain(names[i], skels[i], perm_hits[i], skel_hits[i])
        for i, match in self._near_misses(names, skels, hits):
            found.setdefault(i, []).append(match)
        for i in sorted(found):
            yield from sorted(found[i], key=_sort_key)

    def _explain(self, name: str, skel: str, perm_hit, skel_hit) -> list[Match]:
        masks: dict[int, int] = defaultdict(int)
        if perm_hit is not None:
            for packed in perm_hit if isinstance(perm_hit, tuple) else (perm_hit,):
                masks[packed >> _BITS] |= packed & _TECH_MASK
        if skel_hit is not None:
            low = name.lower()
            for tid, variant, mask in skel_hit:
                masks[tid] |= mask | _derived(low, variant)
        return [Match(name, self.targets[tid], techniques_of(mask),
                      _score(skel, self._skeletons[tid], mask))
                for tid, mask in masks.items()]

    def _near_misses(self, names: list[str], skels: list[str], hits: list[int]
                     ) -> Iterator[tuple[int, Match]]:
        lengths = np.fromiter(map(len, skels), dtype=np.int32, count=len(skels))
        lengths[hits] = 0  # the index already answered for these
        order = np.argsort(lengths, kind="stable")
        sorted_lengths = lengths[order]
        values, starts = np.unique(sorted_lengths, return_index=True)
        ends = list(starts[1:]) + [len(order)]
        for length, start, end in zip(values.tolist(), starts.tolist(), ends):
            bucket = self._near.get(length)
            if bucket is None:
                continue
            choices, owners, limits, cutoff = bucket
            rows = order[start:end].tolist()
            for lo in range(0, len(rows), CDIST_ROWS):
                part = rows[lo:lo + CDIST_ROWS]
                dist = process.cdist([skels[j] for j in part], choices, scorer=Levenshtein.distance,
                                     score_cutoff=cutoff, dtype=np.uint8, workers=-1)
                for r, c in zip(*np.nonzero(dist <= limits)):
                    i = part[r]
                    if names[i].lower() in self._exempt:
                        continue
                    tid, extra = owners[c]
                    d = int(dist[r, c])
                    score = round(1.0 - d / max(length, len(choices[c])), 3)
                    yield i, Match(names[i], self.targets[tid],
                                   techniques_of(_NEAR_MISS | extra), score)

    # --- probing -------------------------------------------------------------------------------

    def candidates(self, target: str) -> list[tuple[str, frozenset[str], float]]:
        """Look-alikes of `target` worth probing on the Hub, most likely first.

        Each is (candidate id, techniques, score).  Protected and allowlisted names are left out.
        """
        target_skel = skeleton(target)
        ranked = []
        for cand, (mask, tier) in ranked_permutations(target).items():
            if cand in self._exempt:
                continue
            techniques = techniques_of(mask)
            score = _score(skeleton(cand), target_skel, mask)
            ranked.append((tier, -score, TECHNIQUE_RANK[techniques[0]], cand, techniques))
        ranked.sort()
        return [(cand, frozenset(techs), -neg) for _tier, neg, _rank, cand, techs in ranked]


def _valid_batch(names: list[str]) -> tuple[list[str], str]:
    """(the valid names, joined by newlines).  The common all-valid case costs a few C-level passes."""
    try:
        blob = "\n".join(names)
    except TypeError:
        blob = ""
    if not (blob and _OUTSIDE_ALPHABET.search(blob) is None and "\n\n" not in blob
            and blob.count("\n") == len(names) - 1 and blob[0] != "\n" and blob[-1] != "\n"
            and max(map(len, names)) <= MAX_LEN):
        names = [n for n in names if is_valid_name(n)]
        blob = "\n".join(names)
    return names, blob
