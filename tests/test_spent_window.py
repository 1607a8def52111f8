"""Issue 7 point 7, end to end: a process started into a spent window (`RateLimit: "api";r=0;t=N`)
sends at most 3 requests before pausing until t, then resumes. Real `hubwatch once` and
`hubwatch run` subprocesses; the requests are counted in the emulator's log."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.test_daemon import FILES, child_env, env, wait_for  # noqa: F401 - env is a fixture

REPOS = [f"org/m{i}" for i in range(12)]


def spent(env, resets_in: int) -> None:
    for repo in REPOS:
        env.hub.add_repo(repo, files=FILES)
    env.pins = REPOS
    env.write()
    env.hub.spend_window(resets_in)
    env.hub.clear_log()


def test_once_started_into_a_spent_window_sends_at_most_three_requests(env):
    spent(env, resets_in=300)
    run = subprocess.run([sys.executable, "-m", "monitor", "once", "-c", str(env.config)], cwd=env.tmp,
                         env=child_env(env.tmp, env.hub), capture_output=True, text=True, timeout=120)
    sent = [q.target for q in env.hub.requests]
    assert 1 <= len(sent) <= 3, sent
    assert all(q.status == 429 for q in env.hub.requests)
    # The Hub answered (429): its pins are unknown (not "unreachable"): exit 75, and the line says why.
    assert run.returncode == 75, run.stderr
    assert re.search(r"^hubwatch: the Hub's API quota is spent until \d\d:\d\d:\d\d UTC: 12 pins not checked "
                     r"\(use --wait\)$", run.stderr, re.M), run.stderr
    assert "checked 12 pins: 0 changed, 12 unknown, 0 new findings" in run.stderr and env.findings() == []


def test_daemon_started_into_a_spent_window_pauses_until_t_then_resumes(env):
    spent(env, resets_in=3)
    # Look-alike and roster jobs start with the pin scan: none of them may fan out before the first answer.
    env.write(env.render() + '[lookalike]\nprotected = ["EleutherAI"]\n[roster]\nusers = ["julien-c"]\n')
    d = env.start()

    def answered() -> bool:
        return {q.path for q in env.hub.requests if q.status == 200} >= {f"/api/models/{r}/refs" for r in REPOS}

    wait_for(answered, "every pin's refs read once the window reset", timeout=60, show=d)
    log = env.hub.requests
    first_ok = next(i for i, q in enumerate(log) if q.status != 429)
    assert first_ok <= 3, [q.target for q in log[:first_ok + 1]]
    assert all(q.status != 429 for q in log[first_ok:]), "after t, nothing more is refused"
    assert env.findings() == []
