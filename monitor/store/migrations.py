"""Schema, as an append-only list of sqlite-utils migrations.

Applied migrations are recorded in ``_sqlite_migrations`` (set "hubwatch"), so opening an
up-to-date database is read-only and an old one is brought forward exactly once. Never edit or
rename a migration that has shipped: add a new one.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("hubwatch")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        -- Opaque per-repo state owned by the checker (last seen sha, files, status...).
        CREATE TABLE repo_state (
            key TEXT PRIMARY KEY,
            state_json TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        -- Append-only history of what each check saw, for forensics ("when did this change?").
        CREATE TABLE observations (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at TEXT NOT NULL,
            json TEXT NOT NULL
        );
        CREATE INDEX observations_key_at ON observations (key, at);

        -- One row per distinct finding ever made; the UNIQUE fingerprint is the cross-restart
        -- dedup: the same finding is never inserted (hence never alerted) twice.
        CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            severity TEXT NOT NULL,
            subject TEXT NOT NULL,
            summary TEXT NOT NULL,
            evidence TEXT NOT NULL,
            links TEXT NOT NULL,
            first_seen TEXT NOT NULL
        );
        CREATE INDEX findings_first_seen ON findings (first_seen);
        CREATE INDEX findings_kind_first_seen ON findings (kind, first_seen);

        -- Transactional outbox: one row per (finding, sink), written in the same transaction as
        -- the finding. Delivery claims rows by compare-and-set on (state, claim_token).
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            finding_id INTEGER NOT NULL REFERENCES findings (id),
            sink TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'claimed', 'sent', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            claim_token TEXT,
            claimed_until TEXT,
            last_error TEXT,
            sent_at TEXT,
            dead_at TEXT,
            UNIQUE (finding_id, sink)
        );
        CREATE INDEX outbox_sink_state_due ON outbox (sink, state, next_attempt_at);
        CREATE INDEX outbox_state ON outbox (state);

        -- Small key/value bookkeeping for jobs (feed cursors, probe results).
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """
    )


@MIGRATIONS()
def m002_probes(db: Database) -> None:
    db.executescript(
        """
        -- Look-alike names probed on the Hub: when, and whether an org/user existed. Lets the probe
        -- job cover the whole candidate space over successive budgeted cycles.
        CREATE TABLE probes (
            name TEXT PRIMARY KEY,
            checked_at TEXT NOT NULL,
            found INTEGER NOT NULL
        );
        """
    )


@MIGRATIONS()
def m003_triage_and_reports(db: Database) -> None:
    """Acknowledged findings; reports (the daily digest) delivered through the same outbox.

    An outbox row now carries either a finding or a report, and may be `skipped` (its finding was
    acknowledged before it went out). SQLite cannot change a CHECK constraint in place, so the
    outbox is rebuilt (create, copy, drop, rename); its rows and ids are kept. Single statements,
    not executescript, so the rebuild stays inside the migration's transaction."""
    for sql in (
        "ALTER TABLE findings ADD COLUMN acked_at TEXT",
        "ALTER TABLE findings ADD COLUMN ack_note TEXT",
        """CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE outbox_new (
            id INTEGER PRIMARY KEY,
            finding_id INTEGER REFERENCES findings (id),
            report_id INTEGER REFERENCES reports (id),
            sink TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'claimed', 'sent', 'dead', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            claim_token TEXT,
            claimed_until TEXT,
            last_error TEXT,
            sent_at TEXT,
            dead_at TEXT,
            CHECK ((finding_id IS NULL) <> (report_id IS NULL)),
            UNIQUE (finding_id, sink),
            UNIQUE (report_id, sink)
        )""",
        """INSERT INTO outbox_new (id, finding_id, sink, state, attempts, created_at, next_attempt_at,
                                   claim_token, claimed_until, last_error, sent_at, dead_at)
           SELECT id, finding_id, sink, state, attempts, created_at, next_attempt_at, claim_token,
                  claimed_until, last_error, sent_at, dead_at FROM outbox""",
        "DROP TABLE outbox",
        "ALTER TABLE outbox_new RENAME TO outbox",
        "CREATE INDEX outbox_sink_state_due ON outbox (sink, state, next_attempt_at)",
        "CREATE INDEX outbox_state ON outbox (state)",
        "CREATE INDEX outbox_finding ON outbox (finding_id)",
    ):
        db.execute(sql)


@MIGRATIONS()
def m004_slack_replays(db: Database) -> None:
    db.execute(
        """CREATE TABLE slack_replays (
            -- A signature Slack sent us, refused if it comes again before forget_at (unix time).
            signature TEXT PRIMARY KEY,
            forget_at REAL NOT NULL
        )"""
    )


@MIGRATIONS()
def m005_acked_by(db: Database) -> None:
    """Who acknowledged a finding (a Slack user id, or the CLI's $HUBWATCH_ACTOR / $SUDO_USER /
    login name); NULL for acknowledgements recorded before this column."""
    db.execute("ALTER TABLE findings ADD COLUMN acked_by TEXT")


@MIGRATIONS()
def m006_content_state(db: Database) -> None:
    db.execute(
        """CREATE TABLE content_state (
            -- What inspecting a watched repo's content concluded (clean / flagged / not_inspected),
            -- and the chat templates read: the baseline later moves are compared with.
            key TEXT PRIMARY KEY,
            state_json TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )


def apply(db: Database) -> list[str]:
    """Apply pending migrations; return the names applied (empty when already up to date).

    Two processes may open a fresh file at once (daemon starting while the CLI runs a check).
    ``Migrations.apply`` reads what is pending and then writes, so two of them could both try the
    same migration. We therefore hold the write lock (``BEGIN IMMEDIATE``) around it: the second
    process waits, then finds nothing pending. Each migration still runs in its own savepoint via
    ``db.atomic()`` inside ``Migrations.apply``. This is why migrations here must be
    ``transactional`` (the default) — a ``VACUUM`` one could not run inside the lock.
    """
    if not MIGRATIONS.pending(db):
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        todo = [m.name for m in MIGRATIONS.pending(db)]
        MIGRATIONS.apply(db)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return todo


def known_names() -> frozenset[str]:
    """The migrations this hubwatch knows: a database that applied others is of a newer schema."""
    return frozenset(m.name for m in MIGRATIONS._migrations)
