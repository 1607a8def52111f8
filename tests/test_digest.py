"""The daily digest: `[alerts] digest = "HH:MM"` schedules it in the daemon (cron, local time);
`hubwatch digest` sends it now. A report through the outbox, not a finding: never deduplicated,
never lost on a Slack outage; the generic webhook gets {"event": "digest", ...}."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from monitor import config as config_mod
from monitor.cli import main
from monitor.daemon import Daemon
from tests.emulator.slack import validate_message
from tests.pins_env import PinsEnv, json_receiver

REPO = "EleutherAI/gpt-j-6b"
FILES = {"config.json": "{}", "README.md": "# model"}


@pytest.fixture
def env(hub, slack, tmp_path):
    hub.add_repo(REPO, files=FILES)
    e = PinsEnv(tmp_path, hub, slack, pins=[{"repo": REPO, "track": "main"}])
    e.extra = '[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 4\n'
    e.once()
    hub.commit(REPO, {"README.md": "v2"})
    e.once()  # one ref_moved alert
    assert len(slack.messages) == 1
    return e


def digests(slack) -> list[dict]:
    return [m for m in slack.messages if "daily digest" in m["text"]]


def test_digest_to_slack_says_what_is_watched(env, hub, slack):
    r = env.run("digest")
    assert r.code == 0, r
    (msg,) = digests(slack)
    assert validate_message(msg) is None
    text = msg["text"]
    assert "pins watched: 1" in text and "changes in the last 24 h: 1" in text
    assert "open findings (not acknowledged): 1 (1 medium)" in text and "unknown now: 0" in text
    assert "look-alike coverage: 4 of " in text, "two once runs probed 2 candidates each"
    assert msg["unfurl_links"] is False
    assert env.run("findings", "--kind", "digest").code == 2, "a report is not a finding kind"
    assert len(env.findings()) == 1, "a report is not a finding"


def test_every_digest_is_sent_no_dedup(env, hub, slack):
    env.run("digest")
    env.run("digest")
    assert len(digests(slack)) == 2


def test_digest_survives_a_slack_outage(env, hub, slack):
    slack.down()
    r = env.run("digest")
    assert r.code == 75 and "retried" in r.err
    assert digests(slack) == []
    preview = env.once("--dry-run")
    assert "hubwatch daily digest" in preview.out, "the queued digest shows in --dry-run"
    slack.up()
    env.once()
    assert len(digests(slack)) == 1


def test_acked_findings_leave_the_open_count(env, hub, slack):
    fp = env.findings()[0]["fingerprint"]
    env.run("ack", fp)
    env.run("digest")
    assert "open findings (not acknowledged): 0" in digests(slack)[0]["text"]


def test_dry_run_prints_and_queues_nothing(env, hub, slack):
    r = env.run("digest", "--dry-run")
    assert r.code == 0 and "daily digest" in json.loads(r.out)["text"]
    env.once()
    assert digests(slack) == []


def test_generic_webhook_gets_a_digest_event(hub, tmp_path):
    with json_receiver() as (url, received):
        hub.add_repo(REPO, files=FILES)
        env = PinsEnv(tmp_path, hub, None, pins=[{"repo": REPO, "track": "main"}])
        env.extra = f'[webhook]\nurl = "{url}"\n'
        env.once()
        assert env.run("digest").code == 0
        (body,) = received
        assert body["event"] == "digest" and body["source"] == "hubwatch" and body["version"] == 1
        assert (body["pins"], body["changes"], body["unknown"], body["open_findings"]) == (1, 0, 0, 0)
        assert body["lookalike"] is None and body["sent_at"].endswith("Z")
        assert body["period_start"] < body["period_end"]


def test_stdout_sink_prints_a_readable_line(hub, tmp_path):
    hub.add_repo(REPO, files=FILES)
    env = PinsEnv(tmp_path, hub, None, pins=[{"repo": REPO, "track": "main"}])
    r = env.run("digest")
    assert r.code == 0 and r.out.startswith("[DIGEST] pins watched: 1 (1 never checked); unknown now: 0; ")


@pytest.mark.parametrize("value, expect", [('"09:00"', (9, 0)), ("07:30:00", (7, 30)), (None, None)])
def test_daemon_schedules_the_digest_at_local_time(hub, slack, tmp_path, value, expect):
    env = PinsEnv(tmp_path, hub, slack, pins=[{"repo": REPO, "track": "main"}])
    if value is not None:
        env.extra = f"[alerts]\ndigest = {value}\n"
        env.write()
        env.config.write_text(env.config.read_text().replace("[alerts]\nmin_interval = 0\n", "")
                              .replace("[alerts]\n", "[alerts]\nmin_interval = 0\n"))
    settings = env.settings() if value is None else config_mod.load(env.config, env={})
    assert settings.alerts.digest == expect
    d = Daemon(settings, env.config)
    d.scheduler = BackgroundScheduler(timezone=timezone.utc)
    try:
        d._schedule()
        job = d.scheduler.get_job("digest")
        if expect is None:
            assert job is None
            return
        local = datetime.now().astimezone().tzinfo
        start = datetime(2026, 3, 1, 12, 0, tzinfo=local)
        fire = job.trigger.get_next_fire_time(None, start)
        assert (fire.hour, fire.minute, fire.day) == (*expect, 2), "next day, at that local time"
        assert job.misfire_grace_time == 3600 and job.coalesce
    finally:
        d.rt.close()


def test_bad_digest_time_names_the_key(tmp_path, hub, slack):
    env = PinsEnv(tmp_path, hub, slack)
    env.write()
    env.config.write_text(env.config.read_text().replace("[alerts]\n", '[alerts]\ndigest = "25:00"\n'))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check-config", "-c", str(env.config)])
    assert code == 78 and "alerts.digest: must be a local time of day HH:MM" in err.getvalue()


def test_daemon_digest_job_queues_and_delivers(hub, slack, tmp_path):
    hub.add_repo(REPO, files=FILES)
    env = PinsEnv(tmp_path, hub, slack, pins=[{"repo": REPO, "track": "main"}])
    d = Daemon(env.settings(), env.config)
    try:
        d.job_scan_pins()
        slack.down()
        d.job_digest()
        d.job_deliver()
        assert digests(slack) == []
        slack.up()
        d.rt.clock = lambda: datetime.now(timezone.utc) + timedelta(hours=1)  # past the backoff
        d.job_deliver()
        (msg,) = digests(slack)
        assert "pins watched: 1; unknown now: 0" in msg["text"]
    finally:
        d.rt.close()


@pytest.fixture
def kolkata(monkeypatch):
    """This host's local time zone is UTC+05:30 for the test (UTC, the host's own, proves nothing)."""
    import time

    import tzlocal

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    tzlocal.reload_localzone()
    yield
    monkeypatch.undo()
    time.tzset()
    tzlocal.reload_localzone()


def test_digest_fires_through_the_daemons_scheduler_at_local_time(hub, slack, tmp_path, kolkata):
    from tests.test_daemon import wait_for

    hub.add_repo(REPO, files=FILES)
    env = PinsEnv(tmp_path, hub, slack, pins=[{"repo": REPO, "track": "main"}])
    env.write()
    env.config.write_text(env.config.read_text().replace("[alerts]\n", '[alerts]\ndigest = "09:00"\n', 1))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["check-config", "-c", str(env.config)]) == 0
    d = Daemon(config_mod.load(env.config, env={}), env.config)
    d.scheduler = BackgroundScheduler(timezone=timezone.utc)
    try:
        d._schedule()
        job = d.scheduler.get_job("digest")
        fire = job.trigger.get_next_fire_time(None, datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc))
        assert fire.astimezone(timezone.utc) == datetime(2026, 3, 1, 3, 30, tzinfo=timezone.utc), \
            "09:00 in Kolkata is 03:30 UTC"
        for other in d.scheduler.get_jobs():  # only the digest and its delivery run here
            if other.id not in ("digest", "deliver"):
                other.remove()
        d.scheduler.get_job("deliver").modify(next_run_time=datetime.now(timezone.utc) + timedelta(days=1))
        job.modify(next_run_time=datetime.now(timezone.utc))  # its time has come
        d.scheduler.start()
        (msg,) = wait_for(lambda: digests(slack), "the digest delivered by the scheduler's jobs")
        assert "pins watched: 1" in msg["text"]
        after = d.scheduler.get_job("digest").next_run_time.astimezone(timezone.utc)
        assert (after.hour, after.minute) == (3, 30), "then again at the next 09:00 local"
    finally:
        if d.scheduler.running:
            d.scheduler.shutdown(wait=True)
        d.rt.close()


def _digest_daemon(hub, slack, tmp_path, at: str) -> Daemon:
    hub.add_repo(REPO, files=FILES)
    env = PinsEnv(tmp_path, hub, slack, pins=[{"repo": REPO, "track": "main"}])
    env.write()
    env.config.write_text(env.config.read_text().replace("[alerts]\n", f'[alerts]\ndigest = "{at}"\n', 1))
    d = Daemon(config_mod.load(env.config, env={}), env.config)
    d.scheduler = BackgroundScheduler(timezone=timezone.utc)
    d.scheduler.start(paused=True)  # computes next run times, runs nothing
    return d


def _stop(d: Daemon) -> None:
    d.scheduler.shutdown(wait=False)
    d.rt.close()


def _local_hhmm(delta: timedelta) -> str:
    return (datetime.now().astimezone() + delta).strftime("%H:%M")


def test_a_daemon_started_within_the_hour_after_the_digest_time_sends_it_at_once(hub, slack, tmp_path):
    d = _digest_daemon(hub, slack, tmp_path, _local_hhmm(-timedelta(minutes=20)))
    try:
        d._schedule()
        due = d.scheduler.get_job("digest").next_run_time
        assert due <= datetime.now(timezone.utc), "missed 20 minutes ago, nothing queued since: now, not tomorrow"
        d.job_digest()  # it ran; a restart (or a reload) now must not send it twice
        d._schedule()
        assert d.scheduler.get_job("digest").next_run_time > datetime.now(timezone.utc) + timedelta(hours=20)
    finally:
        _stop(d)


@pytest.mark.parametrize("delta", [-timedelta(minutes=90), timedelta(minutes=20)])
def test_a_digest_missed_long_ago_or_still_ahead_waits_for_its_time(hub, slack, tmp_path, delta):
    d = _digest_daemon(hub, slack, tmp_path, _local_hhmm(delta))
    try:
        d._schedule()
        assert d.scheduler.get_job("digest").next_run_time > datetime.now(timezone.utc) + timedelta(minutes=5)
    finally:
        _stop(d)
