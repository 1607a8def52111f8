"""Hub names: validation, normal forms, look-alike skeletons and keyboard tables. Pure.

Four views of a name, from strict to loose:

- ``name.lower()``   the Hub id: ids are case-insensitive, so ``EleutherAI`` IS ``eleutherai``.
- ``normalise``      lower-cased, every run of ``- _ .`` folded to one ``-``, edges trimmed:
                     ``Meta_Llama`` -> ``meta-llama``.  Where affix words are looked for.
- ``light_skeleton`` one-letter homoglyphs folded on the name as written (``I 1 i`` -> ``l``,
                     ``0 O`` -> ``o``, ``3`` -> ``e`` ...), lower-cased, separators dropped:
                     one character per character, so a typo stays one edit (near misses).
- ``skeleton``       what a reader sees: the light skeleton with two-letter glyphs folded too
                     (``rn`` -> ``m``, ``vv`` -> ``w``, ``cl`` -> ``d``):
                     ``meta-IIama`` -> ``metallama`` == skeleton(``meta-llama``).  Index keys.

The glyph table folds ``I``, ``i``, ``1`` and ``l`` alike.  The Hub shows a namespace in the casing
it was registered with but a config usually lists it lower-case, so the skeleton must not depend
on case: ``skeleton(x) == skeleton(x.lower())`` for every x.

``normalise`` and the skeletons work line by line on a newline-joined block of names as well,
which is how the screener folds a whole batch with a handful of C-level string calls.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAX_LEN = 96
SEPARATORS = "-_."
LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
ALNUM = LETTERS + DIGITS
VOWELS = "aeiou"
# Generated candidates are lower-case Hub ids, so this is the alphabet they are drawn from.
HUB_ALPHABET = frozenset(ALNUM + SEPARATORS)

_VALID = re.compile(r"[A-Za-z0-9._-]{1,96}")
# Path segments, not names: in a URL they walk up the path (`/api/organizations/../overview`),
# so a lookup of `..` would send our token to another Hub endpoint.
DOT_SEGMENTS = (".", "..")
_BLOCK_BYTES = (LETTERS.upper() + ALNUM + SEPARATORS + "\n").encode()  # \n: between names
_BAD_CHAR = re.compile(r"[^A-Za-z0-9._-]")
_SEP_RUN = re.compile(r"[-_.]+")


def is_valid_name(name: object) -> bool:
    """True if `name` can be screened: only ``[A-Za-z0-9._-]``, 1-96 characters.

    Legacy names that break today's creation rules (``ram--charan``) are valid here: they exist
    on the Hub, so they must be screened, not rejected.
    """
    return isinstance(name, str) and _VALID.fullmatch(name) is not None and name not in DOT_SEGMENTS


def plain_block(block: str) -> bool:
    """True if every line of `block` (names joined by newlines) is a name `is_valid_name` accepts.

    The same rule for a whole batch in a few C-level passes: the screener folds a batch at once
    only when it holds names and nothing else (no empty line, padding, bad character, dot segment).
    """
    if not block.isascii():
        return False
    data = block.encode()
    if data.translate(None, _BLOCK_BYTES):
        return False
    framed = b"\n" + data + b"\n"
    if any(b"\n" + segment.encode() + b"\n" in framed for segment in DOT_SEGMENTS):
        return False
    lengths = line_lengths(data)
    return bool(lengths.min() > 0 and lengths.max() <= MAX_LEN)


def line_lengths(blob: str | bytes) -> np.ndarray:
    """Length of each line of an ASCII block."""
    import numpy as np  # not at the top: `hubwatch lookup` and the HTTP routes validate names

    chars = np.frombuffer(blob.encode() if isinstance(blob, str) else blob, dtype=np.uint8)
    ends = np.append(np.flatnonzero(chars == 10), len(chars))
    return np.diff(np.concatenate(([-1], ends))) - 1


def validate_name(name: object) -> str | None:
    """None if `name` is valid, else a one-line reason fit to show a user."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name:
        return "empty name"
    bad = _BAD_CHAR.search(name)
    if bad:
        char = bad.group()
        if char == "/":
            return "'/' is not allowed: give the namespace only (the part before '/')"
        return (f"character {char!r} at position {bad.start() + 1} is not allowed "
                "(only A-Z a-z 0-9 . _ -)")
    if len(name) > MAX_LEN:
        return f"{len(name)} characters, at most {MAX_LEN} allowed"
    if name in DOT_SEGMENTS:
        return f"{name!r} is a path segment, not a name"
    return None


def validate_hub_name(name: object) -> str | None:
    """None if the Hub's client would accept `name` as a namespace or repo name (huggingface_hub's
    `validate_repo_id`: shared/HUB_API.md, "Names"), else a one-line reason. What a user asks us to
    look up must pass it: a name the Hub refuses is never sent to it."""
    problem = validate_name(name)
    if problem:
        return problem
    assert isinstance(name, str)
    if name[0] in "-." or name[-1] in "-.":
        return "a name cannot start or end with '-' or '.'"
    if "--" in name or ".." in name:
        return "'--' and '..' are not allowed in a name"
    if name.endswith(".git"):
        return "a name cannot end with '.git'"
    return None


def is_registrable(name: str) -> bool:
    """True if the Hub would let someone create this name today (client-side rule).

    Stricter than `is_valid_name`: no leading/trailing ``-``/``.``, no ``--`` or ``..``, not
    ending ``.git``.  Generated look-alikes must pass it: nobody can register the others.
    """
    return (is_valid_name(name) and name[0] not in "-." and name[-1] not in "-."
            and "--" not in name and ".." not in name and not name.lower().endswith(".git"))


# --- normal form ------------------------------------------------------------------------------

_FOLD_SEPARATORS = str.maketrans("_.", "--")
_NORMAL_BYTES = bytes(ord(chr(b).lower().translate(_FOLD_SEPARATORS)) for b in range(128)) + bytes(
    range(128, 256))


def normalise(name: str) -> str:
    """Lower-case, fold each run of separators into one ``-``, trim separators at the edges.

    Applied to a newline-joined block it normalises each line independently.
    """
    if name.isascii():
        text = name.encode().translate(_NORMAL_BYTES).decode()
    else:
        text = name.lower().translate(_FOLD_SEPARATORS)
    while "--" in text:
        text = text.replace("--", "-")
    if "\n" in text:
        text = text.replace("\n-", "\n").replace("-\n", "\n")
    return text.strip("-")


def compact(name: str) -> str:
    """Lower-case with every separator removed: ``Meta_Llama`` -> ``metallama``."""
    return name.lower().translate(_DROP_SEPARATORS)


def separator_runs(name: str) -> list[str]:
    """The separator runs of `name`, in order: ``a-b__c`` -> ``['-', '__']``."""
    return _SEP_RUN.findall(name)


# --- skeleton ----------------------------------------------------------------------------------

# One-character glyphs, applied to the name as written (before lower-casing).  Every member of
# a confusable class maps to the same letter in both cases, so the fold is case-blind.
SKELETON_GLYPHS = {
    "I": "l", "i": "l", "1": "l",
    "0": "o", "O": "o",
    "3": "e", "5": "s", "4": "a", "7": "t", "8": "b", "6": "b", "9": "g", "2": "z",
}
# Multi-character glyphs (a pair read as one letter), applied after the one-character fold so
# that ``c1`` and ``cI`` reach ``cl`` -> ``d`` too, and after separators are dropped so that a
# separator never changes a skeleton (``c-1`` and ``c1`` both read ``d``).
SKELETON_PAIRS = (("rn", "m"), ("vv", "w"), ("cl", "d"))

_GLYPH_TABLE = str.maketrans(SKELETON_GLYPHS)
_DROP_SEPARATORS = str.maketrans("", "", SEPARATORS)
_LIGHT_BYTES = bytes(ord(SKELETON_GLYPHS.get(chr(b), chr(b)).lower()) for b in range(128)) + bytes(
    range(128, 256))


def light_skeleton(name: str) -> str:
    """The skeleton without the two-letter folds: one character in, one character out (separators
    aside), so a typo of one character in the name is a typo of one character here too -- the
    near-miss pass compares these.  ``light_skeleton('g00gle') == 'google'``,
    ``light_skeleton('rnicrosoft') == 'rnlcrosoft'``.  Works line by line on a block as well.
    """
    if name.isascii():  # one pass over bytes instead of three over characters
        return name.encode().translate(_LIGHT_BYTES, b"-_.").decode()
    return name.translate(_GLYPH_TABLE).lower().translate(_DROP_SEPARATORS)


def skeleton(name: str) -> str:
    """The look-alike key: homoglyphs folded on the original case, lower-cased, separators dropped
    (then the two-letter glyphs folded).

    ``skeleton('meta-IIama') == skeleton('meta-llama') == 'metallama'``;
    ``skeleton('g00gle') == skeleton('google')``.  Works line by line on a newline-joined block.
    """
    return fold_pairs(light_skeleton(name))


def fold_pairs(light: str) -> str:
    """`skeleton` of a `light_skeleton`: the two-letter glyphs folded."""
    for pair, glyph in SKELETON_PAIRS:
        light = light.replace(pair, glyph)
    return light


# --- keyboard ----------------------------------------------------------------------------------

# US QWERTY, each row shifted half a key right of the one above it: the key at (row, i) touches
# (row, i±1), (row-1, i), (row-1, i+1), (row+1, i-1) and (row+1, i).
QWERTY_ROWS = ("1234567890-", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _adjacency(rows: tuple[str, ...]) -> dict[str, str]:
    table: dict[str, str] = {}
    for r, row in enumerate(rows):
        for i, key in enumerate(row):
            near = []
            for rr, ii in ((r, i - 1), (r, i + 1), (r - 1, i), (r - 1, i + 1),
                           (r + 1, i - 1), (r + 1, i)):
                if 0 <= rr < len(rows) and 0 <= ii < len(rows[rr]):
                    near.append(rows[rr][ii])
            table[key] = "".join(near)
    return table


QWERTY_ADJACENT: dict[str, str] = _adjacency(QWERTY_ROWS)


def keyboard_adjacent(a: str, b: str) -> bool:
    """True if keys `a` and `b` touch on a QWERTY keyboard."""
    return b in QWERTY_ADJACENT.get(a, "")
