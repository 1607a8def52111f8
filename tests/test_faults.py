"""Robustness under failure: a flaky Hub, a long Slack outage, CLI readers racing the writer.

The contract under test is the one security teams rely on: a transient Hub error is "unknown",
never an alert of its own (no repo_unavailable, repo_recreated, pin_unreachable or invented move);
every real change is still alerted exactly once; a long "unknown" is one monitoring_degraded; and
alerts queued while Slack is down all arrive, once each, in the order they were found.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from monitor import config as config_mod
from monitor.alerts.delivery import deliver
from monitor.alerts.sinks import SlackSink
from monitor.detect.findings import Finding
from monitor.hub import session
from monitor.jobs.pins import scan_pins
from monitor.runtime import Runtime
from monitor.store import Store
from tests.emulator.slack import fingerprints
from tests.pins_env import Clock

ROOT = Path(__file__).resolve().parent.parent
FILES = {"config.json": '{"model_type": "gptj"}', "model.safetensors": b"\x00weights-v1", "README.md": "# model"}
FALSE_ALARMS = {"repo_unavailable", "repo_recreated", "pin_unreachable", "repo_renamed", "monitoring_degraded",
                "scan_flagged"}


def write_config(tmp: Path, hub, pins: list[dict], *, slack_url: str | None = None, timeout: str = "5s",
                 degraded_after: str = "30d", concurrency: int = 8, unavailable_after: int = 2) -> Path:
    lines = ["[hub]", f'endpoint = "{hub.url}"', "retries = 1", 'retry_wait = "0.01s"', f'timeout = "{timeout}"',
             f"concurrency = {concurrency}",
             "[state]", 'path = "state.db"',
             "[pins]", 'every = "10m"', 'metadata_every = "1h"', f'degraded_after = "{degraded_after}"',
             f"unavailable_after = {unavailable_after}", "jitter = 0",
             "[alerts]", "min_interval = 0",
             "[limits]", "hub_requests_per_5min = 100000"]
    if slack_url:
        lines += ["[slack]", f'webhook_url = "{slack_url}"']
    for pin in pins:
        lines.append("[[pin]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in pin.items()]
    path = tmp / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def runtime(tmp_path):
    """Build Runtimes on a fake clock; restore the process-wide Hub accounting afterwards."""
    built: list[Runtime] = []

    def make(config: Path, clock: Clock) -> Runtime:
        rt = Runtime.build(config_mod.load(config, env={}), clock=clock, stdout=io.StringIO())
        built.append(rt)
        return rt

    yield make
    for rt in built:
        rt.close()
    session.STATS.reset()
    session.BUDGET.reset()
    session.BUDGET.configure(1000)


def _move(f: Finding) -> tuple:
    ev = f.evidence
    return f.kind, f.subject, ev.get("ref"), ev.get("old_sha"), ev.get("new_sha")


# --- a flaky Hub ----------------------------------------------------------------------------------

def inject_hub_faults(hub, seed: int) -> None:
    """About 20% of all answers fail, in every way the Hub (or the network) fails."""
    mix = [dict(kind="status", status=500, probability=0.04),
           dict(kind="status", status=502, probability=0.03),
           dict(kind="status", status=429, retry_after=0, probability=0.03),
           dict(kind="timeout", probability=0.02),
           dict(kind="garbled", probability=0.03),
           dict(kind="truncated", probability=0.01),
           dict(kind="reset", probability=0.03)]
    for i, fault in enumerate(mix):
        hub.fail(None, times=None, seed=seed * 100 + i, **fault)


def test_flaky_hub_no_false_findings_and_every_real_change_once(hub, runtime, tmp_path):
    alpha, beta, gamma, delta, eps, zeta = ("org/alpha", "org/beta", "org/gamma", "org/delta", "org/eps",
                                            "org/zeta")
    for repo in (alpha, beta, gamma, delta, zeta):
        hub.add_repo(repo, files=FILES, author="org")
    hub.add_repo(eps, type="dataset", files={"data.parquet": b"1"}, author="org")
    beta_v1 = hub.create_tag(beta, "v1")
    hub.create_branch(beta, "dev")
    hub.create_tag(zeta, "v2")
    delta_pin = hub.repo_head(delta)
    pins = [{"repo": alpha, "track": "main"}, {"repo": beta, "track": "main"}, {"repo": gamma, "track": "main"},
            {"repo": delta, "revision": delta_pin}, {"repo": eps, "type": "dataset", "track": "main"},
            {"repo": zeta, "track": "v2"}]
    clock = Clock()
    # unavailable_after = 1: a single transient error misread as "gone" would alert at once.
    rt = runtime(write_config(tmp_path, hub, pins, timeout="1s", unavailable_after=1), clock)
    first = scan_pins(rt, complete=True)
    assert first.ok == 6 and first.new_findings == ()

    expected: list[tuple] = []
    heads = {alpha: hub.repo_head(alpha), gamma: hub.repo_head(gamma)}

    def alpha_commit(title: str) -> None:
        new = hub.commit(alpha, {"README.md": title}, title=title, author="org")
        expected.append(("ref_moved", alpha, "main", heads[alpha], new))
        heads[alpha] = new

    def beta_retag() -> None:
        new = hub.commit(beta, {"README.md": "dev work"}, branch="dev", author="org")
        hub.move_tag(beta, "v1", new)
        expected.append(("tag_moved", beta, "v1", beta_v1, new))

    def gamma_bin() -> None:
        new = hub.commit(gamma, {"pytorch_model.bin": b"pickle"}, title="small fix", author="org")
        expected.append(("risky_change", gamma, "main", heads[gamma], new))

    def delta_commit() -> None:  # the exact pin stays in main's history: nothing to report
        hub.commit(delta, {"README.md": "more"}, author="org")

    changes = {5: [lambda: alpha_commit("v2")], 12: [beta_retag], 18: [delta_commit], 25: [lambda: alpha_commit("v3")],
               30: [gamma_bin]}

    hub.timeout_sleep = 1.2  # just past the client's 1 s timeout
    inject_hub_faults(hub, seed=7)
    reports = []
    for cycle in range(50):
        for change in changes.get(cycle, ()):
            change()
        clock.advance(600)
        reports.append(scan_pins(rt))
    hub.clear_faults()
    time.sleep(session.STATS.paused_for() + 0.05)  # a rate-limit pause, if any, has run out
    for _ in range(2):
        clock.advance(600)
        reports.append(scan_pins(rt))

    faults = Counter(r.fault for r in hub.requests if r.fault)
    assert {"status", "timeout", "garbled", "truncated", "reset"} <= set(faults), faults
    injected = sum(faults.values()) / len(hub.requests)
    assert 0.1 < injected < 0.3, (faults, len(hub.requests))
    assert sum(r.unknown for r in reports) >= 10, "the faults must really have hidden repos from us"
    assert all(r.errors == 0 for r in reports), "an unexpected exception in a check is a bug"
    assert not hub.errors, hub.errors[0] if hub.errors else None
    assert reports[-1].ok == 6

    found = [s.finding for s in rt.store.findings()]
    assert not [f for f in found if f.kind in FALSE_ALARMS], [f.summary for f in found]
    assert sorted(_move(f) for f in found) == sorted(expected), [f.summary for f in found]
    assert len({f.fingerprint for f in found}) == len(found) == len(expected) == 4
    gamma_alert = next(f for f in found if f.kind == "risky_change")
    assert "pytorch_model.bin" in gamma_alert.evidence["files_added"]


def test_long_unknown_is_one_degraded_alert_and_recovery_is_quiet(hub, runtime, tmp_path):
    hub.add_repo("org/flaky", files=FILES)
    hub.add_repo("org/steady", files=FILES)
    pins = [{"repo": "org/flaky", "track": "main"}, {"repo": "org/steady", "track": "main"}]
    clock = Clock()
    rt = runtime(write_config(tmp_path, hub, pins, degraded_after="30m"), clock)
    scan_pins(rt, complete=True)

    hub.fail(r"/api/models/org/flaky", times=None, status=503)
    hub.fail(r"/api/models/org/flaky", times=None, kind="reset", probability=0.5, seed=1)
    degraded_at = []
    for cycle in range(12):  # two hours unknown, four times `degraded_after`
        clock.advance(600)
        report = scan_pins(rt)
        assert report.unknown == 1 and report.ok == 1 and report.errors == 0
        degraded_at += [cycle for f in report.new_findings if f.kind == "monitoring_degraded"]
    assert degraded_at == [3], "one alert once 30 min of unknown have passed, not one per cycle"

    hub.clear_faults()
    for _ in range(4):
        clock.advance(600)
        assert scan_pins(rt).ok == 2

    found = [s.finding for s in rt.store.findings()]
    assert [(f.kind, f.subject) for f in found] == [("monitoring_degraded", "org/flaky")]
    assert "503" in found[0].evidence["last_error"] or "unreachable" in found[0].evidence["last_error"]

    # A later, separate outage is a new degraded episode; a real change after it is still seen.
    hub.fail(r"/api/models/org/flaky", times=None, status=500)
    for _ in range(4):
        clock.advance(600)
        scan_pins(rt)
    hub.clear_faults()
    new = hub.commit("org/flaky", {"README.md": "v2"})
    clock.advance(600)
    scan_pins(rt)
    kinds = [(s.finding.kind, s.finding.evidence.get("new_sha")) for s in rt.store.findings()]
    assert kinds == [("monitoring_degraded", None), ("monitoring_degraded", None), ("ref_moved", new)]


def test_rate_limit_pause_is_unknown_and_sends_nothing_then_resumes(hub, runtime, tmp_path):
    repos = ["org/a", "org2/b", "org3/c"]  # one repo a namespace: each read per repo (no listing)
    for repo in repos:
        hub.add_repo(repo, files=FILES)
    clock = Clock()
    rt = runtime(write_config(tmp_path, hub, [{"repo": r, "track": "main"} for r in repos], concurrency=1,
                              unavailable_after=1), clock)
    scan_pins(rt, complete=True)
    hub.fail(r"/refs", status=429, retry_after=1, times=1)
    hub.clear_log()
    clock.advance(600)
    paused = scan_pins(rt)
    assert (paused.ok, paused.unknown, paused.unavailable) == (0, 3, 0)
    assert hub.count() == 1, "after a 429 nothing is sent until the Hub's reset time"
    assert 0 < session.STATS.paused_for() <= 1
    new = hub.commit("org2/b", {"README.md": "v2"})
    time.sleep(session.STATS.paused_for() + 0.05)
    clock.advance(600)
    assert scan_pins(rt).ok == 3
    assert [_move(s.finding)[::4] for s in rt.store.findings()] == [("ref_moved", new)]


# --- a long Slack outage --------------------------------------------------------------------------

FINGERPRINT = re.compile(r"[0-9a-f]{32}")


def _fingerprint(message: dict) -> str:
    (fp,) = fingerprints(message)
    assert FINGERPRINT.fullmatch(fp), fp
    return fp


def test_slack_outage_then_recovery_delivers_all_once_in_order(hub, slack, runtime, tmp_path):
    repos = [f"org/m{i}" for i in range(4)]
    for repo in repos:
        hub.add_repo(repo, files=FILES)
    clock = Clock()
    rt = runtime(write_config(tmp_path, hub, [{"repo": r, "track": "main"} for r in repos], slack_url=slack.url),
                 clock)
    scan_pins(rt, complete=True)
    real_sink = rt.sinks["slack"]
    # Nothing listens on this port: connection refused, the other way a webhook endpoint is "down".
    refused = SlackSink("http://127.0.0.1:9/services/T000/B000/XXXXrefused", timeout=1.0)

    def one_cycle(i: int) -> None:
        for j, repo in enumerate(repos):
            if (i + j) % 2 == 0:
                hub.commit(repo, {"README.md": f"cycle {i}"}, title=f"c{i}")
        clock.advance(300)
        scan_pins(rt)
        deliver(rt.store, rt.sinks, now=clock, sleep=lambda s: None, min_interval=0)

    slack.down()  # 500 rollup_error for every post
    for i in range(8):
        one_cycle(i)
    rt.sinks["slack"] = refused
    for i in range(8, 12):
        one_cycle(i)
    rt.sinks["slack"] = real_sink
    slack.up()
    slack.fail(status=503, times=3)
    slack.rate_limit(2, retry_after=120)
    for i in range(12, 16):
        one_cycle(i)
    # Five queued failures need five passes of the oldest row; nothing may overtake it meanwhile.
    assert slack.messages == [], "no alert delivered, none out of order, while the outage lasts"
    for _ in range(40):  # recovery: delivery passes every 5 minutes until the outbox drains
        clock.advance(300)
        deliver(rt.store, rt.sinks, now=clock, sleep=lambda s: None, min_interval=0)
        if rt.store.outbox_stats(clock()).pending == 0:
            break

    created = [s.finding.fingerprint for s in rt.store.findings()]
    delivered = [_fingerprint(m) for m in slack.messages]
    assert len(created) == 32
    assert delivered == created, "every alert, once, in the order it was found"
    stats = rt.store.outbox_stats(clock())
    assert (stats.pending, stats.claimed, stats.dead, stats.sent) == (0, 0, 0, 32)
    assert 500 in slack.attempts and 503 in slack.attempts and 429 in slack.attempts


# --- CLI readers racing a writer ------------------------------------------------------------------

@pytest.mark.slow
def test_cli_readers_never_see_database_locked(hub, tmp_path):
    config = write_config(tmp_path, hub, [{"repo": "org/m", "track": "main"}])
    state = tmp_path / "state.db"
    stop, written, failures = threading.Event(), [0], []

    def writer() -> None:
        store = Store.open(state)
        clock = Clock()
        try:
            while not stop.is_set():
                n = written[0]
                f = Finding.make("ref_moved", "medium", f"org/m{n % 50}", f"moved {n}", key=[n],
                                 evidence={"n": n, "pad": "x" * 2000})
                store.record(f"model:org/m{n % 50}", json.dumps({"n": n}), [f], ["slack", "stdout"], clock(),
                             observation=json.dumps({"n": n}))
                clock.advance(1)
                written[0] += 1
        except Exception as e:  # surfaced by the main thread
            failures.append(repr(e))
        finally:
            store.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_TOKEN", "HUBWATCH_"))}
    env["PYTHONPATH"] = str(ROOT)
    results: list[subprocess.CompletedProcess] = []

    def reader(times: int) -> None:
        for _ in range(times):
            results.append(subprocess.run([sys.executable, "-m", "monitor", "findings", "--json", "-c", str(config)],
                                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path))

    Store.open(state).close()  # the schema exists before the race starts
    w = threading.Thread(target=writer, name="writer")
    w.start()
    try:
        while written[0] < 20:
            time.sleep(0.01)
        readers = [threading.Thread(target=reader, args=(4,)) for _ in range(4)]
        for r in readers:
            r.start()
        for r in readers:
            r.join()
    finally:
        stop.set()
        w.join(timeout=30)
    assert not failures, failures
    assert len(results) == 16
    for r in results:
        assert "locked" not in r.stderr and "busy" not in r.stderr.lower(), r.stderr
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        assert rows and all(row["kind"] == "ref_moved" for row in rows)
    counts = [len(r.stdout.splitlines()) for r in results]
    assert max(counts) > min(counts) or written[0] > counts[0], "the readers raced real writes"
    assert written[0] > 100
