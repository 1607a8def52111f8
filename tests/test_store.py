"""Store tests on real temporary SQLite files, with subprocesses and threads for concurrency."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detect.findings import Finding, Link
from monitor.store import OutboxItem, OutboxStats, Store, StoredFinding
from monitor.store.db import from_db_time, to_db_time
from monitor.store.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 27, 2, 21, 35, tzinfo=timezone.utc)
SINKS = ["slack", "webhook"]


def mk(n: int, kind: str = "revision_changed", subject: str = "org/model", severity: str = "high",
       **evidence) -> Finding:
    return Finding.make(kind, severity, subject, f"finding {n}", key=n,
                        evidence={"n": n, **evidence},
                        links=(Link("repo", f"https://huggingface.co/{subject}"),))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "hubwatch.db"


@pytest.fixture
def store(path: Path):
    s = Store.open(path)
    yield s
    s.close()


def count(store: Store, sql: str, params=()) -> int:
    return store.db.execute(sql, params).fetchone()[0]


# --- opening & migrations ---------------------------------------------------------------------


def test_open_creates_parent_dir_and_sets_pragmas(path: Path):
    assert not path.parent.exists()
    with Store.open(path) as s:
        assert path.exists()
        pragma = lambda name: s.db.execute(f"PRAGMA {name}").fetchone()[0]
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 10000
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert {"repo_state", "observations", "findings", "outbox", "meta",
                "_sqlite_migrations"} <= set(s.db.table_names())


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_database_wal_and_shm_are_created_0600_whatever_the_umask(path: Path):
    old = os.umask(0o022)  # the usual umask outside systemd: files would be 0644
    try:
        with Store.open(path) as s:
            s.set_meta("k", "v")  # a write: the -wal and -shm files exist now
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    finally:
        os.umask(old)
    assert set(modes) == {path.name, path.name + "-wal", path.name + "-shm"}
    assert modes == dict.fromkeys(modes, 0o600)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_an_existing_world_readable_database_is_tightened(path: Path):
    Store.open(path).close()
    path.chmod(0o644)
    with Store.open(path) as s:
        s.set_meta("k", "v")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_migrations_recorded_and_idempotent_on_reopen(path: Path):
    names = [m.name for m in MIGRATIONS._migrations]
    assert names, "at least one migration is registered"
    with Store.open(path) as s:
        first = [(r["migration_set"], r["name"], r["applied_at"])
                 for r in s.db.query("SELECT * FROM _sqlite_migrations ORDER BY id")]
        s.record("k", "{}", [mk(1)], SINKS, T0)
    assert [(m, n) for m, n, _ in first] == [("hubwatch", n) for n in names]
    for _ in range(2):
        with Store.open(path) as s:
            again = [(r["migration_set"], r["name"], r["applied_at"])
                     for r in s.db.query("SELECT * FROM _sqlite_migrations ORDER BY id")]
            assert again == first  # nothing re-applied, timestamps untouched
            assert MIGRATIONS.pending(s.db) == []
            assert s.has_finding(mk(1).fingerprint)  # data survived the reopen


def test_concurrent_first_open_applies_migrations_once(tmp_path: Path):
    """Daemon and CLI creating a brand-new file at the same moment must all succeed (WAL switch
    and migrations race); repeated on fresh files because the race is timing-dependent."""
    for attempt in range(15):
        path = tmp_path / f"race{attempt}" / "hubwatch.db"
        barrier, errors, stores = threading.Barrier(4), [], []

        def opener():
            barrier.wait()
            try:
                stores.append(Store.open(path))
            except Exception as e:  # pragma: no cover - the assertion below reports it
                errors.append(e)

        threads = [threading.Thread(target=opener) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            assert errors == []
            assert count(stores[0], "SELECT count(*) FROM _sqlite_migrations") == len(
                MIGRATIONS._migrations)
            assert {s.db.journal_mode for s in stores} == {"wal"}
        finally:
            for s in stores:
                s.close()


def test_memory_database_works():
    with Store.open(":memory:") as s:
        assert s.record("k", "{}", [mk(1)], SINKS, T0) == [mk(1)]
        assert len(s.pending()) == 2


def test_close_is_idempotent(path: Path):
    s = Store.open(path)
    s.close()
    s.close()


# --- timestamps ---------------------------------------------------------------------------------


@given(st.lists(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1),
                             timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5)),
                                                        timezone(timedelta(hours=-8))])),
                min_size=1, max_size=20))
def test_db_times_are_fixed_width_sortable_and_roundtrip(dts):
    texts = [to_db_time(d) for d in dts]
    assert {len(t) for t in texts} == {27}
    assert sorted(texts) == [to_db_time(d) for d in sorted(dts)]
    assert [from_db_time(t) for t in texts] == dts


def test_naive_datetime_rejected_and_nothing_written(store: Store):
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record("k", "{}", [mk(1)], SINKS, datetime(2026, 1, 1))
    assert store.load_state("k") is None
    assert not store.has_finding(mk(1).fingerprint)


# --- repo state, observations, meta -----------------------------------------------------------


def test_state_roundtrip_and_prefix(store: Store):
    assert store.load_state("model:org/a") is None
    assert store.load_states() == {}
    store.record("model:org/a_b", '{"v":1}', [], SINKS, at(0))
    store.record("model:org/axb", '{"v":2}', [], SINKS, at(1))
    store.record("dataset:org/a", '{"v":3}', [], SINKS, at(2))
    store.record("model:org/a_b", '{"v":4}', [], SINKS, at(3))  # upsert
    assert store.load_state("model:org/a_b") == '{"v":4}'
    assert store.load_states("model:") == {"model:org/a_b": '{"v":4}', "model:org/axb": '{"v":2}'}
    # '_' is a literal, not a LIKE wildcard
    assert store.load_states("model:org/a_") == {"model:org/a_b": '{"v":4}'}
    assert set(store.load_states()) == {"model:org/a_b", "model:org/axb", "dataset:org/a"}
    assert store.db.execute("SELECT updated_at FROM repo_state WHERE key='model:org/a_b'"
                            ).fetchone()[0] == to_db_time(at(3))


def test_state_none_keeps_previous_state(store: Store):
    store.record("k", '{"v":1}', [], SINKS, at(0))
    store.record("k", None, [mk(1)], SINKS, at(1))
    assert store.load_state("k") == '{"v":1}'
    assert store.has_finding(mk(1).fingerprint)


def test_observations_are_appended_history(store: Store):
    store.record("k", "{}", [], SINKS, at(0), observation='{"sha":"a"}')
    store.record("k", "{}", [], SINKS, at(1))  # no observation -> no row
    store.record("k", "{}", [], SINKS, at(2), observation='{"sha":"b"}')
    rows = store.db.execute("SELECT key, at, json FROM observations ORDER BY id").fetchall()
    assert rows == [("k", to_db_time(at(0)), '{"sha":"a"}'), ("k", to_db_time(at(2)), '{"sha":"b"}')]


def test_meta(store: Store):
    assert store.get_meta("feed_cursor") is None
    store.set_meta("feed_cursor", "abc")
    store.set_meta("feed_cursor", "def")
    assert store.get_meta("feed_cursor") == "def"


# --- findings -----------------------------------------------------------------------------------


def test_record_returns_new_findings_in_input_order_and_dedups_within_call(store: Store):
    f1, f2, f3 = mk(1), mk(2), mk(3)
    assert store.record("k", "{}", [f3, f1, f3, f2, f1], SINKS, T0) == [f3, f1, f2]
    assert count(store, "SELECT count(*) FROM findings") == 3
    assert count(store, "SELECT count(*) FROM outbox") == 3 * len(SINKS)


def test_record_empty_findings(store: Store):
    assert store.record("k", '{"a":1}', [], SINKS, T0) == []
    assert store.load_state("k") == '{"a":1}'
    assert count(store, "SELECT count(*) FROM outbox") == 0


def test_dedup_across_reopen(path: Path):
    with Store.open(path) as s:
        assert s.record("k", "{}", [mk(1), mk(2)], SINKS, at(0)) == [mk(1), mk(2)]
    with Store.open(path) as s:
        assert s.record("k", "{}", [mk(2), mk(3), mk(1)], SINKS, at(1)) == [mk(3)]
        assert [sf.finding.fingerprint for sf in s.findings()] == [mk(n).fingerprint for n in (1, 2, 3)]
        # the original first_seen is kept for a re-detected finding
        assert s.findings()[1].first_seen == at(0)
        assert count(s, "SELECT count(*) FROM outbox") == 3 * len(SINKS)


def test_record_is_atomic_when_something_raises(store: Store):
    store.record("k", '{"v":1}', [mk(1)], SINKS, at(0))
    bad = Finding("revision_changed", "high", "org/m", "bad", {"x": object()}, (), "fp-bad")
    with pytest.raises(TypeError):
        store.record("k", '{"v":2}', [mk(2), bad], SINKS, at(1), observation="{}")
    assert store.load_state("k") == '{"v":1}'
    assert not store.has_finding(mk(2).fingerprint)
    assert count(store, "SELECT count(*) FROM observations") == 0
    assert count(store, "SELECT count(*) FROM outbox") == len(SINKS)
    # and the connection is still usable, with no transaction left open
    assert store.record("k", '{"v":3}', [mk(2)], SINKS, at(2)) == [mk(2)]
    assert not store.db.conn.in_transaction


def test_outbox_rows_one_per_distinct_sink(store: Store):
    store.record("k", "{}", [mk(1)], ["slack", "stdout", "slack"], T0)
    store.record("k", "{}", [mk(2)], [], T0)
    rows = store.db.execute("SELECT sink, state, attempts, next_attempt_at, created_at FROM outbox"
                            " ORDER BY id").fetchall()
    t = to_db_time(T0)
    assert rows == [("slack", "pending", 0, t, t), ("stdout", "pending", 0, t, t)]
    assert store.has_finding(mk(2).fingerprint)  # recorded even with no sink configured


def test_findings_filters_order_and_roundtrip(store: Store):
    store.record("k", "{}", [mk(2, kind="lookalike")], SINKS, at(20))
    store.record("k", "{}", [mk(1)], SINKS, at(10))
    store.record("k", "{}", [mk(3), mk(4, kind="lookalike")], SINKS, at(30))
    all_ = store.findings()
    assert [sf.finding.summary for sf in all_] == ["finding 1", "finding 2", "finding 3", "finding 4"]
    assert [sf.first_seen for sf in all_] == [at(10), at(20), at(30), at(30)]
    assert all(isinstance(sf, StoredFinding) for sf in all_)
    assert [sf.finding.summary for sf in store.findings(kind="lookalike")] == ["finding 2", "finding 4"]
    assert [sf.finding.summary for sf in store.findings(since=at(20))] == [
        "finding 2", "finding 3", "finding 4"]
    assert [sf.finding.summary for sf in store.findings(kind="lookalike", since=at(21))] == ["finding 4"]
    got = all_[0].finding
    assert got == mk(1) and got.evidence == {"n": 1} and got.links == mk(1).links


def test_stored_finding_json_dict(store: Store):
    store.record("k", "{}", [mk(7, sha="abc")], SINKS, T0 + timedelta(microseconds=123456))
    sf = store.findings()[0]
    d = sf.to_json_dict()
    assert d == {**mk(7, sha="abc").to_dict(), "first_seen": "2026-11-27T02:21:35Z", "id": sf.id,
                 "acked_at": None, "ack_note": None, "acked_by": None}
    json.dumps(d)  # serialisable as is


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 12), max_size=8),
                          st.lists(st.sampled_from(["a", "b", "c"]), max_size=3)),
                max_size=8))
def test_record_dedup_matches_model(batches):
    seen: set[int] = set()
    expected_outbox = 0
    with Store.open(":memory:") as s:
        for i, (keys, sinks) in enumerate(batches):
            expected = []
            for k in keys:
                if k not in seen:
                    seen.add(k)
                    expected.append(mk(k))
            expected_outbox += len(expected) * len(set(sinks))
            got = s.record("k", "{}", [mk(k) for k in keys], sinks, at(i))
            assert [f.fingerprint for f in got] == [f.fingerprint for f in expected]
        assert count(s, "SELECT count(*) FROM findings") == len(seen)
        assert count(s, "SELECT count(*) FROM outbox") == expected_outbox


# --- outbox: claim & transitions ----------------------------------------------------------------


def test_claim_in_creation_order_with_limit_and_sink_filter(store: Store):
    store.record("k", "{}", [mk(1), mk(2)], SINKS, at(0))
    store.record("k", "{}", [mk(3)], SINKS, at(1))
    assert store.claim("slack", at(-1)) == []  # nothing due yet
    first = store.claim("slack", at(5), limit=2)
    assert [i.finding.summary for i in first] == ["finding 1", "finding 2"]
    assert all(i.sink == "slack" and i.claim_token and i.attempts == 0 for i in first)
    assert len({i.claim_token for i in first}) == 2
    assert first[0].created_at == at(0)
    rest = store.claim("slack", at(5))
    assert [i.finding.summary for i in rest] == ["finding 3"]
    assert store.claim("slack", at(5)) == []  # all claimed, lease not expired
    assert [i.finding.summary for i in store.claim("webhook", at(5))] == [
        "finding 1", "finding 2", "finding 3"]


def test_expired_lease_is_reclaimed_and_stale_token_loses(store: Store):
    store.record("k", "{}", [mk(1)], SINKS, at(0))
    [old] = store.claim("slack", at(0), lease_seconds=60)
    assert store.claim("slack", at(59)) == []
    assert store.claim("slack", at(60)) == []  # claimed_until < now, strictly
    [new] = store.claim("slack", at(61), lease_seconds=60)
    assert new.id == old.id and new.claim_token != old.claim_token
    assert store.mark_sent(old, at(62)) is False
    assert store.mark_retry(old, at(62), at(100), "x") is False
    assert store.mark_dead(old, at(62), "x") is False
    assert store.release(old) is False
    assert store.mark_sent(new, at(62)) is True
    assert store.mark_sent(new, at(63)) is False  # already sent
    assert store.outbox_stats(at(63)).sent == 1


def test_unclaimed_item_cannot_be_marked(store: Store):
    store.record("k", "{}", [mk(1)], ["slack"], at(0))
    [item] = store.pending()
    assert item.claim_token is None
    assert store.mark_sent(item, at(1)) is False
    forged = OutboxItem(item.id, item.sink, item.finding, 0, "not-the-token", item.created_at, None)
    store.claim("slack", at(1))
    assert store.mark_sent(forged, at(1)) is False


def test_mark_retry_backs_off(store: Store):
    store.record("k", "{}", [mk(1)], ["slack"], at(0))
    [item] = store.claim("slack", at(0))
    assert store.mark_retry(item, at(1), at(30), "HTTP 503") is True
    assert store.claim("slack", at(29)) == []
    [again] = store.claim("slack", at(30))
    assert again.attempts == 1 and again.last_error == "HTTP 503"
    assert store.mark_retry(again, at(31), at(40), "timeout") is True
    [third] = store.claim("slack", at(41))
    assert third.attempts == 2 and third.last_error == "timeout"


def test_release_gives_claim_back_untouched(store: Store):
    store.record("k", "{}", [mk(1)], ["slack"], at(0))
    [item] = store.claim("slack", at(0))
    assert store.release(item) is True
    assert store.release(item) is False
    [again] = store.claim("slack", at(0))
    assert again.id == item.id and again.attempts == 0 and again.last_error is None


def test_dead_letters_and_requeue(store: Store):
    store.record("k", "{}", [mk(1), mk(2)], SINKS, at(0))
    for sink in SINKS:
        for item in store.claim(sink, at(1)):
            assert store.mark_dead(item, at(2), f"{sink} 404") is True
    dead = store.dead_letters()
    assert [(d.sink, d.finding.summary, d.attempts, d.last_error) for d in dead] == [
        ("slack", "finding 1", 1, "slack 404"), ("webhook", "finding 1", 1, "webhook 404"),
        ("slack", "finding 2", 1, "slack 404"), ("webhook", "finding 2", 1, "webhook 404")]
    assert store.claim("slack", at(1000)) == []  # dead rows are never claimed
    assert store.pending() == []
    assert store.requeue_dead("slack") == 2
    assert [d.sink for d in store.dead_letters()] == ["webhook", "webhook"]
    requeued = store.claim("slack", at(3))  # due immediately
    assert [(i.finding.summary, i.attempts, i.last_error) for i in requeued] == [
        ("finding 1", 0, "slack 404"), ("finding 2", 0, "slack 404")]
    assert store.requeue_dead() == 2
    assert store.dead_letters() == []
    assert store.requeue_dead() == 0


def test_pending_lists_undelivered_without_claiming(store: Store):
    store.record("k", "{}", [mk(1), mk(2), mk(3)], SINKS, at(0))
    [a, b] = store.claim("slack", at(0), limit=2)
    assert store.mark_sent(a, at(1))
    assert [(p.sink, p.finding.summary) for p in store.pending("slack")] == [
        ("slack", "finding 2"), ("slack", "finding 3")]
    assert len(store.pending()) == 5
    assert [p.sink for p in store.pending()] == ["webhook", "slack", "webhook", "slack", "webhook"]
    # pending() did not claim: the unclaimed slack row is still claimable
    assert [i.finding.summary for i in store.claim("slack", at(0))] == ["finding 3"]


def test_outbox_stats(store: Store):
    assert store.outbox_stats(at(0)) == OutboxStats(0, 0, 0, 0, None)
    store.record("k", "{}", [mk(1)], SINKS, at(0))
    store.record("k", "{}", [mk(2)], SINKS, at(10))
    [s1, s2] = store.claim("slack", at(20))
    store.mark_sent(s1, at(21))
    [w1] = store.claim("webhook", at(20), limit=1)
    store.mark_dead(w1, at(21), "gone")
    assert store.outbox_stats(at(100)) == OutboxStats(pending=1, claimed=1, dead=1, sent=1,
                                                      oldest_pending_age_seconds=90.0)
    store.mark_sent(s2, at(101))
    [w2] = store.claim("webhook", at(101))
    store.mark_sent(w2, at(102))
    assert store.outbox_stats(at(200)) == OutboxStats(0, 0, 1, 3, None)


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("a_limit", [50, 2])
def test_claim_cas_deterministic_race(path: Path, a_limit: int):
    """B claims A's candidates between A's SELECT and A's UPDATE: A gets none of those rows, and
    (having lost some) looks again instead of returning an empty batch while rows are due."""
    with Store.open(path) as a, Store.open(path) as b:
        a.record("k", "{}", [mk(n) for n in range(4)], ["slack"], at(0))
        ids = [i.id for i in a.pending()]
        stolen: list[OutboxItem] = []

        def interleave(sql, params):
            # runs just before A takes the write lock for its CAS UPDATEs, after A picked its candidates
            if not stolen and sql.lstrip().startswith("BEGIN IMMEDIATE"):
                stolen.extend(b.claim("slack", at(1), limit=2))

        with a.db.tracer(interleave):
            mine = a.claim("slack", at(1), limit=a_limit)
        assert [i.id for i in stolen] == ids[:2]
        assert [i.id for i in mine] == ids[2:]
        assert {i.claim_token for i in mine}.isdisjoint({i.claim_token for i in stolen})
        assert a.claim("slack", at(1)) == [] and b.claim("slack", at(1)) == []


@pytest.mark.parametrize("shared", [False, True], ids=["two-stores", "one-store"])
def test_concurrent_claims_never_hand_a_row_to_two(path: Path, shared: bool):
    n = 400
    with Store.open(path) as setup:
        for start in range(0, n, 50):
            setup.record("k", "{}", [mk(i) for i in range(start, start + 50)], ["slack"], at(0))
    stores = [Store.open(path)] * 2 if shared else [Store.open(path), Store.open(path)]
    claimed: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(idx: int):
        try:
            barrier.wait()
            while True:
                got = stores[idx].claim("slack", at(1), limit=7)
                if not got:
                    return
                claimed[idx].extend(i.id for i in got)
                time.sleep(0.0005)  # let the other thread in, so claims really interleave
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in set(stores):
        s.close()
    assert errors == []
    union = claimed[0] + claimed[1]
    assert len(union) == len(set(union)) == n
    assert claimed[0] and claimed[1], "both claimers took part (otherwise nothing was tested)"
    assert all(c == sorted(c) for c in claimed)  # each claimer sees creation order


def test_concurrent_writers_dedup_across_instances(path: Path):
    """Two processes detecting the same findings queue each alert exactly once."""
    stores = [Store.open(path), Store.open(path)]
    new: list[list[Finding]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(idx: int):
        try:
            barrier.wait()
            for i in range(0, 300, 3):
                new[idx] += stores[idx].record(f"k{idx}", json.dumps({"i": i}),
                                               [mk(i), mk(i + 1), mk(i + 2)], SINKS, at(i))
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fps = [f.fingerprint for f in new[0] + new[1]]
    assert len(fps) == len(set(fps)) == 300
    assert count(stores[0], "SELECT count(*) FROM outbox") == 300 * len(SINKS)
    for s in stores:
        s.close()


def test_reader_never_sees_database_locked_while_writer_writes(path: Path):
    writer, reader = Store.open(path), Store.open(path)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads, seen_counts = [0], []

    def write_loop():
        i = 0
        try:
            while not stop.is_set():
                writer.record(f"model:org/r{i % 10}", json.dumps({"i": i}),
                              [mk(i), mk(i + 100_000)], SINKS, at(i), observation="{}")
                for item in writer.claim("slack", at(i), limit=2):
                    writer.mark_sent(item, at(i))
                i += 1
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    def read_loop():
        try:
            while not stop.is_set():
                seen_counts.append(len(reader.findings()))
                reader.load_states("model:")
                reader.pending("webhook")
                reader.outbox_stats(at(0))
                reads[0] += 1
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=write_loop), threading.Thread(target=read_loop)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    writer.close()
    reader.close()
    assert errors == [], errors
    assert reads[0] > 10
    assert seen_counts == sorted(seen_counts)  # readers see a consistent, growing history
    assert seen_counts[-1] > seen_counts[0]


# --- crash safety -------------------------------------------------------------------------------

WRITER = r"""
import json, sys
from datetime import datetime, timedelta, timezone
from monitor.detect.findings import Finding
from monitor.store import Store

path, base = sys.argv[1], int(sys.argv[2])
t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
store = Store.open(path)
i = base
while True:
    now = t0 + timedelta(seconds=i)
    fs = [Finding.make("rev", "high", "org/m", "changed", key=i, evidence={"i": i}),
          Finding.make("rev", "high", "org/m", "changed", key=i // 2, evidence={"i": i // 2}),
          Finding.make("static", "low", "org/m", "always the same", key=0)]
    store.record(f"model:org/r{i % 7}", json.dumps({"i": i}), fs, ["slack", "webhook", "stdout"],
                 now, observation=json.dumps({"i": i}))
    for item in store.claim("slack", now, limit=3):
        store.mark_sent(item, now)
    if i == base + 20:
        print("ready", flush=True)
    i += 1
"""


def test_survives_kill_9_mid_loop(path: Path):
    path.parent.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_, delay in enumerate([0.0, 0.05, 0.11, 0.2, 0.03, 0.3, 0.07, 0.17]):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(round_ * 1_000_000)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            line = proc.stdout.readline()
            assert line == "ready\n", proc.stderr.read()
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

        # a plain sqlite3 connection (no store code) checks the file itself first
        raw = sqlite3.connect(path)
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
        raw.close()

        with Store.open(path) as s:
            n_findings = count(s, "SELECT count(*) FROM findings")
            assert n_findings > 20 * (round_ + 1)
            # atomicity: every finding has all three of its outbox rows
            assert s.db.execute(
                "SELECT count(*) FROM findings f WHERE (SELECT count(*) FROM outbox o"
                " WHERE o.finding_id = f.id) != 3").fetchone()[0] == 0
            assert sorted(r[0] for r in s.db.execute("SELECT DISTINCT sink FROM outbox")) == [
                "slack", "stdout", "webhook"]
            # dedup across restarts: the finding every iteration re-detects exists once
            assert len(s.findings(kind="static")) == 1
            # the state committed for each repo came with its findings and observation
            for key, state in s.load_states("model:").items():
                i = json.loads(state)["i"]
                assert s.has_finding(Finding.make("rev", "high", "org/m", "", key=i).fingerprint)
                assert s.db.execute("SELECT count(*) FROM observations WHERE key = ? AND json = ?",
                                    [key, state]).fetchone()[0] == 1
            stats = s.outbox_stats(datetime(2026, 1, 1, tzinfo=timezone.utc))
            assert stats.pending + stats.claimed + stats.sent == n_findings * 3
