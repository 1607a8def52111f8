"""Dead letters loud and recoverable (issue 19 point 2), through the real CLI against the Hub
emulator and the Slack receiver: a refused sink makes `once` and `digest` exit 78 naming the sink's
key and the answer; `status` and `/metrics` show dead letters per sink; `redeliver` delivers them
after the fix; `test-sink` prints each receiver's answer; the daemon logs a dead sink once."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from monitor.alerts.delivery import deliver
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from tests.pins_env import Clock, PinsEnv, json_receiver

REPO = "EleutherAI/gpt-j-6b"
FILES = {"config.json": '{"model_type": "gptj"}', "README.md": "# GPT-J"}
LINE = "sink slack (slack.webhook_url) refused permanently: HTTP 404 no_service"


class MistypedSlack:
    """The Slack receiver behind a mistyped webhook URL (a path Slack answers 404 no_service)."""

    def __init__(self, slack):
        self.real, self.url = slack, slack.url[:-4] + "XXXX"


@pytest.fixture
def env(hub, slack, tmp_path):
    e = PinsEnv(tmp_path, hub, MistypedSlack(slack))
    hub.add_repo(REPO, files=FILES)
    e.pins = [{"repo": REPO, "track": "main"}]
    return e


def rows(run) -> list[dict]:
    return [json.loads(line) for line in run.out.splitlines() if line.strip()]


def test_a_404_sink_makes_once_exit_78_and_redeliver_delivers_after_the_fix(env, hub, slack):
    assert env.run("once").code == 0  # baseline
    hub.commit(REPO, {"README.md": "v2"})
    r = env.run("once")
    assert r.code == 78, r
    assert LINE in r.err and "hubwatch redeliver --all" in r.err
    assert r.err.rstrip().endswith("1 new findings"), "the summary line still comes last"
    hub.create_tag(REPO, "v1")
    hub.commit(REPO, {"README.md": "v3"})
    r = env.run("once", "--fail-on", "low")  # a new finding reaches --fail-on: 78 still comes first
    assert r.code == 78 and LINE in r.err, "still dead: said again, without knocking on the same door"
    assert slack.attempts == [404], "the dead sink is not tried again for the next alert"
    # status: the sink, its key and answer, the dead letter's fingerprint; one alert waits
    (sink,) = [x for x in rows(env.run("status", "--json")) if x["kind"] == "sink"]
    fps = [f["fingerprint"] for f in env.findings()]
    assert sink["dead"] and sink["key"] == "slack.webhook_url" and sink["answer"] == "HTTP 404 no_service"
    assert sink["dead_letters"] == 1 and sink["waiting"] == 1 and sink["fingerprints"] == fps[:1]
    assert "sink slack (slack.webhook_url): dead since" in env.run("status").out
    # the fix: the right URL. Its waiting alert flows at once; redeliver sends the dead letter.
    env.slack = slack
    r = env.run("redeliver", "--all")
    assert r.code == 0, r
    assert "re-queued 1 dead letter(s); delivery: 2 sent" in r.out
    assert sorted(m["text"].split(": ", 1)[0] for m in slack.messages) and len(slack.messages) == 2
    assert all(fp in json.dumps(slack.messages) for fp in fps)
    assert [x for x in rows(env.run("status", "--json")) if x["kind"] == "sink"] == []
    assert env.run("once").code == 0


def test_redeliver_by_fingerprint_and_its_usage_errors(env, hub, slack):
    assert env.run("once").code == 0
    hub.commit(REPO, {"README.md": "v2"})
    assert env.run("once").code == 78
    (fp,) = [f["fingerprint"] for f in env.findings()]
    assert env.run("redeliver").code == 2
    assert env.run("redeliver", "0" * 32).code == 2
    env.slack = slack
    r = env.run("redeliver", fp)
    assert r.code == 0 and "re-queued 1" in r.out and len(slack.messages) == 1


def test_redeliver_while_still_refused_is_78(env, hub, slack):
    assert env.run("once").code == 0
    hub.commit(REPO, {"README.md": "v2"})
    assert env.run("once").code == 78
    r = env.run("redeliver", "--all")
    assert r.code == 78 and LINE in r.err


def test_a_400_dead_letters_only_that_message(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    assert env.run("once").code == 0
    hub.commit(REPO, {"README.md": "v2"})
    slack.fail(400, times=1, body="invalid_blocks")
    r = env.run("once")
    assert r.code == 0 and "refused permanently" not in r.err
    assert "1 alert(s) dead-lettered: 1 by sink slack (slack.webhook_url)" in r.err, "never silent"
    (sink,) = [x for x in rows(env.run("status", "--json")) if x["kind"] == "sink"]
    assert not sink["dead"] and sink["dead_letters"] == 1
    hub.commit(REPO, {"README.md": "v3"})
    assert env.run("once").code == 0 and len(slack.messages) == 1, "the sink keeps working"


def test_digest_exit_and_wording_say_what_happened(env, hub, slack):
    assert env.run("once").code == 0
    r = env.run("digest")
    assert r.code == 78 and LINE in r.err and "retried by the next delivery" not in r.err
    env.slack = slack
    assert env.run("redeliver", "--all").code == 0
    assert "daily digest" in slack.messages[0]["text"]


def test_test_sink_prints_each_answer(env, hub, slack):
    with json_receiver() as (url, received):
        env.extra = f'[webhook]\nurl = "{url}"\n'
        r = env.run("test-sink")
        assert r.code == 78, r
        assert "slack (slack.webhook_url): refused: HTTP 404 no_service" in r.out
        assert "webhook (webhook.url): ok: HTTP 204" in r.out
        assert received and received[0]["event"] == "test"
        env.slack = slack
        r = env.run("test-sink")
        assert r.code == 0 and "slack (slack.webhook_url): ok: HTTP 200 ok" in r.out
    (msg,) = slack.messages
    assert "test" in msg["text"] and "no action needed" in msg["text"]
    assert env.findings() == [], "a test message is not a finding"


def test_metrics_and_the_daemon_log_show_a_dead_sink_once(env, hub, slack, caplog):
    caplog.set_level(logging.ERROR)
    clock = Clock()
    assert env.run("once").code == 0
    hub.commit(REPO, {"README.md": "v2"})
    hub.create_tag(REPO, "v1")
    from monitor.jobs.pins import scan_pins

    rt = Runtime.build(env.settings(), clock=clock)
    try:
        scan_pins(rt)
        hub.move_tag(REPO, "v1", hub.commit(REPO, {"README.md": "v3"}))
        scan_pins(rt)
        for _ in range(3):  # three delivery passes, as the daemon makes every 30 s
            clock.advance(30)
            deliver(rt.store, rt.sinks, now=clock, sleep=lambda s: None, min_interval=0)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "sink slack refused permanently (HTTP 404 no_service)" in errors[0]
        text = Metrics(lambda: rt).render()[0].decode()
        assert 'hubwatch_outbox_depth{sink="slack",state="dead"} 1.0' in text
        assert 'hubwatch_outbox_depth{sink="slack",state="pending"} 2.0' in text  # they wait
        assert 'hubwatch_sink_dead{sink="slack"} 1.0' in text
    finally:
        rt.close()


def test_sent_rows_older_than_keep_are_pruned_by_the_daemon(hub, slack, tmp_path):
    from monitor import config as config_mod
    from monitor.daemon import Daemon
    from monitor.runtime import utcnow

    env = PinsEnv(tmp_path, hub, slack)
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    assert env.run("once").code == 0
    hub.commit(REPO, {"README.md": "v2"})
    assert env.run("once").code == 0 and len(slack.messages) == 1
    env.config.write_text(env.config.read_text().replace("[state]\n", '[state]\nkeep = "1d"\n', 1))
    settings = config_mod.load(env.config, env={})
    assert settings.state_keep == 86400
    d = Daemon(settings, env.config)
    try:
        d.job_prune()
        assert d.rt.store.outbox_stats(utcnow()).sent == 1, "younger than keep: kept"
        d.rt.clock = lambda: utcnow() + timedelta(days=1, minutes=1)
        d.job_prune()
        assert d.rt.store.outbox_stats(utcnow()).sent == 0
        assert len(d.rt.store.findings()) == 1, "findings stay: they are the dedup memory"
    finally:
        d.rt.close()


@pytest.mark.parametrize("status, sink_dead", [(400, False), (401, True), (403, True), (404, True), (410, True),
                                               (422, False), (500, False)])
def test_the_generic_webhook_marks_its_sink_dead_like_slack(slack, status, sink_dead):
    from monitor.alerts.sinks import SlackSink, WebhookSink
    from monitor.detect.reports import Report
    from monitor.errors import SinkError

    slack.fail(status, times=2, body="nope")
    report = Report("test", {"sent_at": "2026-01-01T00:00:00Z"}, "2026-01-01T00:00:00Z")
    for sink, dead in ((WebhookSink(slack.url), sink_dead), (SlackSink(slack.url), status in (403, 404, 410))):
        with pytest.raises(SinkError) as e:
            sink.send_report(report)
        assert e.value.sink_dead is dead and e.value.status == status
        assert e.value.permanent is (dead or 400 <= status < 500)


def test_state_keep_defaults_to_90d_and_the_daemon_schedules_the_prune(hub, slack, tmp_path):
    from monitor import config as config_mod
    from monitor.daemon import Daemon

    env = PinsEnv(tmp_path, hub, slack)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.run("check-config")
    settings = config_mod.load(env.config, env={})
    assert "keep" not in env.config.read_text() and settings.state_keep == 90 * 86400
    d = Daemon(settings, env.config)
    try:
        fn, every, _ = d.jobs()["prune"]
        assert fn == d.job_prune and 0 < every <= 86400
    finally:
        d.rt.close()


def test_test_sink_failing_for_now_is_75_and_marks_nothing(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    env.pins = [{"repo": REPO, "track": "main"}]
    slack.fail(503, times=20, body="service_unavailable")
    r = env.run("test-sink")
    assert r.code == 75, r
    assert "slack (slack.webhook_url): failed for now: HTTP 503" in r.out
    assert not env.state.exists(), "test-sink never creates the state database"
