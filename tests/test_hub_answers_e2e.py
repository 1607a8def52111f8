"""The product on the answers the real Hub gives (shared/HUB_API.md, "What the real Hub answers"):
real CLI, real huggingface_hub session, Hub emulator. One test per behaviour of issue 7."""

from __future__ import annotations

import pickle

import pytest
import requests

from monitor.jobs.pins import scan_pins
from monitor.runtime import Runtime
from tests.pins_env import Clock, PinsEnv

REPO = "openai-community/gpt2"
FILES = {"config.json": '{"model_type": "gpt2"}', "model.safetensors": b"\x00weights-v1", "README.md": "# GPT-2"}
TOKEN = "hf_hubwatch_test_token"


@pytest.fixture
def env(hub, slack, tmp_path):
    return PinsEnv(tmp_path, hub, slack)


def kinds(env) -> list[str]:
    return [f["kind"] for f in env.findings()]


# --- 2. identity without false alarms ----------------------------------------------------------------
def test_legacy_repo_whose_commits_predate_its_created_at_is_not_recreated(env, hub):
    hub.add_repo(REPO, files=FILES, created_at="2019-02-14T00:00:00Z")
    env.pins = [{"repo": REPO, "track": "main"}]
    info = requests.get(f"{hub.url}/api/models/{REPO}", timeout=5).json()
    assert info["createdAt"] == "2022-03-02T23:29:04.000Z" and info["lastModified"] < info["createdAt"]
    for _ in range(3):
        env.once()
    assert kinds(env) == []


def test_legacy_repo_deleted_and_recreated_is_still_caught(env, hub, slack):
    hub.add_repo(REPO, files=FILES, created_at="2019-02-14T00:00:00Z")
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    env.once()
    hub.recreate_repo(REPO, files={"pytorch_model.bin": b"evil"})
    env.once()
    (f,) = env.findings()
    assert (f["kind"], f["severity"]) == ("repo_recreated", "critical")
    assert f["evidence"]["old_object_id"] != f["evidence"]["new_object_id"]


SD_OLD, SD_NEW = "runwayml/stable-diffusion-v1-5", "stable-diffusion-v1-5/stable-diffusion-v1-5"


def redirect_to_another_repo(hub) -> None:
    """What happened to runwayml/stable-diffusion-v1-5: the path now 307s to another repo."""
    hub.delete_repo(SD_OLD)
    hub.add_repo(SD_NEW, files=FILES)
    hub.add_redirect(SD_OLD, SD_NEW)


def test_redirect_landing_on_another_repo_is_recreated(env, hub):
    env.pins = [{"repo": SD_OLD, "track": "main"}]
    hub.add_repo(SD_OLD, files=FILES)
    env.once()
    redirect_to_another_repo(hub)
    env.once()
    found = {f["kind"]: f for f in env.findings()}
    assert found["repo_recreated"]["severity"] == "critical"
    assert found["repo_renamed"]["evidence"]["new_id"] == SD_NEW
    env.once()
    assert sorted(kinds(env)) == ["repo_recreated", "repo_renamed"], "said once"


def test_redirect_to_another_repo_is_checked_by_id_in_the_next_steady_cycle(env, hub):
    env.pins = [{"repo": SD_OLD, "track": "main"}]
    hub.add_repo(SD_OLD, files=FILES)
    clock = Clock()
    rt = Runtime.build(env.settings(), clock=clock)
    try:
        scan_pins(rt, complete=True)
        redirect_to_another_repo(hub)
        clock.advance(600)  # metadata is not due for another 50 minutes: the redirect makes it due
        scan_pins(rt)
        assert "repo_recreated" in [f.finding.kind for f in rt.store.findings()]
    finally:
        rt.close()


# --- 3. gated without access ----------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, TOKEN])  # anonymous 401 GatedRepo, a token not granted 403
def test_gated_without_access_at_first_observation_is_one_low_degraded(env, hub, slack, token):
    if token:
        hub.add_token(token, "hubwatch-bot")
        env.token = token
    hub.add_repo(REPO, files=FILES, gated="manual")
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    env.once()
    env.once()
    (f,) = env.findings()
    assert (f["kind"], f["severity"], f["subject"]) == ("monitoring_degraded", "low", REPO)
    assert f["summary"] == "history not readable: gated, no access for this token"
    assert len(slack.messages) == 1


def test_gated_with_access_granted_is_watched_fully_and_silently(env, hub):
    hub.add_token(TOKEN, "hubwatch-bot")
    env.token = TOKEN
    hub.add_repo(REPO, files=FILES, gated="manual")
    hub.grant_access(REPO, "hubwatch-bot")
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    env.once()
    assert kinds(env) == []
    hub.commit(REPO, {"config.json": '{"model_type": "gpt2", "auto_map": {"AutoModel": "m.M"}}'})
    env.once()
    (f,) = env.findings()
    assert (f["kind"], f["severity"]) == ("risky_change", "critical") and "not_read" not in f["evidence"]


def test_gated_without_access_exact_pin_off_the_head_is_not_blamed_on_a_cap(env, hub):
    first = hub.add_repo(REPO, files=FILES, gated="manual")
    hub.commit(REPO, {"README.md": "# newer"})
    env.pins = [{"repo": REPO, "revision": first}]
    env.once()
    env.once()
    assert kinds(env) == ["monitoring_degraded"], "history refused is not a reachability verdict"


def test_gated_without_access_move_is_reported_from_what_is_readable(env, hub):
    hub.add_repo(REPO, files=FILES, gated="manual")
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    old = hub.repo_head(REPO)
    new = hub.commit(REPO, {"config.json": '{"model_type": "gpt2", "auto_map": {"AutoModel": "m.M"}}'})
    env.once()
    (move,) = env.findings("ref_moved")
    ev = move["evidence"]
    assert (ev["old_sha"], ev["new_sha"]) == (old, new) and ev["files_modified"] == ["config.json"]
    assert move["severity"] == "medium", "severity from what was readable, not assumed critical"
    assert "config.json could not be read (gated, no access for this token)" in move["summary"]
    assert ev["not_read"]["rules_not_checked"] == ["remote_code_config"]
    hub.commit(REPO, {"pytorch_model.bin": b"pickle"})
    env.once()
    (risky,) = env.findings("risky_change")
    assert risky["severity"] == "high" and "repo_unavailable" not in kinds(env)


def test_newly_gated_is_unavailable_then_watched_the_same_way(env, hub):
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    hub.set_gated(REPO, "manual")
    env.once()
    (f,) = env.findings()
    assert (f["kind"], f["severity"]) == ("repo_unavailable", "high") and "newly gated" in f["summary"]
    new = hub.commit(REPO, {"README.md": "# moved"})
    env.once()
    env.once()
    assert kinds(env) == ["repo_unavailable", "ref_moved"]
    assert env.findings("ref_moved")[0]["evidence"]["new_sha"] == new


# --- 4. disabled by the Hub --------------------------------------------------------------------------
def test_disabled_is_critical_at_once_and_not_newly_gated(env, hub, slack):
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    hub.set_disabled(REPO)
    env.once()
    (f,) = env.findings()
    assert (f["kind"], f["severity"]) == ("repo_unavailable", "critical")
    assert f["summary"].startswith("disabled by the Hub") and "gated" not in f["summary"]
    env.once()
    assert len(env.findings()) == 1 and len(slack.messages) == 1


def test_disabled_at_first_observation_is_alerted(env, hub):
    hub.add_repo(REPO, files=FILES)
    hub.set_disabled(REPO)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    env.once()
    (f,) = env.findings()
    assert f["severity"] == "critical" and f["summary"].startswith("disabled by the Hub")


# Not seen on the real Hub for refs or info, but its error table makes it definitive (DisabledRepoError).
DISABLED_403 = dict(status=403, body='{"error": "Access to this resource is disabled."}',
                    headers=[("X-Error-Message", "Access to this resource is disabled.")], times=None)


@pytest.mark.parametrize("call, watched_before", [("refs", True), ("revision/", True), ("refs", False)])
def test_disabled_403_on_refs_or_info_is_critical_at_once_and_said_once(env, hub, slack, call, watched_before):
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    if watched_before:
        env.once()
    hub.respond(f"GET /api/models/{REPO}/{call}", **DISABLED_403)
    env.once()
    (f,) = env.findings()
    assert (f["kind"], f["severity"]) == ("repo_unavailable", "critical"), "no unavailable_after confirmation"
    assert f["summary"].startswith("disabled by the Hub")
    env.once()
    hub.clear_faults()
    hub.set_disabled(REPO)  # then the Hub says it in a 200 answer: the same takedown, not a second alert
    env.once()
    env.once()
    assert len(env.findings()) == 1 and len(slack.messages) == 1


# A pickle our own inspection finds clean (no global at all): these tests are about the Hub's scan.
BENIGN_PICKLE = pickle.dumps({"weight": [0.5, 1.5]}, protocol=2)


# --- 5. scan states -----------------------------------------------------------------------------------
def test_scan_caution_is_medium_and_caution_to_unsafe_alerts_again(env, hub):
    hub.add_repo(REPO, files={**FILES, "pytorch_model.bin": BENIGN_PICKLE})
    hub.set_security(REPO, [{"path": "pytorch_model.bin", "level": "caution"}])
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    env.once()
    (f,) = env.findings()
    assert (f["kind"], f["severity"]) == ("scan_flagged", "medium")
    hub.set_security(REPO, [{"path": "pytorch_model.bin", "level": "unsafe"}])
    env.once()
    env.once()
    assert [(f["kind"], f["severity"]) for f in env.findings()] == [("scan_flagged", "medium"),
                                                                      ("scan_flagged", "high")]


def test_scan_not_done_is_neither_flagged_nor_clean(env, hub):
    hub.add_repo(REPO, files={**FILES, "pytorch_model.bin": BENIGN_PICKLE})
    hub.set_security(REPO, [{"path": "pytorch_model.bin", "level": "unsafe"}])
    hub.set_scan_pending(REPO)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    env.once()
    assert kinds(env) == []
    hub.set_scan_pending(REPO, pending=False)
    env.once()
    assert [(f["kind"], f["severity"]) for f in env.findings()] == [("scan_flagged", "high")]


# --- 6. token rejected ------------------------------------------------------------------------------------
def test_once_with_a_rejected_token_says_so_and_exits_78(env, hub, slack):
    for i in range(5):
        hub.add_repo(f"org/m{i}", files=FILES)
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(5)]
    env.token = "hf_not_a_valid_token"
    r = env.run("once")
    assert r.code == 78, r
    lines = r.err.splitlines()
    (line,) = [ln for ln in lines if "rejected the token" in ln]
    assert "hub.token_file" in line and "hf_not_a_valid_token" not in r.err + r.out
    assert lines[-1].startswith("checked 5 pins") and lines.index(line) < len(lines) - 1, "before the summary"
    assert hub.count() == 1, "one 401 tells it: the other repos are not asked"
    (f,) = env.findings()
    assert (f["kind"], f["severity"], f["subject"]) == ("token_rejected", "high", hub.url)
    assert "hub.token_file" in f["summary"]
    assert env.run("once").code == 78 and len(env.findings()) == 1, "same episode: no second alert"
    assert len(slack.messages) == 1


DISCOVERY = ('[lookalike]\nprotected = ["EleutherAI"]\n'
             '[roster]\norgs = ["EleutherAI"]\nusers = ["julien-c"]\n')


def test_once_with_a_rejected_token_stops_all_hub_work_after_the_first_401(env, hub, slack):
    hub.add_org("EleutherAI", verified=True, members=["julien-c"])
    hub.add_user("julien-c")
    hub.add_repo("EleutherAI/gpt-j-6B", files=FILES)
    env.pins = [{"repo": "EleutherAI/gpt-j-6B", "track": "main"}]
    env.extra = DISCOVERY
    hub.add_token(TOKEN, "hubwatch-bot")
    env.token = TOKEN
    hub.revoke_token(TOKEN)
    r = env.run("once")
    assert r.code == 78, r
    assert hub.count() == 1, [q.target for q in hub.requests]  # look-alike, clone and roster jobs ask nothing
    assert len([ln for ln in r.err.splitlines() if "rejected the token" in ln]) == 1
    assert kinds(env) == ["token_rejected"] and len(slack.messages) == 1


def test_once_without_pins_exits_78_on_a_rejected_token(env, hub):
    hub.add_org("EleutherAI", verified=True, members=["julien-c"])
    env.extra = DISCOVERY
    env.token = "hf_not_a_valid_token"
    r = env.run("once")
    assert r.code == 78 and "rejected the token" in r.err, r
    assert hub.count() == 1, "the process's first call goes alone and tells"
    assert kinds(env) == ["token_rejected"]


def test_daemon_cycle_with_a_rejected_token_spends_one_request(env, hub):
    from monitor.jobs.lookalikes import scan_lookalikes
    from monitor.jobs.roster import scan_roster

    hub.add_org("EleutherAI", verified=True, members=["julien-c"])
    hub.add_user("julien-c")
    for i in range(3):
        hub.add_repo(f"org/m{i}", files=FILES)
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(3)]
    env.extra = DISCOVERY
    hub.add_token(TOKEN, "hubwatch-bot")
    env.token = TOKEN
    rt = Runtime.build(env.settings(), clock=Clock())
    try:
        scan_pins(rt), scan_lookalikes(rt), scan_roster(rt)  # a cycle with a good token: the baseline
        hub.revoke_token(TOKEN)
        for _ in range(2):
            hub.clear_log()
            new = list(scan_pins(rt).new_findings) + list(scan_lookalikes(rt).new_findings) \
                + list(scan_roster(rt).new_findings)
            assert hub.count() == 1, [q.target for q in hub.requests]
        assert [f.finding.kind for f in rt.store.findings()] == ["token_rejected"] and new == []
    finally:
        rt.close()


def test_roster_first_run_refused_by_the_hub_leaves_no_empty_baseline(env, hub):
    from monitor.jobs.roster import scan_roster

    hub.add_org("EleutherAI", verified=True, members=["julien-c"])
    hub.add_org("eleuther-fans", verified=False)
    hub.add_user("julien-c", orgs=["EleutherAI", "eleuther-fans"])
    env.extra = DISCOVERY
    hub.add_token(TOKEN, "hubwatch-bot")
    env.token = TOKEN
    hub.revoke_token(TOKEN)
    rt = Runtime.build(env.settings(), clock=Clock())
    try:
        assert scan_roster(rt).checked == 0
        hub.add_token(TOKEN, "hubwatch-bot")
        rt.client.stats.clear_token_rejected()
        assert scan_roster(rt).checked == 1
        assert [f.finding.kind for f in rt.store.findings()] == ["token_rejected"], \
            "memberships older than the first read are the baseline, not news"
    finally:
        rt.close()


def test_once_names_hf_token_when_the_token_came_from_the_environment(env, hub, monkeypatch):
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    monkeypatch.setenv("HF_TOKEN", "hf_from_environment")
    r = env.run("once")
    assert r.code == 78 and "$HF_TOKEN" in r.err
    (f,) = env.findings()
    assert f["kind"] == "token_rejected" and "$HF_TOKEN" in f["summary"]


def test_daemon_raises_token_rejected_at_once_never_per_repo_and_again_only_after_it_worked(env, hub):
    for i in range(3):
        hub.add_repo(f"org/m{i}", files=FILES)
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(3)]
    hub.add_token(TOKEN, "hubwatch-bot")
    env.token = TOKEN
    clock = Clock()

    def cycles(n: int) -> None:
        for _ in range(n):
            rt = Runtime.build(env.settings(), clock=clock)  # a restart every cycle: the store remembers
            try:
                scan_pins(rt)
            finally:
                rt.close()
            clock.advance(600)

    cycles(1)
    hub.revoke_token(TOKEN)
    cycles(1)
    assert kinds(env) == ["token_rejected"], "at once, not after degraded_after"
    cycles(12)  # two hours: longer than degraded_after
    assert kinds(env) == ["token_rejected"], "no per-repo monitoring_degraded, no repo finding, no repeat"
    hub.add_token(TOKEN, "hubwatch-bot")  # the operator fixed it
    cycles(2)
    hub.revoke_token(TOKEN)
    cycles(2)
    assert kinds(env) == ["token_rejected", "token_rejected"]


# --- 7. the quota the Hub advertises --------------------------------------------------------------
@pytest.mark.parametrize("configured, token, expected", [
    (None, None, 120),  # not set: the Hub's word
    (None, TOKEN, 120),
    (50, None, 50),  # set: the lower of the two
    (100000, TOKEN, 120),
])
def test_budget_follows_the_advertised_quota(env, hub, configured, token, expected):
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    if token:
        hub.add_token(token, "hubwatch-bot")
        env.token = token
    if configured:
        env.extra = f"[limits]\nhub_requests_per_5min = {configured}\n"
    rt = Runtime.build(env.settings())
    try:
        before = rt.client.budget.snapshot().quota
        hub.rate_limit(120)
        assert scan_pins(rt, complete=True).ok == 1
        assert rt.client.budget.snapshot().quota == expected
    finally:
        rt.close()
    assert before == (configured if configured else 1000 if token else 500)


def test_started_into_a_spent_window_sends_at_most_three_requests(env, hub):
    for i in range(20):
        hub.add_repo(f"org/m{i}", files=FILES)
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(20)]
    hub.rate_limit(5)
    for _ in range(5):  # somebody else spent the window
        requests.get(f"{hub.url}/api/models/org/m0", timeout=5)
    hub.clear_log()
    r = env.run("once")
    assert hub.count() <= 3, [q.target for q in hub.requests]
    assert r.code in (0, 75) and kinds(env) == []
