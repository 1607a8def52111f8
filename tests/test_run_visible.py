"""`hubwatch run` is visible at the default verbosity: one INFO line per scan cycle and per
delivery batch; -q hides them; --log-format json makes them JSON objects. A real daemon process."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.test_daemon import FILES, Daemon, Env, wait_for

REPO = "org/alpha"


class Run(Daemon):
    """A daemon started with chosen flags instead of the suite's `-v --log-format json`."""

    def __init__(self, tmp, hub, n, flags):
        super().__init__(tmp, hub, n)
        self.flags = flags

    def start(self, config):
        from tests.test_daemon import child_env

        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config), *self.flags],
                                         cwd=self.tmp, env=child_env(self.tmp, self.hub),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        return self


@pytest.fixture
def env(hub, slack, tmp_path):
    hub.add_repo(REPO, files=FILES)
    e = Env(tmp_path, hub, slack)
    e.pins = [REPO]
    e.write()
    yield e
    e.stop_all()


def start(env, *flags) -> Run:
    d = Run(env.tmp, env.hub, len(env.daemons), flags).start(env.config)
    env.daemons.append(d)
    return d


def cycle_lines(d) -> list[str]:
    return [line for line in d.err.read_text(errors="replace").splitlines() if "hubwatch.cycle" in line]


def cycle_records(d) -> list[dict]:
    """The JSON cycle records of a daemon started with --log-format json, so far."""
    return [r for r in d.logs() if r.get("logger") == "hubwatch.cycle"]


def scan_records(d) -> list[dict]:
    return [r for r in cycle_records(d) if r.get("job") == "scan_pins"]


def test_default_verbosity_shows_each_scan_cycle_and_delivery_batch(env, hub, slack):
    d = start(env)
    wait_for(lambda: len([x for x in cycle_lines(d) if "scan cycle:" in x]) >= 2, "two scan cycle lines", show=d)
    first = next(x for x in cycle_lines(d) if "scan cycle:" in x)
    assert " INFO hubwatch.cycle: scan cycle: checked 1 pins, 0 changed, 0 unknown, 0 new findings; " in first
    assert re.search(r"\d+ Hub requests, budget left \d+ of \d+ \(window resets in \d+s\)$", first), first
    hub.commit(REPO, {"README.md": "changed"})
    wait_for(lambda: any("delivery: 1 sent, 0 to retry, 0 dead-lettered" in x for x in cycle_lines(d)),
             "the delivery line", show=d)
    assert any("scan cycle: checked 1 pins, 1 changed, 0 unknown, 1 new findings" in x for x in cycle_lines(d))
    assert len(slack.messages) == 1
    text = d.text()
    assert "job heartbeat done" not in text, "only the cycle lines are shown, not every job's INFO"


def test_quiet_hides_cycle_lines(env, hub, slack):
    loud, quiet = start(env), start(env, "-q")
    wait_for(lambda: len([x for x in cycle_lines(loud) if "scan cycle:" in x]) >= 3, "cycles of the loud daemon",
             show=loud)
    assert quiet.alive() and "hubwatch started" in quiet.text()
    assert cycle_lines(quiet) == []


def test_json_cycle_objects(env, hub, slack):
    d = start(env, "--log-format", "json")
    (rec, *_) = wait_for(lambda: cycle_records(d), "a JSON cycle record", show=d)
    assert rec["level"] == "info" and rec["job"] == "scan_pins" and rec["msg"].startswith("scan cycle:")
    assert (rec["checked"], rec["changed"], rec["unknown"], rec["new_findings"]) == (1, 0, 0, 0)
    assert rec["requests"] >= 1 and 0 <= rec["budget_left"] < rec["budget_quota"]


def test_a_cycle_that_cannot_reach_the_hub_says_why(slack, tmp_path):
    from types import SimpleNamespace

    from tests.test_once_outcome import _closed_port

    url = f"http://127.0.0.1:{_closed_port()}"
    e = Env(tmp_path, SimpleNamespace(url=url), slack)
    e.pins = [REPO]
    e.write()
    try:
        text, js = start(e), start(e, "--log-format", "json")
        wait_for(lambda: any("scan cycle:" in x for x in cycle_lines(text)), "a scan cycle line", show=text)
        line = next(x for x in cycle_lines(text) if "scan cycle:" in x)
        assert "scan cycle: checked 1 pins, 0 changed, 1 unknown, 0 new findings; " in line
        assert line.endswith(f"; the Hub at {url} could not be reached (connection refused)"), line

        (rec, *_) = wait_for(lambda: scan_records(js), "a JSON scan cycle record", show=js)
        assert rec["unknown"] == rec["checked"] == 1 and rec["unreachable"] == "connection refused"
        assert text.alive() and js.alive(), "an unreachable Hub is not a reason to exit"
    finally:
        e.stop_all()


def test_a_reachable_hub_adds_no_unreachable_field(env, hub, slack):
    hub.fail(r"/api/models/org/alpha/refs", status=503, times=None)
    d = start(env, "--log-format", "json")

    (rec, *_) = wait_for(lambda: scan_records(d), "a JSON scan cycle record", show=d)
    assert rec["unknown"] == 1 and "unreachable" not in rec and "could not be reached" not in rec["msg"]
