"""Triage: `hubwatch ack/unack`, `findings --all`, and `/hubwatch ack` through the signed slash
command. An acknowledged finding never alerts again (a queued alert still goes out, marked), only
listed Slack users may ack, and every (un)ack says who; a new fingerprint alerts as usual."""

from __future__ import annotations

import json
import os
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


def _alerts(slack) -> list[dict]:
    """The Slack messages that are finding alerts (not triage notices)."""
    return [m for m in slack.messages if "fingerprint" in json.dumps(m.get("blocks", []))]


def _notices(slack) -> list[str]:
    return [m["text"] for m in slack.messages if "fingerprint" not in json.dumps(m.get("blocks", []))]


def test_an_ack_before_delivery_still_delivers_once_marked(env, hub, slack, monkeypatch):
    """Slack is down when the finding is made; someone acknowledges it: the alert is not lost,
    it goes out once, saying who acknowledged it before delivery; a later change alerts as usual."""
    monkeypatch.setenv("HUBWATCH_ACTOR", "alice")
    slack.down()
    fp = _move(env, hub, "v2")  # queued: Slack is down
    assert slack.messages == []
    assert env.run("ack", fp).code == 0
    slack.up()
    env.once()
    env.once()
    (alert,) = _alerts(slack)
    assert fp in json.dumps(alert) and "acknowledged by alice before delivery" in alert["text"]
    (notice,) = _notices(slack)
    assert f"{fp}" in notice and "acknowledged by alice via CLI" in notice
    fp2 = _move(env, hub, "v3")
    assert len(_alerts(slack)) == 2 and fp2 in json.dumps(_alerts(slack)[-1])
    assert "before delivery" not in _alerts(slack)[-1]["text"]


def test_ack_and_unack_record_who_and_post_a_notice(env, hub, slack, monkeypatch):
    fp = _move(env, hub, "v2")
    slack.messages.clear()
    monkeypatch.delenv("HUBWATCH_ACTOR", raising=False)
    monkeypatch.setenv("SUDO_USER", "bob")
    assert env.run("ack", fp).code == 0
    (row,) = _all(env)
    assert row["acked_by"] == "bob"
    monkeypatch.setenv("HUBWATCH_ACTOR", "carol")  # wins over $SUDO_USER
    assert env.run("unack", fp).code == 0
    (row,) = _all(env)
    assert row["acked_by"] is None and row["acked_at"] is None
    env.once()
    assert _alerts(slack) == [], "the alert was delivered before the ack: not again"
    acked, unacked = _notices(slack)
    assert "acknowledged by bob via CLI" in acked and "unacknowledged by carol via CLI" in unacked
    assert fp in acked and fp in unacked


def test_cli_actor_falls_back_to_the_login_name():
    import getpass

    from monitor.triage import cli_actor

    assert cli_actor({"HUBWATCH_ACTOR": "ops-bot", "SUDO_USER": "bob"}) == "ops-bot"
    assert cli_actor({"SUDO_USER": "bob"}) == "bob"
    assert cli_actor({}) == getpass.getuser()
    hostile = cli_actor({"HUBWATCH_ACTOR": "eve\x1b[2Jx" + "y" * 100})
    assert "\x1b" not in hostile and hostile.startswith("eve") and len(hostile) == 64


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


def _slack_server(env, slack, tmp_path, acks: str):
    (tmp_path / "signing").write_text(SIGNING)
    env.extra = f'[slack]\nwebhook_url = "{slack.url}"\nsigning_secret_file = "signing"\n{acks}'
    env.slack = None  # the [slack] table comes from `extra` here
    rt = Runtime.build(env.settings())
    return rt, HttpServer(HttpSettings("127.0.0.1", 0), DaemonApi(SimpleNamespace(rt=rt))).start()


def _post(server, text: str, secret: str = SIGNING, **fields):
    form = urlencode({"command": "/hubwatch", "text": text, "user_id": "U42", "team_id": "T1",
                      "channel_id": "C1", "response_url": "https://hooks.slack.com/commands/T/1/x",
                      "trigger_id": os.urandom(8).hex(),  # a new signature each time: no replay refusal
                      **fields}).encode()
    ts = str(int(time.time()))
    return requests.post(server.url + "/slack/commands", data=form, timeout=5, headers={
        "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(secret, ts, form),
        "Content-Type": "application/x-www-form-urlencoded"})


def test_slash_command_ack(env, hub, slack, tmp_path):
    fp = _move(env, hub, "v2")
    rt, server = _slack_server(env, slack, tmp_path, 'ack_users = ["U42"]\nack_channels = ["C1"]\nteam_id = "T1"\n')
    try:
        assert _post(server, f"ack {fp}", secret="wrong-secret").status_code == 401
        assert env.findings() != [], "an unsigned request acknowledges nothing"
        for fields in ({"user_id": "U666"}, {"channel_id": "C9"}, {"team_id": "T9"}):
            r = _post(server, f"ack {fp}", **fields)
            assert r.status_code == 200 and "acknowledged " + fp not in r.json()["text"], fields
        assert "ack_users" in _post(server, f"ack {fp}", user_id="U666").json()["text"]
        assert env.findings() != [], "a user, channel or workspace not allowed acknowledges nothing"
        # Enterprise Grid: the org id stands for the workspace
        assert "acknowledged " + fp in _post(server, f"ack {fp}", team_id="T7", enterprise_id="T1").json()["text"]
        assert env.run("unack", fp).code == 0
        r = _post(server, f"ack {fp}")
        assert r.status_code == 200 and r.json()["response_type"] == "ephemeral"
        assert f"acknowledged {fp}" in r.json()["text"]
        (row,) = _all(env)
        assert row["acked_at"] and row["ack_note"] == "via Slack by U42" and row["acked_by"] == "U42"
        slack.messages.clear()
        env.once()  # delivers what the acks queued: a notice each, and no alert again
        assert _alerts(slack) == []
        notices = _notices(slack)
        assert len(notices) == 3 and all(fp in n for n in notices), notices
        assert "acknowledged by U42 via Slack" in notices[0] and "unacknowledged by" in notices[1]
        assert "acknowledged by U42 via Slack" in notices[2]
        unknown = _post(server, "ack " + "e" * 32).json()
        assert "no finding with fingerprint" in unknown["text"]
    finally:
        server.stop()
        rt.close()


def test_slack_acks_are_off_until_ack_users_is_set_and_the_alert_still_goes_out(env, hub, slack, tmp_path):
    """A Slack user not on the list cannot silence a queued alert: refused, and the alert is
    delivered unmarked once Slack is back."""
    slack.down()
    fp = _move(env, hub, "v2")
    rt, server = _slack_server(env, slack, tmp_path, "")
    try:
        text = _post(server, f"ack {fp}").json()["text"]
        assert "ack_users" in text and "U42" in text, "the refusal says how to allow acks"
        rt.close()
        server.stop()
        rt, server = _slack_server(env, slack, tmp_path, 'ack_users = ["U1"]\n')
        assert "ack_users" in _post(server, f"ack {fp}").json()["text"]
    finally:
        server.stop()
        rt.close()
    (row,) = _all(env)
    assert row["acked_at"] is None and row["acked_by"] is None
    slack.up()
    env.once()
    (alert,) = _alerts(slack)
    assert fp in json.dumps(alert) and "before delivery" not in alert["text"]


def test_a_row_in_flight_during_the_ack_is_still_sent_marked(tmp_path):
    """Store level: a row claimed when the ack lands and handed back (failure, shutdown) is
    claimed again and carries who acknowledged it; its finding is never lost."""
    from datetime import datetime, timedelta, timezone

    from monitor.alerts.delivery import outgoing
    from monitor.detect.findings import Finding
    from monitor.store import Store

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Store.open(tmp_path / "s.db") as store:
        f = Finding.make("ref_moved", "high", "a/b", "moved", key=[1])
        other = Finding.make("ref_moved", "high", "a/c", "moved", key=[2])
        store.record("k", "{}", [f, other], ["slack"], t0)
        (item, item2) = store.claim("slack", t0)
        store.ack([f.fingerprint], None, t0, "alice")
        assert store.mark_retry(item, t0, t0, "HTTP 500")  # back to pending after the ack
        store.release(item2)
        again = store.claim("slack", t0 + timedelta(seconds=1))
        assert [(i.finding.fingerprint, i.acked_by) for i in again] == [(f.fingerprint, "alice"),
                                                                         (other.fingerprint, None)]
        marked = outgoing(again[0])
        assert marked.fingerprint == f.fingerprint
        assert marked.summary.startswith("(acknowledged by alice before delivery)")
        assert outgoing(again[1]) == again[1].finding


def test_an_expired_claim_of_a_finding_acked_afterwards_is_still_sent(tmp_path):
    """Store level: a deliverer crashed holding a row, and the finding is acknowledged while the
    row is still claimed: once the lease runs out the row is claimed again (and delivered marked)."""
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
        store.ack([f.fingerprint], None, t0 + timedelta(seconds=1), "bob")
        later = t0 + timedelta(seconds=61)
        again = store.claim("slack", later)
        assert [(i.acked_by, i.report.kind if i.report else None) for i in again] == [("bob", None), (None, "digest")]


def test_rows_an_older_hubwatch_skipped_go_out_on_unack(tmp_path):
    """Acks no longer skip rows, but a database may hold rows an older hubwatch skipped: an unack
    queues them again."""
    from datetime import datetime, timezone

    from monitor.detect.findings import Finding
    from monitor.store import Store

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Store.open(tmp_path / "s.db") as store:
        f = Finding.make("ref_moved", "high", "a/b", "moved", key=[1])
        store.record("k", "{}", [f], ["slack"], t0)
        store.ack([f.fingerprint], None, t0, "old")
        store.db.execute("UPDATE outbox SET state = 'skipped'")
        assert store.claim("slack", t0) == []
        store.unack([f.fingerprint])
        assert [i.finding.fingerprint for i in store.claim("slack", t0)] == [f.fingerprint]


def test_ack_and_unack_take_several_fingerprints(env, hub, slack):
    first, second = _move(env, hub, "v2"), _move(env, hub, "v3")
    r = env.run("ack", first, second, "--note", "both reviewed")
    assert r.code == 0 and f"acknowledged {first}" in r.out and f"acknowledged {second}" in r.out
    assert env.findings() == []
    assert {(f["fingerprint"], f["ack_note"]) for f in _all(env)} == {(first, "both reviewed"), (second, "both reviewed")}
    assert env.run("unack", first, second).code == 0
    assert {f["fingerprint"] for f in env.findings()} == {first, second}


def test_a_triage_notice_renders_inert_for_every_sink():
    """The notice carries a Hub-controlled subject and an operator's note: plain text on stdout,
    literal rich_text in Slack (and a fallback sent with mrkdwn off), data in the webhook body."""
    from datetime import datetime, timezone

    from monitor.alerts.render_report import report_json, report_slack, report_text
    from monitor.triage import notice

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    known = {"a" * 32: ("ref_moved", "evil/<!channel>\x1b[2J"), "b" * 32: ("tag_moved", "org/x")}
    report = notice("ack", "alice", "Slack", known, "ok <@U1>", now)
    text = report_text(report)
    assert text.startswith("[TRIAGE] findings ") and "acknowledged by alice via Slack" in text
    assert "\x1b" not in text and "a" * 32 in text and "b" * 32 in text
    slack = report_slack(report)
    body = json.dumps(slack)
    assert slack["mrkdwn"] is False and "&lt;!channel&gt;" in slack["text"] and "<!channel>" not in slack["text"]
    assert slack["blocks"][0]["type"] == "rich_text" and slack["unfurl_links"] is False
    shown = "".join(e.get("text", "") for e in slack["blocks"][0]["elements"][0]["elements"])
    assert "evil/<!channel>" in shown and "ok <@U1>" in shown, "literal text: shown exactly as written"
    data = report_json(report, now=now)
    assert data["event"] == "triage" and data["action"] == "ack" and data["by"] == "alice" and data["count"] == 2
    undo = report_text(notice("unack", "bob", "CLI", dict(list(known.items())[:1]), None, now))
    assert "finding " + "a" * 32 in undo and "unacknowledged by bob via CLI" in undo
