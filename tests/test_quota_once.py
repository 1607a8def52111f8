"""Issue 16 point 2, through the CLI: `hubwatch once` under a quota that does not cover every pin.

Real `hubwatch once` subprocesses against the emulator with a small quota and a short window
(the same arithmetic as 1,000 pins on a free token's 1,000 requests per 5 minutes, scaled down);
request counts, never durations, are asserted."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys

from tests.test_daemon import FILES, child_env, env  # noqa: F401 - env is a fixture

QUOTA_LINE = re.compile(r"^hubwatch: the Hub's API quota is spent until (\d\d:\d\d:\d\d) UTC: (\d+) pins not checked "
                        r"\(use --wait\)$", re.M)
SUMMARY = re.compile(r"^checked (\d+) pins: (\d+) changed, (\d+) unknown, (\d+) new findings$", re.M)


def seed(env, n: int, quota: int, window: int) -> None:
    for i in range(n):
        env.hub.add_repo(f"org{i % 3}/m{i}", files=FILES)
    env.pins = [f"org{i % 3}/m{i}" for i in range(n)]
    env.write()
    env.hub.rate_limit(quota, window=window)
    env.hub.clear_log()


def once(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", "once", "-c", str(env.config), *args], cwd=env.tmp,
                          env=child_env(env.tmp, env.hub), capture_output=True, text=True, timeout=180)


def checked_ok(env) -> int:
    with sqlite3.connect(env.state) as db:
        rows = db.execute("SELECT state_json FROM repo_state").fetchall()
    return sum(1 for (s,) in rows if json.loads(s).get("last_ok"))


def test_once_without_wait_stops_when_the_quota_is_spent_and_exits_75(env):
    seed(env, 40, quota=40, window=120)  # the window outlasts the run: nothing resets meanwhile
    r = once(env)
    assert r.returncode == 75, r.stderr
    line, summary = QUOTA_LINE.search(r.stderr), SUMMARY.search(r.stderr)
    assert line and summary, r.stderr
    assert line.start() < summary.start(), "the reason comes before the summary"
    not_checked = int(line.group(2))
    assert summary.groups() == ("40", "0", str(not_checked), "0")
    assert 0 < not_checked < 40 and checked_ok(env) == 40 - not_checked
    api = [q for q in env.hub.requests if q.path.startswith("/api/")]
    assert all(q.status != 429 for q in api), "the run stops at the budget, before the Hub refuses"
    assert len(api) <= 40
    # A second run inside the same window (a complete check again): its first request tells the
    # quota is spent, so no pin is checked; with --log-format json the reason is an event too.
    env.hub.clear_log()
    r = once(env, "--log-format", "json")
    assert r.returncode == 75
    events = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
    spent = [e for e in events if e.get("event") == "quota_spent"]
    assert len(spent) == 1 and spent[0]["pins_not_checked"] == 40, events
    assert QUOTA_LINE.search("hubwatch: " + spent[0]["msg"]) is not None
    assert len([q for q in env.hub.requests if q.path.startswith("/api/")]) <= 3


def test_once_wait_waits_for_the_next_windows_until_every_pin_is_checked(env):
    seed(env, 24, quota=30, window=2)  # ~3 requests per new pin: three windows or more
    r = once(env, "--wait")
    assert r.returncode == 0, r.stderr
    assert SUMMARY.search(r.stderr).groups() == ("24", "0", "0", "0")
    progress = re.findall(r"^hubwatch: (\d+)/24 pins checked; the Hub's API quota is spent until "
                          r"\d\d:\d\d:\d\d UTC, waiting$", r.stderr, re.M)
    assert progress and all(0 < int(n) < 24 for n in progress), r.stderr
    assert [int(n) for n in progress] == sorted(int(n) for n in progress), "progress only grows"
    assert checked_ok(env) == 24
    assert all(q.status != 429 for q in env.hub.requests)
    assert not QUOTA_LINE.search(r.stderr)


def test_once_exit_precedence():
    from monitor.commands.once import once_exit

    assert once_exit(set()) == 0
    assert once_exit({75}) == 75
    assert once_exit({75, 1}) == 1
    assert once_exit({75, 1, 78}) == 78
    assert once_exit({78, 75}) == 78


def test_once_wait_gives_up_when_a_whole_window_cannot_cover_one_repo(env):
    seed(env, 3, quota=2, window=2)  # the Hub allows 2 a window, 1 planned: less than one check
    r = once(env, "--wait")
    assert r.returncode == 75, r.stderr
    assert QUOTA_LINE.search(r.stderr) and "checked 3 pins: 0 changed, 3 unknown" in r.stderr
