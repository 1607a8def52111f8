"""Prometheus metrics (prometheus-client), every name prefixed `hubwatch_`.

Counters are updated by the daemon as jobs report; gauges that mirror state (outbox depth, Hub
budget, request counts) are read at scrape time from their source, so they can never drift.
Each Metrics object has its own registry, so tests and reloads never collide.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitor.detect.findings import KINDS, SEVERITIES


class Metrics:
    def __init__(self, runtime: Callable[[], Any]):
        """`runtime` returns the current Runtime (it changes on reload)."""
        self.registry = CollectorRegistry()
        self.job_runs = Counter("hubwatch_job_runs", "Job runs by outcome (ok, error).", ["job", "outcome"],
                                registry=self.registry)
        self.job_last_success = Gauge("hubwatch_job_last_success_timestamp_seconds",
                                      "Unix time of each job's last successful run.", ["job"], registry=self.registry)
        self.findings = Counter("hubwatch_findings", "New findings recorded, by kind and severity.",
                                ["kind", "severity"], registry=self.registry)
        for kind, severity in FINDING_LABELS:
            # Shown at 0 from the start: a series born at 1 has no increase() in Prometheus, so the
            # first finding of a kind would never fire an alert rule.
            self.findings.labels(kind, severity)
        self.alerts_sent = Counter("hubwatch_alerts_sent", "Alerts accepted by a sink.", ["sink"],
                                   registry=self.registry)
        self.alerts_failed = Counter("hubwatch_alerts_failed", "Failed deliveries (retried or dead-lettered).",
                                     ["sink", "outcome"], registry=self.registry)
        self.pin_checks = Counter("hubwatch_pin_checks",
                                  "Repo checks by outcome (ok, unknown, unavailable, error, token_rejected).",
                                  ["outcome"], registry=self.registry)
        self.hub_events = Counter("hubwatch_hub_events",
                                  "Hub webhook events by outcome: checked (started a check), merged (into a check "
                                  "already scheduled, or waiting for min_interval), deferred (events whose check "
                                  "found the event share spent: their repo goes first in the next scan), ignored.",
                                  ["outcome"], registry=self.registry)
        for outcome in ("checked", "merged", "deferred", "ignored"):
            self.hub_events.labels(outcome)  # shown at 0 from the start
        self.pin_scan_success = Gauge("hubwatch_pin_scan_last_success_timestamp_seconds",
                                      "Unix time of the last pin scan that completed.", registry=self.registry)
        Gauge("hubwatch_start_time_seconds", "Unix time the daemon started.",
              registry=self.registry).set(time.time())
        self.listing_fallbacks = Counter(
            "hubwatch_hub_listing_fallbacks",
            "Namespaces whose heads-in-bulk listing was missing, truncated, failed or disagreed with a refs "
            "read, so their pins were read per repo, by reason.", ["reason"], registry=self.registry)
        self.last_ok: dict[str, str | None] = {}  # repo key -> last_ok, as the last scans left it
        self.registry.register(_StateCollector(runtime, self))

    def job(self, name: str, ok: bool) -> None:
        self.job_runs.labels(name, "ok" if ok else "error").inc()
        if ok:
            self.job_last_success.labels(name).set(time.time())
            if name == "scan_pins":  # its own gauge: a `job` label clashes with Prometheus' target label
                self.pin_scan_success.set(time.time())

    def new_findings(self, findings) -> None:
        for f in findings:
            self.findings.labels(f.kind, f.severity).inc()

    def scan(self, report) -> None:
        for outcome in ("ok", "unknown", "unavailable", "errors", "token_rejected"):
            n = getattr(report, outcome, 0)
            if n:
                self.pin_checks.labels(outcome.rstrip("s")).inc(n)
        for fb in getattr(report, "fallbacks", ()):
            self.listing_fallbacks.labels(fb.reason).inc()
        self.last_ok.update(getattr(report, "last_ok", {}))
        self.new_findings(report.new_findings)

    def stale_pins(self, rt) -> int:
        """Pins whose repo has not been answered for two scan cycles (never answered included)."""
        from datetime import timedelta

        from monitor.detect.times import parse_iso

        if not self.last_ok:
            return 0  # no scan yet: nothing is known to be stale
        limit = rt.clock() - timedelta(seconds=2 * rt.settings.pins.every)
        stale = 0
        for pin in rt.settings.pin:
            at = parse_iso(self.last_ok.get(pin.key))
            stale += at is None or at < limit
        return stale

    def delivery(self, report) -> None:
        for sink, r in report.per_sink.items():
            if r.sent:
                self.alerts_sent.labels(sink).inc(r.sent)
            if r.retried:
                self.alerts_failed.labels(sink, "retried").inc(r.retried)
            if r.dead:
                self.alerts_failed.labels(sink, "dead").inc(r.dead)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector:
    """Read-at-scrape gauges: outbox, Hub traffic and request budget."""

    def __init__(self, runtime: Callable[[], Any], metrics: "Metrics | None" = None):
        self.runtime, self.metrics = runtime, metrics

    def collect(self) -> Iterator[Any]:
        rt = self.runtime()
        if rt is None:
            return
        from monitor.runtime import utcnow

        stats = rt.store.outbox_stats(utcnow())
        by_sink = rt.store.outbox_by_sink()
        depth = GaugeMetricFamily("hubwatch_outbox_depth", "Alerts waiting for delivery or dead-lettered, by "
                                  "state and sink.", labels=["state", "sink"])
        sinks = sorted(set(rt.sinks) | {sink for sink, _ in by_sink})
        for state in ("pending", "claimed", "dead"):
            for sink in sinks:
                depth.add_metric([state, sink], by_sink.get((sink, state), 0))
        yield depth
        dead = {d.sink for d in rt.store.dead_sinks()}
        sink_dead = GaugeMetricFamily("hubwatch_sink_dead", "1 while a sink's receiver refuses it (403/404/410).",
                                      labels=["sink"])
        for sink in sorted(set(rt.sinks) | dead):
            sink_dead.add_metric([sink], 1 if sink in dead else 0)
        yield sink_dead
        open_ = GaugeMetricFamily("hubwatch_findings_open", "Findings not acknowledged, by kind and severity.",
                                  labels=["kind", "severity"])
        by_kind = rt.store.open_by_kind()
        for kind, severity in sorted(set(FINDING_LABELS) | set(by_kind)):  # 0s too: delta() needs them
            open_.add_metric([kind, severity], by_kind.get((kind, severity), 0))
        yield open_
        yield _pins(rt)
        yield GaugeMetricFamily("hubwatch_pin_scan_interval_seconds", "[pins] every: seconds between pin scans.",
                                value=rt.settings.pins.every)
        yield GaugeMetricFamily("hubwatch_outbox_oldest_age_seconds", "Age of the oldest undelivered alert.",
                                value=stats.oldest_pending_age_seconds or 0.0)
        hub = rt.client.stats
        requests = CounterMetricFamily("hubwatch_hub_requests", "HTTP requests sent to the Hub.")
        requests.add_metric([], hub.requests)
        yield requests
        limited = CounterMetricFamily("hubwatch_hub_rate_limited", "Hub answers with 429.")
        limited.add_metric([], hub.rate_limited)
        yield limited
        b = rt.client.budget.snapshot()
        yield GaugeMetricFamily("hubwatch_hub_budget_quota", "Hub requests allowed per 5-minute window.",
                                value=b.quota)
        yield GaugeMetricFamily("hubwatch_hub_budget_used", "Hub requests used in the current window.", value=b.used)
        yield GaugeMetricFamily("hubwatch_hub_budget_resets_in_seconds", "Seconds until the window resets.",
                                value=b.resets_in)
        denied = CounterMetricFamily("hubwatch_hub_budget_denied", "Hub calls refused by the budget.")
        denied.add_metric([], rt.client.budget.denied)
        yield denied
        from monitor.hub.budget import BUCKETS

        remaining = GaugeMetricFamily("hubwatch_hub_quota_remaining",
                                      "Hub requests left in the current window, per rate-limit bucket "
                                      "(api, resolvers, pages; the Hub's own count wins when lower).",
                                      labels=["bucket"])
        for bucket in BUCKETS:
            remaining.add_metric([bucket], rt.client.budget.snapshot(bucket).remaining)
        yield remaining
        if self.metrics is not None:
            yield GaugeMetricFamily("hubwatch_pins_stale",
                                    "Pins whose repo has had no answer from the Hub for two scan cycles.",
                                    value=self.metrics.stale_pins(rt))


# Every (kind, severity) label pair a finding may carry, shown at 0 before the first one.
FINDING_LABELS = tuple((k, s) for k in KINDS for s in SEVERITIES)

PIN_STATES = ("ok", "pending", "unknown", "unreachable", "unavailable", "gated", "disabled", "ref_missing",
              "revision_unreachable")


def _pins(rt: Any) -> GaugeMetricFamily:
    """Pins by the state `hubwatch status` shows (every state present, 0 when none)."""
    from collections import Counter

    from monitor.jobs.status import pin_statuses

    counts = Counter(r.state for r in pin_statuses(rt.settings.pin, rt.store.load_states(), {}))
    g = GaugeMetricFamily("hubwatch_pins", "Pins by state (as hubwatch status shows them).", labels=["state"])
    for state in sorted(set(PIN_STATES) | set(counts)):
        g.add_metric([state], counts.get(state, 0))
    return g
