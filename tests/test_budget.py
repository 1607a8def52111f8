"""The shared Hub request budget: fixed windows, a reserve for pin checks, the Hub's word wins."""

from __future__ import annotations

import json

from monitor.hub.budget import Budget
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
        assert b.allow(low_priority=True)
        b.count()
    assert not b.allow(low_priority=True), "probing stops at 70% of the window"
    for _ in range(25):
        assert b.allow()
        b.count()
    assert not b.allow(), "nothing past 95%"
    assert b.snapshot().used == 95, "an admitted call and its request count once"
    assert 0 < b.resets_in() <= 300
    t.t += 300
    assert b.allow(low_priority=True) and b.snapshot().used == 1  # a fresh window, this call in it


def test_concurrent_admissions_never_overshoot():
    import threading

    b = Budget(100)
    admitted = []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        for _ in range(20):
            if b.allow(low_priority=True):
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
    assert b.allow()
    b.count()
    b.count()  # a retry of the same call
    assert b.snapshot().used == 2


def test_hub_header_wins_when_it_says_less_remains():
    t = FakeTime()
    b = Budget(1000, clock=t)
    b.observe(remaining=3, reset_in=60)
    assert not b.allow() and not b.allow(low_priority=True)
    t.t += 61
    assert b.allow()


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
    admitted = sum(b.allow(on_demand=True) for _ in range(400))
    assert admitted == 100, "on-demand lookups: 10% of the window"
    for _ in range(600):
        assert b.allow(low_priority=True)
    assert not b.allow(on_demand=True), "nor past 70% of the window, even within their share"
    assert sum(b.allow() for _ in range(400)) == 250, "pin checks keep everything up to 95%"
    t.t += 300
    assert b.allow(on_demand=True), "a new window, a new share"


def test_quota_before_the_first_answer_is_the_hubs_default_then_what_it_advertises():
    t = FakeTime()
    anonymous, token, capped = Budget(clock=t, token=False), Budget(clock=t), Budget(300, clock=t)
    assert (anonymous.quota, token.quota, capped.quota) == (500, 1000, 300)
    for b in (anonymous, token, capped):
        b.observe(remaining=2400, reset_in=200, quota=2500)  # a PRO token
    assert (anonymous.quota, token.quota, capped.quota) == (2500, 2500, 300), "configured: the lower of the two"
    capped.observe(remaining=90, reset_in=200, quota=100)
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
