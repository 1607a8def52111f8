"""Issue 18, end to end: what arrives at /hooks/hub is a hint, never evidence, and a flood of it
cannot starve the pins. A `hubwatch run` subprocess, the Hub emulator and the Slack receiver."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import requests

from monitor.jobs.events import EventGate, TagClaim
from tests.test_daemon import FILES, wait_for
from tests.test_daemon_http import HOOK_SECRET, HttpEnv, base_url, event

HEADERS = {"X-Webhook-Secret": HOOK_SECRET}


@pytest.fixture
def env(hub, slack, tmp_path):
    e = HttpEnv(tmp_path, hub, slack)
    e.pins_every = "1h"  # only the scan at start (and after a reload) polls
    yield e
    e.stop_all()


def _config(env, min_interval: str | None = None, quota: int | None = None) -> None:
    text = env.render()
    if min_interval:
        text = text.replace('secret_file = "hook_secret"\n', f'secret_file = "hook_secret"\nmin_interval = "{min_interval}"\n')
    if quota:
        text += f"[limits]\nhub_requests_per_5min = {quota}\n"
    env.write(text)


def metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} ([0-9.e+]+)$" if want else rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def post(url: str, body: dict) -> requests.Response:
    r = requests.post(f"{url}/hooks/hub", json=body, timeout=10, headers=HEADERS)
    assert r.status_code == 200, r.text
    return r


def event_checks_done(url: str) -> float:
    return metric(url, "hubwatch_job_runs_total", job="event", outcome="ok")


def test_1000_fake_tag_claims_raise_nothing_while_a_checked_tag_move_alerts(env, hub, slack):
    hub.add_repo("org/alpha", files=FILES)
    v1 = hub.create_tag("org/alpha", "v1")
    env.pins = ["org/alpha"]
    _config(env, min_interval="1s")
    d = env.start()
    url = base_url(d)
    wait_for(lambda: env.baselined(1), "baseline", show=d)
    hub.clear_log()
    # 1,000 claims of tags the repo never had (a 135 KB body), and one of a tag we know but with
    # an oldSha that is not the head we recorded
    fake = [(f"refs/tags/v{i}", os.urandom(20).hex(), os.urandom(20).hex()) for i in range(1000)]
    fake[0] = ("refs/tags/v1", os.urandom(20).hex(), os.urandom(20).hex())
    assert post(url, event("org/alpha", fake)).json()["status"] == "checking pinned repo"
    wait_for(lambda: event_checks_done(url) >= 1, "the event check", show=d)
    assert env.findings() == [] and slack.messages == []
    alpha = [q.path for q in hub.requests if "/org/alpha" in q.path]
    assert alpha == ["/api/models/org/alpha/refs"], "no move seen: one refs read, nothing more"
    # The tag moved to a new commit and back before we could look: the claim holds (oldSha is our
    # recorded head, newSha a commit of the repo), so it is kept; a random newSha is not.
    evil = hub.commit("org/alpha", {"pytorch_model.bin": b"x"}, branch="main")
    hub.clear_log()
    claims = [("refs/tags/v1", v1, evil), ("refs/tags/v1", v1, os.urandom(20).hex())]
    assert post(url, event("org/alpha", claims)).json()["status"] in ("checking pinned repo",
                                                                      "merged into the pinned repo's next check")
    wait_for(lambda: "tag_moved" in env.kinds(), "the checked tag move", show=d)
    (tag,) = [f for f in env.findings() if f[0] == "tag_moved"]
    assert sorted(env.kinds()) == ["risky_change", "tag_moved"], "and main's own move, seen by our refs read"
    reads = [q.target for q in hub.requests if "/revision/" in q.path and "expand=sha" in q.target]
    assert len(reads) == 2, "one read per claim that named our recorded head"


def test_300_events_cost_one_check_250_unwatched_cost_nothing_and_the_pins_keep_their_budget(env, hub, slack):
    hub.add_repo("org/alpha", files=FILES)
    hub.add_repo("org/beta", files=FILES)
    env.pins = ["org/alpha", "org/beta"]
    # a small quota: the event share is 10 of its 100 requests per window, and pins need theirs
    _config(env, quota=100)
    d = env.start()
    url = base_url(d)
    wait_for(lambda: env.baselined(2), "baseline", show=d)
    hub.clear_log()
    for _ in range(300):  # min_interval is 60 s: all of these fall in one interval
        post(url, event("org/alpha"))
    wait_for(lambda: event_checks_done(url) >= 1, "the event check", show=d)
    assert metric(url, "hubwatch_hub_events_total", outcome="checked") == 1
    assert metric(url, "hubwatch_hub_events_total", outcome="merged") == 299
    alpha = [q.path for q in hub.requests if "/org/alpha" in q.path]
    assert alpha == ["/api/models/org/alpha/refs"], alpha
    hub.clear_log()
    for i in range(250):  # look-alike namespaces, non-existent repos: nobody watches them
        assert post(url, event(f"EleuterAI-{i}/gpt-j-6b")).json()["status"] == "ignored: not watched"
    assert metric(url, "hubwatch_hub_events_total", outcome="ignored") == 250
    assert hub.requests == [], "events for names nobody watches cost no Hub request"
    # the next scan (a reload schedules one at once) checks every pin and alerts a change
    hub.commit("org/beta", {"README.md": "changed"}, title="silent change")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "ref_moved" in env.kinds(), "the pin alert from the next scan", show=d)
    assert "budget spent" not in d.text()
    assert metric(url, "hubwatch_hub_budget_denied_total") == 0


def test_an_event_whose_share_is_spent_is_deferred_and_its_repo_goes_first(env, hub, slack):
    for name in ("org/gamma", "org/alpha", "org/beta"):
        hub.add_repo(name, files=FILES)
    env.pins = ["org/gamma", "org/alpha", "org/beta"]  # gamma would be checked first
    env.concurrency = 1  # one repo at a time: the scan's order is the order of its requests
    # quota 40: the event share is 4 requests per window, an event check of alpha costs 1
    _config(env, min_interval="1s", quota=40)
    d = env.start()
    url = base_url(d)
    wait_for(lambda: env.baselined(3), "baseline", show=d)
    for n in range(1, 6):  # spend the event share on alpha, one check a second
        post(url, event("org/alpha"))
        wait_for(lambda: event_checks_done(url) >= n, "an event check", show=d)
    assert metric(url, "hubwatch_hub_events_total", outcome="deferred") == 1, "the fifth found it spent"
    hub.clear_log()
    hub.commit("org/beta", {"README.md": "changed"}, title="silent change")
    post(url, event("org/beta"))
    wait_for(lambda: metric(url, "hubwatch_hub_events_total", outcome="deferred") >= 2, "the deferral", show=d)
    assert hub.requests == [] and env.kinds() == [], "nothing read, nothing recorded: not even 'unknown'"
    d.signal(signal.SIGHUP)  # the next scan
    wait_for(lambda: "ref_moved" in env.kinds(), "beta's change from the next scan", show=d)
    order = [q.path.split("/")[4] for q in hub.requests if q.path.endswith("/refs")]
    assert order == ["alpha", "beta", "gamma"], "the deferred repos go first, oldest deferral first"


def test_the_gate_holds_300_events_in_13s_to_one_check_per_min_interval():
    """Injectable clock: 300 events for one repo over 13 s; the scheduler starts each check when
    it is due. One check per min_interval, and the events after a check are never dropped."""
    for interval, most in ((60.0, 1), (5.0, 3), (1.0, 13)):
        now = [0.0]
        gate = EventGate(clock=lambda: now[0])
        due: list[float] = []
        starts = []
        claim = TagClaim("v1", "a" * 40, "b" * 40)
        for i in range(300):
            now[0] = i * 13 / 300
            while due and due[0] <= now[0]:
                due.pop(0)
                starts.append(now[0])
                gate.start("model:org/alpha")
            outcome, delay = gate.offer("model:org/alpha", [claim] * 9, interval)
            if outcome == "checked" or delay > 0:
                due.append(now[0] + delay)
        assert len(starts) + (1 if due and due[0] <= 13 else 0) <= most + 1
        assert all(b - a >= interval - 1e-9 for a, b in zip(starts, starts[1:])), starts
        assert due, "the events after the last check still have a check coming"
        claims, events = gate.start("model:org/alpha")
        assert claims == [claim], "one claim kept, however often it was sent"
        assert events >= 1


def test_events_name_only_pins_and_only_repo_scopes(env, hub, slack):
    hub.add_org("EleutherAI", verified=True, followers=5000, created_at="2020-01-01T00:00:00.000Z")
    hub.add_repo("EleutherAI/gpt-j-6b", files=FILES)
    hub.add_repo("org/alpha", files=FILES)
    env.pins = ["org/alpha"]
    env.write()
    os.chmod(env.tmp / "hook_secret", 0o640)
    os.chmod(env.tmp / "signing", 0o600)
    d = env.start()
    url = base_url(d)
    wait_for(lambda: env.baselined(1), "baseline", show=d)
    # start-up says it once, naming the key, and runs on
    (warning,) = [r["msg"] for r in d.logs() if "readable by group or others" in r.get("msg", "")]
    assert warning.startswith("hub_webhook.secret_file: ") and "mode 0640" in warning
    hub.clear_log()
    # a protected org's repo (registered by `webhooks install`, but not pinned): the scans' job
    assert post(url, event("EleutherAI/gpt-j-6b", scope="repo")).json()["status"] == "ignored: not watched"
    assert post(url, event("org/alpha", scope="discussion")).json()["status"] == "ignored: scope discussion"
    time.sleep(1.5)  # room for a check that should not happen
    assert [q.path for q in hub.requests if "gpt-j-6b" in q.path or "/org/alpha" in q.path] == []
    assert event_checks_done(url) == 0 and metric(url, "hubwatch_hub_events_total", outcome="ignored") == 2


def test_cli_ack_unack_loop_during_daemon_cycles_never_reports_locked(env, hub, slack):
    """Every write transaction opens with BEGIN IMMEDIATE: the CLI's (un)ack and the daemon's scan
    and delivery writes wait for each other on the busy timeout, never fail "database is locked"."""
    names = [f"org/r{i}" for i in range(4)]
    for name in names:
        hub.add_repo(name, files=FILES)
    env.pins = names
    env.pins_every = "1s"
    _config(env)
    d = env.start()
    wait_for(lambda: env.baselined(4), "baseline", show=d)
    hub.commit("org/r0", {"README.md": "changed"}, title="change")
    fp = wait_for(lambda: next((f[2] for f in env.findings() if f[1] == "org/r0"), None), "the finding", show=d)
    scans = d.scans()
    for i in range(4):
        hub.commit(f"org/r{1 + i % 3}", {"README.md": f"v{i}"}, title=f"v{i}")  # more writes for the daemon
        for verb in ("ack", "unack"):
            p = env.cli(verb, fp)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0 and b"locked" not in err, (verb, err)
    assert d.scans() > scans, "the daemon kept scanning meanwhile"
    assert "locked" not in d.text() and "Traceback" not in d.text()


def test_unack_waits_for_a_writer_that_commits_between_its_read_and_its_write(tmp_path):
    """Deterministic form of the race above: the daemon commits a scan between unack's read and its
    write. A deferred transaction would then fail at once ("database is locked": its snapshot is
    stale, waiting cannot help); BEGIN IMMEDIATE takes the write lock first, so the daemon waits."""
    import threading
    from datetime import datetime, timezone

    from monitor.detect.findings import Finding
    from monitor.store import Store

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Store.open(tmp_path / "s.db") as cli, Store.open(tmp_path / "s.db") as daemon:
        f = Finding.make("ref_moved", "high", "a/b", "moved", key=[1])
        daemon.record("k", "{}", [f], ["slack"], t0)
        cli.ack([f.fingerprint], None, t0, "alice")
        errors: list[BaseException] = []
        writer = threading.Thread(target=lambda: _record(daemon, t0, errors))

        def between(sql, params):
            if sql.startswith("UPDATE findings SET acked_at = NULL") and writer.ident is None:
                writer.start()
                writer.join(0.5)  # the daemon's write: done at once, or waiting for our lock

        with cli.db.tracer(between):
            cli.unack([f.fingerprint])
        writer.join(15)
        assert errors == [] and not writer.is_alive()
        (row,) = cli.findings()
        assert row.acked_at is None and cli.load_state("k2") == '{"n": 2}'


def _record(store, now, errors) -> None:
    try:
        store.record("k2", '{"n": 2}', [], ["slack"], now)
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def test_readyz_answers_from_memory_without_writing_the_database(hub, slack, tmp_path):
    """/readyz is unauthenticated: 100 requests leave the database untouched (data_version, which
    changes whenever another connection commits, stays the same)."""
    import sqlite3

    from tests.test_daemon import Env

    env = Env(tmp_path, hub, slack)
    env.pins_every = "1h"
    hub.add_repo("org/alpha", files=FILES)
    env.pins = ["org/alpha"]
    d = env.start()
    try:
        url = base_url(d)
        wait_for(lambda: env.baselined(1), "baseline", show=d)
        wait_for(lambda: requests.get(f"{url}/readyz", timeout=5).status_code == 200, "ready", show=d)
        conn = sqlite3.connect(f"file:{env.state}?mode=ro", uri=True)
        try:
            before = conn.execute("PRAGMA data_version").fetchone()[0]
            for _ in range(100):
                r = requests.get(f"{url}/readyz", timeout=5)
                assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"
            assert conn.execute("PRAGMA data_version").fetchone()[0] == before
            assert conn.execute("SELECT count(*) FROM meta WHERE key = 'readyz'").fetchone()[0] == 0
        finally:
            conn.close()
    finally:
        env.stop_all()
