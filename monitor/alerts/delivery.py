"""Outbox -> sinks, in order, at most one message per `min_interval` per sink, with backoff.

Guarantees, and why:
- At-least-once: a row is marked sent only after the sink returned; a crash in between means a
  resend after the claim lease (receivers dedup on the fingerprint in the payload).
- Order per sink: an alert must never overtake an earlier one that is backing off (a responder
  reading "file removed" before "file added" is misled). The store's `claim` returns *due* rows,
  so it would hand out later rows while an earlier one waits; we check `pending()` (which lists
  waiting rows too) and hold the whole sink back behind its oldest undelivered row.
- A transient failure stops that sink for this pass (later rows are released untouched); a
  permanent one dead-letters that row only (logged at ERROR for the operator alarm) and moves on,
  because one unrenderable or refused alert must not block every later one forever.
- A refusal of the sink itself (Slack 403/404/410) dead-letters that row, marks the sink dead
  (logged at ERROR once) and leaves every later row pending: they are not sent to the same
  receiver again until its URL changes or `hubwatch redeliver` says it is fixed.
- Backoff = max(Retry-After, full-jitter exponential); full jitter spreads retries from several
  deliverers. Clock and sleep are injected so all of this is tested without waiting.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, TextIO

from monitor.alerts.render import acknowledged_before_delivery, clean, slack_message, text_line
from monitor.alerts.sinks import Sink, SlackSink
from monitor.errors import SinkError

log = logging.getLogger(__name__)

CLAIM_LIMIT = 20
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
LEASE_SECONDS = 60.0  # re-claim before half of it is used, so a slow sink never outlives its lease


@dataclass(frozen=True)
class SinkReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    blocked: bool = False  # an earlier alert is backing off (or owned by another deliverer)
    refused: str | None = None  # the sink is dead: its receiver's answer ("HTTP 404 no_service")


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    per_sink: dict[str, SinkReport] = field(default_factory=dict)

    @property
    def refused(self) -> dict[str, str]:
        """Sinks refused permanently in this pass (or still dead from an earlier one): their answer."""
        return {name: r.refused for name, r in self.per_sink.items() if r.refused}


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempts)] (attempts = earlier failures)."""
    return rng() * min(cap, base * 2.0 ** min(attempts, 40))


class _Pass:
    """One delivery pass for one sink; the state that `deliver`'s arguments configure."""

    def __init__(self, store: Any, name: str, sink: Sink, kw: dict) -> None:
        self.store, self.name, self.sink = store, name, sink
        self.__dict__.update(kw)
        self.sent = self.retried = self.dead = 0
        self.blocked = False
        self.refused: str | None = None
        self.last_send: datetime | None = None

    def out_of_time(self, extra: float = 0.0) -> bool:
        if self.stop is not None and self.stop.is_set():
            return True
        return self.deadline is not None and (self.now() - self.start).total_seconds() + extra >= self.deadline

    def release(self, items: list) -> None:
        for item in items:
            self.store.release(item)

    def behind_earlier(self, items: list) -> bool:
        """True if the oldest undelivered row of this sink is not ours (backing off, or claimed)."""
        rows = self.store.pending(self.name)
        return bool(rows) and rows[0].id not in {item.id for item in items}

    def still_dead(self) -> bool:
        """The sink was marked dead for this very receiver: nothing is knocked on again."""
        dead = self.store.dead_sink(self.name)
        if dead is None:
            return False
        if dead.identity != getattr(self.sink, "identity", None):
            self.store.clear_sink_dead(self.name)  # a corrected URL: a new receiver
            return False
        self.refused = dead.answer
        return True

    def run(self) -> SinkReport:
        if self.still_dead():
            return self.report()
        while not self.out_of_time():
            claimed_at = self.now()
            items = self.store.claim(self.name, claimed_at, lease_seconds=LEASE_SECONDS, limit=CLAIM_LIMIT,
                                     **({"due_by": FAR_FUTURE} if self.ignore_backoff else {}))
            if not items:
                break
            if self.behind_earlier(items):
                self.release(items)
                self.blocked = True
                break
            outcome = self.batch(items, claimed_at)
            if outcome == "stop" or (outcome == "done" and len(items) < CLAIM_LIMIT):
                break
        return self.report()

    def batch(self, items: list, claimed_at: datetime) -> str:
        """Send a claimed batch in order: 'done', 'stop' (this sink, this pass) or 'renew' (lease)."""
        for i, item in enumerate(items):
            if (self.now() - claimed_at).total_seconds() > LEASE_SECONDS / 2:
                self.release(items[i:])
                return "renew"
            if not self.pace():
                self.release(items[i:])
                return "stop"
            if not self.attempt(item):
                self.release(items[i + 1:])
                return "stop"
        return "done"

    def pace(self) -> bool:
        """Sleep to keep <= 1 message per min_interval; False if stopping or the deadline would pass."""
        if self.out_of_time():
            return False
        if self.last_send is not None:
            wait = self.min_interval - (self.now() - self.last_send).total_seconds()
            if wait > 0:
                if self.out_of_time(wait):
                    return False
                self.sleep(wait)
                if self.out_of_time():
                    return False
        self.last_send = self.now()
        return True

    def attempt(self, item: Any) -> bool:
        """Send one row and record the outcome; False means stop this sink for this pass."""
        try:
            if item.report is not None:
                self.sink.send_report(item.report)
            else:
                self.sink.send(outgoing(item))
        except SinkError as e:
            exc: Exception = e
            error, permanent, retry_after = str(e), e.permanent, e.retry_after
        except Exception as e:  # a sink bug: retry (maybe fixed by an upgrade), never crash the pass
            exc = e
            error, permanent, retry_after = f"unexpected {type(e).__name__} in sink", False, None
        else:
            if not self.store.mark_sent(item, self.now()):
                log.warning("outbox item %s for sink %s was sent but its claim had expired; "
                            "it may be sent again", item.id, self.name)
            self.sent += 1
            return True
        finding = item.finding
        failures = item.attempts + 1
        if getattr(exc, "sink_dead", False):
            return self.sink_refused(item, error)
        if permanent or (self.max_attempts is not None and failures >= self.max_attempts):
            self.store.mark_dead(item, self.now(), error)
            self.dead += 1
            what = (f"{finding.severity} alert {finding.fingerprint} ({clean(finding.kind)})" if finding is not None
                    else item.label)
            log.error("dead-lettered %s for sink %s after %d attempt(s): %s", what, self.name, failures, error)
            return True
        delay = max(retry_after or 0.0, self.min_interval,
                    backoff_seconds(item.attempts, base=self.base_backoff, cap=self.max_backoff, rng=self.rng))
        t = self.now()
        owned = self.store.mark_retry(item, t, t + timedelta(seconds=delay), error)
        self.retried += 1
        log.warning("alert %s for sink %s failed (attempt %d), retrying in %.0fs: %s",
                    item.label, self.name, failures, delay, error)
        if not owned:
            log.warning("outbox item %s for sink %s: claim expired before mark_retry", item.id, self.name)
        return False

    def sink_refused(self, item: Any, error: str) -> bool:
        """The receiver refuses the sink: dead-letter this row, mark the sink dead (ERROR once per
        sink), stop; later rows stay pending for the corrected receiver."""
        self.store.mark_dead(item, self.now(), error)
        self.dead += 1
        answer = error[error.find("HTTP "):] if "HTTP " in error else error
        self.refused = answer
        if self.store.mark_sink_dead(self.name, getattr(self.sink, "identity", ""), answer, self.now()):
            log.error("sink %s refused permanently (%s): alert %s dead-lettered, later alerts wait; fix the "
                      "sink's URL, then run `hubwatch redeliver --all`", self.name, answer, item.label,
                      extra={"job": "deliver"})
        return False

    def report(self) -> SinkReport:
        return SinkReport(self.sent, self.retried, self.dead, self.blocked, self.refused)


def outgoing(item: Any) -> Any:
    """The finding a row sends: marked when it was acknowledged before it went out."""
    if item.acked_by is None:
        return item.finding
    return acknowledged_before_delivery(item.finding, item.acked_by)


def deliver(store: Any, sinks: Mapping[str, Sink], *, now: Callable[[], datetime],
            sleep: Callable[[float], None] = time.sleep, min_interval: float = 1.0,
            base_backoff: float = 5.0, max_backoff: float = 900.0, max_attempts: int | None = None,
            deadline: float | None = None, stop: threading.Event | None = None,
            rng: Callable[[], float] = random.random, ignore_backoff: bool = False) -> DeliveryReport:
    """Deliver every due outbox row of every sink (keyed by the sink's name in the outbox).

    `deadline` is a time budget in seconds for this call, measured with `now`; `stop` ends the pass
    early (SIGTERM drain). Either way, rows not attempted are released, never left claimed.
    `ignore_backoff` attempts rows still backing off too (`hubwatch once`: one pass, every row).
    """
    kw = dict(now=now, sleep=sleep, min_interval=min_interval, base_backoff=base_backoff,
              max_backoff=max_backoff, max_attempts=max_attempts, deadline=deadline, stop=stop,
              rng=rng, start=now(), ignore_backoff=ignore_backoff)
    per_sink: dict[str, SinkReport] = {}
    for name, sink in sinks.items():
        per_sink[name] = _Pass(store, name, sink, kw).run()
    return DeliveryReport(sum(r.sent for r in per_sink.values()), sum(r.retried for r in per_sink.values()),
                          sum(r.dead for r in per_sink.values()), per_sink)


def render_pending(store: Any, stream: TextIO, sinks: Mapping[str, Sink] | None = None) -> int:
    """`--dry-run`: print what every undelivered row would send; reads only, changes nothing."""
    count = 0
    for item in store.pending():
        sink = (sinks or {}).get(item.sink)
        is_slack = isinstance(sink, SlackSink) if sink is not None else item.sink.startswith("slack")
        stream.write(f"# outbox {item.id} -> {item.sink} (attempts: {item.attempts})\n")
        if item.report is not None:
            from monitor.alerts.render_report import report_slack, report_text

            stream.write((json.dumps(report_slack(item.report), indent=2, ensure_ascii=False) if is_slack
                          else report_text(item.report)) + "\n")
        elif is_slack:
            stream.write(json.dumps(slack_message(outgoing(item)), indent=2, ensure_ascii=False) + "\n")
        else:
            stream.write(text_line(outgoing(item)) + "\n")
        count += 1
    stream.flush()
    return count
