"""Durable state of hubwatch: repo state, observations, findings and the alert outbox.

``Store`` is the one entry point. It owns one SQLite connection (see ``db.py`` for why WAL,
``busy_timeout`` and ``synchronous=NORMAL``) and serialises every use of it with an ``RLock``,
because the daemon calls it from worker threads; separate processes coordinate through SQLite's
own locking. The SQL lives in ``repos.py``, ``findings.py`` and ``outbox.py``; this class only
adds the lock and the transaction boundaries.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Sequence

from ..detect.findings import Finding
from ..detect.reports import Report
from . import dead_letters as _dead
from . import findings as _findings
from . import migrations as _migrations
from . import outbox as _outbox
from . import probes as _probes
from . import replays as _replays
from . import repos as _repos
from .db import connect, connect_readonly, write
from .findings import StoredFinding
from .outbox import OutboxItem, OutboxStats

__all__ = ["Store", "StoredFinding", "OutboxItem", "OutboxStats"]


class Store:
    """Thread-safe access to the hubwatch database. Build it with :meth:`Store.open`."""

    def __init__(self, db, path: str) -> None:
        self.db = db  # sqlite_utils.Database; exposed for diagnostics and tests
        self.path = path
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Store":
        """Open (or create) the database at ``path`` and apply pending migrations."""
        db = connect(path)
        try:
            _migrations.apply(db)
        except BaseException:
            db.close()
            raise
        return cls(db, os.fspath(path))

    @classmethod
    def open_readonly(cls, path: str | os.PathLike) -> "Store":
        """Open an existing database without migrating or writing it (safe while the daemon runs).

        A database from an older hubwatch (migrations pending) is opened normally and migrated
        once, as any command would: its old schema lacks what the caller is about to read."""
        db = connect_readonly(path)
        try:
            pending = _migrations.MIGRATIONS.pending(db)
        except BaseException:
            db.close()
            raise
        if pending:
            db.close()
            return cls.open(path)
        return cls(db, os.fspath(path))

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- watched-repo state ---------------------------------------------------------------------

    def load_state(self, key: str) -> str | None:
        with self._lock:
            return _repos.load_state(self.db, key)

    def load_states(self, prefix: str = "") -> dict[str, str]:
        with self._lock:
            return _repos.load_states(self.db, prefix)

    def record(self, key: str, state_json: str | None, findings: Sequence[Finding],
               sinks: Sequence[str], now: datetime,
               observation: str | None = None, content_json: str | None = None) -> list[Finding]:
        """Persist one check's outcome atomically; return the findings that are new.

        State, observation, new findings and their outbox rows commit together or not at all:
        the checker may advance its state only because the alerts for what changed are queued.
        """
        with self._lock, write(self.db):
            if state_json is not None:
                _repos.save_state(self.db, key, state_json, now)
            if observation is not None:
                _repos.add_observation(self.db, key, observation, now)
            if content_json is not None:  # what content inspection concluded (monitor/detect/content.py)
                _repos.save_content(self.db, key, content_json, now)
            return _findings.insert_new(self.db, findings, sinks, now)

    def load_content(self, key: str) -> str | None:
        with self._lock:
            return _repos.load_content(self.db, key)

    def load_contents(self) -> dict[str, str]:
        with self._lock:
            return _repos.load_contents(self.db)
    def touch_states(self, keys: Sequence[str], at: str, now: datetime) -> None:
        """Many repos answered with nothing changed (heads in bulk): `checked_at` and `last_ok`
        set to `at`, in one transaction."""
        with self._lock, write(self.db):
            _repos.touch_states(self.db, list(keys), at, now)

    def findings(self, kind: str | None = None,
                 since: datetime | None = None, include_acked: bool = True) -> list[StoredFinding]:
        with self._lock:
            return _findings.list_findings(self.db, kind, since, include_acked)

    # --- triage -----------------------------------------------------------------------------------

    def kind_and_subject(self, fingerprints: Sequence[str]) -> dict[str, tuple[str, str]]:
        """fingerprint -> (kind, subject) of the findings that exist among `fingerprints`."""
        with self._lock:
            return _findings.kind_and_subject(self.db, fingerprints)

    def ack(self, fingerprints: Sequence[str], note: str | None, now: datetime, actor: str,
            notice: Report | None = None, sinks: Sequence[str] = ()) -> None:
        """Acknowledge findings by fingerprint, noting who did it, and queue `notice` for `sinks`
        in the same transaction. Undelivered alerts still go out, marked acknowledged."""
        with self._lock, write(self.db):
            _findings.ack(self.db, fingerprints, note, now, actor)
            if notice is not None:
                _outbox.insert_report(self.db, notice, list(sinks), now)

    def unack(self, fingerprints: Sequence[str], now: datetime | None = None,
              notice: Report | None = None, sinks: Sequence[str] = ()) -> None:
        """Withdraw acknowledgements (and queue `notice`); alerts an older hubwatch skipped because
        of them are queued again."""
        with self._lock, write(self.db):
            _outbox.unskip(self.db, _findings.unack(self.db, fingerprints))
            if notice is not None and now is not None:
                _outbox.insert_report(self.db, notice, list(sinks), now)

    def open_by_kind(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return _findings.open_by_kind(self.db)

    def kinds(self) -> set[str]:
        """Every finding kind recorded in this database."""
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT DISTINCT kind FROM findings")}

    def open_findings_by_subject(self) -> dict[str, int]:
        with self._lock:
            return _findings.open_counts(self.db)

    # --- reports (the daily digest) ---------------------------------------------------------------

    def record_report(self, report: Report, sinks: Sequence[str], now: datetime) -> int:
        """Queue a report for every sink, in one transaction (delivered and retried like alerts)."""
        with self._lock, write(self.db):
            return _outbox.insert_report(self.db, report, list(sinks), now)

    def last_report_at(self, kind: str) -> datetime | None:
        with self._lock:
            return _outbox.last_report_at(self.db, kind)

    def has_finding(self, fingerprint: str) -> bool:
        with self._lock:
            return _findings.has_finding(self.db, fingerprint)

    # --- outbox ---------------------------------------------------------------------------------

    def claim(self, sink: str, now: datetime, *, lease_seconds: float = 300,
              limit: int = 50, due_by: datetime | None = None) -> list[OutboxItem]:
        with self._lock:
            return _outbox.claim(self.db, sink, now, lease_seconds, limit, due_by)

    def mark_sent(self, item: OutboxItem, now: datetime) -> bool:
        with self._lock:
            return _outbox.mark_sent(self.db, item, now)

    def mark_retry(self, item: OutboxItem, now: datetime, next_attempt_at: datetime,
                   error: str) -> bool:
        with self._lock:
            return _outbox.mark_retry(self.db, item, now, next_attempt_at, error)

    def mark_dead(self, item: OutboxItem, now: datetime, error: str) -> bool:
        with self._lock:
            return _outbox.mark_dead(self.db, item, now, error)

    def release(self, item: OutboxItem) -> bool:
        with self._lock:
            return _outbox.release(self.db, item)

    def pending(self, sink: str | None = None) -> list[OutboxItem]:
        with self._lock:
            return _outbox.pending(self.db, sink)

    def outbox_stats(self, now: datetime) -> OutboxStats:
        with self._lock:
            return _outbox.stats(self.db, now)

    def dead_letters(self) -> list[OutboxItem]:
        with self._lock:
            return _outbox.dead_letters(self.db)

    def requeue_dead(self, sink: str | None = None) -> int:
        with self._lock:
            return _outbox.requeue_dead(self.db, sink)

    # --- dead sinks and dead letters (hubwatch redeliver, status, /metrics) --------------------------

    def dead_sink(self, sink: str) -> "_dead.DeadSink | None":
        with self._lock:
            return _dead.get(self.db, sink)

    def dead_sinks(self) -> list["_dead.DeadSink"]:
        with self._lock:
            return _dead.all_dead(self.db)

    def mark_sink_dead(self, sink: str, identity: str, answer: str, now: datetime) -> bool:
        """True when the sink was not already dead for this receiver (log it once)."""
        with self._lock, write(self.db):
            return _dead.mark(self.db, sink, identity, answer, now)

    def clear_sink_dead(self, sink: str | None = None) -> int:
        with self._lock, write(self.db):
            return _dead.clear(self.db, sink)

    def outbox_by_sink(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return _dead.counts_by_sink(self.db)

    def redeliver(self, fingerprints: Sequence[str] | None = None) -> int:
        """Re-queue dead letters (of these findings, or all) and forget every dead-sink mark: the
        operator says the cause is fixed."""
        with self._lock, write(self.db):
            n = _outbox.requeue_dead(self.db, fingerprints=fingerprints)
            _dead.clear(self.db)
            return n

    def prune_sent(self, before: datetime) -> int:
        with self._lock, write(self.db):
            return _dead.prune_sent(self.db, before)

    # --- job bookkeeping ------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return _repos.get_meta(self.db, key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            _repos.set_meta(self.db, key, value)

    def first_slack_request(self, signature: str, forget_at: float, now: float) -> bool:
        """Is this the first time Slack's `signature` reaches us (across restarts)? Remembers it."""
        with self._lock, write(self.db):
            return _replays.first_time(self.db, signature, forget_at, now)

    # --- look-alike probe results ---------------------------------------------------------------

    def load_probes(self) -> dict[str, tuple[datetime, bool]]:
        """name (lower-case) -> (last checked, existed)."""
        with self._lock:
            return _probes.load(self.db)

    def save_probes(self, results: Sequence[tuple[str, bool]], now: datetime) -> None:
        with self._lock, write(self.db):
            _probes.save(self.db, results, now)
