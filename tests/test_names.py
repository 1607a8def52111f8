"""Hub name validation, normal forms, skeletons and keyboard tables (monitor/detect/names.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detect.names import (QWERTY_ADJACENT, compact, is_registrable, is_valid_name,
                                  keyboard_adjacent, normalise, plain_block, separator_runs,
                                  skeleton, validate_name)

HUB_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
hub_names = st.text(alphabet=HUB_CHARS, min_size=1, max_size=96)


@pytest.mark.parametrize("name", [
    "EleutherAI", "meta-llama", "a", "x" * 96, "sentence-transformers", "Qwen", "01-ai",
    "ram--charan",      # legacy: breaks today's creation rule, still exists, still screened
    "-leading", "trailing.", "a..b", "repo.git", "_", "...",
])
def test_valid_names(name):
    assert is_valid_name(name)
    assert validate_name(name) is None


@pytest.mark.parametrize("name, fragment", [
    ("", "empty"),
    ("x" * 97, "97 characters"),
    ("foo bar", "' ' at position 4"),
    ("EleutherAI/gpt-j-6B", "namespace only"),
    ("naïve", "'ï' at position 3"),
    ("tab\there", "'\\t'"),
    ("new\nline", "'\\n'"),
    ("emoji🙂", "position 6"),
])
def test_invalid_names_give_a_one_line_reason(name, fragment):
    assert not is_valid_name(name)
    reason = validate_name(name)
    assert reason and fragment in reason
    assert "\n" not in reason


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"]])
def test_non_strings_are_invalid_not_crashes(value):
    assert not is_valid_name(value)
    assert "expected a string" in validate_name(value)


@pytest.mark.parametrize("name, ok", [
    ("meta-llama", True), ("Meta_Llama", True), ("_x_", True), ("a.b", True),
    ("ram--charan", False), ("a..b", False), ("-x", False), ("x-", False), (".x", False),
    ("x.", False), ("repo.git", False), ("REPO.GIT", False), ("bad name", False),
])
def test_is_registrable_follows_the_client_rule(name, ok):
    assert is_registrable(name) is ok


@pytest.mark.parametrize("name, form", [
    ("EleutherAI", "eleutherai"),
    ("Meta_Llama", "meta-llama"),
    ("meta.llama", "meta-llama"),
    ("a__b..c-_.d", "a-b-c-d"),
    ("-meta-llama-", "meta-llama"),
    ("ram--charan", "ram-charan"),
    ("---", ""),
])
def test_normalise(name, form):
    assert normalise(name) == form


@pytest.mark.parametrize("name, skel", [
    ("meta-llama", "metallama"),
    ("meta-IIama", "metallama"),     # capital I reads as l: folded before lower-casing
    ("meta-iiama", "metallama"),     # ...and its case-insensitive Hub id folds the same way
    ("META-LLAMA", "metallama"),
    ("EleutherAI", "eleutheral"),
    ("EleutherAl", "eleutheral"),
    ("g00gle", "google"),
    ("G0OGLE", "google"),
    ("goog1e", "google"),
    ("rneta", "meta"),               # rn reads as m
    ("vvhisper", "whlsper"),         # vv reads as w (and i as l)
    ("VVhisper", "whlsper"),
    ("cloud", "doud"),               # cl reads as d: both sides fold alike
    ("c1oud", "doud"),
    ("5tability-4i", "stabllltyal"),  # 5 -> s, 4 -> a, i -> l
    ("op3n_ai", "openal"),
])
def test_skeleton(name, skel):
    assert skeleton(name) == skel


def test_skeleton_examples_from_the_issue():
    assert skeleton("meta-IIama") == skeleton("meta-llama")
    assert normalise("meta-IIama") != normalise("meta-llama")  # distinct Hub ids
    assert skeleton("EleutherAl") == skeleton("EleutherAI") == skeleton("eleutherai")


def test_compact_and_separator_runs():
    assert compact("Meta_Llama.x") == "metallamax"
    assert separator_runs("a-b__c.d") == ["-", "__", "."]
    assert separator_runs("abc") == []


@pytest.mark.parametrize("key, near", [
    ("s", "weadzx"), ("g", "fhtybv"), ("q", "wa12"), ("p", "o0-l"), ("m", "njk"), ("1", "2q"),
])
def test_qwerty_adjacency(key, near):
    assert set(QWERTY_ADJACENT[key]) == set(near)


def test_keyboard_adjacency_is_symmetric():
    for key, near in QWERTY_ADJACENT.items():
        for other in near:
            assert keyboard_adjacent(other, key), (key, other)
    assert not keyboard_adjacent("g", "p")


@settings(max_examples=300, deadline=None)
@given(hub_names)
def test_skeleton_is_case_blind(name):
    assert skeleton(name) == skeleton(name.lower()) == skeleton(name.upper())


@settings(max_examples=300, deadline=None)
@given(hub_names)
def test_forms_stay_in_the_alphabet(name):
    assert set(normalise(name)) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert set(skeleton(name)) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert normalise(normalise(name)) == normalise(name)


@settings(max_examples=200, deadline=None)
@given(st.lists(hub_names, min_size=1, max_size=20))
def test_block_folding_equals_per_name_folding(names):
    """The screener folds a newline-joined batch at once; it must equal folding each name."""
    block = "\n".join(names)
    assert normalise(block).split("\n") == [normalise(n) for n in names]
    assert skeleton(block).split("\n") == [skeleton(n) for n in names]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(hub_names, st.sampled_from([".", "..", "", "x" * 97, "a b", "naïve"])),
                min_size=1, max_size=20))
def test_plain_block_is_is_valid_name_on_every_line(names):
    """The screener's one-pass check of a batch must accept exactly the batches of valid names."""
    assert plain_block("\n".join(names)) is all(is_valid_name(n) for n in names)
