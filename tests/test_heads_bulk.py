"""Issue 16 point 1: heads in bulk. A steady cycle lists each namespace (one page per 1,000 repos)
and reads refs only where needed; every fallback to per-repo reads is said once and counted.

Request counts (the emulator's log), never durations, are asserted."""

from __future__ import annotations

import json
import logging
import random

import pytest

from monitor.jobs.pins import scan_pins
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from tests.pins_env import Clock, PinsEnv

FILES = {"config.json": "{}", "README.md": "# m"}
LISTING = r"^GET /api/models\?author="


@pytest.fixture
def env(hub, tmp_path):
    return PinsEnv(tmp_path, hub, None)


def build(env, repos, pins=None, clock=None):
    for repo in repos:
        env.hub.add_repo(repo, files=FILES)
    env.pins = pins or [{"repo": r, "track": "main"} for r in repos]
    clock = clock or Clock()
    return Runtime.build(env.settings(), clock=clock), clock


def moves(rt) -> set[str]:
    return {s.finding.subject for s in rt.store.findings() if s.finding.kind == "ref_moved"}


def test_steady_cycle_costs_at_most_a_quarter_request_per_pin_and_finds_every_move(env, hub):
    """200 pins in 4 namespaces: without moves a cycle costs ≤ 0.25 requests per pin; a push to a
    default branch is found in the very cycle after it."""
    repos = [f"org{i % 4}/m{i}" for i in range(200)]
    hub.rate_limit(1_000_000)  # the fake clock packs hours into seconds of real quota windows
    rt, clock = build(env, repos)
    rng = random.Random(16)
    try:
        scan_pins(rt, complete=True)  # baseline
        quiet, moved = [], []
        for cycle in range(18):  # three hours of 10-minute cycles: a whole refs sweep thrice over
            pushed = set(rng.sample(repos, 2)) if cycle % 3 == 2 else set()
            for repo in pushed:
                hub.commit(repo, {"README.md": f"cycle {cycle}"})
            clock.advance(600)
            hub.clear_log()
            before = moves(rt)
            report = scan_pins(rt)
            assert report.ok == 200 and report.unknown == 0
            assert moves(rt) - before == pushed, f"cycle {cycle}: every move found within one cycle"
            assert hub.count(LISTING) == 4, "each namespace listed once a cycle (one page)"
            (moved if pushed else quiet).append(hub.count())
        assert max(quiet) <= 0.25 * 200, quiet
        assert sum(quiet) / len(quiet) <= 0.25 * 200
        assert rt.store.findings() and {s.finding.kind for s in rt.store.findings()} == {"ref_moved"}
    finally:
        rt.close()


def test_every_repo_gets_its_refs_and_scan_read_on_the_sweeps(env, hub):
    repos = [f"org/m{i}" for i in range(12)]
    rt, clock = build(env, repos)
    try:
        scan_pins(rt, complete=True)
        refs, infos = {r: 0 for r in repos}, {r: 0 for r in repos}
        for _ in range(36):  # six hours: refs_every 1h, scan_every 6h
            clock.advance(600)
            hub.clear_log()
            scan_pins(rt)
            for q in hub.requests:
                for r in repos:
                    if q.path == f"/api/models/{r}/refs":
                        refs[r] += 1
                    elif q.path.startswith(f"/api/models/{r}/revision/"):
                        infos[r] += 1
        assert all(n >= 6 for n in refs.values()), refs  # at least hourly
        assert all(n >= 1 for n in infos.values()), infos  # the scan status at least every 6 h
    finally:
        rt.close()


def test_tag_tracking_pins_read_refs_every_cycle_and_tag_moves_are_found(env, hub):
    repos = [f"org/m{i}" for i in range(6)]
    for r in repos:
        hub.add_repo(r, files=FILES)
        hub.create_tag(r, "v1")
    env.pins = [{"repo": repos[0], "track": "v1"}] + [{"repo": r, "track": "main"} for r in repos[1:]]
    clock = Clock()
    rt = Runtime.build(env.settings(), clock=clock)
    try:
        scan_pins(rt, complete=True)
        for _ in range(3):
            clock.advance(600)
            hub.clear_log()
            scan_pins(rt)
            assert hub.count(rf"^GET /api/models/{repos[0]}/refs$") == 1, "a tag's pin reads refs every cycle"
        new = hub.commit(repos[0], {"README.md": "x"}, branch="main")
        hub.move_tag(repos[0], "v1", new)
        clock.advance(600)
        scan_pins(rt)
        kinds = [(s.finding.kind, s.finding.subject) for s in rt.store.findings()]
        assert ("tag_moved", repos[0]) in kinds
    finally:
        rt.close()


def test_a_failing_listing_falls_back_per_repo_said_once_and_counted(env, hub, caplog):
    repos = [f"org/m{i}" for i in range(5)]
    rt, clock = build(env, repos)
    metrics = Metrics(lambda: rt)
    try:
        scan_pins(rt, complete=True)
        hub.fail(LISTING, status=500, times=None)
        caplog.set_level(logging.WARNING, logger="hubwatch.pins")
        pushed = hub.commit("org/m3", {"README.md": "v2"})
        for cycle in range(3):
            clock.advance(600)
            hub.clear_log()
            report = scan_pins(rt)
            metrics.scan(report)
            assert report.ok == 5
            assert hub.count(r"^GET /api/models/org/m\d/refs$") == 5, "every repo read per repo"
            assert hub.count(LISTING) >= 1, "the listing is asked again each cycle (one request)"
        assert moves(rt) == {"org/m3"} and pushed
        said = [r for r in caplog.records if "heads in bulk: model org is read per repo (failed" in r.getMessage()]
        assert len(said) == 1, "said once"
        text = metrics.render()[0].decode()
        assert 'hubwatch_hub_listing_fallbacks_total{reason="failed"} 3.0' in text, "counted each time"
    finally:
        rt.close()


def test_a_namespace_larger_than_its_pins_is_read_per_repo(env, hub):
    """3 pins in a namespace of 9 repos with 2-item pages: listing would take 5 pages, not fewer
    than the 3 repos; after the first (cut short) attempt it is not listed again."""
    for i in range(6):
        hub.add_repo(f"big/other{i}", files=FILES)
    repos = [f"big/m{i}" for i in range(3)]
    rt, clock = build(env, repos)
    hub.page_size = 2
    metrics = Metrics(lambda: rt)
    try:
        scan_pins(rt, complete=True)
        clock.advance(600)
        hub.clear_log()
        metrics.scan(scan_pins(rt))
        assert hub.count(LISTING) <= 2, "never more pages than pinned repos less one"
        assert 'hubwatch_hub_listing_fallbacks_total{reason="truncated"} 1.0' in metrics.render()[0].decode()
        for _ in range(3):
            clock.advance(600)
            hub.clear_log()
            assert scan_pins(rt).ok == 3
            assert hub.count(LISTING) == 0 and hub.count(r"/refs$") == 3
    finally:
        rt.close()


def test_a_listing_that_disagrees_with_refs_makes_the_namespace_per_repo(env, hub):
    repos = [f"org/m{i}" for i in range(4)]
    rt, clock = build(env, repos)
    metrics = Metrics(lambda: rt)
    try:
        scan_pins(rt, complete=True)
        clock.advance(600)
        scan_pins(rt)
        # A listing that shows a head refs do not know (stale, or lying): refs win, the listing loses trust.
        items = []
        for r in repos:
            info = json.loads(__import__("requests").get(f"{hub.url}/api/models/{r}",
                                                         params=[("expand", "sha"), ("expand", "lastModified")]).text)
            items.append({"_id": info["_id"], "id": r, "sha": info["sha"], "lastModified": info["lastModified"],
                          "private": False, "gated": False, "disabled": False,
                          "createdAt": "2026-01-01T00:00:00.000Z"})
        items[1]["sha"] = "f" * 40
        hub.respond(LISTING, 200, json.dumps(items), times=1)
        clock.advance(600)
        hub.clear_log()
        metrics.scan(scan_pins(rt))
        assert hub.count(r"^GET /api/models/org/m1/refs$") == 1
        assert 'hubwatch_hub_listing_fallbacks_total{reason="disagrees"} 1.0' in metrics.render()[0].decode()
        clock.advance(600)
        hub.clear_log()
        assert scan_pins(rt).ok == 4
        assert hub.count(LISTING) == 0 and hub.count(r"/refs$") == 4, "per repo while the fallback holds"
        assert rt.store.findings() == []
    finally:
        rt.close()


def test_a_repo_missing_from_the_listing_is_read_per_repo(env, hub):
    repos = [f"org/m{i}" for i in range(4)]
    rt, clock = build(env, repos)
    try:
        scan_pins(rt, complete=True)
        hub.delete_repo("org/m2")
        for _ in range(2):  # "gone" needs two definitive answers
            clock.advance(600)
            hub.clear_log()
            scan_pins(rt)
            assert hub.count(r"^GET /api/models/org/m2/refs$") == 1
        kinds = [(s.finding.kind, s.finding.subject) for s in rt.store.findings()]
        assert kinds == [("repo_unavailable", "org/m2")]
    finally:
        rt.close()


def test_newly_private_or_gated_in_the_listing_is_checked_at_once(env, hub):
    repos = [f"org/m{i}" for i in range(4)]
    rt, clock = build(env, repos)
    try:
        scan_pins(rt, complete=True)
        clock.advance(600)
        scan_pins(rt)
        hub.set_gated("org/m1", "manual")
        clock.advance(600)
        hub.clear_log()
        scan_pins(rt)
        assert hub.count(r"^GET /api/models/org/m1/revision/main") == 1, "read at once, not at the next sweep"
        kinds = [(s.finding.kind, s.finding.subject) for s in rt.store.findings()]
        assert kinds == [("repo_unavailable", "org/m1")], kinds  # gated, no access for us
    finally:
        rt.close()


def test_pins_not_reached_under_a_spent_quota_go_first_next_cycle(env, hub):
    """The daemon under a spent quota: what a cycle could not check is deferred (state untouched)
    and checked first in the next; none is starved."""
    repos = [f"ns{i}/m" for i in range(10)]  # one repo a namespace: every repo read per repo
    rt, clock = build(env, repos)
    try:
        scan_pins(rt, complete=True)
        last_ok_seen: dict[str, int] = {}
        for cycle in range(4):
            clock.advance(600)
            hub.rate_limit(8)  # a fresh window each cycle that covers 7 of the 10 repos
            rt.client.budget.reset()
            report = scan_pins(rt)
            assert report.deferred > 0 and report.ok + report.deferred == 10
            for o in report.outcomes:
                if o.status == "ok":
                    last_ok_seen[o.key] = cycle
        assert len(last_ok_seen) == 10, "every repo got its turn"
        ages = {k: json.loads(rt.store.load_state(k))["last_ok"] for k in last_ok_seen}
        oldest = min(ages.values())
        assert oldest >= "2026-01-01T00:30", ages  # none left behind for more than two cycles
        assert all(s.finding.kind != "monitoring_degraded" for s in rt.store.findings())
    finally:
        rt.close()


def test_a_listing_without_any_pinned_repo_is_missing_and_read_per_repo(env, hub):
    repos = [f"org/m{i}" for i in range(3)]
    rt, clock = build(env, repos)
    metrics = Metrics(lambda: rt)
    try:
        scan_pins(rt, complete=True)
        hub.respond(LISTING, 200, "[]", times=1)
        clock.advance(600)
        hub.clear_log()
        report = scan_pins(rt)
        metrics.scan(report)
        assert report.ok == 3 and hub.count(r"/refs$") == 3
        assert 'hubwatch_hub_listing_fallbacks_total{reason="missing"} 1.0' in metrics.render()[0].decode()
    finally:
        rt.close()


def test_metrics_stale_pins_and_quota_per_bucket(env, hub):
    repos = [f"org/m{i}" for i in range(4)]
    rt, clock = build(env, repos)
    metrics = Metrics(lambda: rt)

    def value(name: str) -> float:
        text = metrics.render()[0].decode()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

    try:
        assert value("hubwatch_pins_stale") == 0, "before any scan nothing is known to be stale"
        metrics.scan(scan_pins(rt, complete=True))
        assert value("hubwatch_pins_stale") == 0
        clock.advance(3 * 600)  # three cycles without an answer
        assert value("hubwatch_pins_stale") == 4
        metrics.scan(scan_pins(rt))
        assert value("hubwatch_pins_stale") == 0
        api = value('hubwatch_hub_quota_remaining{bucket="api"}')
        assert 0 < api < 500 and value('hubwatch_hub_quota_remaining{bucket="resolvers"}') == 3000
        assert value('hubwatch_hub_quota_remaining{bucket="pages"}') == 100
    finally:
        rt.close()


def test_a_listing_that_lags_behind_a_push_never_loses_the_move(env, hub):
    """How long a push takes to show in a listing was never measured (docs/heads-in-bulk.md), so
    the least convenient answer: the listing still shows the old head after the push. The move is
    not lost — found by the cycle whose listing (or refs read) shows it — and alerted once."""
    from dataclasses import replace

    repos = [f"org/m{i}" for i in range(30)]
    for repo in repos:
        hub.add_repo(repo, files=FILES)
    env.pins = [{"repo": r, "track": "main"} for r in repos]
    settings = env.settings()
    week = 7 * 86400.0  # sweeps of one repo a cycle, oldest first: they reach m29 in days
    settings = replace(settings, pins=replace(settings.pins, refs_every=week, scan_every=week, metadata_every=week))
    clock = Clock()
    rt = Runtime.build(settings, clock=clock)
    try:
        scan_pins(rt, complete=True)
        clock.advance(600)
        scan_pins(rt)
        stale = __import__("requests").get(f"{hub.url}/api/models", params=[
            ("author", "org"), ("limit", "1000"), *(("expand", k) for k in ("sha", "lastModified", "createdAt",
                                                                            "private", "gated", "disabled"))]).text
        hub.commit("org/m29", {"README.md": "pushed"})
        hub.respond(LISTING, 200, stale, times=1)  # the listing lags one cycle behind the push
        clock.advance(600)
        hub.clear_log()
        first = scan_pins(rt)
        assert first.ok == 30 and first.listing_pages == 1
        assert hub.count(r"/m29/refs$") == 0 and moves(rt) == set(), "the stale listing vouched for m29"
        clock.advance(600)
        hub.clear_log()
        scan_pins(rt)
        assert hub.count(r"/m29/refs$") == 1 and moves(rt) == {"org/m29"}, "found by the cycle whose listing shows it"
        assert len([s for s in rt.store.findings() if s.finding.kind == "ref_moved"]) == 1
        assert not any("disagrees" in fb.reason for fb in first.fallbacks)
    finally:
        rt.close()


def test_under_a_short_quota_a_listed_move_goes_before_the_sweeps(env, hub):
    """A cycle whose window covers only a few reads spends them on the move the listing shows,
    not on sweep reads of repos where nothing moved (those wait, at most until they are stale)."""
    repos = [f"org/m{i}" for i in range(20)]
    rt, clock = build(env, repos)
    try:
        scan_pins(rt, complete=True)
        clock.advance(600)
        scan_pins(rt)
        hub.commit("org/m19", {"README.md": "pushed"})  # the last in every order but this one
        clock.advance(600)
        hub.rate_limit(7)  # a fresh window (6 planned): the listing, the move's 3 reads, not all 5 sweep reads
        rt.client.budget.reset()
        hub.clear_log()
        report = scan_pins(rt)
        assert report.deferred > 0, "the sweeps did not all fit"
        assert moves(rt) == {"org/m19"}, "the move was read in this cycle"
        assert hub.count(r"/m19/refs$") == 1
        for _ in range(3):  # the deferred sweeps are not starved: they go first once stale
            clock.advance(600)
            hub.rate_limit(1000)
            rt.client.budget.reset()
            assert scan_pins(rt).deferred == 0
    finally:
        rt.close()
