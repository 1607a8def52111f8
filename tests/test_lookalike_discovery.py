"""Look-alike discovery on the Hub emulator: probing under a budget, the new-repo feed, quick
search, risk reasons, alert dedup, and the lookup/screen commands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from monitor.jobs.lookalikes import candidate_queue, scan_lookalikes, stems
from monitor.jobs.lookup import screener_for
from monitor.runtime import Runtime, utcnow
from tests.pins_env import Clock, PinsEnv

PROTECTED = ["EleutherAI", "meta-llama", "mistralai", "google", "openai"]
ALLOW = ["openai-community", "mistral-community"]
LOOKALIKE = ('[lookalike]\nprotected = {}\nallow = {}\nevery = "1h"\nprobe_budget = {}\n'
             '[limits]\nhub_requests_per_5min = 1000000\n')


def now_iso(days_ago: int) -> str:
    return (utcnow() - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def env(hub, slack, tmp_path):
    e = PinsEnv(tmp_path, hub, slack)
    # A plan whose Hub quota matches the config's limit: these tests probe thousands of names, and
    # with fake clocks, while the emulator's quota windows run in real time.
    hub.rate_limit(1_000_000)
    e.extra = LOOKALIKE.format(json.dumps(PROTECTED), json.dumps(ALLOW), 4000)
    hub.add_org("EleutherAI", fullname="EleutherAI", verified=True, followers=5000, created_at=now_iso(2000))
    hub.add_repo("EleutherAI/gpt-j-6b", files={"config.json": "{}"}, created_at=now_iso(1500))
    hub.add_repo("EleutherAI/pythia-70m", files={"config.json": "{}"}, created_at=now_iso(1000))
    hub.add_org("openai-community", fullname="OpenAI community", verified=False, created_at=now_iso(900))
    return e


def runtime(env, clock=None) -> Runtime:
    return Runtime.build(env.settings(), clock=clock or utcnow)


def test_poisongpt_impostor_is_critical_and_alerted_once(env, hub, slack):
    hub.add_org("EleuterAI", fullname="EleutherAI", created_at=now_iso(3))
    hub.add_repo("EleuterAI/gpt-j-6B", files={"pytorch_model.bin": b"poison"}, created_at=now_iso(2))
    rt = runtime(env)
    try:
        report = scan_lookalikes(rt, sources=("probe",))
        assert report.probe_hits >= 1
        (f,) = [s.finding for s in rt.store.findings(kind="lookalike")]
        assert f.subject == "EleuterAI" and f.severity == "critical"
        ev = f.evidence
        assert ev["target"] == "EleutherAI" and "omission" in ev["techniques"] and ev["copied_repos"] == ["gpt-j-6B"]
        reasons = " | ".join(ev["reasons"])
        assert "copies repo names" in reasons and "not verified" in reasons and "day(s) ago" in reasons
        assert "display name" in reasons
        scan_lookalikes(rt, sources=("probe",))
        assert len(rt.store.findings(kind="lookalike")) == 1
    finally:
        rt.close()
    env.once()
    env.once()
    assert sum("lookalike" in m["text"] for m in slack.messages) == 1


def test_allowlisted_and_protected_names_never_alert(env, hub, slack):
    hub.add_org("google", verified=True, followers=10**5, created_at=now_iso(3000))
    rt = runtime(env)
    try:
        scan_lookalikes(rt, sources=("probe", "search"))
        assert rt.store.findings(kind="lookalike") == []
    finally:
        rt.close()


def test_probe_budget_and_full_coverage_over_cycles(env, hub, slack):
    env.extra = LOOKALIKE.format('["EleutherAI"]', "[]", 100)
    clock = Clock(utcnow())
    rt = runtime(env, clock)
    screener = screener_for(["EleutherAI"], [])
    total = len(candidate_queue(screener, ["EleutherAI"], {"eleutherai"}))
    try:
        cycles = 0
        while True:
            hub.clear_log()
            report = scan_lookalikes(rt, sources=("probe",))
            assert hub.count("/overview") <= 100, "never more than the budget"
            cycles += 1
            if report.probed == 0:
                break
            clock.advance(3600)
            assert cycles < 100
        assert len(rt.store.load_probes()) == total, "every candidate probed once"
        assert cycles - 1 == -(-total // 50)
        clock.advance(86400)  # negatives are re-probed after a day
        assert scan_lookalikes(rt, sources=("probe",)).probed == 50
    finally:
        rt.close()


def test_probe_order_prefers_likely_candidates(env):
    screener = screener_for(PROTECTED, ALLOW)
    queue = candidate_queue(screener, PROTECTED, {p.lower() for p in PROTECTED + ALLOW})
    first = {n.lower() for n in queue[:100]}
    assert "eleuther-ai" in first or "eleutheral" in first
    assert not {p.lower() for p in PROTECTED + ALLOW} & set(n.lower() for n in queue)


def test_feed_pages_until_last_seen(env, hub, slack):
    hub.page_size = 3
    for i in range(5):
        hub.add_repo(f"someone{i}/model", files={"a": "b"})
    rt = runtime(env)
    try:
        scan_lookalikes(rt, sources=("feed",))  # first run: starts the cursor
        assert rt.store.findings(kind="lookalike") == []
        hub.add_user("meta-IIama", created_at=now_iso(1))
        hub.add_repo("meta-IIama/Llama-3-8B", files={"a": "b"})
        for i in range(7):
            hub.add_repo(f"other{i}/new-model", files={"a": "b"})
        hub.clear_log()
        report = scan_lookalikes(rt, sources=("feed",))
        # 8 new models at 3 per page: 3 pages, then the page holding the last seen repo stops it
        # +1 for the suspect's own repo list, +1 for the one protected org that exists (EleutherAI):
        # its repo names are what a republished copy would carry
        assert hub.count(r"GET /api/models\?") == 3 + 1 + 1
        assert report.feed_authors == 8
        (f,) = [s.finding for s in rt.store.findings(kind="lookalike")]
        assert f.subject == "meta-IIama" and f.evidence["target"] == "meta-llama"
        assert "homoglyph" in f.evidence["techniques"] and "a user account, not an organization" in f.evidence["reasons"]
    finally:
        rt.close()


def test_quicksearch_finds_impostors_by_display_name(env, hub, slack):
    hub.add_org("mistra1ai", fullname="Mistral AI_", created_at=now_iso(10))
    rt = runtime(env)
    try:
        report = scan_lookalikes(rt, sources=("search",))
        assert report.searched == len({t for p in PROTECTED for t in stems(p)})
        (f,) = [s.finding for s in rt.store.findings(kind="lookalike")]
        assert f.subject == "mistra1ai" and f.evidence["target"] == "mistralai"
    finally:
        rt.close()


def test_new_alert_when_risk_rises(env, hub, slack):
    hub.add_org("EleutherAl", created_at=now_iso(800), followers=3)
    rt = runtime(env)
    try:
        scan_lookalikes(rt, sources=("probe",))
        first = [s.finding.severity for s in rt.store.findings(kind="lookalike")]
        assert first == ["medium"]
        hub.add_repo("EleutherAl/pythia-70m", files={"model.bin": b"x"})
        scan_lookalikes(rt, sources=("probe",))
        assert [s.finding.severity for s in rt.store.findings(kind="lookalike")] == ["medium", "critical"]
        scan_lookalikes(rt, sources=("probe",))
        assert len(rt.store.findings(kind="lookalike")) == 2
    finally:
        rt.close()


def test_transient_errors_during_probe_are_not_negatives(env, hub, slack):
    hub.add_org("EleuterAI", created_at=now_iso(3))
    hub.fail(r"(?i)/api/organizations/eleuterai/overview", status=503, times=None)
    rt = runtime(env)
    try:
        report = scan_lookalikes(rt, sources=("probe",))
        assert report.errors >= 1
        assert "eleuterai" not in rt.store.load_probes()
        hub.clear_faults()
        scan_lookalikes(rt, sources=("probe",))
        assert [s.finding.subject for s in rt.store.findings(kind="lookalike")] == ["EleuterAI"]
    finally:
        rt.close()


def test_lookup_json_contract(env, hub, slack):
    hub.add_org("EleuterAI", fullname="Eleuter AI", created_at=now_iso(3))
    hub.add_repo("EleuterAI/gpt-j-6B", files={"a": "b"})
    r = env.run("lookup", "EleuterAI", "--json")
    assert r.code == 0, r
    out = json.loads(r.out)
    assert set(out) == {"name", "exists", "kind", "verified", "created_at", "followers", "models", "imitates",
                        "risk", "reasons"}
    assert out["exists"] is True and out["kind"] == "org" and out["verified"] is False
    assert out["imitates"][0]["target"] == "EleutherAI" and "omission" in out["imitates"][0]["techniques"]
    assert 0 < out["imitates"][0]["score"] <= 1
    assert out["risk"] == "critical" and any("copies repo names" in x for x in out["reasons"])
    text = env.run("lookup", "EleuterAI")
    assert text.code == 0 and "CRITICAL" in text.out and "imitates EleutherAI" in text.out


def test_lookup_of_missing_legit_and_invalid_names(env, hub, slack):
    missing = json.loads(env.run("lookup", "EleutherAl", "--json").out)
    assert missing["exists"] is False and missing["kind"] is None and missing["risk"] == "none"
    assert missing["imitates"][0]["target"] == "EleutherAI"
    legit = json.loads(env.run("lookup", "EleutherAI", "--json").out)
    assert legit["exists"] is True and legit["imitates"] == [] and legit["risk"] == "none"
    assert legit["verified"] is True
    assert env.run("lookup", "bad name!").code == 2
    assert env.run("lookup", "x" * 97).code == 2


def test_verified_established_lookalike_is_at_most_low(env, hub, slack):
    env.extra = LOOKALIKE.format('["deepseek-ai"]', "[]", 100)
    hub.add_org("deepseek-ai", fullname="DeepSeek", verified=True, created_at=now_iso(900))
    hub.add_org("deepseek", fullname="deepseek", verified=True, followers=20000, created_at=now_iso(1800))
    out = json.loads(env.run("lookup", "deepseek", "--json").out)
    assert out["risk"] in ("low", "none")
    deepset = json.loads(env.run("lookup", "deepset", "--json").out)
    assert deepset["risk"] == "none"


def test_lookup_hub_down_is_temporary_failure(env, hub, slack):
    hub.fail(r"/overview", status=503, times=None)
    r = env.run("lookup", "EleuterAI", "--json")
    assert r.code == 75 and len(r.err.strip().splitlines()) == 1


def test_screen_command(env, tmp_path, monkeypatch):
    import io

    names = tmp_path / "names.txt"
    names.write_text("# new orgs\n\nEleuterAI\nintfloat\nmeta-IIama\nbad name!\nopenai-community\n" + "x" * 97 + "\n")
    r = env.run("screen", str(names), "--json")
    assert r.code == 0
    got = [json.loads(line) for line in r.out.splitlines()]
    assert [(g["name"], g["target"]) for g in got] == [("EleuterAI", "EleutherAI"), ("meta-IIama", "meta-llama")]
    assert set(got[0]) >= {"name", "target", "techniques", "score"}
    assert "line 6" in r.err and "line 8" in r.err
    monkeypatch.setattr("sys.stdin", io.StringIO("mistral-ai\n"))
    r2 = env.run("screen", "-")
    assert r2.code == 0 and "mistral-ai" in r2.out and "mistralai" in r2.out


def test_copied_description_raises_risk(env, hub, slack):
    text = "EleutherAI is a non-profit AI research lab focused on interpretability and alignment."
    hub.add_org("EIeutherAI", fullname="Eleuther", created_at=now_iso(700), followers=50, details=text + " ")
    out = json.loads(env.run("lookup", "EIeutherAI", "--json").out)
    assert out["risk"] == "medium"  # the fixture's EleutherAI has no description: nothing to copy
    hub.reset()
    hub.add_org("EleutherAI", fullname="EleutherAI", verified=True, followers=5000, created_at=now_iso(2000),
                details=text)
    hub.add_org("EIeutherAI", fullname="Eleuther", created_at=now_iso(700), followers=50, details=text + " ")
    out = json.loads(env.run("lookup", "EIeutherAI", "--json").out)
    assert out["risk"] == "high" and any("description copies EleutherAI" in r for r in out["reasons"])
