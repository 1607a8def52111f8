"""Opening the database, and how values are written into it.

Why these settings:

- WAL lets a reader (the CLI, the HTTP status endpoint) read while the daemon writes, and together
  with transactions makes the file survive ``kill -9`` at any point: a transaction is either in the
  WAL with its commit frame or it is not there at all.
- ``synchronous=NORMAL`` in WAL mode can lose the last transactions on *power loss* but never
  corrupts the database; a re-run of a check re-detects what was lost, so the fsync per commit is
  not worth it.
- ``busy_timeout`` makes a second writer (daemon + a CLI ``check``) wait instead of failing with
  "database is locked" -- but only if the transaction asks for the write lock before it reads:
  a deferred transaction that read and then writes while another connection committed gets
  SQLITE_BUSY at once (its snapshot is stale; waiting cannot help). So every write transaction
  opens with ``BEGIN IMMEDIATE``: explicit ones through :func:`write`, the implicit one Python's
  sqlite3 opens before a lone INSERT/UPDATE/DELETE through ``isolation_level = "IMMEDIATE"``.
- ``check_same_thread=False``: the daemon calls the store from worker threads; the ``Store``
  serialises every use of the one connection with an ``RLock``.
- The file is created 0600 (and a looser existing one tightened) before SQLite opens it: it holds
  what we watch and what we found. SQLite gives the ``-wal`` and ``-shm`` files the mode of the
  database file, so they are 0600 too, whatever the umask (outside systemd it is often 022).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database

BUSY_TIMEOUT_MS = 10_000
MEMORY = ":memory:"


def connect(path: str | os.PathLike) -> Database:
    """Open (creating if needed) the database at ``path`` with the pragmas above.

    ``":memory:"`` gives a private in-memory database (WAL does not apply there).
    """
    name = os.fspath(path)
    if name != MEMORY:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        _private(name)
    # We build the connection ourselves: sqlite-utils' own constructor does not pass
    # check_same_thread=False for file or ":memory:" databases.
    conn = sqlite3.connect(name, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                           isolation_level="IMMEDIATE")
    try:
        db = Database(conn)
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if name != MEMORY:
            _enable_wal(db)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return db


@contextlib.contextmanager
def write(db: Database) -> Iterator[Database]:
    """One write transaction that takes the write lock first (``BEGIN IMMEDIATE``), so a
    concurrent writer makes it wait (busy_timeout) instead of fail; nested: a savepoint."""
    conn = db.conn
    if conn.in_transaction:
        name = f"w_{secrets.token_hex(8)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield db
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    db.execute("BEGIN IMMEDIATE")  # through db: its tracer (tests) sees where the lock is taken
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _private(name: str) -> None:
    """Create the database file 0600, or take group/other access away from an existing one."""
    try:
        os.close(os.open(name, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError:
        return  # read-only place or no such directory: sqlite3.connect reports it properly
    for path in (name, name + "-wal", name + "-shm"):
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        except OSError:  # absent (-wal/-shm before first use), or not ours to change
            pass


def connect_readonly(path: str | os.PathLike) -> Database:
    """Open an existing database for reading only (`hubwatch status` while the daemon writes).

    `mode=ro` never creates, migrates or writes the file; WAL lets this reader see the last
    committed state without blocking the daemon. Raises sqlite3.OperationalError if it is absent."""
    uri = Path(os.fspath(path)).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        db = Database(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return db


def _enable_wal(db: Database) -> None:
    """Switch to WAL, waiting out other connections doing the same.

    SQLite reports SQLITE_BUSY for a concurrent journal-mode change without calling the busy
    handler, so two processes creating the file at once (daemon start + CLI) would make one fail.
    We retry for as long as ``busy_timeout`` would have waited; usually the other connection has
    already switched the file and the next attempt finds WAL on.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)


# --- timestamps ---------------------------------------------------------------------------------
# Stored as fixed-width text ("2026-11-27T02:21:35.000000Z", always 27 characters) so that SQL
# string comparison (<, <=, ORDER BY) is chronological comparison.

_DB_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def as_utc(dt: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are rejected (ValueError)."""
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        # A naive datetime is a bug upstream (local time sneaking in); refuse it rather than guess.
        raise ValueError(f"timezone-aware datetime required, got naive {dt!r}")
    return dt.astimezone(timezone.utc)


def to_db_time(dt: datetime) -> str:
    """Aware datetime -> sortable fixed-width UTC text."""
    return as_utc(dt).strftime(_DB_FORMAT)


def from_db_time(text: str) -> datetime:
    """Inverse of :func:`to_db_time`; returns an aware UTC datetime."""
    return datetime.strptime(text, _DB_FORMAT).replace(tzinfo=timezone.utc)


def to_json_time(dt: datetime) -> str:
    """Human-facing ISO 8601 UTC to the second ("2026-11-27T02:21:35Z"), as JSON output uses."""
    return as_utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")
