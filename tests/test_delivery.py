"""Delivery with a fake clock: order, backoff, pacing, dead letters, shutdown, a long Slack outage."""

from __future__ import annotations

import io
import json
import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from monitor.alerts.delivery import DeliveryReport, SinkReport, deliver, render_pending
from monitor.alerts.sinks import SlackSink, StdoutSink
from monitor.store.outbox import OutboxItem
from monitor.detect.findings import Finding
from monitor.errors import SinkError
from tests.emulator import SlackReceiver

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Clock:
    """Fake time: `sleep` advances `now` and is recorded."""

    def __init__(self) -> None:
        self.t, self.sleeps = T0, []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


Item = OutboxItem  # the fake store hands out the real store's item type


class FakeStore:
    """Just the outbox API delivery uses, with the real store's semantics (claim returns due rows)."""

    def __init__(self) -> None:
        self.rows: dict[int, dict] = {}
        self.calls: list[str] = []

    def add(self, sink: str, finding: Finding, now: datetime = T0) -> None:
        self.rows[len(self.rows) + 1] = dict(sink=sink, finding=finding, state="pending", attempts=0,
                                             token=None, next=now, error=None, created=now)

    def _item(self, i: int) -> Item:
        r = self.rows[i]
        return Item(i, r["sink"], r["finding"], r["attempts"], r["token"], r["created"], r["error"])

    def claim(self, sink, now, *, lease_seconds=300, limit=50):
        self.calls.append("claim")
        due = [i for i, r in sorted(self.rows.items()) if r["sink"] == sink and r["state"] == "pending"
               and r["next"] <= now][:limit]
        for i in due:
            self.rows[i].update(state="claimed", token=f"tok{i}")
        return [self._item(i) for i in due]

    def _own(self, item) -> dict | None:
        r = self.rows[item.id]
        return r if r["state"] == "claimed" and r["token"] == item.claim_token else None

    def mark_sent(self, item, now):
        if (r := self._own(item)) is None:
            return False
        r.update(state="sent", token=None)
        return True

    def mark_retry(self, item, now, next_attempt_at, error):
        if (r := self._own(item)) is None:
            return False
        r.update(state="pending", token=None, attempts=r["attempts"] + 1, next=next_attempt_at, error=error)
        return True

    def mark_dead(self, item, now, error):
        if (r := self._own(item)) is None:
            return False
        r.update(state="dead", token=None, attempts=r["attempts"] + 1, error=error)
        return True

    def release(self, item):
        if (r := self._own(item)) is None:
            return False
        r.update(state="pending", token=None)
        return True

    def pending(self, sink=None):
        self.calls.append("pending")
        return [self._item(i) for i, r in sorted(self.rows.items())
                if r["state"] in ("pending", "claimed") and sink in (None, r["sink"])]

    def states(self) -> list[str]:
        return [r["state"] for _, r in sorted(self.rows.items())]

    # dead-sink marks: the real store keeps them in its meta table
    dead: dict = {}

    def dead_sink(self, sink):
        return self.dead.get(sink)

    def clear_sink_dead(self, sink=None):
        self.dead = {k: v for k, v in self.dead.items() if sink is not None and k != sink}

    def mark_sink_dead(self, sink, identity, answer, now):
        from monitor.store.dead_letters import DeadSink

        new = sink not in self.dead or self.dead[sink].identity != identity
        self.dead = {**self.dead, sink: DeadSink(sink, identity, answer, str(now))}
        return new


class ScriptedSink:
    """Records what was sent and when; `script` maps a finding's summary to errors to raise, in turn."""

    name = "test"

    def __init__(self, clock: Clock, script: dict | None = None, on_send=None) -> None:
        self.clock, self.script, self.on_send = clock, script or {}, on_send
        self.sent: list[tuple[str, datetime]] = []
        self.tried: list[str] = []

    def send(self, finding: Finding) -> None:
        self.tried.append(finding.summary)
        errors = self.script.get(finding.summary)
        if errors:
            raise errors.pop(0)
        self.sent.append((finding.summary, self.clock.now()))
        if self.on_send:
            self.on_send()


def findings(n: int) -> list[Finding]:
    return [Finding.make("revision_changed", "high", "org/model", f"alert {i}", key=i) for i in range(1, n + 1)]


@pytest.fixture
def clock():
    return Clock()


def run(store, sinks, clock, **kw):
    kw.setdefault("rng", lambda: 1.0)
    return deliver(store, sinks, now=clock.now, sleep=clock.sleep, **kw)


def test_order_preserved_across_a_transient_failure(clock):
    store = FakeStore()
    for f in findings(3):
        store.add("slack", f)
    sink = ScriptedSink(clock, {"alert 2": [SinkError("HTTP 503", permanent=False)]})
    report = run(store, {"slack": sink}, clock)
    assert report == DeliveryReport(1, 1, 0, {"slack": SinkReport(1, 1, 0)})
    assert sink.tried == ["alert 1", "alert 2"] and store.states() == ["sent", "pending", "pending"]

    clock.advance(1)  # alert 3 is due, alert 2 is not: alert 3 must wait behind it
    report = run(store, {"slack": sink}, clock)
    assert report.per_sink["slack"] == SinkReport(blocked=True)
    assert sink.tried == ["alert 1", "alert 2"] and store.states() == ["sent", "pending", "pending"]

    clock.advance(3600)
    run(store, {"slack": sink}, clock)
    assert [s for s, _ in sink.sent] == ["alert 1", "alert 2", "alert 3"]
    assert store.states() == ["sent"] * 3


@pytest.mark.parametrize("retry_after,attempts,rng,expected", [
    (120, 0, 1.0, 120),     # Retry-After beats a 5 s backoff
    (120, 5, 1.0, 160),     # a 5*2**5 = 160 s backoff beats Retry-After
    (None, 0, 0.0, 1),      # full jitter may draw 0: never sooner than min_interval
    (None, 40, 1.0, 900),   # capped
    (None, 10_000, 1.0, 900),  # no overflow on absurd attempt counts
])
def test_next_attempt_honours_retry_after_and_backoff(clock, retry_after, attempts, rng, expected):
    store = FakeStore()
    store.add("slack", findings(1)[0])
    store.rows[1]["attempts"] = attempts
    sink = ScriptedSink(clock, {"alert 1": [SinkError("HTTP 429", permanent=False, retry_after=retry_after)]})
    run(store, {"slack": sink}, clock, rng=lambda: rng)
    assert store.rows[1]["next"] == T0 + timedelta(seconds=expected)
    assert store.rows[1]["error"] == "HTTP 429" and store.rows[1]["attempts"] == attempts + 1


def test_permanent_failure_is_dead_lettered_logged_and_does_not_block(clock, caplog):
    with SlackReceiver() as slack:
        store = FakeStore()
        for f in findings(2):
            store.add("slack", f)
        slack.fail(400, body="invalid_blocks")
        report = run(store, {"slack": SlackSink(slack.url)}, clock)
        assert report == DeliveryReport(1, 0, 1, {"slack": SinkReport(1, 0, 1)})
        assert store.states() == ["dead", "sent"] and "HTTP 400 invalid_blocks" in store.rows[1]["error"]
        dead = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(dead) == 1 and "dead-lettered" in dead[0].getMessage()
        assert findings(1)[0].fingerprint in dead[0].getMessage()
        for text in (caplog.text, store.rows[1]["error"]):
            assert slack.token not in text and slack.path not in text


def test_at_most_one_message_per_interval(clock):
    store = FakeStore()
    for f in findings(5):
        store.add("slack", f)
    sink = ScriptedSink(clock)
    run(store, {"slack": sink}, clock, min_interval=1.0)
    times = [t for _, t in sink.sent]
    assert len(times) == 5 and clock.sleeps == [1.0] * 4
    assert all((b - a).total_seconds() >= 1.0 for a, b in zip(times, times[1:]))


def test_pacing_is_per_sink(clock):
    store = FakeStore()
    for f in findings(2):
        store.add("a", f)
        store.add("b", f)
    sinks = {"a": ScriptedSink(clock), "b": ScriptedSink(clock)}
    report = run(store, sinks, clock, min_interval=2.0)
    assert report.sent == 4 and clock.sleeps == [2.0, 2.0]


def test_stop_event_releases_the_rest(clock):
    store = FakeStore()
    for f in findings(4):
        store.add("slack", f)
    stop = threading.Event()
    sink = ScriptedSink(clock, on_send=stop.set)
    report = run(store, {"slack": sink}, clock, stop=stop)
    assert report.sent == 1 and store.states() == ["sent", "pending", "pending", "pending"]
    assert all(r["token"] is None for r in store.rows.values())


def test_deadline_stops_before_it_would_pass(clock):
    store = FakeStore()
    for f in findings(5):
        store.add("slack", f)
    sink = ScriptedSink(clock)
    report = run(store, {"slack": sink}, clock, deadline=2.5)
    assert report.sent == 3 and store.states() == ["sent"] * 3 + ["pending"] * 2


def test_max_attempts_dead_letters_a_persistent_transient_failure(clock, caplog):
    store = FakeStore()
    store.add("slack", findings(1)[0])
    sink = ScriptedSink(clock, {"alert 1": [SinkError("HTTP 500", permanent=False)] * 3})
    for _ in range(3):
        run(store, {"slack": sink}, clock, max_attempts=3)
        clock.advance(3600)
    assert store.states() == ["dead"] and "dead-lettered" in caplog.text


def test_a_crashing_sink_is_retried_not_fatal(clock):
    store = FakeStore()
    store.add("slack", findings(1)[0])
    sink = ScriptedSink(clock, {"alert 1": [ValueError("boom")]})
    assert run(store, {"slack": sink}, clock).retried == 1
    assert store.rows[1]["error"] == "unexpected ValueError in sink"


def test_slack_down_for_an_hour_then_everything_arrives_once_in_order(clock):
    with SlackReceiver() as slack:
        store = FakeStore()
        batch = findings(5)
        for f in batch:
            store.add("slack", f)
        sinks = {"slack": SlackSink(slack.url, timeout=5)}
        slack.down()
        while clock.now() < T0 + timedelta(hours=1):
            report = run(store, sinks, clock, rng=lambda: 0.5)
            assert report.sent == 0
            clock.advance(60)  # the scheduler's pass interval
        attempts_while_down = len(slack.attempts)
        assert 4 <= attempts_while_down <= 60  # backed off, not hammered: only the head was tried
        slack.up()
        for _ in range(30):
            run(store, sinks, clock, rng=lambda: 0.5)
            clock.advance(60)
        got = [m["text"] for m in slack.messages]
        assert len(got) == 5 and [t.rsplit(": ", 1)[1] for t in got] == [f.summary for f in batch]
        assert store.states() == ["sent"] * 5 and slack.attempts.count(200) == 5


def test_render_pending_prints_and_changes_nothing(clock):
    store = FakeStore()
    a, b = findings(2)
    store.add("slack", a)
    store.add("stdout", b)
    out = io.StringIO()
    sinks = {"slack": SlackSink("https://hooks.slack.com/services/T0/B0/abcSECRETdef"), "stdout": StdoutSink()}
    assert render_pending(store, out, sinks) == 2
    text = out.getvalue()
    assert '"unfurl_links": false' in text and "[HIGH] revision_changed org/model: alert 2" in text
    slack_json = text.split("\n", 1)[1].split("\n# outbox")[0]
    assert json.loads(slack_json)["text"].endswith("alert 1")
    assert store.calls == ["pending"] and store.states() == ["pending", "pending"]


def test_integration_with_the_real_store(tmp_path, clock, caplog):
    store_mod = pytest.importorskip("monitor.store")
    with SlackReceiver() as slack, store_mod.Store.open(tmp_path / "hubwatch.db") as store:
        batch = findings(3)
        assert len(store.record("org/model", None, batch, ["slack"], T0)) == 3
        sinks = {"slack": SlackSink(slack.url)}
        slack.fail(500)
        first = run(store, sinks, clock)
        assert first == DeliveryReport(0, 1, 0, {"slack": SinkReport(0, 1, 0)})
        clock.advance(1)
        assert run(store, sinks, clock).per_sink["slack"].blocked  # 2 and 3 due, 1 backing off
        clock.advance(3600)
        assert run(store, sinks, clock).sent == 3
        assert [m["text"].rsplit(": ", 1)[1] for m in slack.messages] == [f.summary for f in batch]
        assert store.pending() == [] and store.outbox_stats(clock.now()).sent == 3

        store.record("org/model", None, findings(4)[3:], ["slack"], clock.now())
        slack.gone(410)
        assert run(store, sinks, clock).dead == 1
        (dead,) = store.dead_letters()
        assert "channel_is_archived" in dead.last_error and slack.token not in dead.last_error
        assert slack.token not in caplog.text
