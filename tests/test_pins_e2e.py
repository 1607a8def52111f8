"""The pinned-revision watch end to end: real CLI, real huggingface_hub session, Hub emulator,
Slack receiver. One test per detection row, plus the delivery and secrecy guarantees."""

from __future__ import annotations

import json

import pytest

from tests.emulator.slack import assert_literal, fingerprints, literal_texts
from tests.pins_env import PinsEnv, json_receiver

REPO = "EleutherAI/gpt-j-6b"
FILES = {"config.json": '{"model_type": "gptj"}', "model.safetensors": b"\x00weights-v1", "README.md": "# GPT-J"}


@pytest.fixture
def env(hub, slack, tmp_path):
    return PinsEnv(tmp_path, hub, slack)


def _kind(message: dict) -> str:
    """The finding kind, read back from the rendered Slack message's fallback text."""
    text = message["text"]
    for k in ("ref_moved", "tag_moved", "pin_unreachable", "repo_unavailable", "repo_renamed",
              "repo_recreated", "risky_change", "scan_flagged", "monitoring_degraded"):
        if k in text:
            return k
    raise AssertionError(f"no kind in {text!r}")


def baseline(env, hub, **pin):
    hub.add_repo(REPO, files=FILES, author="EleutherAI")
    env.pins = [{"repo": REPO, **(pin or {"track": "main"})}]
    env.once()
    assert env.slack.messages == [], "the first observation is a baseline, never an alert"
    assert env.findings() == []


def test_first_observation_is_silent_then_one_alert_per_move(env, hub, slack):
    baseline(env, hub)
    new = hub.commit(REPO, {"README.md": "# GPT-J v2"}, title="Docs", author="alice")
    for _ in range(3):
        env.once()
    assert [_kind(m) for m in slack.messages] == ["ref_moved"]
    (f,) = env.findings()
    assert f["kind"] == "ref_moved" and f["severity"] == "medium" and f["subject"] == REPO
    ev = f["evidence"]
    assert ev["new_sha"] == new and ev["fast_forward"] is True
    assert [c["title"] for c in ev["commits"]] == ["Docs"] and ev["commits"][0]["authors"] == ["alice"]
    assert ev["files_modified"] == ["README.md"] and ev["files_added"] == []
    assert {"kind", "severity", "subject", "summary", "evidence", "fingerprint", "first_seen"} <= set(f)
    assert f["first_seen"].endswith("Z")
    msg = json.dumps(slack.messages[0])
    assert new[:7] in msg and new in msg and f"/commit/{new}" in msg


def test_first_time_author_is_flagged(env, hub, slack):
    baseline(env, hub)
    hub.commit(REPO, {"README.md": "x"}, title="innocent", author="mallory")
    env.once()
    (f,) = env.findings()
    assert f["evidence"]["new_authors"] == ["mallory"]
    assert "mallory" in slack.messages[0]["text"] or "mallory" in json.dumps(slack.messages[0]["blocks"])


def test_tag_moved_and_deleted(env, hub, slack):
    hub.add_repo(REPO, files=FILES)
    v1 = hub.create_tag(REPO, "v1")
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    second = hub.commit(REPO, {"README.md": "new"}, title="retag me")
    hub.move_tag(REPO, "v1", second)
    env.once()
    hub.delete_tag(REPO, "v1")
    env.once()
    env.once()
    tag = env.findings("tag_moved")
    assert [(f["evidence"]["old_sha"], f["evidence"]["new_sha"]) for f in tag] == [(v1, second), (second, None)]
    assert all(f["severity"] == "high" for f in tag)
    # main moved too (the retag commit): one ref_moved, no repeats
    assert [f["kind"] for f in env.findings()].count("ref_moved") == 1
    assert len(slack.messages) == 3


def test_pin_unreachable_when_revision_no_longer_resolves(env, hub, slack):
    hub.add_repo(REPO, files=FILES)
    pinned = hub.commit(REPO, {"README.md": "pinned"}, title="pinned")
    env.pins = [{"repo": REPO, "revision": pinned}]
    env.once()
    assert env.findings() == []
    hub.rewrite_history(REPO, "main", files={"README.md": "rewritten"})
    env.once()
    (f,) = env.findings("pin_unreachable")
    assert f["severity"] == "critical" and "no branch" in f["evidence"]["reason"]
    hub.gc(REPO)
    env.once()
    env.once()
    reasons = [f["evidence"]["reason"] for f in env.findings("pin_unreachable")]
    assert len(reasons) == 2 and "RevisionNotFound" in reasons[1]
    assert [_kind(m) for m in slack.messages] == ["pin_unreachable", "pin_unreachable"]


def test_pin_unreachable_at_first_observation(env, hub, slack):
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "revision": "f" * 40}]
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "pin_unreachable", "a state that is already wrong is alerted at once"


def test_history_rewrite_on_tracked_branch_is_high(env, hub, slack):
    baseline(env, hub)
    hub.rewrite_history(REPO, "main", files={"README.md": "rewritten"})
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "ref_moved" and f["severity"] == "high" and f["evidence"]["fast_forward"] is False


def test_repo_unavailable_needs_two_definitive_answers(env, hub, slack):
    baseline(env, hub)
    hub.delete_repo(REPO)
    env.once()
    assert env.findings() == [] and slack.messages == []
    env.once()
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "repo_unavailable" and f["severity"] == "high"
    assert [_kind(m) for m in slack.messages] == ["repo_unavailable"]


def test_disabled_repo_is_unavailable(env, hub, slack):
    baseline(env, hub)
    hub.set_disabled(REPO, True)
    env.once()  # definitive at once: a 200 answer with disabled: true needs no confirmation
    (f,) = env.findings()
    assert f["kind"] == "repo_unavailable" and f["severity"] == "critical"
    assert f["summary"].startswith("disabled by the Hub") and "gated" not in f["summary"]
    env.once()
    assert len(env.findings()) == 1


def test_newly_gated_is_reported(env, hub, slack):
    baseline(env, hub)
    hub.set_gated(REPO, "manual")
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "repo_unavailable" and "gated" in f["evidence"]["reason"]


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 502}, {"status": 503}, {"status": 429},
                                   {"kind": "garbled"}, {"kind": "reset"}])
def test_transient_errors_never_become_repo_unavailable(env, hub, slack, fault):
    baseline(env, hub)
    hub.fail(r"/api/models/EleutherAI/gpt-j-6b", times=1000, **fault)
    for _ in range(4):
        assert env.run("once").code == 75, "the pin is still unknown after the retry"
    assert env.findings() == [] and slack.messages == []
    hub.reset_faults() if hasattr(hub, "reset_faults") else hub.clear_faults()
    env.once()
    assert env.findings() == []


def test_transient_between_definitive_answers_keeps_unknown(env, hub, slack):
    baseline(env, hub)
    hub.fail(r"/refs", times=1000, status=500)
    assert env.run("once").code == env.run("once").code == 75
    hub.clear_faults()
    hub.commit(REPO, {"README.md": "changed"})
    env.once()
    assert [f["kind"] for f in env.findings()] == ["ref_moved"]


def test_repo_renamed(env, hub, slack):
    baseline(env, hub)
    hub.rename_repo(REPO, "EleutherAI/gpt-j-6b-renamed")
    env.once()
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "repo_renamed" and f["evidence"]["new_id"] == "EleutherAI/gpt-j-6b-renamed"


def test_mis_cased_pin_is_not_a_rename(env, hub, slack):
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": "eleutherai/GPT-J-6B", "track": "main"}]
    env.once()
    env.once()
    assert env.findings() == []


def test_repo_recreated_namespace_reuse(env, hub, slack):
    baseline(env, hub)
    hub.recreate_repo(REPO, files={"pytorch_model.bin": b"evil", "config.json": "{}"}, author="EleutherAI")
    env.once()
    found = env.findings()
    assert [f["kind"] for f in found] == ["repo_recreated"], found
    assert found[0]["severity"] == "critical"
    assert found[0]["evidence"]["old_object_id"] != found[0]["evidence"]["new_object_id"]


@pytest.mark.parametrize("change, rule, severity", [
    ({"pytorch_model.bin": b"pickle"}, "pickle_file_changed", "high"),
    ({"modeling_gptj.py": "import os"}, "code_file_changed", "high"),
    ({"config.json": '{"model_type": "gptj", "auto_map": {"AutoModel": "modeling.M"}}'}, "remote_code_config",
     "critical"),
    ({"model.safetensors": None, "pytorch_model.bin": b"pickle"}, "safetensors_replaced_by_pickle", "critical"),
])
def test_risky_change(env, hub, slack, change, rule, severity):
    baseline(env, hub)
    hub.commit(REPO, change, title="small fix")
    env.once()
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "risky_change" and f["severity"] == severity
    assert rule in [r["rule"] for r in f["evidence"]["rules"]]
    assert [_kind(m) for m in slack.messages] == ["risky_change"]


def test_scan_flagged_alerts_at_once(env, hub, slack):
    hub.add_repo(REPO, files=FILES)
    hub.set_security(REPO, ["pytorch_model.bin"])
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "scan_flagged" and f["evidence"]["files_with_issues"] == ["pytorch_model.bin"]


def test_dataset_pin_tracks_a_tag(env, hub, slack):
    hub.add_repo("HuggingFaceFW/fineweb", type="dataset", files={"data.parquet": b"1"})
    hub.create_tag("HuggingFaceFW/fineweb", "v1.0", type="dataset")
    env.pins = [{"repo": "HuggingFaceFW/fineweb", "type": "dataset", "track": "v1.0"}]
    env.once()
    new = hub.commit("HuggingFaceFW/fineweb", {"data.parquet": b"2"}, type="dataset")
    hub.move_tag("HuggingFaceFW/fineweb", "v1.0", new, type="dataset")
    env.once()
    (f,) = env.findings()
    assert f["kind"] == "tag_moved" and f["subject"] == "datasets/HuggingFaceFW/fineweb"
    assert f["evidence"]["files_modified"] == ["data.parquet"]


def test_slack_failure_then_recovery_delivers_once_in_order(env, hub, slack):
    from monitor.alerts.delivery import deliver
    from monitor.jobs.pins import scan_pins
    from monitor.runtime import Runtime, utcnow
    from tests.pins_env import Clock

    baseline(env, hub)
    hub.create_tag(REPO, "v1")
    env.once()
    clock = Clock(utcnow())
    rt = Runtime.build(env.settings(), clock=clock)
    try:
        hub.commit(REPO, {"README.md": "v2"}, title="first")
        hub.delete_tag(REPO, "v1")
        scan_pins(rt)
        slack.down()
        for _ in range(12):  # an hour of Slack outage, one delivery pass every 5 minutes
            deliver(rt.store, rt.sinks, now=clock, sleep=lambda s: None, min_interval=0)
            clock.advance(300)
        assert slack.messages == []
        slack.up()
        slack.rate_limit(1, retry_after=30)
        for _ in range(6):
            deliver(rt.store, rt.sinks, now=clock, sleep=lambda s: None, min_interval=0)
            clock.advance(900)
        assert [_kind(m) for m in slack.messages] == ["ref_moved", "tag_moved"]
        stats = rt.store.outbox_stats(clock())
        assert stats.pending == 0 and stats.dead == 0 and stats.sent == 2
    finally:
        rt.close()


def test_once_retries_every_pending_delivery_after_slack_recovers(env, hub, slack):
    """`once` attempts every pending delivery, even one still backing off from a failure."""
    baseline(env, hub)
    hub.commit(REPO, {"README.md": "v2"})
    slack.fail(status=500, times=1)
    env.once()
    assert slack.messages == []
    env.once()
    env.once()
    assert [_kind(m) for m in slack.messages] == ["ref_moved"]


def test_permanent_slack_error_dead_letters_loudly(env, hub, slack):
    baseline(env, hub)
    hub.commit(REPO, {"README.md": "v2"})
    slack.fail(status=404, times=1, body="no_service")
    r = env.run("once", "-v")
    # the sink itself is refused: a configuration problem (78) naming its key and the answer
    assert r.code == 78 and "dead-letter" in r.err
    assert "sink slack (slack.webhook_url) refused permanently: HTTP 404 no_service" in r.err
    from monitor.store import Store
    store = Store.open(env.state)
    try:
        assert len(store.dead_letters()) == 1
    finally:
        store.close()


def test_untrusted_text_arrives_escaped(env, hub, slack):
    baseline(env, hub)
    hub.commit(REPO, {"README.md": "x"}, title="<!channel> <https://evil.example|click> & co", author="alice")
    env.once()
    assert_literal(slack.messages[0], "<!channel> <https://evil.example|click> & co", in_fallback=False)
    assert slack.messages[0]["unfurl_links"] is False and slack.messages[0]["unfurl_media"] is False


HOSTILE = ("<!channel>", "@here", "*x*", "_x_", "`x`", "<http://a|b>", "~x~")


def test_names_are_byte_exact_and_hub_text_literal_through_once(env, hub, slack):
    """Issue 17, alerts a person can act on, through `hubwatch once`: file names, the kind, the
    author and the fingerprint arrive byte-exact (no U+2060 around underscores), and every
    hostile string in a file name or a 5,000-character commit title arrives as literal text, in
    the blocks and in the fallback alike; nothing invisible anywhere in the payload."""
    baseline(env, hub)
    evil = "w_" + "_".join(HOSTILE) + ".bin"
    hub.commit(REPO, {"pytorch_model.bin": b"pickled", evil: b"pickled too"},
               title=" ".join(HOSTILE) + " " + "T" * 5000, author="eve_the_pusher")
    env.once()
    (msg,) = slack.messages
    (f,) = env.findings()
    assert f["kind"] == "risky_change"
    texts = literal_texts(msg["blocks"])
    for exact in ("risky_change", "pytorch_model.bin", evil, "eve_the_pusher", REPO):
        assert exact in texts, f"{exact!r} not a byte-exact text element"
    assert fingerprints(msg) == [f["fingerprint"]]
    assert_literal(msg, evil)  # in a file list and in the summary, hence the fallback too
    assert_literal(msg, "pytorch_model.bin")
    for hostile in HOSTILE:
        assert_literal(msg, hostile)
    assert any(s.strip().startswith(" ".join(HOSTILE) + " TTT") for s in texts), "the title, literal"
    assert all(len(s) <= 3000 for s in texts), "the long title is capped"
    assert "\u2060" not in json.dumps(msg, ensure_ascii=False)


def test_secrets_never_in_output_or_logs(env, hub, slack):
    env.token = "hf_TopSecretTokenValue123"
    hub.add_token(env.token)
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    runs = [env.run("check-config"), env.run("once", "-vv"), env.run("once", "-vv", "--log-format", "json")]
    hub.commit(REPO, {"README.md": "v2"})
    slack.fail(status=500, times=1)
    runs += [env.run("once", "-vv"), env.run("findings", "--json"), env.run("once", "--dry-run", "-vv")]
    text = "".join(r.out + r.err for r in runs)
    assert "hf_TopSecretTokenValue123" not in text
    assert slack.url not in text and "XXXXSECRET" not in text
    assert any(r.code == 0 for r in runs)
    # the token was really used: private repos are visible only with it
    assert any(req.path.startswith("/api/models/") for req in hub.requests)


def test_dry_run_renders_and_marks_nothing_sent(env, hub, slack):
    baseline(env, hub)
    hub.commit(REPO, {"README.md": "v2"})
    r = env.once("--dry-run")
    assert slack.messages == []
    assert '"unfurl_links": false' in r.out and "ref_moved" in r.out
    env.once()
    assert [_kind(m) for m in slack.messages] == ["ref_moved"]


def test_stdout_sink_when_no_slack(hub, tmp_path):
    env = PinsEnv(tmp_path, hub, None)
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    hub.commit(REPO, {"README.md": "v2"})
    r = env.once()
    assert "ref_moved" in r.out and REPO in r.out
    assert "ref_moved" not in env.once().out  # sent once


def test_fail_on_exit_code(env, hub, slack):
    baseline(env, hub)
    hub.commit(REPO, {"evil.py": "x"})
    assert env.run("once", "--fail-on", "high").code == 1
    hub.commit(REPO, {"README.md": "calm"})
    assert env.run("once", "--fail-on", "high").code == 0


@pytest.mark.parametrize("kind", ["reset", "status"])
def test_fail_on_wins_over_pins_left_unknown(env, hub, slack, kind):
    """Exit precedence 78 > 1 > 75: a new finding at --fail-on exits 1 even when other pins stay
    unknown (the Hub dropping or failing their requests); the unknown line is still said."""
    other = "EleutherAI/pythia-70m"
    hub.add_repo(REPO, files=FILES, author="EleutherAI")
    hub.add_repo(other, files=FILES, author="EleutherAI")
    env.pins = [{"repo": REPO, "track": "main"}, {"repo": other, "track": "main"}]
    assert env.run("once").code == 0
    hub.commit(REPO, {"evil.py": "x"})
    hub.fail(r"pythia-70m", kind=kind, status=503, times=None)
    r = env.run("once", "--fail-on", "high")
    assert r.code == 1, r.err
    assert "1 pins unknown after a retry" in r.err and "checked 2 pins: 1 changed, 1 unknown" in r.err, r.err
    hub.clear_faults()
    assert env.run("once", "--fail-on", "high").code == 0, "the finding was told; the other pin answers again"


@pytest.mark.parametrize("pin, key", [
    ({"repo": REPO, "revision": "123"}, "pin[0].revision"),
    ({"repo": "bad repo", "track": "main"}, "pin[0].repo"),
    ({"repo": REPO, "track": "main", "colour": "red"}, "pin[0].colour"),
])
def test_bad_config_exits_78_naming_the_key(env, hub, slack, pin, key):
    env.pins = [pin]
    r = env.run("once")
    assert r.code == 78 and key in r.err and len(r.err.strip().splitlines()) == 1
    assert env.run("check-config").code == 78


def test_bad_duration_and_missing_file_exit_78(env, hub, slack):
    env.extra = '[webhook]\nurl_file = "missing.txt"\n'
    r = env.run("check-config")
    assert r.code == 78 and "webhook.url_file" in r.err
    env.extra = ""
    env.write()
    env.config.write_text(env.config.read_text().replace('every = "10m"', 'every = "often"'))
    from monitor.cli import main
    import contextlib, io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["check-config", "-c", str(env.config)]) == 78
    assert "pins.every" in err.getvalue()
    with contextlib.redirect_stderr(err):
        assert main(["check-config", "-c", str(env.tmp / "absent.toml")]) == 78


def test_request_budget(env, hub, slack):
    """A complete check of an unchanged repo: ≤ 2 requests; a steady daemon cycle of one namespace:
    one listing page, and refs and scan reads spread so each repo's come round in time."""
    from monitor.jobs.pins import scan_pins
    from monitor.runtime import Runtime
    from tests.pins_env import Clock

    for i in range(5):
        hub.add_repo(f"org/m{i}", files=FILES)
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(5)]
    env.once()  # baseline (may cost more)
    hub.clear_log()
    env.once()
    assert hub.count() <= 2 * 5
    clock = Clock()
    rt = Runtime.build(env.settings(), clock=clock)
    try:
        scan_pins(rt, complete=True)
        per_cycle, refs_read = [], {f"org/m{i}": 0 for i in range(5)}
        for _ in range(13):  # two hours of 10-minute cycles
            clock.advance(600)
            hub.clear_log()
            scan_pins(rt)
            per_cycle.append(hub.count())
            assert hub.count(r"^GET /api/models\?author=org&") == 1, "the namespace listed once a cycle"
            for q in hub.requests:
                if q.path.endswith("/refs"):
                    refs_read[q.path.split("/api/models/")[1].removesuffix("/refs")] += 1
        # listing + one refs read (the hourly sweep, 5 repos over 6 cycles) + one scan read (6h sweep)
        assert per_cycle == [3] * 13, per_cycle
        assert all(n >= 2 for n in refs_read.values()), refs_read  # every repo's refs at least hourly
        assert rt.store.findings() == []
    finally:
        rt.close()


def test_metadata_slot_sees_signals_without_a_commit(env, hub, slack):
    """Gating and scan results change without a commit; the hourly metadata read catches them, and a
    move seen in that read still gets its full alert."""
    from monitor.jobs.pins import scan_pins
    from monitor.runtime import Runtime
    from tests.pins_env import Clock

    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    clock = Clock()
    rt = Runtime.build(env.settings(), clock=clock)
    try:
        scan_pins(rt, complete=True)
        hub.set_security(REPO, ["model.safetensors"])
        clock.advance(600)
        scan_pins(rt)
        assert rt.store.findings() == []  # not yet due: refs only
        clock.advance(3600)
        hub.clear_log()
        scan_pins(rt)
        assert hub.count() == 1 and "/revision/main" in hub.requests[0].path
        assert [f.finding.kind for f in rt.store.findings()] == ["scan_flagged"]
        hub.commit(REPO, {"evil.py": "x"})
        clock.advance(3600)
        scan_pins(rt)
        assert [f.finding.kind for f in rt.store.findings()] == ["scan_flagged", "risky_change"]
    finally:
        rt.close()


def test_json_logs_carry_job_subject_fingerprint_duration(env, hub, slack):
    baseline(env, hub)
    hub.commit(REPO, {"README.md": "v2"})
    r = env.run("once", "-v", "--log-format", "json")
    records = [json.loads(line) for line in r.err.splitlines() if line.strip()]  # every line is JSON
    assert records, r.err
    assert all({"ts", "level", "logger", "msg"} <= set(rec) for rec in records)
    found = [rec for rec in records if rec.get("fingerprint")]
    assert found and found[0]["job"] == "scan_pins" and found[0]["subject"] == REPO
    assert any("duration" in rec and rec.get("job") == "scan_pins" for rec in records)


def test_quiet_by_default(env, hub, slack):
    baseline(env, hub)
    r = env.run("once")
    quota, summary = r.err.splitlines()  # no log line: which quota the run drew on, then the summary
    assert quota.startswith("hubwatch: Hub quota: this run drew on this host's address (no token)")
    assert summary == "checked 1 pins: 0 changed, 0 unknown, 0 new findings"


def test_unusable_state_database_is_a_one_line_config_error(env, hub, slack):
    env.pins = [{"repo": REPO, "track": "main"}]
    env.write()
    env.state.mkdir()  # a directory where the database file should be: no restart fixes that
    r = env.run("once")
    assert r.code == 78 and len(r.err.strip().splitlines()) == 1 and "state.path" in r.err
    assert str(env.state) in r.err


def test_stop_event_winds_scans_down_without_requests(env, hub, slack):
    from monitor.jobs.lookalikes import scan_lookalikes
    from monitor.jobs.pins import scan_pins
    from monitor.runtime import Runtime

    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\n'
    rt = Runtime.build(env.settings())
    try:
        rt.stop.set()
        hub.clear_log()
        report = scan_pins(rt)
        look = scan_lookalikes(rt)
        assert report.checked == 0 and look.probed == 0 and hub.count() == 0
        assert rt.store.load_state("model:" + REPO.lower()) is None  # nothing half-recorded
    finally:
        rt.close()


def test_generic_json_webhook_sink(hub, tmp_path):
    """[webhook] url: the finding as JSON with its fingerprint, once."""
    with json_receiver() as (url, received):
        env = PinsEnv(tmp_path, hub, None)
        env.extra = f'[webhook]\nurl = "{url}"\n'
        hub.add_repo(REPO, files=FILES)
        env.pins = [{"repo": REPO, "track": "main"}]
        env.once()
        hub.commit(REPO, {"README.md": "v2"})
        r = env.once()
        env.once()
        assert "ref_moved" not in r.out, "a configured sink replaces stdout"
        (body,) = received
        assert body["kind"] == "ref_moved" and body["subject"] == REPO and body["source"] == "hubwatch"
        assert body["fingerprint"] == env.findings()[0]["fingerprint"] and body["evidence"]["new_sha"]
