"""Look-alikes of one Hub name: the union of dnstwist's, typomania's and guarddog's fuzzers.

Techniques (short names used in every match; listed most-likely-first, the order used to rank):

homoglyph      characters that look alike: l/i/1, o/0, e/3, s/5, a/4, t/7, b/8/6, g/9/q, z/2, u/v,
               m/rn/nn, w/vv, d/cl -- one substitution, or two (``g00gle``)
separator      an existing ``- _ .`` replaced or removed (``meta_llama``, ``metallama``)
ai_suffix      ``ai`` dropped or re-attached (``mistralai`` <-> ``mistral-ai`` <-> ``mistral``)
affix          a Hub-flavoured word added before or after, or swapped for the one there
               (``meta-llama-official``, ``hf-google``, ``eleuther-labs``); see AFFIXES
omission       one character left out (``EleuterAI``)
deduplication  one of a doubled character left out (``facebok``)
transposition  two neighbouring characters swapped (``googel``)
repetition     one character doubled (``gooogle``)
hyphenation    a separator (``-``, ``_`` or ``.``) inserted inside a word (``goo-gle``)
vowel_swap     a vowel replaced by another vowel (``guugle``)
replacement    a character replaced by a QWERTY neighbour (``goofle``)
plural         an ``s``/``es`` added to or removed from a word (``googles``)
word_reorder   the words of a multi-word name reordered (``llama-meta``)
version        a version number appended (``meta-llama3``, ``meta-llama-3``) -- typomania's check
insertion      a character inserted: a neighbouring key, or any letter/digit anywhere
bitflip        one bit of one character flipped, staying inside the Hub alphabet (``goggle``)
near_miss      (screening only) no generator produced it, but the skeletons are within a small,
               length-aware OSA distance (Levenshtein counting a transposition as one edit)

Sources: dnstwist's fuzzers (its addition is our insertion, subdomain our hyphenation with ``.``,
dictionary our affix; its Cyrillic/IDN glyphs cannot occur in Hub names), typomania's checks
(bitflips, homoglyph, keyboard, omitted, repeated, swapped characters and words, version) and
guarddog's (Levenshtein-1, swapped characters, reordered words, confused forms such as
py/python, which on the Hub are the ai and affix words).

Candidates are lower-case (Hub ids are case-insensitive) and registrable today (`is_registrable`):
probing a name nobody can create wastes Hub budget.  Names of fewer than five characters
(separators aside) only get the high-confidence techniques; a candidate from any other technique
must itself keep at least five characters.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterator

from monitor.detect.names import (ALNUM, DIGITS, HUB_ALPHABET, QWERTY_ADJACENT, SEPARATORS, VOWELS,
                                  compact, light_skeleton)

TECHNIQUES = (
    "homoglyph", "separator", "ai_suffix", "affix", "omission", "deduplication", "transposition",
    "repetition", "hyphenation", "vowel_swap", "replacement", "plural", "word_reorder", "version",
    "insertion", "bitflip", "near_miss",
)
TECHNIQUE_RANK = {t: i for i, t in enumerate(TECHNIQUES)}
TECHNIQUE_BIT = {t: 1 << i for i, t in enumerate(TECHNIQUES)}
# The only techniques applied to names shorter than MIN_TYPO_LEN.
HIGH_CONFIDENCE = frozenset({"homoglyph", "separator", "hyphenation", "affix", "ai_suffix"})
MIN_TYPO_LEN = 5

AFFIXES = ("ai", "official", "hf", "huggingface", "research", "labs", "team", "org", "inc",
           "community", "models", "llm", "hub", "oss", "opensource", "release", "mirror",
           "unofficial")
_AFFIXES_LONGEST_FIRST = sorted(AFFIXES, key=len, reverse=True)

# ASCII homoglyphs: ours (leetspeak digits, l/i/1, o/0) united with dnstwist's ASCII table
# (c/e, q/g, u/v, m/n, n/r, nn/rn/m, b/d, lb/b, d/dl/cl, lh/h, lc/k, vv/w, 3/8, 6/9), with the
# reverse of each of dnstwist's one-way rules too (a reader confuses them both ways).
HOMOGLYPHS: dict[str, tuple[str, ...]] = {
    "l": ("1", "i"), "i": ("1", "l"), "1": ("l", "i"),
    "o": ("0",), "0": ("o",), "e": ("3", "c"), "3": ("e", "8"), "s": ("5",), "5": ("s",),
    "a": ("4",), "4": ("a",), "t": ("7",), "7": ("t",), "8": ("b", "3"), "6": ("b", "9"),
    "b": ("8", "6", "d", "lb"), "c": ("e",), "d": ("b", "cl", "dl"), "h": ("lh",), "k": ("lc",),
    "g": ("9", "q"), "9": ("g", "6"), "q": ("g",), "z": ("2",), "2": ("z",), "u": ("v",), "v": ("u",),
    "m": ("rn", "nn", "n"), "n": ("m", "r"), "r": ("n",), "w": ("vv",),
    "rn": ("m",), "nn": ("m",), "vv": ("w",), "cl": ("d",), "dl": ("d",), "lb": ("b",),
    "lh": ("h",), "lc": ("k",),
}

# Substitutions between these read as the same letter in most fonts: probed first.  The rest of
# HOMOGLYPHS (leetspeak digits, u/v, g/q, nn/m) need a second look, so they come later.
_STRONG = frozenset({"l", "i", "1", "o", "0", "m", "rn", "w", "vv", "d", "cl"})

_SEP_RUN = re.compile(r"[-_.]+")
_WORD = re.compile(r"[a-z0-9]+")
_AI_TAIL = re.compile(r"(.+?)[-_.]?ai")

# Each generator yields (candidate, technique, tier).  Tiers order candidates for probing under a
# budget, 0 first: convincing homoglyphs, separator and ai changes, and the classic typos
# (omission, deduplication, transposition) first; bit flips and insertions of anything last.
Generated = Iterator[tuple[str, str, int]]


def _omission(s: str) -> Generated:
    for i in range(len(s)):
        yield s[:i] + s[i + 1:], "omission", 0


def _deduplication(s: str) -> Generated:
    for i in range(len(s) - 1):
        if s[i] == s[i + 1] and s[i] not in SEPARATORS:
            yield s[:i] + s[i + 1:], "deduplication", 0


def _repetition(s: str) -> Generated:
    for i, c in enumerate(s):
        if c not in SEPARATORS:
            yield s[:i] + c + s[i:], "repetition", 1


def _transposition(s: str) -> Generated:
    for i in range(len(s) - 1):
        if s[i] != s[i + 1]:
            yield s[:i] + s[i + 1] + s[i] + s[i + 2:], "transposition", 0


def _replacement(s: str) -> Generated:
    for i, c in enumerate(s):
        for key in QWERTY_ADJACENT.get(c, ""):
            yield s[:i] + key + s[i + 1:], "replacement", 2


def _insertion(s: str) -> Generated:
    for i, c in enumerate(s):  # a neighbouring key struck with the intended one
        for key in QWERTY_ADJACENT.get(c, ""):
            yield s[:i] + key + s[i:], "insertion", 2
            yield s[:i + 1] + key + s[i + 1:], "insertion", 2
    for i in range(len(s) + 1):  # anything anywhere: cheap to index, last to probe
        for c in ALNUM:
            yield s[:i] + c + s[i:], "insertion", 4


def _vowel_swap(s: str) -> Generated:
    for i, c in enumerate(s):
        if c in VOWELS:
            for v in VOWELS:
                if v != c:
                    yield s[:i] + v + s[i + 1:], "vowel_swap", 2


def _bitflip(s: str) -> Generated:
    for i, c in enumerate(s):
        for bit in range(7):
            flipped = chr(ord(c) ^ (1 << bit)).lower()  # an upper-case flip resolves case-blind
            if flipped != c and flipped in HUB_ALPHABET:
                yield s[:i] + flipped + s[i + 1:], "bitflip", 4


def _homoglyph_once(s: str, table: dict[str, tuple[str, ...]] = HOMOGLYPHS
                    ) -> Iterator[tuple[str, bool]]:
    """(candidate, whether the substitution is one of the convincing ones) per substitution.

    One substitution is dnstwist's: one glyph, a two-letter glyph, or a doubled letter replaced
    as a whole (``oo`` -> ``00``), so two of them reach ``g00g1e``.
    """
    for i in range(len(s)):
        for width in (1, 2):
            seen = s[i:i + width]
            for glyph in table.get(seen, ()) if i + width <= len(s) else ():
                yield s[:i] + glyph + s[i + width:], seen in _STRONG and glyph in _STRONG
        if s[i:i + 1] == s[i + 1:i + 2]:
            for glyph in table.get(s[i], ()):
                yield s[:i] + glyph + glyph + s[i + 2:], s[i] in _STRONG and glyph in _STRONG


def _homoglyph(s: str) -> Generated:
    once = dict(_homoglyph_once(s))
    for c, strong in once.items():
        yield c, "homoglyph", 0 if strong else 1
    letters = compact(s)
    for c, strong in once.items():
        for twice, strong_too in _homoglyph_once(c):
            # dl -> d then b -> lb across a separator only moves the separator: not a homoglyph
            if twice not in once and compact(twice) != letters:
                yield twice, "homoglyph", 2 if strong and strong_too else 3


def _separator(s: str) -> Generated:
    runs = list(_SEP_RUN.finditer(s))
    for m in runs:
        for sep in ("-", "_", ".", ""):
            if sep != m.group():
                yield s[:m.start()] + sep + s[m.end():], "separator", 0
    if len(runs) > 1:
        for sep in ("-", "_", ".", ""):
            yield _SEP_RUN.sub(sep, s), "separator", 0


def _hyphenation(s: str) -> Generated:
    for i in range(1, len(s)):
        if s[i - 1] not in SEPARATORS and s[i] not in SEPARATORS:
            yield s[:i] + "-" + s[i:], "hyphenation", 2
            yield s[:i] + "_" + s[i:], "hyphenation", 3
            yield s[:i] + "." + s[i:], "hyphenation", 3


def _word_reorder(s: str) -> Generated:
    words = [w for w in _SEP_RUN.split(s) if w]
    if len(words) < 2:
        return
    if len(words) <= 4:
        orders = itertools.permutations(words)
    else:  # k! explodes: only swap neighbours
        orders = (words[:i] + [words[i + 1], words[i]] + words[i + 2:]
                  for i in range(len(words) - 1))
    for order in orders:
        if list(order) != words:
            for sep in ("-", "_", ""):
                yield sep.join(order), "word_reorder", 2


def _plural(s: str) -> Generated:
    for m in _WORD.finditer(s):
        word, head, tail = m.group(), s[:m.start()], s[m.end():]
        if len(word) < 3 or word.isdigit():
            continue
        if word.endswith("s") and not word.endswith("ss"):
            yield head + word[:-1] + tail, "plural", 2
            if word.endswith("es"):
                yield head + word[:-2] + tail, "plural", 2
        else:
            suffix = "es" if word.endswith(("s", "x", "z", "ch", "sh")) else "s"
            yield head + word + suffix + tail, "plural", 2
        # dnstwist's plural of an inner syllable: "es" after an s, x or z inside the word
        # ("amazon" -> "amazeson"); a lone "s" inside is an insertion anyway.
        for i in range(2, len(word) - 2):
            if word[i] in "sxz":
                yield head + word[:i + 1] + "es" + word[i + 1:] + tail, "plural", 3


def _version(s: str) -> Generated:
    for d in DIGITS:
        yield s + d, "version", 3
        yield s + "-" + d, "version", 3
    stripped = s.rstrip(DIGITS).rstrip(SEPARATORS)
    if stripped and stripped != s:
        yield stripped, "version", 3


def strip_affix(s: str) -> tuple[str, str] | None:
    """(core, affix): `s` without one known affix word at either end, if the core keeps at least
    MIN_TYPO_LEN characters; else None.  ``mistralai`` -> ``('mistral', 'ai')``.

    A trailing affix may be glued on (``mistralai``, ``ai21labs``); a leading one needs its
    separator (``hf-foo``), or ``aitken`` would read as ``ai`` + ``tken``.
    """
    for affix in _AFFIXES_LONGEST_FIRST:
        if s.endswith(affix):
            core = s[:-len(affix)].rstrip(SEPARATORS)
            if len(compact(core)) >= MIN_TYPO_LEN:
                return core, affix
        if s.startswith(affix) and s[len(affix):len(affix) + 1] in ("-", "_", "."):
            core = s[len(affix):].lstrip(SEPARATORS)
            if len(compact(core)) >= MIN_TYPO_LEN:
                return core, affix
    return None


def _affix(s: str) -> Generated:
    bases = [s]
    stripped = strip_affix(s)
    if stripped:
        bases.append(stripped[0])  # swap the affix that is there for another one
    for base in bases:
        for affix in AFFIXES:
            for sep, tier in (("-", 1), ("_", 3), ("", 3)):
                yield base + sep + affix, "affix", tier
                yield affix + sep + base, "affix", tier


def _ai_suffix(s: str) -> Generated:
    m = _AI_TAIL.fullmatch(s)
    if m is None:
        for sep in ("-", "_", ""):
            yield s + sep + "ai", "ai_suffix", 0
        return
    core = m.group(1).rstrip(SEPARATORS)
    if not core:
        return
    for sep in ("-", "_", ".", ""):
        yield core + sep + "ai", "ai_suffix", 0
    if len(compact(core)) >= MIN_TYPO_LEN:
        yield core, "ai_suffix", 0


GENERATORS = (_homoglyph, _separator, _ai_suffix, _affix, _omission, _deduplication,
              _transposition, _repetition, _hyphenation, _vowel_swap, _replacement, _plural,
              _word_reorder, _version, _insertion, _bitflip)
_HIGH_CONFIDENCE_GENERATORS = (_homoglyph, _separator, _hyphenation, _affix, _ai_suffix)


def _registrable(c: str) -> bool:
    # Every generator draws from the Hub alphabet, so only length and edges need checking here.
    return (0 < len(c) <= 96 and c[0] not in "-." and c[-1] not in "-." and "--" not in c
            and ".." not in c and not c.endswith(".git"))


def ranked_permutations(name: str) -> dict[str, tuple[int, int]]:
    """candidate -> (technique bit mask, best tier), in deterministic generation order."""
    s = name.lower()
    short = len(compact(s)) < MIN_TYPO_LEN
    out: dict[str, tuple[int, int]] = {}
    for generate in (_HIGH_CONFIDENCE_GENERATORS if short else GENERATORS):
        for cand, technique, tier in generate(s):
            if cand == s or not _registrable(cand):
                continue
            if technique not in HIGH_CONFIDENCE and len(compact(cand)) < MIN_TYPO_LEN:
                continue
            bit = TECHNIQUE_BIT[technique]
            old = out.get(cand)
            out[cand] = (bit, tier) if old is None else (old[0] | bit, min(old[1], tier))
    return out


def techniques_of(mask: int) -> tuple[str, ...]:
    """The technique names in a bit mask, most likely first."""
    names = _TECHNIQUES_OF.get(mask)
    if names is None:
        names = _TECHNIQUES_OF[mask] = tuple(t for t in TECHNIQUES if mask & TECHNIQUE_BIT[t])
    return names


_TECHNIQUES_OF: dict[int, tuple[str, ...]] = {}


def permutations(name: str) -> dict[str, frozenset[str]]:
    """Every look-alike candidate of `name` -> the techniques that produce it.

    Deterministic, lower-case, registrable, never `name` itself (case-insensitively).
    """
    return {c: frozenset(techniques_of(mask)) for c, (mask, _) in ranked_permutations(name).items()}


# --- the screener's side: what a name's look-alikes look like, without listing them all -------
# These invert the generators above; they live next to them so the two cannot drift apart
# (tests/test_lookalike.py screens every generated candidate back with its techniques).

def _light_table() -> dict[str, tuple[str, ...]]:
    """HOMOGLYPHS between letters that `light_skeleton` keeps apart (c/e, q/g, m/n, lc/k ...):
    the substitutions still visible once the skeleton folded digits, I/i/1 and O/0."""
    table: dict[str, tuple[str, ...]] = {}
    for seen, glyphs in HOMOGLYPHS.items():
        if seen.isalpha() and seen == light_skeleton(seen):
            kept = tuple(dict.fromkeys(light_skeleton(g) for g in glyphs
                                       if g.isalpha() and light_skeleton(g) != seen))
            if kept:
                table[seen] = kept
    return table


_LIGHT_HOMOGLYPHS = _light_table()
_CROSSING = {"e": "b", "b": "eg", "g": "b"}


def homoglyph_sketches(name: str) -> set[str]:
    """Strings whose skeletons are those of `name`'s one- and two-substitution homoglyphs.

    The substitutions run on the light skeleton (digits, I/i/1 and O/0 already folded, two-letter
    glyphs not yet), so a few dozen strings stand for the hundreds `_homoglyph` lists; a name
    with the digits 3, 6, 8 or 9 (whose glyphs cross letter classes) is expanded in full.
    """
    light = light_skeleton(name)
    once = {c for c, _ in _homoglyph_once(light, _LIGHT_HOMOGLYPHS)}
    found = set(once)
    for c in once:
        found.update(c2 for c2, _ in _homoglyph_once(c, _LIGHT_HOMOGLYPHS))
    # e, b and g reach each other through two digits (e-3-8-b, b-6-9-g): two substitutions,
    # so such a change comes alone.
    for i, ch in enumerate(light):
        for other in _CROSSING.get(ch, ""):
            found.add(light[:i] + other + light[i + 1:])
            if light[i + 1:i + 2] == ch:
                found.add(light[:i] + other + other + light[i + 2:])
    if any(d in name for d in "3689"):
        found.update(c for c, _, _ in _homoglyph(name.lower()))
    return found


def _bitflip_of(a: str, b: str) -> bool:
    return any(chr(ord(a) ^ (1 << bit)).lower() == b for bit in range(7))


def edit_techniques(cand: str, name: str) -> int:
    """Technique mask of the one-character edits that turn `name` into `cand` (both lower-case),
    as the generators would have labelled them; 0 if none does.  Homoglyphs, separators and the
    structural techniques are the screener's index's business, not this function's.
    """
    if len(compact(name)) < MIN_TYPO_LEN or len(compact(cand)) < MIN_TYPO_LEN:
        return 0
    lc, ln = len(cand), len(name)
    p = 0
    limit = min(lc, ln)
    while p < limit and cand[p] == name[p]:
        p += 1
    mask = 0
    if lc == ln - 1 and cand[p:] == name[p + 1:]:
        mask |= TECHNIQUE_BIT["omission"]
        gone = name[p]
        if gone not in SEPARATORS and (name[p + 1:p + 2] == gone or name[p - 1:p] == gone and p):
            mask |= TECHNIQUE_BIT["deduplication"]
    elif lc == ln + 1 and cand[p + 1:] == name[p:]:
        added = cand[p]
        before, after = cand[p - 1:p] if p else "", cand[p + 1:p + 2]
        if added in SEPARATORS:
            if before and after and before not in SEPARATORS and after not in SEPARATORS:
                mask |= TECHNIQUE_BIT["hyphenation"]
            # "-" sits on the keyboard's top row: struck with a neighbouring key
            if added in QWERTY_ADJACENT.get(before, "") + QWERTY_ADJACENT.get(after, ""):
                mask |= TECHNIQUE_BIT["insertion"]
        else:
            mask |= TECHNIQUE_BIT["insertion"]
            if added in (before, after):
                mask |= TECHNIQUE_BIT["repetition"]
    elif lc == ln and p < ln:
        if cand[p + 1:] == name[p + 1:]:
            a, b = name[p], cand[p]
            if b in QWERTY_ADJACENT.get(a, ""):
                mask |= TECHNIQUE_BIT["replacement"]
            if a in VOWELS and b in VOWELS:
                mask |= TECHNIQUE_BIT["vowel_swap"]
            if _bitflip_of(a, b):
                mask |= TECHNIQUE_BIT["bitflip"]
        elif (p + 1 < ln and cand[p] == name[p + 1] and cand[p + 1] == name[p]
              and cand[p + 2:] == name[p + 2:]):
            mask |= TECHNIQUE_BIT["transposition"]
    return mask


def structural_variants(name: str) -> Iterator[tuple[str, int]]:
    """(variant, technique bit) for the techniques that change words, not letters: affix, ai
    suffix, and for names of five characters or more word order, plural and version.  One
    spelling per skeleton: the separator spellings (``meta-llama_official``) share it."""
    s = name.lower()
    short = len(compact(s)) < MIN_TYPO_LEN
    bases = [s]
    stripped = strip_affix(s)
    if stripped:
        bases.append(stripped[0])
    affix = TECHNIQUE_BIT["affix"]
    for base in bases:
        for word in AFFIXES:
            yield base + "-" + word, affix
            yield word + "-" + base, affix
    generators = (_ai_suffix,) if short else (_ai_suffix, _word_reorder, _plural, _version)
    for generate in generators:
        for cand, technique, _tier in generate(s):
            if cand != s and (technique in HIGH_CONFIDENCE or len(compact(cand)) >= MIN_TYPO_LEN):
                yield cand, TECHNIQUE_BIT[technique]
