"""Look-alike engine: permutations and screening (monitor/detect/permutations.py, lookalike.py).

Positive pairs are (look-alike, protected target, a technique that must be reported).  The first
is the documented one: PoisonGPT (Mithril Security, 2023) uploaded a poisoned GPT-J as
``EleuterAI/gpt-j-6B``.  The rest are the issue's examples plus one or more per technique.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.detect.lookalike import Match, Screener, max_distance
from monitor.detect.names import is_registrable, skeleton
from monitor.detect.permutations import (AFFIXES, TECHNIQUES, permutations, ranked_permutations,
                                         strip_affix)

PROTECTED = ["EleutherAI", "meta-llama", "mistralai", "google", "openai"]
EXTRA = ["facebook", "stabilityai", "deepseek-ai", "Qwen"]


@pytest.fixture(scope="module")
def screener():
    return Screener(PROTECTED + EXTRA, allow=["openai-community"])


def best(screener: Screener, name: str) -> Match | None:
    matches = screener.screen(name)
    return matches[0] if matches else None


POSITIVES = [
    ("EleuterAI", "EleutherAI", "omission"),          # PoisonGPT
    ("gogle", "google", "omission"),
    ("opnai", "openai", "omission"),
    ("facebok", "facebook", "deduplication"),
    ("meta-lama", "meta-llama", "deduplication"),
    ("gooogle", "google", "repetition"),
    ("EleutherAII", "EleutherAI", "repetition"),
    ("googel", "google", "transposition"),
    ("EleutehrAI", "EleutherAI", "transposition"),
    ("goofle", "google", "replacement"),              # f is next to g
    ("openao", "openai", "replacement"),
    ("guogle", "google", "vowel_swap"),
    ("EleuthirAI", "EleutherAI", "vowel_swap"),
    ("googhle", "google", "insertion"),               # h struck with g
    ("openaiz", "openai", "insertion"),
    ("goggle", "google", "bitflip"),                  # o ^ 0x08 == g
    ("meta-IIama", "meta-llama", "homoglyph"),        # capital I for l
    ("EleutherAl", "EleutherAI", "homoglyph"),        # lower-case l for capital I
    ("googIe", "google", "homoglyph"),
    ("g00gle", "google", "homoglyph"),                # two substitutions
    ("0penai", "openai", "homoglyph"),
    ("mistralal", "mistralai", "homoglyph"),
    ("stabilityal", "stabilityai", "homoglyph"),
    ("rneta-llama", "meta-llama", "homoglyph"),       # rn for m
    ("m3ta-l1ama", "meta-llama", "homoglyph"),
    ("faceb00k", "facebook", "homoglyph"),
    ("meta_llama", "meta-llama", "separator"),
    ("Meta.Llama", "meta-llama", "separator"),
    ("metallama", "meta-llama", "separator"),
    ("goo-gle", "google", "hyphenation"),
    ("open-ai", "openai", "hyphenation"),
    ("llama-meta", "meta-llama", "word_reorder"),
    ("googles", "google", "plural"),
    ("meta-llamas", "meta-llama", "plural"),
    ("meta-llama-official", "meta-llama", "affix"),
    ("openai-org", "openai", "affix"),
    ("hf-google", "google", "affix"),
    ("mistralai-research", "mistralai", "affix"),
    ("eleuther-labs", "EleutherAI", "affix"),         # swaps the ai for another affix
    ("mistral-ai", "mistralai", "ai_suffix"),
    ("eleuther-ai", "EleutherAI", "ai_suffix"),
    ("open-ai", "openai", "ai_suffix"),
    ("mistral", "mistralai", "ai_suffix"),
    ("stability-ai", "stabilityai", "ai_suffix"),
    ("deepseek", "deepseek-ai", "ai_suffix"),
    ("google-ai", "google", "ai_suffix"),
    ("meta-llama3", "meta-llama", "version"),
    ("meta-llama-3", "meta-llama", "version"),
    # two techniques at once
    ("meta-IIama-official", "meta-llama", "homoglyph"),
    ("EleuterAI-research", "EleutherAI", "omission"),
    ("hf-EleuterAI", "EleutherAI", "affix"),
    ("mettaa-llama", "meta-llama", "near_miss"),      # two repetitions: no single permutation
    ("eleuter-ai", "EleutherAI", "near_miss"),        # omission + ai suffix, caught on the core
]


@pytest.mark.parametrize("name, target, technique", POSITIVES)
def test_lookalikes_are_caught(screener, name, target, technique):
    match = best(screener, name)
    assert match is not None, f"{name} should imitate {target}"
    assert match.target == target and match.name == name
    assert technique in match.techniques, match
    assert 0.0 < match.score <= 1.0


def test_homoglyphs_and_separator_changes_look_identical(screener):
    for name in ("meta-IIama", "EleutherAl", "g00gle", "meta_llama", "mistral-ai"):
        assert best(screener, name).score == 1.0
    assert best(screener, "EleuterAI").score < 1.0


def test_technique_names_are_documented():
    assert set(TECHNIQUES) >= {"omission", "insertion", "repetition", "deduplication",
                               "transposition", "replacement", "vowel_swap", "bitflip",
                               "homoglyph", "separator", "hyphenation", "word_reorder", "plural",
                               "affix", "ai_suffix", "near_miss"}
    assert set(AFFIXES) >= {"ai", "official", "hf", "huggingface", "research", "labs", "team",
                            "org", "inc", "community", "models", "llm", "hub", "oss",
                            "opensource", "release", "mirror", "unofficial"}


NEGATIVES = [
    "intfloat", "bigscience", "microsoft", "nvidia", "Qwen", "sentence-transformers",
    "huggingface", "stabilityai", "tiiuae", "allenai", "openai-community",
    # the protected names themselves and their case variants: the same Hub ids
    "EleutherAI", "eleutherai", "ELEUTHERAI", "Meta-Llama", "META-LLAMA", "MistralAI", "Google",
    "OpenAI", "deepseek-ai", "DeepSeek-AI",
    # deepset is a real org, 2 edits from deepseek: no permutation produces it and 7 characters
    # allow 1 near-miss edit.  Decided: no match at all (the risk layer never sees it).
    "deepset",
    # short names: only high-confidence rules, and no near misses under five characters
    # ("qwem" is not here: m/n is one of dnstwist's homoglyphs, so it imitates Qwen)
    "qwn", "qwne", "qweb", "qwens", "qween", "gogl", "meta",
]


@pytest.mark.parametrize("name", NEGATIVES)
def test_not_lookalikes(screener, name):
    assert screener.screen(name) == ()


def test_deepset_is_not_even_a_weak_match():
    assert Screener(["deepseek-ai"]).screen("deepset") == ()


def test_allowlist_silences_a_name_but_only_that_name():
    assert Screener(PROTECTED, allow=["openai-community"]).screen("openai-community") == ()
    match = best(Screener(PROTECTED), "openai-community")
    assert match.target == "openai" and "affix" in match.techniques
    assert Screener(PROTECTED, allow=["OpenAI-Community"]).screen("openai-community") == ()


def test_protected_names_never_match_each_other():
    protected = ["meta-llama", "meta-llama-official", "metallama", "google", "goggle"]
    screener = Screener(protected)
    for name in protected:
        assert screener.screen(name) == ()
        assert screener.screen(name.upper()) == ()
    # ...but a third name can imitate several of them at once, best first
    targets = [m.target for m in screener.screen("meta_llama")]
    assert set(targets) == {"meta-llama", "metallama"}


def test_goggle_is_a_bitflip_of_google():
    """Decided: google has six characters, so the full rule set applies; goggle is one bit flip
    (and one letter) away.  It is reported; the risk layer weighs who owns it."""
    match = best(Screener(["google"]), "goggle")
    assert match.techniques[0] == "bitflip" and match.score == pytest.approx(0.833, abs=1e-3)


@pytest.mark.parametrize("name, technique", [
    ("Qvven", "homoglyph"), ("qw3n", "homoglyph"), ("gwen", "homoglyph"),  # g/q: dnstwist's pair
    ("qwem", "homoglyph"), ("qwer", "homoglyph"), ("gvven", "homoglyph"),  # n/m, n/r; two at once
    ("q-wen", "hyphenation"), ("Qwen_", "separator"), ("qwen-ai", "ai_suffix"),
    ("qwenai", "affix"), ("qwen-official", "affix"), ("hf-qwen", "affix"),
])
def test_short_protected_name_only_matches_high_confidence_forms(name, technique):
    match = best(Screener(["Qwen"]), name)
    assert match is not None and technique in match.techniques


def test_short_names_get_only_high_confidence_permutations():
    allowed = {"homoglyph", "separator", "hyphenation", "affix", "ai_suffix"}
    for name in ("Qwen", "BAAI", "01-ai", "nlp"):
        for techniques in permutations(name).values():
            assert techniques <= allowed


@pytest.mark.parametrize("bad", ["", "bad name", "EleutherAI/gpt-j-6B", "x" * 97, "--", None])
def test_invalid_protected_names_are_rejected(bad):
    with pytest.raises(ValueError, match="protected name"):
        Screener(["google", bad])


def test_no_protected_names_match_nothing():
    screener = Screener([])
    assert screener.screen("EleuterAI") == () and list(screener.screen_many(["g00gle"])) == []


@pytest.mark.parametrize("name, stripped", [
    ("mistralai", ("mistral", "ai")), ("deepseek-ai", ("deepseek", "ai")),
    ("openai-community", ("openai", "community")), ("hf-google", ("google", "hf")),
    ("openai", None),          # "open" is too short to stand for openai
    ("aitken-labs", ("aitken", "labs")), ("aitken", None),  # a leading affix needs its separator
])
def test_strip_affix(name, stripped):
    assert strip_affix(name) == stripped


def test_max_distance_grows_with_length():
    assert [max_distance(n) for n in (3, 4, 5, 8, 9, 13, 14, 40)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_permutations_are_lower_case_registrable_and_deterministic():
    first = permutations("EleutherAI")
    assert first == permutations("EleutherAI") == permutations("eleutherai")
    assert list(first) == list(permutations("EleutherAI"))  # same order too
    assert "eleutherai" not in first
    assert all(c == c.lower() and is_registrable(c) for c in first)
    assert first["eleuterai"] >= {"omission"}
    assert first["eleuther-ai"] >= {"ai_suffix", "hyphenation"}


def test_screen_many_keeps_input_order_and_skips_invalid(screener):
    names = ["nothing-here", "EleuterAI", "bad name", "", "g00gle", "meta-IIama", "x" * 97]
    matches = list(screener.screen_many(names))
    assert [(m.name, m.target) for m in matches] == [
        ("EleuterAI", "EleutherAI"), ("g00gle", "google"), ("meta-IIama", "meta-llama")]
    assert screener.screen("bad name") == ()


def test_screen_many_matches_screen(screener):
    names = [c for c, _ in zip(permutations("meta-llama"), range(300))] + NEGATIVES
    names += [p[0] for p in POSITIVES]
    batched = list(screener.screen_many(names))
    single = [m for n in names for m in screener.screen(n)]
    assert batched == single


def test_candidates_are_ranked_and_exclude_protected_and_allowed():
    screener = Screener(["openai", "open-ai"], allow=["openai-community"])
    cands = screener.candidates("openai")
    names = [c for c, _, _ in cands]
    assert "open-ai" not in names and "openai-community" not in names and "openai" not in names
    assert len(names) == len(set(names))
    assert set(names[:5]) <= {c for c, t, _ in cands if t & {"homoglyph", "separator", "ai_suffix"}}
    assert names.index("0penai") < names.index("openaiz")  # homoglyph before any-insertion
    for cand, techniques, score in cands:
        assert techniques and 0.0 < score <= 1.0


# --- properties ---------------------------------------------------------------------------------

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=2, max_size=9)
protected_names = st.builds(
    lambda parts, sep, upper: (sep.join(parts)).upper() if upper else sep.join(parts),
    st.lists(words, min_size=1, max_size=3), st.sampled_from(["-", "_", "", "."]), st.booleans(),
).filter(lambda n: len(n) <= 40 and is_registrable(n))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(protected_names, min_size=1, max_size=3, unique_by=str.lower))
def test_every_permutation_screens_back_to_its_target(protected):
    """The index is built from the generators, so every generated candidate must come back with
    its target and (at least) the techniques that generated it."""
    screener = Screener(protected)
    exempt = {p.lower() for p in protected}
    for target in protected:
        perms = {c: t for c, t in permutations(target).items() if c not in exempt}
        found: dict[str, set[str]] = {}
        for m in screener.screen_many(list(perms)):
            if m.target == target:
                found.setdefault(m.name, set()).update(m.techniques)
                assert 0.0 < m.score <= 1.0
        for cand, techniques in perms.items():
            assert cand in found, (target, cand, techniques)
            assert techniques <= found[cand], (target, cand, techniques, found[cand])


@settings(max_examples=60, deadline=None)
@given(st.lists(protected_names, min_size=1, max_size=4, unique_by=str.lower), st.data())
def test_protected_names_and_case_variants_never_match(protected, data):
    screener = Screener(protected)
    for name in protected:
        variant = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in name)
        assert screener.screen(name) == ()
        assert screener.screen(variant) == ()


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
               min_size=1, max_size=30))
def test_screening_any_valid_name_is_safe(name):
    screener = _SHARED
    for match in screener.screen(name):
        assert match.name == name and match.target in screener.targets
        assert match.techniques and all(t in TECHNIQUES for t in match.techniques)
        assert 0.0 <= match.score <= 1.0
        assert match.name.lower() not in {t.lower() for t in screener.targets}


_SHARED = Screener(PROTECTED + EXTRA)


@settings(max_examples=60, deadline=None)
@given(protected_names)
def test_ranked_permutations_agree_with_permutations(name):
    assume(len(name) >= 1)
    ranked = ranked_permutations(name)
    assert list(ranked) == list(permutations(name))
    assert all(0 <= tier <= 4 for _, tier in ranked.values())
    assert skeleton(name) == skeleton(name.lower())
