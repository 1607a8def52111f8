"""`hubwatch once` says what happened: the summary line, the unreachable-Hub line and exit 75,
and the JSON form. Through the real CLI against the Hub emulator (or nothing at all)."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest

from tests.pins_env import PinsEnv

REPO, OTHER = "EleutherAI/gpt-j-6b", "openai-community/gpt2"
FILES = {"config.json": "{}", "README.md": "# model"}


@pytest.fixture
def env(hub, tmp_path):
    hub.head = hub.add_repo(REPO, files=FILES)
    hub.add_repo(OTHER, files=FILES)
    return PinsEnv(tmp_path, hub, None, pins=[{"repo": REPO, "track": "main"}, {"repo": OTHER, "track": "main"}])


_REFUSING: list[socket.socket] = []


def _closed_port() -> int:
    """A port bound but never listened on: connections are refused, and no other process (other
    test servers on this host) can take it over while the test runs."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _REFUSING.append(s)  # kept open for the session
    return s.getsockname()[1]


def _last_lines(err: str, n: int) -> list[str]:
    return [line for line in err.splitlines() if line.strip()][-n:]


def test_once_ends_with_the_summary_line(env, hub):
    r = env.once()
    assert _last_lines(r.err, 1) == ["checked 2 pins: 0 changed, 0 unknown, 0 new findings"]
    hub.commit(REPO, {"README.md": "# v2"}, title="v2")
    r = env.once()
    assert _last_lines(r.err, 1) == ["checked 2 pins: 1 changed, 0 unknown, 1 new findings"]


def test_two_pins_on_one_repo_count_as_two(env, hub):
    env.pins.append({"repo": REPO, "track": "main", "revision": hub.head})
    r = env.once()
    assert _last_lines(r.err, 1) == ["checked 3 pins: 0 changed, 0 unknown, 0 new findings"]


def test_a_failing_hub_is_unknown_but_not_unreachable(env, hub):
    env.once()
    hub.fail(r"/api/models/openai-community/gpt2/refs", status=503, times=None)
    r = env.run("once")  # the Hub answered: an ordinary transient failure, not "unreachable"
    assert r.code == 75, "a pin still unknown after the retry"
    assert _last_lines(r.err, 2) == ["hubwatch: 1 pins unknown after a retry: Hub error 503",
                                     "checked 2 pins: 0 changed, 1 unknown, 0 new findings"]
    assert "could not be reached" not in r.err
    # the first run, then this one: checked, and retried once at the end (2 tries each: hub.retries = 1)
    assert hub.count(r"/api/models/openai-community/gpt2/refs") == 1 + 2 * 2


def test_lookalike_discovery_gets_its_own_line(env, hub):
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 4\n'
    r = env.once()
    first, second = _last_lines(r.err, 2)
    assert first == "checked 2 pins: 0 changed, 0 unknown, 0 new findings"
    assert second.startswith("look-alike discovery: 2 candidates probed (0 exist)")


@pytest.mark.parametrize("endpoint, why", [
    (None, "connection refused"),
    ("https://hubwatch-test-host.invalid", "DNS"),  # https: plain http is for loopback only
])
def test_unreachable_hub_exits_75_and_says_why(tmp_path, endpoint, why):
    url = endpoint or f"http://127.0.0.1:{_closed_port()}"
    env = PinsEnv(tmp_path, SimpleNamespace(url=url), None,
                  pins=[{"repo": REPO, "track": "main"}, {"repo": OTHER, "track": "main"}])
    r = env.run("once", "--dry-run")
    assert r.code == 75, r
    unreachable, summary = _last_lines(r.err, 2)
    assert unreachable.startswith(f"hubwatch: the Hub at {url} could not be reached (") and why in unreachable
    assert unreachable.endswith("every check is unknown")
    assert summary == "checked 2 pins: 0 changed, 2 unknown, 0 new findings"


def test_unreachable_hub_probes_and_searches_nothing(tmp_path):
    env = PinsEnv(tmp_path, SimpleNamespace(url=f"http://127.0.0.1:{_closed_port()}"), None,
                  pins=[{"repo": REPO, "track": "main"}])
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 4\n'
    r = env.run("once", "--dry-run")
    assert r.code == 75, r
    summary, discovery = _last_lines(r.err, 2)
    assert summary == "checked 1 pins: 0 changed, 1 unknown, 0 new findings"
    # nothing was answered: not "2 candidates probed (0 exist)", which reads as two names checked
    assert discovery.startswith("look-alike discovery: 0 candidates probed (0 exist), 0 new-repo authors, "
                                "0 searches, 0 assessed, 0 new findings, "), discovery
    assert not discovery.endswith(" 0 errors")


def test_json_summary(tmp_path, env, hub):
    r = env.run("once", "--log-format", "json")
    assert r.code == 0
    obj = json.loads(_last_lines(r.err, 1)[0])
    assert {k: obj[k] for k in ("event", "checked", "changed", "unknown", "new_findings", "msg")} == {
        "event": "summary", "checked": 2, "changed": 0, "unknown": 0, "new_findings": 0,
        "msg": "checked 2 pins: 0 changed, 0 unknown, 0 new findings"}
    assert obj["level"] == "info" and obj["ts"].endswith("Z")
    down = PinsEnv(tmp_path / "down", SimpleNamespace(url=f"http://127.0.0.1:{_closed_port()}"), None,
                   pins=[{"repo": REPO, "track": "main"}])
    (tmp_path / "down").mkdir()
    r = down.run("once", "--log-format", "json")
    assert r.code == 75
    problem, summary = (json.loads(line) for line in _last_lines(r.err, 2))
    assert problem["event"] == "hub_unreachable" and problem["reason"] == "connection refused"
    assert summary["event"] == "summary" and summary["unknown"] == summary["checked"] == 1


def _wrapped(cause: BaseException, cls=None):
    import httpx2

    cls = cls or httpx2.ConnectError
    try:
        try:
            raise cause
        except BaseException as inner:
            raise cls(str(inner)) from inner
    except BaseException as outer:
        return outer


def test_connect_failures_are_classified():
    import errno

    import httpx2

    from monitor.hub.client import connect_failure

    assert connect_failure(_wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))) \
        == "connection refused"
    assert connect_failure(_wrapped(socket.gaierror(-2, "Name or service not known"))) \
        == "DNS: Name or service not known"
    assert connect_failure(_wrapped(OSError(errno.ENETUNREACH, "Network is unreachable"))) == "network unreachable"
    assert connect_failure(httpx2.ConnectTimeout("timed out")) == "connect timed out"
    # not a verdict on the Hub's reachability: no 30 s hold for these
    assert connect_failure(_wrapped(ConnectionResetError(errno.ECONNRESET, "reset"))) == "cannot connect: ConnectError"
    assert connect_failure(httpx2.ReadError("reset after connecting")) is None
