"""Findings, deduplicated by fingerprint, written together with their outbox rows.

A finding and the outbox rows that will announce it are inserted in the same transaction: after a
crash either both exist or neither does, so a finding can never be "known" (and hence skipped on
the next run) without an alert queued for it. The UNIQUE fingerprint makes the insert itself the
dedup check, so two processes recording the same finding cannot both queue alerts for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from sqlite_utils import Database

from ..detect.findings import Finding
from .db import from_db_time, to_db_time, to_json_time

# Columns needed to rebuild a Finding; shared with outbox.py, which joins on findings.
FINDING_COLUMNS = "f.kind, f.severity, f.subject, f.summary, f.evidence, f.links, f.fingerprint"


@dataclass(frozen=True)
class StoredFinding:
    """A finding as persisted: when it was first seen and its row id."""

    finding: Finding
    first_seen: datetime
    id: int
    acked_at: datetime | None = None
    ack_note: str | None = None
    acked_by: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        d = self.finding.to_dict()
        d["first_seen"] = to_json_time(self.first_seen)
        d["id"] = self.id
        d["acked_at"] = to_json_time(self.acked_at) if self.acked_at else None
        d["ack_note"] = self.ack_note
        d["acked_by"] = self.acked_by
        return d


def finding_from_row(row: Mapping[str, Any]) -> Finding:
    """Rebuild a Finding from a row holding the FINDING_COLUMNS (JSON columns decoded here)."""
    return Finding.from_dict({
        "kind": row["kind"],
        "severity": row["severity"],
        "subject": row["subject"],
        "summary": row["summary"],
        "evidence": json.loads(row["evidence"]),
        "links": json.loads(row["links"]),
        "fingerprint": row["fingerprint"],
    })


def insert_new(db: Database, findings: Iterable[Finding], sinks: Sequence[str],
               now: datetime) -> list[Finding]:
    """Insert findings with unknown fingerprints plus one pending outbox row per sink.

    Must run inside a transaction (``Store.record`` wraps it in ``db.write()``). Returns the
    findings actually inserted, in input order; a repeated fingerprint — from an earlier run or
    earlier in ``findings`` — is skipped. The first statement is a write, so the write lock is
    taken up front and the busy timeout applies (a read-then-write deferred transaction could
    fail with SQLITE_BUSY instead of waiting).
    """
    ts = to_db_time(now)
    unique_sinks = list(dict.fromkeys(sinks))  # a sink named twice still gets one alert
    new: list[Finding] = []
    for finding in findings:
        d = finding.to_dict()
        # Serialise before touching the database: a bad evidence value raises here and the
        # caller's transaction rolls back everything written so far.
        evidence = json.dumps(d["evidence"], sort_keys=True, separators=(",", ":"))
        links = json.dumps(d["links"], separators=(",", ":"))
        cur = db.execute(
            """
            INSERT INTO findings (fingerprint, kind, severity, subject, summary, evidence, links,
                                  first_seen)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (fingerprint) DO NOTHING
            """,
            [finding.fingerprint, finding.kind, finding.severity, finding.subject,
             finding.summary, evidence, links, ts],
        )
        if cur.rowcount != 1:
            continue
        finding_id = cur.lastrowid
        for sink in unique_sinks:
            db.execute(
                """
                INSERT INTO outbox (finding_id, sink, state, attempts, created_at, next_attempt_at)
                VALUES (?, ?, 'pending', 0, ?, ?)
                """,
                [finding_id, sink, ts, ts],
            )
        new.append(finding)
    return new


def list_findings(db: Database, kind: str | None = None,
                  since: datetime | None = None, include_acked: bool = True) -> list[StoredFinding]:
    """Findings oldest first (ties broken by insertion order), optionally filtered."""
    where, params = [], []
    if not include_acked:
        where.append("f.acked_at IS NULL")
    if kind is not None:
        where.append("f.kind = ?")
        params.append(kind)
    if since is not None:
        where.append("f.first_seen >= ?")
        params.append(to_db_time(since))
    sql = f"SELECT f.id, f.first_seen, f.acked_at, f.ack_note, f.acked_by, {FINDING_COLUMNS} FROM findings f"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY f.first_seen, f.id"
    return [
        StoredFinding(finding_from_row(row), from_db_time(row["first_seen"]), row["id"],
                      from_db_time(row["acked_at"]) if row["acked_at"] else None, row["ack_note"], row["acked_by"])
        for row in db.query(sql, params)
    ]


def kind_and_subject(db: Database, fingerprints: Sequence[str]) -> dict[str, tuple[str, str]]:
    """fingerprint -> (kind, subject) for the fingerprints that exist."""
    out = {}
    for fp in dict.fromkeys(fingerprints):
        row = db.execute("SELECT kind, subject FROM findings WHERE fingerprint = ?", [fp]).fetchone()
        if row is not None:
            out[fp] = (row[0], row[1])
    return out


def ack(db: Database, fingerprints: Sequence[str], note: str | None, now: datetime, actor: str) -> None:
    """Acknowledge findings (inside a transaction); an unknown fingerprint is ignored. Their
    undelivered alerts still go out, marked as acknowledged before delivery. Acking again updates
    the note and keeps the first time and who did it."""
    for fp in dict.fromkeys(fingerprints):
        db.execute("UPDATE findings SET acked_at = coalesce(acked_at, ?), ack_note = coalesce(?, ack_note), "
                   "acked_by = CASE WHEN acked_at IS NULL THEN ? ELSE coalesce(acked_by, ?) END "
                   "WHERE fingerprint = ?", [to_db_time(now), note, actor, actor, fp])


def unack(db: Database, fingerprints: Sequence[str]) -> list[int]:
    """Withdraw acknowledgements; returns the ids of the findings that exist."""
    ids = []
    for fp in dict.fromkeys(fingerprints):
        row = db.execute("SELECT id FROM findings WHERE fingerprint = ?", [fp]).fetchone()
        if row is None:
            continue
        db.execute("UPDATE findings SET acked_at = NULL, ack_note = NULL, acked_by = NULL WHERE id = ?", [row[0]])
        ids.append(row[0])
    return ids


def open_counts(db: Database) -> dict[str, int]:
    """Unacknowledged findings per lower-cased subject."""
    rows = db.execute("SELECT lower(subject), count(*) FROM findings WHERE acked_at IS NULL GROUP BY lower(subject)")
    return dict(rows.fetchall())


def open_by_kind(db: Database) -> dict[tuple[str, str], int]:
    """Unacknowledged findings per (kind, severity)."""
    rows = db.execute("SELECT kind, severity, count(*) FROM findings WHERE acked_at IS NULL GROUP BY kind, severity")
    return {(k, s): n for k, s, n in rows.fetchall()}


def has_finding(db: Database, fingerprint: str) -> bool:
    row = db.execute("SELECT 1 FROM findings WHERE fingerprint = ?", [fingerprint]).fetchone()
    return row is not None
