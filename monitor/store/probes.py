"""Look-alike probe results: name (lower-cased) -> when it was last checked and whether it existed."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlite_utils import Database

from .db import from_db_time, to_db_time


def load(db: Database) -> dict[str, tuple[datetime, bool]]:
    rows = db.execute("SELECT name, checked_at, found FROM probes").fetchall()
    return {name: (from_db_time(at), bool(found)) for name, at, found in rows}


def save(db: Database, results: Iterable[tuple[str, bool]], now: datetime) -> None:
    db.conn.executemany(
        "INSERT INTO probes (name, checked_at, found) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET checked_at = excluded.checked_at, found = excluded.found",
        [(name.lower(), to_db_time(now), int(found)) for name, found in results],
    )
