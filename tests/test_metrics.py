"""Prometheus metrics: names prefixed hubwatch_, values that follow what happened, no secrets."""

from __future__ import annotations

from monitor.alerts.delivery import deliver
from monitor.jobs.pins import scan_pins
from monitor.metrics import Metrics
from monitor.runtime import Runtime, utcnow
from tests.pins_env import PinsEnv


def value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_metrics_follow_jobs_findings_deliveries_and_outbox(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    env.token = "hf_MetricsSecretToken"
    hub.add_token(env.token)
    hub.add_repo("org/m", files={"a.txt": "b"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    rt = Runtime.build(env.settings())
    m = Metrics(lambda: rt)
    try:
        m.scan(scan_pins(rt, complete=True))
        m.job("scan_pins", True)
        hub.commit("org/m", {"evil.py": "x"})
        m.scan(scan_pins(rt, complete=True))
        body, ctype = m.render()
        text = body.decode()
        assert ctype.startswith("text/plain")
        assert value(text, 'hubwatch_findings_total{kind="risky_change",severity="high"}') == 1
        assert value(text, 'hubwatch_outbox_depth{sink="slack",state="pending"}') == 1
        assert value(text, "hubwatch_outbox_oldest_age_seconds") >= 0
        assert value(text, "hubwatch_hub_requests_total") >= 4
        assert value(text, 'hubwatch_job_runs_total{job="scan_pins",outcome="ok"}') == 1
        assert value(text, 'hubwatch_job_last_success_timestamp_seconds{job="scan_pins"}') > 0
        assert value(text, "hubwatch_hub_budget_quota") == 1000
        assert value(text, 'hubwatch_pin_checks_total{outcome="ok"}') == 2
        m.delivery(deliver(rt.store, rt.sinks, now=utcnow, sleep=lambda s: None, min_interval=0))
        text = m.render()[0].decode()
        assert value(text, 'hubwatch_alerts_sent_total{sink="slack"}') == 1
        assert value(text, 'hubwatch_outbox_depth{sink="slack",state="pending"}') == 0
        assert all(line.startswith(("#", "hubwatch_")) for line in text.splitlines() if line)
        assert "hf_MetricsSecretToken" not in text and slack.url not in text
    finally:
        rt.close()


def test_finding_series_exist_at_0_before_the_first_finding(hub, slack, tmp_path):
    """Prometheus' increase()/delta() see nothing in a series that is born at 1: the alert rules
    (contrib/prometheus) would miss the first finding of each kind. Every kind x severity is
    shown at 0 from the start, for the counter and the open-findings gauge."""
    from monitor.detect.findings import KINDS

    env = PinsEnv(tmp_path, hub, slack)
    hub.add_repo("org/m", files={"a": "b"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    rt = Runtime.build(env.settings())
    m = Metrics(lambda: rt)
    try:
        text = m.render()[0].decode()
        for kind in KINDS:
            for severity in ("critical", "high"):
                labels = f'{{kind="{kind}",severity="{severity}"}}'
                assert value(text, f"hubwatch_findings_total{labels}") == 0
                assert value(text, f"hubwatch_findings_open{labels}") == 0
        m.scan(scan_pins(rt, complete=True))
        hub.commit("org/m", {"evil.py": "x"})
        m.scan(scan_pins(rt, complete=True))
        text = m.render()[0].decode()
        assert value(text, 'hubwatch_findings_total{kind="risky_change",severity="high"}') == 1
        assert value(text, 'hubwatch_findings_open{kind="risky_change",severity="high"}') == 1
        assert value(text, 'hubwatch_findings_open{kind="risky_change",severity="critical"}') == 0
    finally:
        rt.close()
