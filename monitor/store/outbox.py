"""The outbox: claim rows for delivery by compare-and-set, then mark the outcome.

Row life cycle::

    pending --claim--> claimed --mark_sent--> sent
       ^                  |  \\--mark_dead--> dead --requeue_dead--> pending
       |                  |
       +--mark_retry / release / lease expiry (re-claimable)

Why compare-and-set instead of a lock: several deliverers (daemon threads, a CLI ``deliver``,
a restarted daemon while the old one is still draining) may look at the same rows. Each claim is an
``UPDATE ... WHERE id = ? AND <still due>``; SQLite serialises writers, so exactly one UPDATE
changes the row and only that caller gets it. Every later transition also checks the claim token,
so a deliverer whose lease expired and was taken over cannot overwrite the new owner's outcome.
Delivery is at-least-once: a deliverer that crashes after the sink accepted but before
``mark_sent`` leaves a claimed row that is re-claimed after the lease (receivers dedup by
fingerprint).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from sqlite_utils import Database

from ..detect.findings import Finding
from ..detect.reports import Report
from .db import as_utc, from_db_time, to_db_time, write
from .findings import FINDING_COLUMNS, finding_from_row

# A row is claimable when it is due, or when its claim lease ran out (crashed deliverer). A row
# whose finding was acknowledged before it went out is claimed like any other: an ack never makes
# an alert disappear unseen; the deliverer marks it "acknowledged by ... before delivery".
_DUE = """sink = :sink AND (
    (state = 'pending' AND next_attempt_at <= :due)
    OR (state = 'claimed' AND claimed_until < :now))"""

# Re-selects after losing candidates to another claimer; bounded so claim() always returns.
_MAX_ROUNDS = 5

# A row carries a finding or a report (the daily digest, a triage notice), never both.
_SELECT = f"""SELECT o.id, o.sink, o.attempts, o.claim_token, o.created_at, o.last_error,
    o.report_id, r.kind AS report_kind, r.payload AS report_payload, r.created_at AS report_created_at,
    f.acked_at AS acked_at, f.acked_by AS acked_by,
    {FINDING_COLUMNS} FROM outbox o LEFT JOIN findings f ON f.id = o.finding_id
    LEFT JOIN reports r ON r.id = o.report_id"""

def _back_to_pending(error: str = "last_error") -> str:
    """The assignments that make a row pending again (after a failure, a shutdown or an
    operator's requeue); `error` is its new last_error."""
    return f"state = 'pending', last_error = {error}"


@dataclass(frozen=True)
class OutboxItem:
    """One (finding or report, sink) delivery; ``claim_token`` proves ownership of a claim."""

    id: int
    sink: str
    finding: Finding | None  # None for a report row
    attempts: int
    claim_token: str | None
    created_at: datetime
    last_error: str | None
    report: Report | None = None
    acked_by: str | None = None  # the finding was acknowledged (by whom) before this row went out

    @property
    def label(self) -> str:
        """What the row announces, for logs: the finding's fingerprint, or `digest report 7`."""
        if self.finding is not None:
            return self.finding.fingerprint
        return f"{self.report.kind if self.report else '?'} report"


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    claimed: int
    dead: int
    sent: int
    # Age of the oldest row not yet delivered (pending or claimed): the "alerts are stuck" signal.
    oldest_pending_age_seconds: float | None


def _item(row: Mapping[str, Any]) -> OutboxItem:
    if row["report_id"] is not None:
        report = Report(row["report_kind"], json.loads(row["report_payload"]), row["report_created_at"])
        return OutboxItem(row["id"], row["sink"], None, row["attempts"], row["claim_token"],
                          from_db_time(row["created_at"]), row["last_error"], report)
    acked_by = (row["acked_by"] or "an operator") if row["acked_at"] else None
    return OutboxItem(row["id"], row["sink"], finding_from_row(row), row["attempts"],
                      row["claim_token"], from_db_time(row["created_at"]), row["last_error"], None, acked_by)


def insert_report(db: Database, report: Report, sinks: list[str], now: datetime) -> int:
    """Store a report and one pending row per sink; must run inside a transaction. Returns its id."""
    ts = to_db_time(now)
    payload = json.dumps(dict(report.payload), sort_keys=True, separators=(",", ":"))
    report_id = db.execute("INSERT INTO reports (kind, payload, created_at) VALUES (?, ?, ?)",
                           [report.kind, payload, report.created_at or ts]).lastrowid
    for sink in dict.fromkeys(sinks):
        db.execute("""INSERT INTO outbox (report_id, sink, state, attempts, created_at, next_attempt_at)
                      VALUES (?, ?, 'pending', 0, ?, ?)""", [report_id, sink, ts, ts])
    return report_id


def last_report_at(db: Database, kind: str) -> datetime | None:
    """When a report of `kind` was last queued, or None."""
    row = db.execute("""SELECT max(o.created_at) FROM outbox o JOIN reports r ON r.id = o.report_id
                        WHERE r.kind = ?""", [kind]).fetchone()
    return from_db_time(row[0]) if row and row[0] else None


def unskip(db: Database, finding_ids: list[int]) -> int:
    """Rows an older hubwatch skipped because of an acknowledgement that is now withdrawn: due
    again at once (acknowledging no longer skips rows)."""
    if not finding_ids:
        return 0
    marks = ",".join("?" * len(finding_ids))
    return db.execute(f"""UPDATE outbox SET state = 'pending', next_attempt_at = created_at, last_error = NULL
                          WHERE state = 'skipped' AND finding_id IN ({marks})""", finding_ids).rowcount


def claim(db: Database, sink: str, now: datetime, lease_seconds: float = 300,
          limit: int = 50, due_by: datetime | None = None) -> list[OutboxItem]:
    """Claim up to ``limit`` due rows of ``sink`` in id (= creation) order.

    ``due_by`` (default ``now``) moves the backoff cut-off: ``hubwatch once`` attempts every pending
    row, backing off or not. Expired claims are still judged against ``now``.
    An empty result means nothing was due: when another claimer wins some of our candidates we
    look again (a bounded number of times), so losing a race does not read as "outbox empty".
    """
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")
    ts = to_db_time(now)
    due = to_db_time(due_by) if due_by is not None else ts
    until = to_db_time(now + timedelta(seconds=lease_seconds))
    tokens: list[str] = []
    for _ in range(_MAX_ROUNDS):
        won, lost = _claim_round(db, sink, ts, due, until, limit - len(tokens))
        tokens += won
        if not lost or len(tokens) >= limit:
            break
    if not tokens:
        return []
    # Read back what we own: filtering on our tokens returns exactly our rows.
    marks = ",".join("?" * len(tokens))
    rows = db.query(f"{_SELECT} WHERE o.claim_token IN ({marks}) ORDER BY o.id", tokens)
    return [_item(r) for r in rows]



def _claim_round(db: Database, sink: str, ts: str, due: str, until: str, limit: int) -> tuple[list[str], int]:
    """One select-then-CAS pass; returns (tokens of rows won, number of candidates lost)."""
    # Candidates are read outside the write transaction: holding no lock while reading keeps
    # other writers unblocked, and the CAS below re-checks every condition anyway.
    candidates = [r[0] for r in db.execute(
        f"SELECT id FROM outbox WHERE {_DUE} ORDER BY id LIMIT :limit",
        {"sink": sink, "now": ts, "due": due, "limit": limit},
    ).fetchall()]
    won: list[str] = []
    if not candidates:
        return won, 0
    # One transaction for the batch (one commit), holding the write lock from its start.
    with write(db):
        for row_id in candidates:
            token = secrets.token_hex(16)
            params = {"token": token, "until": until, "id": row_id, "sink": sink, "now": ts, "due": due}
            cur = db.execute(
                f"""UPDATE outbox
                    SET state = 'claimed', claim_token = :token, claimed_until = :until
                    WHERE id = :id AND {_DUE}""", params)
            if cur.rowcount == 1:
                won.append(token)
    return won, len(candidates) - len(won)


def _transition(db: Database, item: OutboxItem, assignments: str, params: dict) -> bool:
    """Apply ``assignments`` only if the row is still claimed under ``item``'s token."""
    if item.claim_token is None:
        return False
    cur = db.execute(
        f"""UPDATE outbox SET {assignments}, claim_token = NULL, claimed_until = NULL
            WHERE id = :id AND state = 'claimed' AND claim_token = :token""",
        {**params, "id": item.id, "token": item.claim_token},
    )
    return cur.rowcount == 1


def mark_sent(db: Database, item: OutboxItem, now: datetime) -> bool:
    return _transition(db, item, "state = 'sent', sent_at = :now", {"now": to_db_time(now)})


def mark_retry(db: Database, item: OutboxItem, now: datetime, next_attempt_at: datetime,
               error: str) -> bool:
    # `now` is part of the API for symmetry; only validated (a naive datetime is a caller bug).
    as_utc(now)
    return _transition(
        db, item,
        f"{_back_to_pending(':err')}, attempts = attempts + 1, next_attempt_at = :next",
        {"next": to_db_time(next_attempt_at), "err": error},
    )


def mark_dead(db: Database, item: OutboxItem, now: datetime, error: str) -> bool:
    return _transition(
        db, item,
        "state = 'dead', attempts = attempts + 1, dead_at = :now, last_error = :err",
        {"now": to_db_time(now), "err": error},
    )


def release(db: Database, item: OutboxItem) -> bool:
    """Hand a claim back unchanged (attempts and due time kept), e.g. on shutdown."""
    return _transition(db, item, _back_to_pending(), {})


def pending(db: Database, sink: str | None = None) -> list[OutboxItem]:
    """Undelivered rows (pending or claimed), id order; read-only."""
    sql = f"{_SELECT} WHERE o.state IN ('pending', 'claimed')"
    params: list[Any] = []
    if sink is not None:
        sql += " AND o.sink = ?"
        params.append(sink)
    return [_item(r) for r in db.query(sql + " ORDER BY o.id", params)]


def dead_letters(db: Database) -> list[OutboxItem]:
    return [_item(r) for r in db.query(f"{_SELECT} WHERE o.state = 'dead' ORDER BY o.id")]


def requeue_dead(db: Database, sink: str | None = None, fingerprints: Sequence[str] | None = None) -> int:
    """Operator action: give dead rows a fresh start (those of `sink`, and of the findings with
    these `fingerprints`; None: every one, reports included).

    Attempts are reset so the retry policy gets its full budget again (otherwise one transient
    failure would dead-letter the row straight away); ``last_error`` is kept for the record. The
    row becomes due at once: ``next_attempt_at`` is set to its creation time, which is in the past
    without the store needing a clock.
    """
    sql = f"""UPDATE outbox SET {_back_to_pending()}, attempts = 0, next_attempt_at = created_at,
                 dead_at = NULL, claim_token = NULL, claimed_until = NULL
             WHERE state = 'dead'"""
    params: list[Any] = []
    if sink is not None:
        sql += " AND sink = ?"
        params.append(sink)
    if fingerprints is not None:
        if not fingerprints:
            return 0
        sql += f" AND finding_id IN (SELECT id FROM findings WHERE fingerprint IN ({','.join('?' * len(fingerprints))}))"
        params += list(fingerprints)
    return db.execute(sql, params).rowcount


def stats(db: Database, now: datetime) -> OutboxStats:
    counts = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    oldest = db.execute(
        "SELECT min(created_at) FROM outbox WHERE state IN ('pending', 'claimed')"
    ).fetchone()[0]
    age = None
    if oldest is not None:
        age = max(0.0, (as_utc(now) - from_db_time(oldest)).total_seconds())
    return OutboxStats(
        pending=counts.get("pending", 0),
        claimed=counts.get("claimed", 0),
        dead=counts.get("dead", 0),
        sent=counts.get("sent", 0),
        oldest_pending_age_seconds=age,
    )
