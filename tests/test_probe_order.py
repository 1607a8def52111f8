"""Issue 9 point 4: candidates are probed in tiers (affixed/separator forms, then single edits,
then two edits), round-robin over the protected names within a tier."""

from __future__ import annotations

import json

import pytest

from monitor.detect.probe_order import PRIORITY_AFFIXES, glyph_edits, probe_tier
from monitor.jobs.lookalikes import candidate_queue, scan_lookalikes
from monitor.jobs.lookup import screener_for
from monitor.runtime import Runtime, utcnow
from tests.pins_env import Clock, PinsEnv
from tests.test_lookalike_discovery import now_iso

PROTECTED = ["EleutherAI", "meta-llama", "mistralai", "google", "openai"]
SKIP = {p.lower() for p in PROTECTED}


@pytest.fixture(scope="module")
def queue():
    screener = screener_for(PROTECTED, [])
    techniques = {c: (t, techs) for t in PROTECTED for c, techs, _ in screener.candidates(t)}
    return candidate_queue(screener, PROTECTED, SKIP), techniques


def test_tiers_come_in_order(queue):
    q, techniques = queue
    tiers = [probe_tier(n, *techniques[n])[0] for n in q]
    assert tiers == sorted(tiers), "a later tier never comes before an earlier one"
    assert set(tiers) == {0, 1, 2}
    assert tiers[q.index("eleuther-ai")] == 0 and tiers[q.index("meta_llama")] == 0
    assert tiers[q.index("eleuterai")] == 1 and tiers[q.index("meta-liama")] == 1  # typo, one homoglyph
    assert tiers[q.index("rneta-llama")] == 1  # rn for m: one glyph
    assert tiers[q.index("meta-iiama")] == 1 and tiers[q.index("g00gle")] == 1  # a doubled letter as a whole
    assert tiers[q.index("g0og1e")] == 2 and tiers[q.index("rneta-liama")] == 2


def test_priority_affixes_first_round_robin_over_protected_names(queue):
    q, _ = queue
    expected = [f"{p.lower()}-{a}" for a in PRIORITY_AFFIXES for p in PROTECTED]
    assert q[:len(expected)] == expected


def test_round_robin_inside_the_single_edit_tier(queue):
    q, techniques = queue
    first_single = [n for n in q if probe_tier(n, *techniques[n])[0] == 1][:5]
    assert sorted(techniques[n][0] for n in first_single) == sorted(PROTECTED)


def test_glyph_edits_counts_a_glyph_pair_as_one():
    assert glyph_edits("rnicrosoft", "microsoft") == 1
    assert glyph_edits("nnicrosoft", "microsoft") == 1
    assert glyph_edits("g00gle", "google") == 1  # "oo" replaced as a whole
    assert glyph_edits("g0og1e", "google") == 2
    assert glyph_edits("gooqle", "google") == 1 and glyph_edits("qooglc", "google") > 1  # two homoglyphs: tier 2
    assert glyph_edits("meta-IIama", "meta-llama") == 1
    assert glyph_edits("goolgle", "google") == 1
    assert glyph_edits("Meta_Llama", "meta-llama") == 0


def test_official_org_found_within_three_cycles_without_quick_search(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    hub.rate_limit(1_000_000)  # emulator quota windows run in real time; budgets here are the config's
    # default probe_budget; the request ceiling is lifted only because the emulator has no quota
    env.extra = (f'[lookalike]\nprotected = {json.dumps(PROTECTED)}\nevery = "1h"\n'
                 '[limits]\nhub_requests_per_5min = 1000000\n')
    assert env.settings().lookalike.probe_budget == 50
    hub.add_org("openai-official", fullname="OpenAI", created_at=now_iso(2))
    hub.respond(r"GET /api/quicksearch", body=json.dumps({"q": "", "orgs": [], "users": [], "models": []}),
                times=None)
    clock = Clock(utcnow())
    rt = Runtime.build(env.settings(), clock=clock)
    try:
        for cycle in range(3):
            scan_lookalikes(rt)
            if rt.store.findings(kind="lookalike"):
                break
            clock.advance(3600)
        (f,) = [s.finding for s in rt.store.findings(kind="lookalike")]
        assert f.subject == "openai-official" and f.evidence["target"] == "openai"
        assert hub.count("GET /api/quicksearch") >= 1, "quick search ran and found nothing"
    finally:
        rt.close()
