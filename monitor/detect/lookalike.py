"""Which protected namespaces does a Hub name imitate?  Pure: no network, no database, no clock.

Screening runs over batches of names, folding each batch with a few C-level string calls:

1. O(1) look-ups in two reverse indexes built once from the protected names:
   - the normal form (`normalise`) of every permutation (`permutations.py`) -> target + techniques;
   - the skeleton (`skeleton`) of each protected name and of its structural variants (affix, ai
     suffix, word order, plural, version) -> target, so a homoglyph on top of one of those
     (``meta-IIama``, ``meta-IIama-official``) still costs one look-up.
2. Second chance for a name that starts or ends with an affix word (``EleuterAI-research``): the
   name without it goes through step 1, then step 3, with ``affix``/``ai_suffix`` added.
3. Near misses, only for names the index did not match: `rapidfuzz.process.cdist` (OSA distance:
   a transposition is one edit) between their skeletons and the protected skeletons (and cores:
   ``eleuther`` for ``EleutherAI``).  Cutoffs grow with length (`max_distance`); names under five
   characters skip this pass, so short names only match through the index's high-confidence
   rules.  To keep a million names per second or so, a pair is compared only if it shares the
   first or the last character of its skeleton: a near miss that changes both ends of a name is
   no longer a convincing imitation, and single edits are all in the index anyway.

A protected name never matches itself, a case variant of itself or another protected name; an
allowlisted name never matches anything.

The score is how alike the two names look once homoglyphs and separators are folded: the
normalised OSA similarity of their skeletons (1.0 = indistinguishable; g/q, u/v, nn/m and uu/w
count as alike here too), raised to a floor for the techniques that are deceptive by design even
where they add whole words (`SCORE_FLOORS`: ``meta-llama-official`` scores 0.8, not 0.53).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from itertools import islice, repeat
from operator import is_not
from typing import Iterable, Iterator, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel, OSA

from monitor.detect.names import (MAX_LEN, compact, is_valid_name, normalise, separator_runs,
                                  skeleton, validate_name)
from monitor.detect.permutations import (AFFIXES, MIN_TYPO_LEN, STRUCTURAL, TECHNIQUE_BIT,
                                         TECHNIQUE_RANK, mask_of, ranked_permutations, strip_affix,
                                         techniques_of)

SCORE_FLOORS = {"ai_suffix": 0.9, "word_reorder": 0.85, "plural": 0.85, "affix": 0.8,
                "version": 0.8, "homoglyph": 0.75}
CHUNK = 1 << 18        # names per batch: large enough to amortise one cdist call per bucket
CDIST_ROWS = 16384     # queries per cdist call: bounds the result matrix

_BITS = 24             # packed index value: target id << _BITS | technique mask
_TECH_MASK = (1 << _BITS) - 1
_STRUCTURAL = mask_of(STRUCTURAL)
_HOMOGLYPH, _SEPARATOR, _HYPHENATION, _AFFIX, _AI_SUFFIX, _NEAR_MISS = (
    TECHNIQUE_BIT[t] for t in ("homoglyph", "separator", "hyphenation", "affix", "ai_suffix",
                               "near_miss"))
_FLOORS = tuple((TECHNIQUE_BIT[t], floor) for t, floor in SCORE_FLOORS.items())
_OUTSIDE_ALPHABET = re.compile(r"[^A-Za-z0-9._\n-]")  # newline is the batch separator
_ALT = "|".join(sorted(AFFIXES, key=len, reverse=True))
_AFFIX_SUFFIX = re.compile(rf"-(?:{_ALT})\n")  # on "\n" + normal forms + "\n"
_AFFIX_PREFIX = re.compile(rf"\n(?:{_ALT})-")


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


def _floored(score: float, mask: int) -> float:
    for bit, floor in _FLOORS:
        if mask & bit and floor > score:
            score = floor
    return round(score, 3)


_WEAK_GLYPHS = str.maketrans("qv", "gu")


def _score(name_skel: str, target_skel: str, mask: int) -> float:
    """Similarity of two skeletons once the weaker glyph pairs the skeleton keeps apart (g/q,
    u/v, nn/m, uu/w) are folded too, so a generated homoglyph scores as what it is."""
    name_skel = name_skel.translate(_WEAK_GLYPHS).replace("nn", "m").replace("uu", "w")
    target_skel = target_skel.translate(_WEAK_GLYPHS).replace("nn", "m").replace("uu", "w")
    return _floored(OSA.normalized_similarity(name_skel, target_skel), mask)


def _derived(low: str, variant: str) -> int:
    """Techniques that turn `variant` into `low` when both have the same skeleton."""
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
            if reason is None and not skeleton(name):
                reason = "no letter or digit"
            if reason:
                raise ValueError(f"protected name {name!r}: {reason}")
            if name.lower() not in seen:
                seen.add(name.lower())
                targets.append(name)
        self.targets: tuple[str, ...] = tuple(targets)
        self._skeletons = [skeleton(t) for t in targets]
        self._exempt = frozenset(seen | {a.lower() for a in allow if isinstance(a, str)})
        # normal form -> packed (target id, techniques), or a tuple of those if targets share it
        self._perm: dict[str, int | tuple[int, ...]] = {}
        # skeleton -> ((target id, the variant it is the skeleton of, structural techniques), ...)
        self._skel: dict[str, tuple[tuple[int, str, int], ...]] = {}
        self._interned: dict[int, int] = {}  # equal packed ints share one object
        near: list[tuple[str, int, int]] = []
        for tid, target in enumerate(targets):
            self._index(tid, target)
            near.append((self._skeletons[tid], tid, 0))
            stripped = strip_affix(target.lower())
            if stripped and skeleton(stripped[0]) != self._skeletons[tid]:
                extra = _AI_SUFFIX if stripped[1] == "ai" else _AFFIX
                near.append((skeleton(stripped[0]), tid, extra))
        del self._interned
        self._near = _NearMissIndex(near)

    def _index(self, tid: int, target: str) -> None:
        self._add_skeleton(skeleton(target), tid, target.lower(), 0)
        self._add_perm(normalise(target), tid, _SEPARATOR)  # Meta_Llama, -meta-llama, meta..llama
        for cand, (mask, _tier) in ranked_permutations(target).items():
            self._add_perm(normalise(cand), tid, mask)
            if mask & _STRUCTURAL:
                self._add_skeleton(skeleton(cand), tid, cand, mask & _STRUCTURAL)

    def _add_perm(self, key: str, tid: int, mask: int) -> None:
        intern = self._interned.setdefault
        old = self._perm.get(key)
        entries = [] if old is None else list(old) if isinstance(old, tuple) else [old]
        for i, entry in enumerate(entries):
            if entry >> _BITS == tid:
                entries[i] = intern(entry | mask, entry | mask)
                break
        else:
            entries.append(intern(tid << _BITS | mask, tid << _BITS | mask))
        self._perm[key] = entries[0] if len(entries) == 1 else tuple(entries)

    def _add_skeleton(self, key: str, tid: int, variant: str, mask: int) -> None:
        old = self._skel.get(key, ())
        if all(entry[0] != tid for entry in old):  # first variant wins: the target itself
            self._skel[key] = old + ((tid, variant, mask),)

    # --- screening -----------------------------------------------------------------------------

    def screen(self, name: str) -> tuple[Match, ...]:
        """Every protected name `name` imitates, best first; () if none or if `name` is invalid."""
        return tuple(self._screen_batch([name]))

    def screen_many(self, names: Iterable[str]) -> Iterator[Match]:
        """Matches for many names, in input order, best first within a name.  Invalid names are
        skipped: validate first (as `screen_stream` does) where they must be reported."""
        it = iter(names)
        while batch := list(islice(it, CHUNK)):
            yield from self._screen_batch(batch)

    def _screen_batch(self, names: list[str]) -> Iterator[Match]:
        names, blob = _valid_batch(names)
        if not names:
            return
        norm_blob, skel_blob = normalise(blob), skeleton(blob)
        norms, skels = norm_blob.split("\n"), skel_blob.split("\n")
        perm_hits = list(map(self._perm.get, norms))
        skel_hits = list(map(self._skel.get, skels))
        known = (np.fromiter(map(is_not, perm_hits, repeat(None)), dtype=bool, count=len(names))
                 | np.fromiter(map(is_not, skel_hits, repeat(None)), dtype=bool, count=len(names)))
        hits = np.flatnonzero(known).tolist()
        exempt = self._exempt
        found: dict[int, dict[int, list]] = defaultdict(dict)

        def record(i: int, tid: int, mask: int, score: float) -> None:
            old = found[i].get(tid)
            found[i][tid] = [mask, score] if old is None else [old[0] | mask, max(old[1], score)]

        for i in hits:
            if names[i].lower() not in exempt:
                for tid, mask in self._index_masks(names[i].lower(), perm_hits[i], skel_hits[i]):
                    record(i, tid, mask, _score(skels[i], self._skeletons[tid], mask))

        retry: list[tuple[int, str, int]] = []  # (name index, skeleton without affix, technique)
        hit_set = set(hits)
        for i, core, extra in _affix_cores(norm_blob, norms):
            if i in hit_set or names[i].lower() in exempt:
                continue
            core_skel = skeleton(core)
            masks = self._index_masks(core, self._perm.get(core), self._skel.get(core_skel))
            for tid, mask in masks:
                record(i, tid, mask | extra, _score(skels[i], self._skeletons[tid], mask | extra))
            if not masks:
                retry.append((i, core_skel, extra))

        for row, tid, mask, score in self._near.search(skels, skel_blob, skip=hits):
            if names[row].lower() not in exempt:
                record(row, tid, mask, score)
        if retry:
            for row, tid, mask, score in self._near.search([r[1] for r in retry]):
                i, _, extra = retry[row]
                record(i, tid, mask | extra, _floored(score, mask | extra))

        for i in sorted(found):
            matches = [Match(names[i], self.targets[tid], techniques_of(mask), score)
                       for tid, (mask, score) in found[i].items()]
            matches.sort(key=lambda m: (-m.score, TECHNIQUE_RANK[m.techniques[0]],
                                        m.target.lower()))
            yield from matches

    def _index_masks(self, low: str, perm_hit, skel_hit) -> list[tuple[int, int]]:
        """(target id, techniques) for a name's look-ups in both indexes; `low` is lower-case."""
        masks: dict[int, int] = defaultdict(int)
        if perm_hit is not None:
            for packed in perm_hit if isinstance(perm_hit, tuple) else (perm_hit,):
                masks[packed >> _BITS] |= packed & _TECH_MASK
        if skel_hit is not None:
            for tid, variant, mask in skel_hit:
                if low != variant or mask:
                    masks[tid] |= mask | _derived(low, variant)
        return list(masks.items())

    # --- probing -------------------------------------------------------------------------------

    def candidates(self, target: str) -> list[tuple[str, frozenset[str], float]]:
        """Look-alikes of `target` worth probing on the Hub, most likely first.

        Each is (candidate id, techniques, score).  Protected and allowlisted names are left out.
        """
        target_skel = skeleton(target)
        ranked = []
        for cand, (mask, tier) in ranked_permutations(target).items():
            if cand not in self._exempt:
                techniques = techniques_of(mask)
                score = _score(skeleton(cand), target_skel, mask)
                ranked.append((tier, -score, TECHNIQUE_RANK[techniques[0]], cand, techniques))
        ranked.sort()
        return [(cand, frozenset(techs), -neg) for _tier, neg, _rank, cand, techs in ranked]


class _NearMissIndex:
    """Protected skeletons bucketed by (query length, first or last character) for cdist."""

    def __init__(self, entries: Iterable[tuple[str, int, int]]) -> None:
        buckets: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
        for skel, tid, extra in entries:
            k = max_distance(len(skel))
            for length in range(max(MIN_TYPO_LEN, len(skel) - k), len(skel) + k + 1) if k else ():
                buckets[_bucket(length, 0, ord(skel[0]))].append((skel, tid, extra))
                buckets[_bucket(length, 1, ord(skel[-1]))].append((skel, tid, extra))
        self._buckets = {
            key: ([e[0] for e in group], [(e[1], e[2]) for e in group],
                  np.array([max_distance(len(e[0])) for e in group], dtype=np.uint8))
            for key, group in buckets.items()}

    def search(self, skels: list[str], blob: str | None = None, skip: Sequence[int] = ()
               ) -> Iterator[tuple[int, int, int, float]]:
        """(row, target id, techniques, score) for each near miss of ``skels[row]``."""
        if blob is None:
            blob = "\n".join(skels)
        lengths = np.fromiter(map(len, skels), dtype=np.int64, count=len(skels))
        starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
        chars = np.frombuffer(blob.encode("ascii"), dtype=np.uint8)
        if not len(chars):
            return
        active = lengths >= MIN_TYPO_LEN
        active[list(skip)] = False
        rows = np.flatnonzero(active)
        first = chars[starts[rows]]
        last = chars[starts[rows] + lengths[rows] - 1]
        keys = np.concatenate((_bucket(lengths[rows], 0, first), _bucket(lengths[rows], 1, last)))
        order = np.argsort(keys.astype(np.uint16), kind="stable")  # radix sort: keys < 2**16
        keys, rows = keys[order], np.concatenate((rows, rows))[order]
        # Gather the queries once, in bucket order: scattered list reads are the slow part.
        queries = np.array(skels, dtype=object)[rows]
        uniq, begins = np.unique(keys, return_index=True)
        ends = [*begins[1:].tolist(), len(keys)]
        for key, begin, end in zip(uniq.tolist(), begins.tolist(), ends):
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            choices, owners, limits = bucket
            for lo in range(begin, end, CDIST_ROWS):
                hi = min(lo + CDIST_ROWS, end)
                big = (hi - lo) * len(choices) > 4_000_000  # threads only pay off on big blocks
                # Indel (insertions and deletions only) is the cheapest distance rapidfuzz has
                # and never exceeds twice the OSA distance: a sound filter, OSA decides.
                part = queries[lo:hi].tolist()
                dist = process.cdist(part, choices, scorer=Indel.distance,
                                     score_cutoff=2 * int(limits.max()), dtype=np.uint8,
                                     workers=-1 if big else 1)
                for r, c in zip(*np.nonzero(dist <= 2 * limits)):
                    d = OSA.distance(part[r], choices[c], score_cutoff=int(limits[c]))
                    if d <= limits[c]:
                        row, (tid, extra) = int(rows[lo + r]), owners[c]
                        longest = max(len(part[r]), len(choices[c]))
                        yield row, tid, _NEAR_MISS | extra, round(1.0 - d / longest, 3)


def _bucket(length, side, char):
    return (length * 2 + side) * 128 + char


def _affix_cores(norm_blob: str, norms: list[str]) -> Iterator[tuple[int, str, int]]:
    """(line, normal form without its leading or trailing affix word, technique bit)."""
    padded = "\n" + norm_blob + "\n"
    found = [(m.start(), m.group()[1:-1], False) for m in _AFFIX_SUFFIX.finditer(padded)]
    found += [(m.start(), m.group()[1:-1], True) for m in _AFFIX_PREFIX.finditer(padded)]
    if not found:
        return
    newlines = np.flatnonzero(np.frombuffer(padded.encode("ascii"), dtype=np.uint8) == 10)
    lines = np.searchsorted(newlines, [f[0] for f in found], side="right") - 1
    for line, (_pos, affix, prefix) in zip(lines.tolist(), found):
        norm = norms[line]
        core = norm[len(affix) + 1:] if prefix else norm[:-len(affix) - 1]
        if core:
            yield line, core, _AI_SUFFIX if affix == "ai" else _AFFIX


def _valid_batch(names: list[str]) -> tuple[list[str], str]:
    """(the valid names, joined by newlines).  The all-valid case costs a few C-level passes."""
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
