"""Slack request signatures already accepted, kept until their 5-minute window has passed, so a
signed request cannot be replayed across a daemon restart either."""

from __future__ import annotations

from sqlite_utils import Database


def first_time(db: Database, signature: str, forget_at: float, now: float) -> bool:
    """True (and remembered) the first time `signature` is seen before `forget_at`; False after."""
    db.conn.execute("DELETE FROM slack_replays WHERE forget_at <= ?", (now,))
    inserted = db.conn.execute("INSERT OR IGNORE INTO slack_replays (signature, forget_at) VALUES (?, ?)",
                               (signature, forget_at))
    return inserted.rowcount == 1
