"""Dead sinks and dead letters: what the operator must see and can recover.

A sink is *dead* when its receiver refused the sink itself (Slack 403/404/410: a revoked or
mistyped webhook, an archived channel). The mark names the receiver by a hash of its URL, so a
corrected URL is a live sink again without any command; while the mark holds, delivery does not
knock on the same door for every alert (they wait, pending). The alert that met the refusal is
dead-lettered, like a message the receiver refused on its own (400): `hubwatch redeliver` re-queues
them once the cause is fixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from .db import to_db_time
from .repos import get_meta, set_meta

_PREFIX = "sink_dead:"


@dataclass(frozen=True)
class DeadSink:
    sink: str
    identity: str  # hash of the receiver's URL when it refused
    answer: str  # "HTTP 404 no_service": what the receiver said
    at: str  # ISO time of the refusal


def get(db: Database, sink: str) -> DeadSink | None:
    raw = get_meta(db, _PREFIX + sink)
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return DeadSink(sink, str(d["identity"]), str(d["answer"]), str(d["at"]))
    except (ValueError, KeyError, TypeError):
        return None


def all_dead(db: Database) -> list[DeadSink]:
    rows = db.execute("SELECT key FROM meta WHERE key LIKE ? ORDER BY key", [_PREFIX + "%"]).fetchall()
    return [d for d in (get(db, r[0][len(_PREFIX):]) for r in rows) if d is not None]


def mark(db: Database, sink: str, identity: str, answer: str, now: datetime) -> bool:
    """Mark `sink` dead; True when it was not dead before (for this receiver): log it once."""
    before = get(db, sink)
    set_meta(db, _PREFIX + sink, json.dumps({"identity": identity, "answer": answer, "at": to_db_time(now)}))
    return before is None or before.identity != identity


def clear(db: Database, sink: str | None = None) -> int:
    if sink is None:
        return db.execute("DELETE FROM meta WHERE key LIKE ?", [_PREFIX + "%"]).rowcount
    return db.execute("DELETE FROM meta WHERE key = ?", [_PREFIX + sink]).rowcount


def counts_by_sink(db: Database) -> dict[tuple[str, str], int]:
    """(sink, state) -> rows."""
    return {(r[0], r[1]): r[2] for r in db.execute("SELECT sink, state, count(*) FROM outbox GROUP BY sink, state")}


def prune_sent(db: Database, before: datetime) -> int:
    """Delete delivered rows sent before `before` (`[state] keep`); reports nothing points at go too.
    Findings stay: they are the dedup memory (one incident, one alert, across restarts)."""
    n = db.execute("DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?", [to_db_time(before)]).rowcount
    db.execute("DELETE FROM reports WHERE id NOT IN (SELECT report_id FROM outbox WHERE report_id IS NOT NULL)")
    return n
