"""`hubwatch status [--json]`: one row per pin and one for look-alike discovery, through the CLI,
also while a `hubwatch run` daemon is writing the same database."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.pins_env import PinsEnv
from tests.test_daemon import FILES as DAEMON_FILES
from tests.test_daemon import Env as DaemonEnv
from tests.test_daemon import wait_for

OK, GONE, FLAKY = "org/alpha", "org/gone", "org/flaky"
FILES = {"config.json": "{}", "README.md": "# model"}


def rows(r, kinds=("pin", "lookalikes")) -> list[dict]:
    assert r.code == 0, r
    out = [json.loads(line) for line in r.out.splitlines() if line.strip()]
    return [x for x in out if x["kind"] in kinds]


@pytest.fixture
def env(hub, tmp_path):
    hub.add_repo(OK, files=FILES)
    hub.add_repo(GONE, files=FILES)
    hub.add_repo(FLAKY, files=FILES)
    return PinsEnv(tmp_path, hub, None, pins=[{"repo": OK, "track": "main"}, {"repo": GONE, "track": "main"},
                                              {"repo": FLAKY, "track": "main"}])


def test_status_before_anything_ran(env):
    r = env.run("status", "--json")
    assert [(x["repo"], x["state"], x["last_checked"], x["heads"]) for x in rows(r)] == [
        (OK, "pending", None, {}), (GONE, "pending", None, {}), (FLAKY, "pending", None, {})]
    assert "no state database" in r.err


def test_status_rows_per_pin(env, hub):
    head = hub.commit(OK, {"README.md": "v1"})
    env.once()
    hub.delete_repo(GONE)
    hub.fail(r"/api/models/org/flaky/refs", status=503, times=None)
    new = hub.commit(OK, {"README.md": "v2"})
    assert env.run("once").code == 75  # flaky is still unknown after the retry
    by_repo = {x["repo"]: x for x in rows(env.run("status", "--json"))}
    ok, gone, flaky = by_repo[OK], by_repo[GONE], by_repo[FLAKY]
    assert ok["kind"] == "pin" and ok["state"] == "ok" and ok["heads"] == {"main": new} and new != head
    assert ok["type"] == "model" and ok["track"] == "main" and ok["revision"] is None
    assert ok["open_findings"] == 1 and ok["last_error"] is None
    assert ok["last_ok"] == ok["last_checked"] and ok["last_ok"].endswith("Z")
    assert gone["state"] == "unavailable" and "not found" in gone["last_error"] and gone["last_ok"] is not None
    assert flaky["state"] == "unknown" and "503" in flaky["last_error"]
    assert flaky["last_ok"] < flaky["last_checked"] or flaky["last_ok"] == flaky["last_checked"]
    fp = json.loads(env.run("findings", "--json").out.splitlines()[0])["fingerprint"]
    env.run("ack", fp)
    assert {x["repo"]: x["open_findings"] for x in rows(env.run("status", "--json"))}[OK] == 0
    text = env.run("status").out.splitlines()
    assert text[0].startswith(f"ok           model:{OK}@main  heads main={new[:12]}")
    assert text[2].startswith(f"unknown      model:{FLAKY}@main") and "error: " in text[2]


def test_status_says_unreachable(tmp_path):
    from tests.test_once_outcome import _closed_port

    port = _closed_port()
    env = PinsEnv(tmp_path, SimpleNamespace(url=f"http://127.0.0.1:{port}"), None, pins=[{"repo": OK, "track": "main"}])
    assert env.run("once").code == 75
    (row,) = rows(env.run("status", "--json"))
    assert row["state"] == "unreachable" and "connection refused" in row["last_error"] and row["last_ok"] is None


def test_status_lookalike_row(env, hub):
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 6\n'
    before = rows(env.run("status", "--json"))[-1]
    assert before["kind"] == "lookalikes" and before["last_run_at"] is None and before["candidates_covered"] == 0
    assert before["candidates"] > 100 and before["probe_budget"] == 6
    env.once()
    after = rows(env.run("status", "--json"))[-1]
    assert after["candidates_covered"] == 3 and after["candidates"] == before["candidates"]
    assert after["last_run_at"] and after["last_run"]["probed"] == 3
    budget = after["last_run"]["budget"]
    assert budget["quota"] > 0 and 0 <= budget["remaining"] < budget["quota"], "the budget as the run left it"
    text = env.run("status").out.splitlines()[-2]  # the quota line comes last
    assert text.startswith("look-alike discovery: last run ") and f"3 of {after['candidates']} candidate names covered" in text


def test_status_while_the_daemon_runs(hub, slack, tmp_path):
    env = DaemonEnv(tmp_path, hub, slack)
    hub.add_repo(OK, files=DAEMON_FILES)
    env.pins = [OK]
    d = env.start()
    try:
        wait_for(lambda: env.baselined(1), "baseline", show=d)
        for _ in range(3):  # the daemon keeps scanning (every 1 s) while status reads
            p = env.cli("status", "--json")
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
            (row,) = [x for x in map(json.loads, out.decode().splitlines()) if x["kind"] == "pin"]
            assert row["repo"] == OK and row["state"] == "ok" and row["heads"]["main"]
        assert d.alive()
    finally:
        env.stop_all()


def test_status_names_gated_disabled_missing_ref_and_unreachable_pin(hub, tmp_path):
    gated, disabled, branchy, pinned = "org/gated", "org/disabled", "org/branchy", "org/pinned"
    for repo in (gated, disabled, branchy, pinned):
        hub.add_repo(repo, files=FILES)
    hub.create_branch(branchy, "dev")
    old = hub.commit(pinned, {"README.md": "soon orphaned"})
    env = PinsEnv(tmp_path, hub, None, pins=[
        {"repo": gated, "track": "main"}, {"repo": disabled, "track": "main"},
        {"repo": branchy, "track": "dev"}, {"repo": pinned, "revision": old}])
    env.once()
    hub.set_gated(gated, "manual")
    hub.set_disabled(disabled)
    hub.delete_branch(branchy, "dev")
    hub.rewrite_history(pinned)
    hub.gc(pinned)
    env.run("once")  # findings: exit code per finding severity is not the point here
    env.run("once")  # a second definitive answer, as the Hub's "gone" needs
    states = {x["repo"]: x["state"] for x in rows(env.run("status", "--json"))}
    assert states == {gated: "gated", disabled: "disabled", branchy: "ref_missing",
                      pinned: "revision_unreachable"}, states


def test_status_text_escapes_hub_controlled_text(env, hub):
    """The Hub's X-Request-Id reaches the stored error: `status` prints it through the same terminal
    escaping as `findings` (no escape sequence reaches the terminal); --json keeps it as data."""
    env.once()
    rid = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred"
    hub.respond(r"/api/models/org/flaky/refs", 400, '{"error": "nope"}', times=None,
                headers=[("X-Request-Id", rid), ("Content-Type", "application/json")])
    r = env.run("once")
    assert r.code == 75 and "\x1b" not in r.err, "a pin left unknown: 75, its line escaped"
    (row,) = [r for r in rows(env.run("status", "--json")) if r["repo"] == FLAKY]
    assert "\x1b" in row["last_error"], "the raw error, as data"
    (line,) = [line for line in env.run("status").out.splitlines() if FLAKY in line]
    assert "\x1b" not in line and "\x07" not in line and "red" in line and "error: " in line


def test_errors_and_log_lines_escape_hub_controlled_text(env, hub):
    """The same X-Request-Id in a fatal error (`lookup`) and in a log line (`once -v`): stripped of
    escape sequences like `status` and `findings` do; the JSON log keeps it as (escaped) data."""
    env.once()
    rid = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b2J"
    hub.respond(r"^GET /api/", 400, '{"error": "nope"}', times=None,
                headers=[("X-Request-Id", rid), ("Content-Type", "application/json")])
    for args in (("lookup", "someorg"), ("once", "-v")):
        r = env.run(*args)
        assert "request red" in r.err, (args, r)
        assert not any(c in r.err for c in "\x1b\x07\x9b"), (args, r.err)
    r = env.run("once", "-v", "--log-format", "json")
    assert "\\u001b" in r.err and "\x1b" not in r.err
def test_status_shows_last_ok_age_and_the_quota_per_bucket(env, hub):
    env.once()
    hub.fail(r"/api/models/org/flaky/refs", status=503, times=None)
    env.run("once")
    r = env.run("status", "--json")
    pins = {x["repo"]: x for x in rows(r, ("pin",))}
    assert all(0 <= x["last_ok_age_seconds"] < 600 for x in pins.values() if x["last_ok"]), pins
    (q,) = rows(r, ("quota",))
    assert set(q["buckets"]) == {"api", "resolvers", "pages"}
    api = q["buckets"]["api"]
    assert api["quota"] == 500 and 0 < api["remaining"] < 500 and api["reset"].endswith("+00:00")
    assert q["buckets"]["resolvers"]["quota"] == 3000, "each bucket its own quota (anonymous)"
    text = env.run("status").out.splitlines()
    assert any(" ago)" in line and line.startswith("ok") for line in text), text
    assert text[-1].startswith("Hub quota (as of ") and "api " in text[-1] and "of 500 left, resets " in text[-1]
