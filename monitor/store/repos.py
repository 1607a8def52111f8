"""Watched-repo state and observation history.

The state is opaque JSON text owned by the caller (the checker decides its shape and versioning);
the store only keeps the latest value per key. Observations are appended, never updated, so an
operator can answer "what did we see, and when?" after the fact.

These functions take a ``Database`` and do no locking or transaction management of their own:
``Store`` calls them under its lock, the write ones inside ``db.write()`` (BEGIN IMMEDIATE).
"""

from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from .db import to_db_time


def load_state(db: Database, key: str) -> str | None:
    row = db.execute("SELECT state_json FROM repo_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def load_states(db: Database, prefix: str = "") -> dict[str, str]:
    # substr() rather than LIKE: LIKE would treat '_' (common in repo names) as a wildcard.
    rows = db.execute(
        "SELECT key, state_json FROM repo_state WHERE substr(key, 1, ?) = ? ORDER BY key",
        [len(prefix), prefix],
    ).fetchall()
    return {key: state for key, state in rows}


def save_state(db: Database, key: str, state_json: str, now: datetime) -> None:
    db.execute(
        """
        INSERT INTO repo_state (key, state_json, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET state_json = excluded.state_json,
                                        updated_at = excluded.updated_at
        """,
        [key, state_json, to_db_time(now)],
    )


def touch_states(db: Database, keys: list[str], at: str, now: datetime) -> None:
    """Set `checked_at` and `last_ok` to `at` in the stored state of each key, in place (json_set),
    so a state another writer changed meanwhile keeps its other fields."""
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        db.execute(
            "UPDATE repo_state SET state_json = json_set(state_json, '$.checked_at', ?, '$.last_ok', ?), "
            f"updated_at = ? WHERE key IN ({', '.join('?' * len(chunk))})",
            [at, at, to_db_time(now), *chunk],
        )


def add_observation(db: Database, key: str, observation: str, now: datetime) -> None:
    db.execute(
        "INSERT INTO observations (key, at, json) VALUES (?, ?, ?)",
        [key, to_db_time(now), observation],
    )


def get_meta(db: Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_meta(db: Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def load_content(db: Database, key: str) -> str | None:
    row = db.execute("SELECT state_json FROM content_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def load_contents(db: Database) -> dict[str, str]:
    return {k: v for k, v in db.execute("SELECT key, state_json FROM content_state ORDER BY key").fetchall()}


def save_content(db: Database, key: str, state_json: str, now: datetime) -> None:
    db.execute(
        """
        INSERT INTO content_state (key, state_json, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET state_json = excluded.state_json,
                                        updated_at = excluded.updated_at
        """,
        [key, state_json, to_db_time(now)],
    )
