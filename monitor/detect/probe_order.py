"""In which order look-alike candidates are probed on the Hub. Pure.

Probing costs one or two Hub requests per name, so the order decides how soon an impostor is
found. Three tiers, and round-robin over the protected names within each tier so that no
protected name waits for another's whole tier:

0. affixed and separator forms: what people register on purpose to pass for the real org
   (``meta-llama-official``, ``hf-google``, ``mistral-ai``, ``meta_llama``). The affixes the
   impersonation cases use most (`PRIORITY_AFFIXES`, as a ``-`` suffix) come first.
1. single edits: one typo (omission, transposition, ...) or one homoglyph (``EleuterAI``,
   ``rneta-llama``; ``meta-IIama`` too: a doubled letter replaced as a whole is one substitution).
2. two edits and more: two homoglyphs (``g0og1e``) and whatever else the engine generates.

The engine (`permutations`) labels each candidate with its techniques; the edit count of a pure
homoglyph candidate is measured here, with each multi-letter glyph (``rn``, ``vv`` ...) read as
one letter, so this ordering does not depend on how the engine tiers its own output.
"""

from __future__ import annotations

from itertools import chain, zip_longest
from typing import Iterable, Sequence

from rapidfuzz.distance import OSA

from monitor.detect.names import compact
from monitor.detect.permutations import HOMOGLYPHS

PRIORITY_AFFIXES = ("official", "hf", "ai", "research", "labs", "team", "inc", "org")
AFFIX_TECHNIQUES = frozenset({"affix", "separator", "ai_suffix"})
# Each of these generators makes exactly one change (a letter, a word, a separator).
SINGLE_EDIT_TECHNIQUES = frozenset({
    "omission", "deduplication", "transposition", "repetition", "hyphenation", "vowel_swap",
    "replacement", "plural", "word_reorder", "version", "insertion", "bitflip"})

_MULTI_GLYPHS = sorted({g for k, vs in HOMOGLYPHS.items() for g in (k, *vs) if len(g) > 1},
                       key=len, reverse=True)
_TOKENS = {g: chr(0xE000 + i) for i, g in enumerate(_MULTI_GLYPHS)}  # private-use: never in a name


def _glyphs_as_letters(s: str) -> str:
    for glyph, token in _TOKENS.items():
        s = s.replace(glyph, token)
    return s


def glyph_edits(candidate: str, target: str) -> int:
    """Edits between two names, separators and case ignored, a multi-letter glyph counting as one,
    and so does a doubled letter replaced as a whole (``ll`` -> ``II``, ``oo`` -> ``00``): one
    substitution for dnstwist, and for the engine's edit count."""
    a, b = _glyphs_as_letters(compact(candidate)), _glyphs_as_letters(compact(target))
    d = OSA.distance(a, b)
    if d == 2 and len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == a[diff[1]] and b[diff[0]] == b[diff[1]]:
            return 1
    return d


def probe_tier(candidate: str, target: str, techniques: Iterable[str]) -> tuple[int, int]:
    """(tier, rank inside the tier) of one candidate of `target`; lower is probed first."""
    techs = set(techniques)
    low, base = candidate.lower(), target.lower()
    if techs & AFFIX_TECHNIQUES:
        for i, affix in enumerate(PRIORITY_AFFIXES):
            if low == f"{base}-{affix}":
                return 0, i
        if techs & {"separator", "ai_suffix"}:
            return 0, len(PRIORITY_AFFIXES)
        return 0, len(PRIORITY_AFFIXES) + 1 + (0 if f"{base}-" in low or f"-{base}" in low else 1)
    if techs & SINGLE_EDIT_TECHNIQUES:
        return 1, 0
    return (1, 0) if glyph_edits(candidate, target) <= 1 else (2, 0)


def tiered_queue(per_target: Sequence[tuple[str, Sequence[tuple[str, Iterable[str]]]]]) -> list[str]:
    """Every target's candidates (each list most likely first), tier by tier, round-robin over
    the targets inside a tier. Duplicates keep their first (earliest) place."""
    tiers: dict[int, list[list[str]]] = {}
    for ti, (target, candidates) in enumerate(per_target):
        ranked = sorted(((probe_tier(c, target, techs), i, c) for i, (c, techs) in enumerate(candidates)))
        for (tier, _rank), _i, cand in ranked:
            lists = tiers.setdefault(tier, [[] for _ in per_target])
            lists[ti].append(cand)
    out, seen = [], set()
    for tier in sorted(tiers):
        for name in chain.from_iterable(zip_longest(*tiers[tier])):
            if name is not None and name.lower() not in seen:
                seen.add(name.lower())
                out.append(name)
    return out
