"""Issue 16 through the daemon: a `hubwatch run` subprocess with 30 pins in 3 namespaces learns
heads in bulk — a steady cycle costs a few requests (three listings and its sweep share), and a
push to one repo is alerted within one cycle. Request counts, never durations, are asserted."""

from __future__ import annotations

import json
import re

from tests.test_daemon import env, start_baselined, wait_for  # noqa: F401 - env is a fixture

SUMMARY = re.compile(r"^scan_pins: (\d+) repos, (\d+) ok, (\d+) unknown, .* (\d+) requests$")
LISTING = r"^GET /api/models\?author="


def scan_lines(d) -> list[tuple[int, int, int, int]]:
    return [tuple(int(x) for x in m.groups()) for r in d.logs() if (m := SUMMARY.match(r.get("msg", "")))]


def test_daemon_steady_cycles_list_namespaces_and_alert_a_push_within_one_cycle(env, hub, slack):
    repos = [f"org{i % 3}/m{i}" for i in range(30)]
    d = start_baselined(env, *repos)
    d.wait_scans(3)  # baseline, then steady cycles with the listings trusted
    steady = scan_lines(d)[-2:]
    print("steady cycles (repos, ok, unknown, requests):", steady)
    for checked, ok, unknown, requests in steady:
        assert (checked, ok, unknown) == (30, 30, 0)
        assert requests <= 0.25 * 30, f"a steady cycle of 30 pins cost {requests} requests"
    hub.clear_log()
    before = len(scan_lines(d))
    sha = hub.commit("org1/m4", {"README.md": "# pushed"}, title="Push")
    wait_for(lambda: slack.messages, "the alert of the push", show=d, timeout=30)
    after = len(scan_lines(d))
    assert after - before <= 2, "alerted by the cycle running at the push or the one after it"
    assert env.kinds() == ["ref_moved"] and sha in json.dumps(slack.messages[0])
    assert {s for _, s, _ in env.findings()} == {"org1/m4"}
    d.wait_scans(2)
    assert len(slack.messages) == 1, "one push, one alert"
    per_scan = hub.count(LISTING) / max(1, len(scan_lines(d)) - before)
    assert per_scan <= 3 + 1, "each namespace listed once a cycle (one page)"
    print("scans since the push:", after - before, "listings per scan:", per_scan)
    assert d.alive()
