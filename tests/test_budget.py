"""The shared Hub request budget: fixed windows, a reserve for pin checks, the Hub's word wins."""

from __future__ import annotations

import json

from monitor.hub.budget import Budget, Priority
from monitor.jobs.lookalikes import scan_lookalikes
from monitor.jobs.pins import scan_pins
from monitor.runtime import Runtime
from tests.pins_env import PinsEnv


class FakeTime:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_window_priorities_and_roll():
    t = FakeTime()
    b = Budget(100, clock=t)
    for _ in range(70):
        assert b.admit(Priority.LOOKALIKES)
        b.count()
    assert not b.admit(Priority.LOOKALIKES), "probing stops at 70% of the window"
    for _ in range(25):
        assert b.admit(Priority.PINS)
        b.count()
    assert not b.admit(Priority.PINS), "nothing past 95%"
    assert b.snapshot().used == 95, "an admitted call and its request count once"
    assert 0 < b.resets_in() <= 300
    t.t += 300
    assert b.admit(Priority.LOOKALIKES) and b.snapshot().used == 1  # a fresh window, this call in it


def test_concurrent_admissions_never_overshoot():
    import threading

    b = Budget(100)
    admitted = []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        for _ in range(20):
            if b.admit(Priority.LOOKALIKES):
                admitted.append(1)
                b.count()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 70 and b.snapshot().used == 70


def test_retries_count_against_the_window():
    b = Budget(100, clock=FakeTime())
    assert b.admit(Priority.PINS)
    b.count()
    b.count()  # a retry of the same call
    assert b.snapshot().used == 2


def test_hub_header_wins_when_it_says_less_remains():
    t = FakeTime()
    b = Budget(1000, clock=t)
    b.observe("api", remaining=3, reset_in=60)
    assert not b.admit(Priority.PINS) and not b.admit(Priority.LOOKALIKES)
    t.t += 61
    assert b.admit(Priority.PINS)


def test_probing_yields_to_pin_checks_and_the_hub_quota_is_never_hit(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    for i in range(5):
        hub.add_repo(f"org/m{i}", files={"a.txt": "b"})
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(5)]
    env.extra = ('[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 100000\n'
                 '[limits]\nhub_requests_per_5min = 60\n')
    hub.rate_limit(60, window=300)
    rt = Runtime.build(env.settings())
    try:
        report = scan_lookalikes(rt, sources=("probe",))
        assert report.errors > 0, "probing ran into its share of the budget"
        used = rt.client.budget.snapshot().used
        assert used <= 42
        pins = scan_pins(rt, complete=True)
        assert pins.ok == 5 and pins.unknown == 0, "pin checks still had budget"
        assert all(r.status != 429 for r in hub.requests)
        denied = scan_pins(rt, complete=True)
        assert denied.unknown >= 1 and denied.ok < 5  # past 95%: unknown, never an alert
        assert all(r.status != 429 for r in hub.requests)
        assert rt.store.findings() == []
    finally:
        rt.close()


def test_on_demand_lookups_have_their_own_share_and_leave_pins_their_reserve():
    t = FakeTime()
    b = Budget(1000, clock=t)
    admitted = sum(b.admit(Priority.EVENTS) for _ in range(400))
    assert admitted == 100, "on-demand lookups: 10% of the window"
    for _ in range(600):
        assert b.admit(Priority.LOOKALIKES)
    assert not b.admit(Priority.EVENTS), "nor past 70% of the window, even within their share"
    assert sum(b.admit(Priority.PINS) for _ in range(400)) == 250, "pin checks keep everything up to 95%"
    t.t += 300
    assert b.admit(Priority.EVENTS), "a new window, a new share"


def test_quota_before_the_first_answer_is_the_hubs_default_then_what_it_advertises():
    t = FakeTime()
    anonymous, token, capped = Budget(clock=t, token=False), Budget(clock=t), Budget(300, clock=t)
    assert (anonymous.quota, token.quota, capped.quota) == (500, 1000, 300)
    for b in (anonymous, token, capped):
        b.observe("api", remaining=2400, reset_in=200, quota=2500)  # a PRO token
    assert (anonymous.quota, token.quota, capped.quota) == (2500, 2500, 300), "configured: the lower of the two"
    capped.observe("api", remaining=90, reset_in=200, quota=100)
    assert capped.quota == 100 and capped.snapshot().quota == 100


def test_the_first_call_goes_alone_and_the_others_wait_for_its_answer():
    import threading

    b = Budget(100)
    assert b.first_call() is True, "the process's first call"
    waiting = threading.Event()
    released = []

    def other():
        waiting.set()
        released.append(b.first_call())

    threads = [threading.Thread(target=other) for _ in range(4)]
    for th in threads:
        th.start()
    waiting.wait(5)
    for th in threads:
        th.join(timeout=0.2)
    assert released == [] and all(th.is_alive() for th in threads), "nobody fans out before the first answer"
    b.first_done()
    for th in threads:
        th.join(timeout=5)
    assert released == [False] * 4
    assert b.first_call() is False, "after the first answer, calls go at once"
    b.reset()
    assert b.first_call() is True, "a reset is a new process"


# --- issue 16/17/18: buckets and the fixed-share table -------------------------------------------

def test_buckets_are_metered_apart():
    from monitor.hub.budget import Priority, bucket_of

    t = FakeTime()
    b = Budget(100, clock=t)
    assert [bucket_of(u) for u in ("https://h/api/models/a/b/refs", "https://h/a/b/resolve/main/config.json",
                                   "https://h/datasets/a/b/resolve/v1/x.csv", "https://h/a/b")] == \
        ["api", "resolvers", "resolvers", "pages"]
    b.observe("resolvers", remaining=0, reset_in=200, quota=5000, window=300)
    assert not b.admit(Priority.PINS, bucket="resolvers"), "a spent resolvers window refuses file reads"
    assert b.admit(Priority.PINS), "and says nothing about api calls"
    assert b.snapshot("resolvers").quota == 5000 and b.snapshot("api").quota == 100
    assert 199 <= b.resets_in("resolvers") <= 200 and b.resets_in("api") > 200


def test_the_hubs_window_is_followed_when_a_new_one_begins():
    t = FakeTime()
    b = Budget(clock=t)
    b.observe("api", remaining=10, reset_in=4, quota=1000, window=5)
    assert b.snapshot().used == 990 and b.room() == 0, "the Hub's count of this window, not ours"
    t.t += 4.5
    b.observe("api", remaining=999, reset_in=5, quota=1000, window=5)
    assert b.snapshot().used <= 1 and b.room() > 900, "a new window, seen in the Hub's own headers"


def test_a_flood_of_events_leaves_the_next_pin_scan_its_full_share():
    from monitor.hub.budget import PINS_FLOOR, Priority

    t = FakeTime()
    b = Budget(1000, clock=t)
    b.reserve_for_pins(600)  # what the last steady pin cycle needed
    events = sum(b.admit(Priority.EVENTS) for _ in range(5000))
    assert events == 100, "events: the lowest row, 10% of the window"
    lookalikes = sum(b.admit(Priority.LOOKALIKES) for _ in range(5000))
    assert events + lookalikes == 950 - 600, "the rows below the pins leave them their reserve"
    pins = sum(b.admit(Priority.PINS) for _ in range(5000))
    assert pins == 600, "the next pin scan has the full steady cycle"
    b.reserve_for_pins(0)
    t.t += 300
    assert sum(b.admit(Priority.EVENTS) for _ in range(5000)) == 100
    assert sum(b.admit(Priority.ROSTER) for _ in range(5000)) == 300, "roster: its own 30%"
    assert sum(b.admit(Priority.CLONES) for _ in range(5000)) == 950 - 1000 * PINS_FLOOR - 400
    assert sum(b.admit(Priority.PINS) for _ in range(5000)) == 1000 * PINS_FLOOR


def test_event_lookups_flood_then_the_pin_scan_checks_every_pin(hub, tmp_path):
    """Through the client: on-demand (EVENTS) calls until refused, then a complete pin scan."""
    from monitor.errors import Transient
    from monitor.hub.models import RepoId

    env = PinsEnv(tmp_path, hub, None)
    for i in range(20):
        hub.add_repo(f"org/m{i}", files={"a": "b"})
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(20)]
    env.extra = '[limits]\nhub_requests_per_5min = 100\n'
    rt = Runtime.build(env.settings())
    try:
        events = rt.client.for_on_demand()
        refused = 0
        for _ in range(300):
            try:
                events.refs(RepoId("model", "org/m0"))
            except Transient:
                refused += 1
        assert refused == 300 - 10, "the flood stops at its 10% share"
        report = scan_pins(rt, complete=True)
        assert report.ok == 20 and report.unknown == 0, "pins still had their budget"
    finally:
        rt.close()


def test_a_429_on_a_file_download_does_not_pause_api_calls(hub, tmp_path):
    from monitor.errors import Transient
    from monitor.hub import session
    from monitor.hub.models import RepoId

    env = PinsEnv(tmp_path, hub, None)
    hub.add_repo("org/m", files={"config.json": "{}"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    rt = Runtime.build(env.settings())
    repo = RepoId("model", "org/m")
    try:
        assert rt.client.file_text(repo, "main", "config.json") == "{}"
        r = [q for q in hub.requests if "/resolve/" in q.path]
        assert r and r[-1].status == 200
        hub.spend_window(200, bucket="resolvers")
        try:
            rt.client.file_text(repo, "main", "config.json")
        except Transient as e:
            assert "429" in str(e)
        else:
            raise AssertionError("the resolvers window is spent")
        assert 190 < session.STATS.paused_for("resolvers") <= 200
        assert session.STATS.paused_for("api") == 0
        assert rt.client.budget.snapshot("resolvers").hub_remaining == 0
        refs = rt.client.refs(repo)  # api calls go on
        assert refs.branch("main")
        assert scan_pins(rt, complete=True).ok == 1
    finally:
        rt.close()


def test_an_event_triggered_scan_draws_on_the_events_row_and_defers_when_it_is_spent(hub, tmp_path):
    from monitor.hub.budget import Priority

    env = PinsEnv(tmp_path, hub, None)
    for i in range(20):
        hub.add_repo(f"org/m{i}", files={"a": "b"})
    env.pins = [{"repo": f"org/m{i}", "track": "main"} for i in range(20)]
    env.extra = '[limits]\nhub_requests_per_5min = 100\n'
    rt = Runtime.build(env.settings())
    try:
        keys = {p.key for p in rt.settings.pin}
        events = scan_pins(rt, complete=True, only=keys, priority=Priority.EVENTS)
        assert events.ok + events.deferred == 20 and events.deferred >= 16, "10 requests: 3 new repos at most"
        assert rt.client.budget.snapshot().used <= 10
        pins = scan_pins(rt, complete=True)
        assert pins.ok == 20, "the scheduled scan still checks every pin"
    finally:
        rt.close()


def test_an_event_checks_content_reads_draw_on_the_events_row(hub, tmp_path):
    """A Hub event's check (client.for_events()) inspects a move's pickles at the lowest row of
    the resolvers bucket, not at the pins': a flood of events cannot spend the downloads the
    scheduled scan's content inspection needs."""
    from monitor.hub import session

    env = PinsEnv(tmp_path, hub, None)
    hub.add_repo("org/m", files={"config.json": "{}"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    rt = Runtime.build(env.settings())
    try:
        assert scan_pins(rt, complete=True).ok == 1  # the baseline
        hub.commit("org/m", {"pytorch_model.bin": b"\x80\x02}q\x00."})  # a move adding a (clean) pickle
        session.BUDGET.reset()
        report = scan_pins(rt, only={"model:org/m"}, client=rt.client.for_events())
        assert report.ok == 1 and report.new_findings, "the move was checked and reported"
        rows = session.BUDGET._buckets["resolvers"].rows
        assert rows.get(Priority.EVENTS, 0) >= 1 and Priority.PINS not in rows, rows
    finally:
        rt.close()
