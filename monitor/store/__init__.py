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
from . import findings as _findings
from . import migrations as _migrations
from . import outbox as _outbox
from . import probes as _probes
from . import replays as _replays
from . import repos as _repos
from .db import connect, connect_readonly
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
               observation: str | None = None) -> list[Finding]:
        """Persist one check's outcome atomically; return the findings that are new.

        State, observation, new findings and their outbox rows commit together or not at all:
        the checker may advance its state only because the alerts for what changed are queued.
        """
        with self._lock, self.db.atomic():
            # Every statement below is a write, so the transaction takes the write lock on its
            # first statement and waits (busy_timeout) rather than failing on a concurrent writer.
            if state_json is not None:
                _repos.save_state(self.db, key, state_json, now)
            if observation is not None:
                _repos.add_observation(self.db, key, observation, now)
            return _findings.insert_new(self.db, findings, sinks, now)

    def touch_states(self, keys: Sequence[str], at: str, now: datetime) -> None:
        """Many repos answered with nothing changed (heads in bulk): `checked_at` and `last_ok`
        set to `at`, in one transaction."""
        with self._lock, self.db.atomic():
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

    def ack(self, fingerprints: Sequence[str], note: str | None, now: datetime) -> None:
        """Acknowledge findings by fingerprint; their undelivered alerts are never sent."""
        with self._lock, self.db.atomic():
            _findings.ack(self.db, fingerprints, note, now)
            _outbox.skip_acked(self.db)

    def unack(self, fingerprints: Sequence[str]) -> None:
        """Withdraw acknowledgements; alerts skipped because of them are queued again."""
        with self._lock, self.db.atomic():
            _outbox.unskip(self.db, _findings.unack(self.db, fingerprints))

    def open_findings_by_subject(self) -> dict[str, int]:
        with self._lock:
            return _findings.open_counts(self.db)

    # --- reports (the daily digest) ---------------------------------------------------------------

    def record_report(self, report: Report, sinks: Sequence[str], now: datetime) -> int:
        """Queue a report for every sink, in one transaction (delivered and retried like alerts)."""
        with self._lock, self.db.atomic():
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

    # --- job bookkeeping ------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return _repos.get_meta(self.db, key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            _repos.set_meta(self.db, key, value)

    def first_slack_request(self, signature: str, forget_at: float, now: float) -> bool:
        """Is this the first time Slack's `signature` reaches us (across restarts)? Remembers it."""
        with self._lock, self.db.atomic():
            return _replays.first_time(self.db, signature, forget_at, now)

    # --- look-alike probe results ---------------------------------------------------------------

    def load_probes(self) -> dict[str, tuple[datetime, bool]]:
        """name (lower-case) -> (last checked, existed)."""
        with self._lock:
            return _probes.load(self.db)

    def save_probes(self, results: Sequence[tuple[str, bool]], now: datetime) -> None:
        with self._lock, self.db.atomic():
            _probes.save(self.db, results, now)
