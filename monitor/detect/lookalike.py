"""Which protected namespaces does a Hub name imitate?  Pure: no network, no database, no clock.

Screening runs over batches of names, folding each batch with a few C-level string calls, and
never lists a protected name's permutations (hundreds each: building them for 1,000 protected
names took seconds and 100 MB).  It indexes only what a look-up needs:

1. Skeleton index (`skeleton`): one O(1) look-up per name.  Keys: the skeleton of each protected
   name, of its structural variants (affix, ai suffix, word order, plural, version: they change
   words, not letters) and of its one- and two-substitution homoglyphs that the skeleton does not
   fold already (c/e, q/g, m/n, b/d, lc/k ... `homoglyph_sketches`).  So ``meta-IIama``,
   ``qooglc``, ``meta-IIama-official`` and ``meta_llama`` each cost one look-up.
2. Second chance for a name that starts or ends with an affix word (``EleuterAI-research``): the
   name without it goes through step 1, then step 3, with ``affix``/``ai_suffix`` added.
3. Near misses: the light skeletons (`light_skeleton`: one character per character, so a typo of
   one character stays one edit) within a length-aware OSA distance (`max_distance`: a
   transposition is one edit) of a protected light skeleton, or of its core (``eleuther`` for
   ``EleutherAI``); names with two-letter glyphs (``rn``, ``cl``, ``vv``) are compared on their
   full skeletons too.  Candidate pairs come from exact keys -- (length, first two characters),
   (length, last two), (length, first and last) -- joined in numpy, and one
   `rapidfuzz.process.cpdist` call measures them all: a single edit keeps at least one key, two
   edits that break all three (both ends and a neighbour) are no longer a convincing imitation.
   Names under five characters skip this pass, so short names only match through the index's
   high-confidence rules.
4. Labels: for each match, `edit_techniques` names the one-character edit that explains it
   (omission, transposition ...), exactly as the generators label their output; a match no
   technique explains is a ``near_miss``.

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
from itertools import compress, islice
from typing import Iterable, Iterator, Sequence

import numpy as np
from rapidfuzz.distance import OSA

from monitor.detect.names import (compact, fold_pairs, is_valid_name, light_skeleton, line_lengths,
                                  normalise, plain_block, separator_runs, skeleton, validate_name)
from monitor.detect.nearmiss import NearMissIndex, max_distance  # noqa: F401
from monitor.detect.permutations import (AFFIXES, TECHNIQUE_BIT, TECHNIQUE_RANK,
                                         edit_techniques, homoglyph_sketches, strip_affix,
                                         structural_variants, techniques_of)

SCORE_FLOORS = {"ai_suffix": 0.9, "word_reorder": 0.85, "plural": 0.85, "affix": 0.8,
                "version": 0.8, "homoglyph": 0.75}
CHUNK = 1 << 16        # names per batch: amortises the numpy passes, bounds the memory held

_HOMOGLYPH, _SEPARATOR, _HYPHENATION, _AFFIX, _AI_SUFFIX, _NEAR_MISS = (
    TECHNIQUE_BIT[t] for t in ("homoglyph", "separator", "hyphenation", "affix", "ai_suffix",
                               "near_miss"))
_FLOORS = tuple((TECHNIQUE_BIT[t], floor) for t, floor in SCORE_FLOORS.items())
_ALT = "|".join(sorted(AFFIXES, key=len, reverse=True))
_AFFIX_SUFFIX = re.compile(rf"-(?:{_ALT})\n")  # on "\n" + normal forms + "\n"
_AFFIX_PREFIX = re.compile(rf"\n(?:{_ALT})-")


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
    if not mask and low != variant and normalise(low) == normalise(variant):
        mask |= _SEPARATOR  # Meta_Llama, -meta-llama, meta..llama
    elif len(ours) > len(theirs):
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
        self._lows = [t.lower() for t in targets]
        self._skeletons = [skeleton(t) for t in targets]
        self._exempt = frozenset(seen | {a.lower() for a in allow if isinstance(a, str)})
        # skeleton -> ((target id, the variant it is the skeleton of, techniques), ...)
        self._skel: dict[str, tuple[tuple[int, str, int], ...]] = {}
        self._build_index()
        light: list[tuple[str, int, int]] = []
        full: list[tuple[str, int, int]] = []
        for tid, target in enumerate(targets):
            light.append((light_skeleton(target), tid, 0))
            full.append((self._skeletons[tid], tid, 0))
            stripped = strip_affix(target.lower())
            if stripped and skeleton(stripped[0]) != self._skeletons[tid]:
                extra = _AI_SUFFIX if stripped[1] == "ai" else _AFFIX
                light.append((light_skeleton(stripped[0]), tid, extra))
                full.append((skeleton(stripped[0]), tid, extra))
        self._near = NearMissIndex(light)
        self._near_full = NearMissIndex(full)

    def _build_index(self) -> None:
        """Every target's own, structural and homoglyph skeletons, folded as one block."""
        spelled: list[str] = []   # what to fold into a key
        owners: list[tuple[int, str, int]] = []
        for tid, target in enumerate(self.targets):
            low = target.lower()
            spelled.append(low)
            owners.append((tid, low, 0))
            for variant, mask in structural_variants(target):
                spelled.append(variant)
                owners.append((tid, variant, mask))
            for sketch in homoglyph_sketches(target):
                spelled.append(sketch)
                owners.append((tid, low, _HOMOGLYPH))
        keys = skeleton("\n".join(spelled)).split("\n") if spelled else []
        index, own = self._skel, self._skeletons
        for key, entry in zip(keys, owners):
            old = index.get(key)
            if old is None:  # most keys belong to one target only
                index[key] = (entry,)
            elif not (entry[2] == _HOMOGLYPH and key == own[entry[0]]):
                # (a substitution the skeleton folds anyway is the target's own key)
                self._add_skeleton(key, *entry)

    def _add_skeleton(self, key: str, tid: int, variant: str, mask: int) -> None:
        old = self._skel.get(key, ())
        for n, (owner, first, techniques) in enumerate(old):
            if owner == tid:  # the first variant stays (the target itself); techniques add up
                if techniques | mask != techniques:
                    self._skel[key] = old[:n] + ((tid, first, techniques | mask),) + old[n + 1:]
                return
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
        if not names or not self.targets:
            return
        light_blob = light_skeleton(blob)
        skel_blob = fold_pairs(light_blob)
        skels = skel_blob.split("\n")
        index_hits = list(map(self._skel.get, skels))
        hits = list(compress(range(len(names)), index_hits))
        exempt = self._exempt
        found: dict[int, dict[int, int]] = defaultdict(dict)

        def record(i: int, tid: int, mask: int) -> None:
            found[i][tid] = found[i].get(tid, 0) | mask

        for i in hits:
            low = names[i].lower()
            if low not in exempt:
                for tid, mask in self._index_masks(low, index_hits[i]).items():
                    record(i, tid, mask | edit_techniques(low, self._lows[tid]))

        retry: list[tuple[int, str, int]] = []  # (name index, core without affix, technique)
        hit_set = set(hits)
        for i, core, extra in _affix_cores(normalise(blob)):
            if i in hit_set or names[i].lower() in exempt:
                continue
            masks = self._index_masks(core, self._skel.get(skeleton(core)))
            for tid, mask in masks.items():
                record(i, tid, mask | extra | edit_techniques(core, normalise(self._lows[tid])))
            if not masks:
                retry.append((i, core, extra))

        # An index hit may be a near miss of another target too (huggingfaceh: a version of
        # HuggingFaceH4, a typo of huggingface): only the pairs already found are skipped.
        light_lengths = line_lengths(light_blob)
        near = list(self._near.search_block(light_blob, light_lengths))
        # Two-letter glyphs shorten the full skeleton: compare those names on it as well.
        folded = [] if len(skel_blob) == len(light_blob) else np.flatnonzero(
            line_lengths(skel_blob) != light_lengths).tolist()
        if folded:
            near += [(folded[r], tid, extra) for r, tid, extra
                     in self._near_full.search([skels[i] for i in folded])]
        for row, tid, extra in near:
            low = names[row].lower()
            if row in hit_set and extra:
                continue  # the core of another target: the index already said what it is
            if low not in exempt and tid not in found.get(row, ()):
                record(row, tid, (edit_techniques(low, self._lows[tid]) or _NEAR_MISS) | extra)
        if retry:
            cores = [light_skeleton(core) for _, core, _ in retry]
            for row, tid, extra in self._near.search(cores):
                i, core, extra2 = retry[row]
                mask = edit_techniques(core, normalise(self._lows[tid])) or _NEAR_MISS
                record(i, tid, mask | extra | extra2)

        for i in sorted(found):
            matches = [Match(names[i], self.targets[tid], techniques_of(mask),
                             _score(skels[i], self._skeletons[tid], mask))
                       for tid, mask in found[i].items()]
            matches.sort(key=lambda m: (-m.score, TECHNIQUE_RANK[m.techniques[0]],
                                        m.target.lower()))
            yield from matches

    def _index_masks(self, low: str, skel_hit) -> dict[int, int]:
        """target id -> techniques for a name's skeleton look-up; `low` is lower-case."""
        masks: dict[int, int] = {}
        for tid, variant, mask in skel_hit or ():
            if low != variant or mask:
                masks[tid] = masks.get(tid, 0) | mask | _derived(low, variant)
        return masks

    # --- probing -------------------------------------------------------------------------------

    def candidates(self, target: str) -> list[tuple[str, frozenset[str], float]]:
        """Look-alikes of `target` worth probing on the Hub, most likely first.

        Each is (candidate id, techniques, score).  Protected and allowlisted names are left out.
        """
        from monitor.detect.permutations import ranked_permutations

        target_skel = skeleton(target)
        ranked = []
        for cand, (mask, tier) in ranked_permutations(target).items():
            if cand not in self._exempt:
                techniques = techniques_of(mask)
                score = _score(skeleton(cand), target_skel, mask)
                ranked.append((tier, -score, TECHNIQUE_RANK[techniques[0]], cand, techniques))
        ranked.sort()
        return [(cand, frozenset(techs), -neg) for _tier, neg, _rank, cand, techs in ranked]


def _affix_cores(norm_blob: str) -> Iterator[tuple[int, str, int]]:
    """(line, normal form without its leading or trailing affix word, technique bit)."""
    padded = "\n" + norm_blob + "\n"
    found = [(m.start(), m.group()[1:-1], False) for m in _AFFIX_SUFFIX.finditer(padded)]
    found += [(m.start(), m.group()[1:-1], True) for m in _AFFIX_PREFIX.finditer(padded)]
    if not found:
        return
    newlines = np.flatnonzero(np.frombuffer(padded.encode("ascii"), dtype=np.uint8) == 10)
    lines = np.searchsorted(newlines, [f[0] for f in found], side="right") - 1
    for line, (_pos, affix, prefix) in zip(lines.tolist(), found):
        norm = padded[newlines[line] + 1:newlines[line + 1]]
        core = norm[len(affix) + 1:] if prefix else norm[:-len(affix) - 1]
        if core:
            yield line, core, _AI_SUFFIX if affix == "ai" else _AFFIX


def _valid_batch(names: list[str]) -> tuple[list[str], str]:
    """(the valid names, joined by newlines).  The all-valid case costs a few C-level passes."""
    try:
        blob = "\n".join(names)
    except TypeError:
        blob = ""
    if plain_block(blob) and blob.count("\n") == len(names) - 1:  # no name holds a newline
        return names, blob
    names = [n for n in names if is_valid_name(n)]
    return names, "\n".join(names)
