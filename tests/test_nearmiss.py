"""The vectorised near-miss join (monitor/detect/nearmiss.py) and the edit labels of a match."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import OSA

from monitor.detect.names import compact, fold_pairs, light_skeleton, skeleton
from monitor.detect.nearmiss import NearMissIndex, max_distance
from monitor.detect.permutations import edit_techniques, techniques_of

LETTERS = "abcdefghijklmnopqrstuvwxyz"
words = st.text(alphabet=LETTERS, min_size=5, max_size=24)


@st.composite
def one_edit(draw):
    """(word, the word with one substitution, insertion, deletion or transposition)."""
    word = draw(words)
    i = draw(st.integers(0, len(word) - 1))
    c = draw(st.sampled_from(LETTERS))
    kind = draw(st.sampled_from(["sub", "ins", "del", "swap"]))
    if kind == "sub":
        edited = word[:i] + c + word[i + 1:]
    elif kind == "ins":
        edited = word[:i] + c + word[i:]
    elif kind == "del":
        edited = word[:i] + word[i + 1:]
    else:
        i = min(i, len(word) - 2)
        edited = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word, edited


@settings(max_examples=400, deadline=None)
@given(one_edit())
def test_one_edit_anywhere_is_found(pair):
    """The bucket keys promise that a one-character edit anywhere keeps one of them whole."""
    word, edited = pair
    if len(edited) < 5 or edited == word:
        return
    index = NearMissIndex([(word, 0, 0)])
    assert list(index.search([edited])) == [(0, 0, 0)], (word, edited)


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=6), st.lists(words, min_size=1, max_size=30))
def test_every_hit_is_within_the_distance_limit(targets, queries):
    """No false hit: whatever the join proposes, only pairs within `max_distance` come out."""
    index = NearMissIndex([(t, i, 0) for i, t in enumerate(targets)])
    for row, tid, _ in index.search(queries):
        target = targets[tid]
        assert OSA.distance(queries[row], target) <= max_distance(len(target))


def test_block_search_matches_list_search():
    index = NearMissIndex([("eleutheral", 0, 0), ("metallama", 1, 0), ("google", 2, 0)])
    names = ["eleuteral", "xx", "metalama", "googel", "nothing-like-it", "gogle"]
    assert list(index.search(names)) == list(index.search_block("\n".join(names)))
    assert {(r, t) for r, t, _ in index.search(names)} == {(0, 0), (2, 1), (3, 2), (5, 2)}


def test_short_and_empty_inputs():
    index = NearMissIndex([("google", 0, 0)])
    assert list(index.search([])) == [] and list(index.search(["", "goo", "gogl"])) == []
    assert list(NearMissIndex([("qwen", 0, 0)]).search(["qwem"])) == []  # under 5: never


def test_an_empty_skeleton_last_in_a_block_is_no_crash():
    """``-`` is a valid name whose light skeleton is empty: last in a batch, it ends the block."""
    index = NearMissIndex([("google", 0, 0)])
    assert [r for r, _, _ in index.search(["gogle", ""])] == [0]
    assert [r for r, _, _ in index.search(["gogle", "", ""])] == [0]


def test_a_name_of_separators_last_in_a_batch_is_screened_without_a_crash():
    from monitor.detect.lookalike import Screener

    screener = Screener(["EleutherAI"])
    for last in ("-", "_.-"):
        assert [m.name for m in screener.screen_many(["EleuterAI", last])] == ["EleuterAI"]


@pytest.mark.parametrize("cand, name, expected", [
    ("eleuterai", "eleutherai", {"omission"}),
    ("gogle", "google", {"omission", "deduplication"}),
    ("gooogle", "google", {"insertion", "repetition"}),
    ("googel", "google", {"transposition"}),
    ("goofle", "google", {"replacement", "bitflip"}),  # f is next to g, and g ^ 0x01
    ("guogle", "google", {"vowel_swap"}),
    ("goggle", "google", {"bitflip"}),
    ("goo-gle", "google", {"hyphenation"}),
    ("0pen-ai", "open-ai", {"replacement"}),  # 0 is next to o (the homoglyph comes from the index)
    ("microsoft", "nvidia", set()),
    ("qwn", "qwen", set()),  # short names get no typo labels
])
def test_edit_labels(cand, name, expected):
    assert set(techniques_of(edit_techniques(cand, name))) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=LETTERS + LETTERS.upper() + "0123456789-_.", min_size=1, max_size=40))
def test_skeleton_views_agree(name):
    light = light_skeleton(name)
    assert skeleton(name) == fold_pairs(light)
    assert len(light) == len(compact(name))  # one character per character
    assert light == light_skeleton(name.lower()) == light_skeleton("\n".join([name]))


def test_a_join_too_large_is_split_and_finds_the_same(monkeypatch):
    """Hostile names that all share keys with every protected name: the join is cut into parts
    of bounded size, and the parts find exactly what one join finds."""
    import monitor.detect.nearmiss as nm

    targets = [f"aaaa{c}aaaa" for c in LETTERS]
    index = NearMissIndex([(t, i, 0) for i, t in enumerate(targets)])
    names = [f"aaaa{c}{d}aaa" for c in LETTERS for d in LETTERS] + ["aaaaxaaaa", "zzzzz"]
    whole = sorted(index.search(names))
    monkeypatch.setattr(nm, "PAIRS_PER_JOIN", 50)
    parts = sorted(index.search(names))
    assert parts == whole and len(whole) > 100
