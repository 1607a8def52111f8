"""The Prometheus alert rules shipped in contrib/prometheus/: `promtool check rules`, `promtool test
rules` (Debian package `prometheus`; .ci/run installs it) and every metric the rules use appears in
the /metrics of a live `hubwatch run` (Hub emulator, Slack receiver)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from tests.test_daemon import Env, start_baselined, wait_for
from tests.test_daemon_http import base_url

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "contrib" / "prometheus" / "hubwatch-rules.yml"
RULES_TEST = ROOT / "contrib" / "prometheus" / "hubwatch-rules.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package prometheus; .ci/run extracts promtool from it)")
# Made by Prometheus for every target, never by the target itself.
SCRAPE_MADE = {"up"}
# hubwatch_pins_stale comes with the scale issue (i16-scale): until that branch is merged it is
# the one name the rules may use that this branch's /metrics lacks. Remove it from here then.
NOT_YET_MERGED = {"hubwatch_pins_stale"}
FUNCTIONS = {"increase", "delta", "time", "absent", "rate", "or", "and", "unless", "by", "on", "max", "sum"}


def rule_metrics() -> set[str]:
    doc = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    names = set()
    for expr in exprs:
        expr = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", " ", expr)  # label matchers, strings, ranges
        names |= {n for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if n not in FUNCTIONS}
    return {n for n in names if not n.replace(".", "").isdigit()}


def test_the_rules_cover_what_the_docs_promise():
    doc = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert alerts == {"HubwatchNewFinding", "HubwatchSinkDead", "HubwatchPinsStale", "HubwatchPinScanNotSucceeding",
                      "HubwatchTargetAbsent"}
    assert rule_metrics() >= {"hubwatch_findings_total", "hubwatch_findings_open", "hubwatch_sink_dead",
                              "hubwatch_outbox_depth", "hubwatch_pin_scan_last_success_timestamp_seconds", "up"}


@needs_promtool
def test_promtool_check_rules():
    r = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS: 5 rules found" in r.stdout, r.stdout + r.stderr


@needs_promtool
def test_promtool_test_rules():
    r = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST.name], capture_output=True, text=True, timeout=60,
                       cwd=RULES_TEST.parent)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_every_metric_the_rules_use_is_in_a_live_metrics(hub, slack, tmp_path):
    env = Env(tmp_path, hub, slack)
    try:
        d = start_baselined(env, "org/alpha")
        url = base_url(d)
        # the first pin scan has completed: its success gauge is set
        hub.commit("org/alpha", {"README.md": "v2"})  # a finding: its counters and gauges get samples

        def scraped() -> str | None:
            t = requests.get(f"{url}/metrics", timeout=5).text
            done = re.search(r"^hubwatch_pin_scan_last_success_timestamp_seconds [1-9]", t, re.M)
            found = 'hubwatch_findings_open{kind="ref_moved",severity="medium"} 1.0' in t
            return t if done and found else None

        text = wait_for(scraped, "a completed pin scan and its finding in /metrics", show=d)
        exposed = {m.group(1) for m in re.finditer(r"^(hubwatch_[a-z0-9_]+)(?:\{| )", text, re.M)}
        exposed |= {n[:-len("_total")] for n in exposed if n.endswith("_total")}
        missing = rule_metrics() - exposed - SCRAPE_MADE - NOT_YET_MERGED
        assert not missing, f"rules use metrics /metrics lacks: {sorted(missing)}"
        for name in ("hubwatch_findings_open", "hubwatch_sink_dead", "hubwatch_pins"):
            assert f"# TYPE {name} gauge" in text
        assert 'hubwatch_pins{state="ok"} 1.0' in text
        assert 'hubwatch_findings_open{kind="ref_moved",severity="medium"} 1.0' in text
        # operable: the start says it created the database, start-up is INFO, no heartbeat at -v
        levels = {r["msg"].split(":")[0].split(" at ")[0]: r["level"] for r in d.logs()}
        assert levels["creating a new state database"] == "info" and levels["hubwatch started"] == "info"
        assert "job heartbeat done" not in d.text() and "job scan_pins done" in d.text()
    finally:
        env.stop_all()
