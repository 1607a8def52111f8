"""Before a command touches the state database: is it hubwatch's, whole, ours, and reachable?

Every problem is a `StateError` naming the config file, the key (`state.path`) and the absolute
path, and saying whether waiting could help (`permanent`). What a restart cannot fix is permanent
(the CLI exits 78 and systemd's `RestartPreventExitStatus=78` stops the loop): a database that is
empty, another program's, corrupt, of a newer schema, owned by another user, not accessible, or in
a missing or read-only folder. What may pass is not (exit 75, restarted): locked by another
process, disk full, I/O error.

An empty file is refused rather than silently started fresh: acknowledgements and findings would
be lost and every pin re-baselined at its current head (a poisoned head included). `--new-state`
is the operator saying "start fresh here".
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import StateError

SQLITE_HEADER = b"SQLite format 3\x00"
PROBE_BUSY_MS = 2000  # a probe that waits longer than this for a lock reports "locked" (75)
# An empty database younger than this may be another process's, still applying its schema (two
# commands started at once on a fresh install): wait for it rather than refuse it.
BEING_CREATED_S = 10.0
_TEMPORARY_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EDQUOT, errno.ENOMEM}
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR}
NEW_STATE_HINT = "start a new database with --new-state, or point state.path at the right file"


@dataclass(frozen=True)
class Checked:
    path: Path  # absolute
    exists: bool  # False: a writer will create it (say so once)


def _fail(config: Path | str, path: Path, problem: str, permanent: bool = True) -> StateError:
    return StateError(f"{config}: state.path: {path}: {problem}", permanent=permanent)


def classify_sqlite(e: sqlite3.Error) -> tuple[bool, str]:
    """(permanent, problem) for an SQLite error met while opening or probing."""
    text = str(e).lower()
    code = getattr(e, "sqlite_errorcode", None)
    if "locked" in text or "busy" in text or code in (5, 6):
        return False, f"locked by another process ({e})"
    if "disk is full" in text or code == 13:
        return False, f"disk full ({e})"
    if "disk i/o error" in text or code == 10:
        return False, f"I/O error ({e})"
    if "not a database" in text or "malformed" in text or "corrupt" in text or code in (11, 26):
        return True, f"corrupt: {e}"
    if "readonly" in text or "read-only" in text or code == 8:
        return True, f"read-only: {e}"
    if "unable to open" in text or code == 14:
        return True, f"cannot be opened ({e}): check the folder exists and is writable by this user"
    return False, str(e)


def classify_os(e: OSError) -> tuple[bool, str]:
    problem = e.strerror or str(e)
    if e.errno in _TEMPORARY_ERRNOS:
        return False, problem
    return True, problem


def check(path: Path, config: Path | str, *, write: bool, new_state: bool = False,
          known_migrations: frozenset[str] = frozenset(), migration_set: str = "hubwatch",
          lock_probe: bool = False) -> Checked:
    """Raise StateError when the database at `path` must not be used; else say whether it exists.

    `write`: the command writes (and may create) the database; read-only commands never create it.
    `known_migrations`: the names this hubwatch knows; a database with others is of a newer schema.
    `lock_probe` (the daemon's start): take the write lock once, so a database another process
    holds locked is a temporary failure (75) now rather than a daemon whose every job fails. A
    short command needs no probe: its own writes wait on the busy timeout.
    """
    path = Path(os.path.abspath(path))
    folder = path.parent
    try:
        if not _is_dir(os.stat(folder).st_mode):
            raise _fail(config, path, f"{folder} is not a folder")
    except FileNotFoundError:
        if not write:  # a reader never creates anything: no folder is no database yet
            return Checked(path, False)
        raise _fail(config, path, f"the folder {folder} does not exist (create it, or set state.path)") from None
    except OSError as e:
        permanent, problem = classify_os(e)
        raise _fail(config, path, f"the folder {folder}: {problem}", permanent) from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if write and not os.access(folder, os.W_OK | os.X_OK):
            raise _fail(config, path, f"the folder {folder} is read-only or not writable by uid {os.geteuid()}") from None
        return Checked(path, False)
    except OSError as e:
        permanent, problem = classify_os(e)
        raise _fail(config, path, problem, permanent) from None
    if not _is_regular(st.st_mode):
        raise _fail(config, path, "not a regular file")
    if st.st_uid != os.geteuid():
        raise _fail(config, path,
                    f"owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}): run hubwatch as the "
                    "service's user (systemd-run ... -p DynamicUser=yes -p StateDirectory=hubwatch, see "
                    "docs/deployment.md) so its files never change owner")
    if write and not os.access(folder, os.W_OK | os.X_OK):
        raise _fail(config, path, f"the folder {folder} is read-only or not writable by uid {os.geteuid()} "
                                  "(SQLite writes its -wal and -shm files there)")
    if write and not os.access(path, os.W_OK):
        raise _fail(config, path, f"not writable ({os.strerror(errno.EACCES)})")
    deadline = time.monotonic() + PROBE_BUSY_MS / 1000
    while True:
        try:
            with open(path, "rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
        except OSError as e:
            permanent, problem = classify_os(e)
            raise _fail(config, path, problem, permanent) from None
        if not header:
            if new_state and write:
                return Checked(path, True)
            if _young(path) and time.monotonic() < deadline:  # another process creating it now
                time.sleep(0.05)
                continue
            raise _fail(config, path, f"empty file (0 bytes): not a hubwatch database; {NEW_STATE_HINT}")
        if header != SQLITE_HEADER:
            raise _fail(config, path, "not an SQLite database (corrupt, or another program's file)")
        try:
            _probe(path, config, write=write, new_state=new_state, known=known_migrations,
                   migration_set=migration_set)
            break
        except _BeingCreated:
            if time.monotonic() > deadline:
                raise _fail(config, path, f"an SQLite database without hubwatch's schema row (no tables); "
                                          f"{NEW_STATE_HINT}") from None
            time.sleep(0.05)
    if lock_probe:
        _write_lock(path, config)
    return Checked(path, True)


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _is_dir(mode: int) -> bool:
    return stat.S_ISDIR(mode)


class _BeingCreated(Exception):
    """An empty database file just created: another process may be applying the schema now."""


def _young(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < BEING_CREATED_S
    except OSError:
        return False


def _probe(path: Path, config: Path | str, *, write: bool, new_state: bool, known: frozenset[str],
           migration_set: str) -> None:
    """Open read-only: schema row, newer schema, integrity."""
    uri = path.as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=PROBE_BUSY_MS / 1000)
    except sqlite3.Error as e:
        permanent, problem = classify_sqlite(e)
        raise _fail(config, path, problem, permanent) from None
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        applied: list[str] = []
        if "_sqlite_migrations" in tables:
            applied = [r[0] for r in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [migration_set])]
        if not applied:
            if not tables and new_state and write:
                return
            if not tables and _young(path):
                raise _BeingCreated()
            if not tables:
                raise _fail(config, path, f"an SQLite database without hubwatch's schema row (no tables); "
                                          f"{NEW_STATE_HINT}")
            raise _fail(config, path, f"another program's SQLite database (tables {', '.join(sorted(tables)[:4])}; "
                                      "no hubwatch schema row): move it aside or point state.path elsewhere")
        newer = sorted(set(applied) - known) if known else []
        if newer:
            raise _fail(config, path, f"written by a newer hubwatch (unknown schema steps: {', '.join(newer[:3])}): "
                                      "upgrade hubwatch, or restore the database this version wrote")
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()
        if not verdict or verdict[0] != "ok":
            raise _fail(config, path, f"corrupt (integrity check: {verdict[0] if verdict else 'no answer'}): "
                                      "restore a backup, or move it aside and use --new-state")
    except sqlite3.Error as e:
        permanent, problem = classify_sqlite(e)
        raise _fail(config, path, problem, permanent) from None
    finally:
        conn.close()


def _write_lock(path: Path, config: Path | str) -> None:
    """Take and release the write lock once: another process holding it past the probe's wait is
    "locked" (temporary), not a reason to start and fail every job."""
    try:
        conn = sqlite3.connect(str(path), timeout=PROBE_BUSY_MS / 1000, isolation_level=None)
    except sqlite3.Error as e:
        permanent, problem = classify_sqlite(e)
        raise _fail(config, path, problem, permanent) from None
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as e:
        permanent, problem = classify_sqlite(e)
        raise _fail(config, path, problem, permanent) from None
    finally:
        conn.close()
