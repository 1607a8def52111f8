"""Issue 9 point 2: roster watch. Our orgs' public members (and `[roster] users`) in unverified
orgs that imitate a protected name (critical) or newly in one that carries its name (high)."""

from __future__ import annotations

import json

import pytest

from monitor import config as config_mod
from monitor.daemon import Daemon
from monitor.detect.roster import distinctive_tokens, token_in
from monitor.jobs.roster import scan_roster
from monitor.runtime import Runtime
from tests.pins_env import PinsEnv
from tests.test_lookalike_discovery import now_iso

PROTECTED = ["EleutherAI", "meta-llama", "openai"]


def roster_config(orgs=("acme",), users=(), budget=200) -> str:
    return (f'[lookalike]\nprotected = {json.dumps(PROTECTED)}\nprobe_budget = 0\nclone_watch = 0\n'
            f'[roster]\norgs = {json.dumps(list(orgs))}\nusers = {json.dumps(list(users))}\nbudget = {budget}\n'
            '[limits]\nhub_requests_per_5min = 1000000\n')


@pytest.fixture
def env(hub, slack, tmp_path):
    e = PinsEnv(tmp_path, hub, slack)
    hub.rate_limit(1_000_000)  # emulator quota windows run in real time; budgets here are the config's
    e.extra = roster_config()
    hub.add_org("EleutherAI", verified=True, followers=5000, created_at=now_iso(2000))
    hub.add_org("acme", verified=True, members=["alice", "bob"], created_at=now_iso(1000))
    return e


def findings(rt):
    return [s.finding for s in rt.store.findings(kind="roster_membership")]


def test_member_in_unverified_impostor_org_is_critical_once_and_again_when_it_gains_repos(env, hub, slack):
    # Organization Confusion (MITRE ATLAS case study AML.CS0011-style): an unverified org named
    # after a company collects that company's people.
    hub.add_org("EleuterAI", created_at=now_iso(3), hide_counts=True)  # counts unknown: repos listed
    hub.add_user("alice", orgs=["acme", "EleuterAI"])
    rt = Runtime.build(env.settings())
    try:
        report = scan_roster(rt)
        assert report.people == 2 and report.checked == 2
        (f,) = findings(rt)
        assert (f.severity, f.subject) == ("critical", "EleuterAI")
        ev = f.evidence
        assert ev["member"] == "alice" and ev["org"] == "EleuterAI" and ev["target"] == "EleutherAI"
        assert "omission" in ev["techniques"] and ev["repo_count"] == 0
        assert "alice" in ev["what_to_do"] and "leave the org" in ev["what_to_do"]
        assert scan_roster(rt).new_findings == ()  # one alert per (member, org)
        hub.add_repo("EleuterAI/private-finetune", files={"a.bin": b"x"})
        (g,) = scan_roster(rt).new_findings
        assert g.evidence["repo_count"] == 1 and g.evidence["repos"] == ["private-finetune"]
        assert scan_roster(rt).new_findings == ()
    finally:
        rt.close()
    env.once()
    assert sum("alice" in m["text"] and "EleuterAI" in m["text"] for m in slack.messages) == 2


def test_newly_joined_org_carrying_a_protected_token_is_high_baseline_is_not(env, hub):
    hub.add_user("bob", orgs=["acme", "eleuther-research-collective"])  # there before we looked
    hub.add_org("llama-fans-verified", verified=True)
    rt = Runtime.build(env.settings())
    try:
        assert scan_roster(rt).new_findings == ()
        hub.add_user("alice", orgs=["acme", "llama-builders-guild", "llama-fans-verified", "unrelated-club"])
        (f,) = scan_roster(rt).new_findings
        assert (f.severity, f.subject, f.evidence["target"]) == ("high", "llama-builders-guild", "meta-llama")
        assert f.evidence["member"] == "alice" and f.evidence["techniques"] == []
    finally:
        rt.close()


def test_extra_users_pagination_and_unknown_names(env, hub):
    env.extra = roster_config(users=["Carol", "no-such-user", "acme"])  # mis-cased: the Hub 307s
    hub.page_size = 1  # two pages of members
    hub.add_org("meta-IIama", created_at=now_iso(1))
    hub.add_user("carol", orgs=["meta-IIama"])
    rt = Runtime.build(env.settings())
    try:
        report = scan_roster(rt)
        assert report.people == 5 and report.errors == 0
        (f,) = findings(rt)
        assert f.evidence["member"] == "Carol" and f.evidence["target"] == "meta-llama"
    finally:
        rt.close()


def test_budget_round_robin_covers_everybody(env, hub):
    people = [f"user{i}" for i in range(7)]
    hub.add_org("acme", members=people)
    hub.add_org("EleuterAI")
    hub.add_user("user6", orgs=["EleuterAI"])
    env.extra = roster_config(budget=4)
    rt = Runtime.build(env.settings())
    try:
        checked = []
        for _ in range(4):  # 9 people, 1 members page + 3 overviews per cycle
            hub.clear_log()
            checked.append(scan_roster(rt).checked)
            assert len(hub.requests) <= 4, "never more Hub requests than [roster] budget"
        # cycle 3 reaches user6 with no budget left to look up its org: it stays first in line
        assert checked == [3, 3, 2, 2]  # cycle 4: user6 and its org, then the round starts again
        assert [f.evidence["member"] for f in findings(rt)] == ["user6"]
    finally:
        rt.close()


def test_hub_errors_are_not_findings(env, hub):
    hub.add_org("EleuterAI")
    hub.add_user("alice", orgs=["acme", "EleuterAI"])
    hub.fail(r"/api/organizations/EleuterAI/overview", status=503, times=None)
    rt = Runtime.build(env.settings())
    try:
        report = scan_roster(rt)
        assert report.errors >= 1 and findings(rt) == []
        hub.clear_faults()
        assert [f.subject for f in scan_roster(rt).new_findings] == ["EleuterAI"]
    finally:
        rt.close()


def test_daemon_schedules_roster_only_when_configured(env, hub):
    settings = env.settings()
    assert settings.roster.orgs == ("acme",) and settings.roster.budget == 200
    assert "scan_roster" in Daemon(settings, env.config).jobs()
    env.extra = roster_config(orgs=())
    assert "scan_roster" not in Daemon(env.settings(), env.config).jobs()


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[roster]\norgs = ["bad/name"]\n')
    with pytest.raises(config_mod.ConfigError, match="roster.orgs"):
        config_mod.load(p, env={})


def test_distinctive_tokens():
    tokens = distinctive_tokens(["EleutherAI", "meta-llama", "openai", "mistralai"])
    assert tokens == {"eleuther": "EleutherAI", "llama": "meta-llama", "openai": "openai", "mistral": "mistralai"}
    assert token_in("Eleuther_Research", tokens) == "EleutherAI"
    assert token_in("open-assistant", tokens) is None  # 'open' alone is not OpenAI's


def test_once_runs_the_roster_watch(env, hub, slack):
    hub.add_org("meta-IIama", created_at=now_iso(1))
    hub.add_user("bob", orgs=["acme", "meta-IIama"])
    r = env.run("once", "--fail-on", "critical")
    assert r.code == 1, r  # the roster finding is a new critical finding of this run
    assert any("bob" in m["text"] and "meta-IIama" in m["text"] for m in slack.messages)
    assert env.run("once", "--fail-on", "critical").code == 0  # already told


def test_one_alert_per_member_and_org_verified_and_allowed_orgs_are_silent(env, hub):
    env.extra = roster_config().replace('probe_budget = 0', 'probe_budget = 0\nallow = ["llama-club"]')
    hub.add_org("EleuterAI", created_at=now_iso(3))
    hub.add_org("EIeutherAI", verified=True)  # imitates, but the Hub verified it: not our concern
    hub.add_org("llama-club")  # carries a protected token, allowlisted
    hub.add_user("alice", orgs=["acme", "EleuterAI", "EIeutherAI"])
    hub.add_user("bob", orgs=["acme", "EleuterAI"])
    rt = Runtime.build(env.settings())
    try:
        first = scan_roster(rt).new_findings
        # the same org, two of our people: each is told about (and must act for) their own membership
        assert sorted((f.evidence["member"], f.subject, f.severity) for f in first) == [
            ("alice", "EleuterAI", "critical"), ("bob", "EleuterAI", "critical")]
        hub.add_user("carol", orgs=["llama-club", "llama-makers"])
        hub.add_org("acme", verified=True, members=["alice", "bob", "carol"])
        (high,) = scan_roster(rt).new_findings  # carol is new: llama-club is allowed
        assert (high.evidence["member"], high.subject, high.severity) == ("carol", "llama-makers", "high")
        assert "carol" in high.summary and "llama-makers" in high.summary and high.evidence["what_to_do"]
        hub.add_repo("llama-makers/weights", files={"a.bin": b"x"})  # a high one is re-alerted on new repos too
        (again,) = scan_roster(rt).new_findings
        assert (again.evidence["member"], again.evidence["repo_count"]) == ("carol", 1)
    finally:
        rt.close()
