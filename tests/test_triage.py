"""Triage: `hubwatch ack/unack`, `findings --all`, and `/hubwatch ack` through the signed slash
command. An acknowledged finding never alerts again; a new fingerprint does."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
import requests

from monitor.config import HttpSettings
from monitor.daemon_api import DaemonApi
from monitor.http import HttpServer
from monitor.http.slack_command import intent, sign
from monitor.runtime import Runtime
from tests.emulator.slack import fingerprints
from tests.pins_env import PinsEnv

REPO = "EleutherAI/gpt-j-6b"
FILES = {"config.json": "{}", "README.md": "# model"}
SIGNING = "slack-signing-Triage-31"


@pytest.fixture
def env(hub, slack, tmp_path):
    hub.add_repo(REPO, files=FILES)
    e = PinsEnv(tmp_path, hub, slack, pins=[{"repo": REPO, "track": "main"}])
    e.once()  # baseline
    return e


def _move(env, hub, text: str) -> str:
    """Commit, run once, return the new finding's fingerprint."""
    hub.commit(REPO, {"README.md": text}, title=text)
    before = {f["fingerprint"] for f in _all(env)}
    env.once()
    (fp,) = {f["fingerprint"] for f in _all(env)} - before
    return fp


def _all(env) -> list[dict]:
    """`hubwatch findings --json --all`."""
    r = env.run("findings", "--json", "--all")
    assert r.code == 0, r
    return [json.loads(line) for line in r.out.splitlines() if line.strip()]


def test_ack_hides_the_finding_and_unack_shows_it_again(env, hub, slack):
    fp = _move(env, hub, "v2")
    r = env.run("ack", fp, "--note", "checked with the vendor")
    assert r.code == 0 and r.out.startswith(f"acknowledged {fp} (ref_moved {REPO})")
    assert env.findings() == []
    (row,) = _all(env)
    assert row["fingerprint"] == fp and row["ack_note"] == "checked with the vendor"
    assert row["acked_at"].endswith("Z")
    r = env.run("findings")
    assert r.out == "" and fp in env.run("findings", "--all").out
    assert env.run("unack", fp.upper()).code == 0
    (row,) = env.findings()
    assert row["fingerprint"] == fp and row["acked_at"] is None and row["ack_note"] is None


def test_an_acked_finding_never_alerts_a_new_one_does(env, hub, slack):
    slack.down()
    fp = _move(env, hub, "v2")  # queued: Slack is down
    assert slack.messages == []
    assert env.run("ack", fp).code == 0
    slack.up()
    env.once()
    env.once()
    assert slack.messages == [], "the acknowledged finding's queued alert is never sent"
    fp2 = _move(env, hub, "v3")
    assert len(slack.messages) == 1 and fingerprints(slack.messages[0]) == [fp2]


def test_unack_sends_the_alert_that_was_skipped(env, hub, slack):
    slack.down()
    fp = _move(env, hub, "v2")
    env.run("ack", fp)
    slack.up()
    env.once()
    assert slack.messages == []
    env.run("unack", fp)
    env.once()
    assert len(slack.messages) == 1 and fp in str(slack.messages[0])


@pytest.mark.parametrize("args, words", [
    (["ack", "not-a-fingerprint"], "not a finding fingerprint"),
    (["ack", "0" * 32], "no finding with fingerprint " + "0" * 32),
    (["unack", "f" * 32], "no finding with fingerprint"),
    (["ack", "a" * 31], "not a finding fingerprint"),
])
def test_bad_fingerprints_exit_2_and_change_nothing(env, hub, slack, args, words):
    fp = _move(env, hub, "v2")
    r = env.run(*args, *( [fp] if args[0] == "ack" else []))
    assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1
    assert [f["fingerprint"] for f in env.findings()] == [fp], "nothing was acknowledged"


def test_slack_intent_only_acks_a_32_hex_fingerprint():
    fp = "0123456789abcdef0123456789ABCDEF"
    assert intent(f"ack {fp}") == ("ack", fp.lower())
    assert intent("ack") == ("lookup", "ack")  # a bare word is a lookup, as before
    assert intent("ack 1234") == ("usage", None)
    assert intent(f"ack {fp} extra") == ("usage", None)
    assert intent("lookup EleuterAI") == ("lookup", "EleuterAI")


def test_slash_command_ack(env, hub, slack, tmp_path):
    fp = _move(env, hub, "v2")
    (tmp_path / "signing").write_text(SIGNING)
    env.extra = '[slack]\nsigning_secret_file = "signing"\n'
    env.slack = None  # the [slack] table comes from `extra` here
    rt = Runtime.build(env.settings())
    server = HttpServer(HttpSettings("127.0.0.1", 0), DaemonApi(SimpleNamespace(rt=rt))).start()
    try:
        def post(text: str, secret: str = SIGNING):
            form = urlencode({"command": "/hubwatch", "text": text, "user_id": "U42",
                              "response_url": "https://hooks.slack.com/commands/T/1/x"}).encode()
            ts = str(int(time.time()))
            return requests.post(server.url + "/slack/commands", data=form, timeout=5, headers={
                "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(secret, ts, form),
                "Content-Type": "application/x-www-form-urlencoded"})

        assert post(f"ack {fp}", secret="wrong-secret").status_code == 401
        assert env.findings() != [], "an unsigned request acknowledges nothing"
        r = post(f"ack {fp}")
        assert r.status_code == 200 and r.json()["response_type"] == "ephemeral"
        assert f"acknowledged {fp}" in r.json()["text"]
        (row,) = _all(env)
        assert row["acked_at"] and row["ack_note"] == "via Slack by U42"
        unknown = post("ack " + "e" * 32).json()
        assert "no finding with fingerprint" in unknown["text"]
    finally:
        server.stop()
        rt.close()


def test_a_row_in_flight_during_the_ack_is_not_sent_after_a_failure(tmp_path):
    """Store level: a row claimed when the ack lands and handed back (failure, shutdown) is
    skipped instead of being sent; the outbox does not look stuck."""
    from datetime import datetime, timedelta, timezone

    from monitor.detect.findings import Finding
    from monitor.store import Store

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Store.open(tmp_path / "s.db") as store:
        f = Finding.make("ref_moved", "high", "a/b", "moved", key=[1])
        other = Finding.make("ref_moved", "high", "a/c", "moved", key=[2])
        store.record("k", "{}", [f, other], ["slack"], t0)
        (item, item2) = store.claim("slack", t0)
        store.ack([f.fingerprint], None, t0)
        assert store.mark_retry(item, t0, t0, "HTTP 500")  # back to pending after the ack
        store.release(item2)
        again = store.claim("slack", t0 + timedelta(seconds=1))
        assert [i.finding.fingerprint for i in again] == [other.fingerprint]
        stats = store.outbox_stats(t0)
        assert stats.pending == 0 and stats.claimed == 1
        assert [i.finding.fingerprint for i in store.pending("slack")] == [other.fingerprint]


def test_an_expired_claim_of_a_finding_acked_afterwards_is_not_sent(tmp_path):
    """Store level: a deliverer crashed holding a row, and the finding is acknowledged while the
    row is still claimed: once the lease runs out the row is skipped, never re-claimed and sent.
    A report row (no finding) held by the same deliverer stays deliverable."""
    from datetime import datetime, timedelta, timezone

    from monitor.detect.findings import Finding
    from monitor.detect.reports import Report
    from monitor.store import Store

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Store.open(tmp_path / "s.db") as store:
        f = Finding.make("ref_moved", "high", "a/b", "moved", key=[1])
        store.record("k", "{}", [f], ["slack"], t0)
        store.record_report(Report("digest", {"pins": 1}), ["slack"], t0)
        assert len(store.claim("slack", t0, lease_seconds=60)) == 2  # ... and the deliverer crashes
        store.ack([f.fingerprint], None, t0 + timedelta(seconds=1))
        later = t0 + timedelta(seconds=61)
        again = store.claim("slack", later)
        assert [(i.finding, i.report.kind if i.report else None) for i in again] == [(None, "digest")]
        stats = store.outbox_stats(later)
        assert stats.pending == 0 and stats.claimed == 1, "the acknowledged row does not look stuck"
        (state, error), = store.db.execute("SELECT state, last_error FROM outbox WHERE finding_id IS NOT NULL")
        assert (state, error) == ("skipped", "finding acknowledged before delivery")


def test_ack_and_unack_take_several_fingerprints(env, hub, slack):
    first, second = _move(env, hub, "v2"), _move(env, hub, "v3")
    r = env.run("ack", first, second, "--note", "both reviewed")
    assert r.code == 0 and f"acknowledged {first}" in r.out and f"acknowledged {second}" in r.out
    assert env.findings() == []
    assert {(f["fingerprint"], f["ack_note"]) for f in _all(env)} == {(first, "both reviewed"), (second, "both reviewed")}
    assert env.run("unack", first, second).code == 0
    assert {f["fingerprint"] for f in env.findings()} == {first, second}
