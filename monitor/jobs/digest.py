"""The daily digest: pins watched, changes, unknown, open findings, look-alike coverage.

Findings are counted as incidents (detect/incidents.py): a look-alike namespace, the rises of its
risk and the copies it holds are one, as they are one alert.

A report, not a finding: queued in the outbox for every sink (so a Slack outage delays it, never
loses it) and sent every day even when nothing happened — silence must never be mistaken for
health. The daemon queues it at `[alerts] digest` local time (APScheduler cron trigger).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from monitor.detect import incidents
from monitor.detect.reports import DigestFacts, Report, digest
from monitor.jobs.lookalikes import LAST_RUN
from monitor.jobs.status import lookalike_status, lookalike_subjects, pin_statuses
from monitor.jobs.summary import NOT_A_CHANGE
from monitor.runtime import Runtime

PERIOD = timedelta(days=1)
CATCH_UP = timedelta(hours=1)  # a daemon down at digest time sends it when back within this
UNKNOWN_STATES = frozenset({"unknown", "unreachable"})
# gated is not unavailable: its refs and metadata are still watched (see status.pin_state)
UNAVAILABLE_STATES = frozenset({"unavailable", "disabled"})
LOOKALIKE_KINDS = frozenset({"lookalike"})


def build(rt: Runtime, now: datetime) -> Report:
    store, s = rt.store, rt.settings
    rows = pin_statuses(s.pin, store.load_states(), store.open_findings_by_subject())
    recent = store.findings(since=now - PERIOD)
    open_ = list(incidents.incidents([f.finding for f in store.findings(include_acked=False)]).values())
    # a namespace's look-alike finding, its rises and the copies folded into it are one incident
    recent_keys = incidents.incident_keys([f.finding for f in recent])
    coverage = lookalike_status(s.lookalike, store.load_probes(), store.get_meta(LAST_RUN),
                                lookalike_subjects(store.findings(kind="lookalike")))
    if coverage is not None:
        coverage = {k: v for k, v in coverage.items() if k not in ("kind", "last_run")}
    facts = DigestFacts(
        pins=len(rows),
        unknown=sum(1 for r in rows if r.state in UNKNOWN_STATES),
        unavailable=sum(1 for r in rows if r.state in UNAVAILABLE_STATES),
        changes=len({k for k, f in zip(recent_keys, recent) if f.finding.kind not in NOT_A_CHANGE | LOOKALIKE_KINDS
                     and not k.startswith("namespace:")}),
        new_lookalikes=len({k for k, f in zip(recent_keys, recent) if f.finding.kind in LOOKALIKE_KINDS}),
        open_findings=len(open_),
        open_by_severity=dict(Counter(f.severity for f in open_)),
        lookalike=coverage,
        pending=sum(1 for r in rows if r.state == "pending"))
    return digest(facts, now - PERIOD, now)


def queue_digest(rt: Runtime) -> Report:
    """Build today's digest and queue it for every sink in one transaction."""
    now = rt.clock()
    report = build(rt, now)
    rt.store.record_report(report, list(rt.sinks), now)
    return report


def trigger(at: tuple[int, int]):
    """A cron trigger firing every day at `at` (hour, minute), in this host's local time zone."""
    from apscheduler.triggers.cron import CronTrigger
    from tzlocal import get_localzone

    return CronTrigger(hour=at[0], minute=at[1], timezone=get_localzone())


def missed(at: tuple[int, int], now: datetime, last_queued: datetime | None) -> bool:
    """Today's digest time passed less than `CATCH_UP` ago and no digest was queued since: a
    daemon (re)started then sends it at once. A fresh cron job would wait for tomorrow (its first
    run is the next fire time after its start), so a restart at 09:05 would skip a day."""
    due = trigger(at).get_next_fire_time(None, now - CATCH_UP)
    return due is not None and due <= now and (last_queued is None or last_queued < due)
