"""What the state-database check costs every command that opens it, end to end.

Run by hand:  .venv/bin/python benchmarks/state_preflight.py [--findings 200000] [--runs 3]

Builds a state database of a long-lived deployment (FINDINGS findings, each with a sent outbox row,
2,000 repo states, 10 observations per repo), then times, each in a new process (start to exit):
`hubwatch status` (read-only: header, schema row, PRAGMA quick_check) and `hubwatch run` up to
its refusal of a database of a newer schema (the writer's check: the same plus the write lock).
Also times the check alone in-process. Target: the check <= 1 s on a 100 MB database (a start of
the daemon or an admin command must not wait noticeably for it).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(folder: Path, findings: int) -> Path:
    from monitor.store import Store

    db = folder / "state.db"
    Store.open(db).close()
    conn = sqlite3.connect(db)
    ts = "2026-01-01T00:00:00.000000Z"
    evidence = json.dumps({"repo": "org/model", "files_added": [f"file-{i}.bin" for i in range(20)]})
    with conn:
        conn.executemany(
            "INSERT INTO findings (fingerprint, kind, severity, subject, summary, evidence, links, first_seen) "
            "VALUES (?, 'ref_moved', 'medium', ?, 'main moved', ?, '[]', ?)",
            ((f"{i:032x}", f"org/model{i % 2000}", evidence, ts) for i in range(findings)))
        conn.execute("INSERT INTO outbox (finding_id, sink, state, attempts, created_at, next_attempt_at, sent_at) "
                     "SELECT id, 'slack', 'sent', 1, ?, ?, ? FROM findings", [ts, ts, ts])
        conn.executemany("INSERT INTO repo_state (key, state_json, updated_at) VALUES (?, ?, ?)",
                         ((f"model:org/model{i}", json.dumps({"baseline": True, "checked_at": ts}), ts)
                          for i in range(2000)))
        conn.executemany("INSERT INTO observations (key, at, json) VALUES (?, ?, ?)",
                         ((f"model:org/model{i % 2000}", ts, '{"status": "ok"}') for i in range(20000)))
    conn.close()
    return db


def timed(cmd: list[str], env: dict, runs: int, expect: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        out.append(time.perf_counter() - t0)
        if r.returncode != expect:
            sys.exit(f"{cmd} exited {r.returncode}, not {expect}: {r.stderr.strip()}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--findings", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from monitor.store import migrations
    from monitor.store.preflight import check

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        db = build(folder, args.findings)
        size = db.stat().st_size / 1e6
        cfg = folder / "config.toml"
        cfg.write_text('[state]\npath = "state.db"\n[[pin]]\nrepo = "org/model0"\ntrack = "main"\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        alone = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            check(db, cfg, write=True, known_migrations=migrations.known_names(), lock_probe=True)
            alone.append(time.perf_counter() - t0)
        status = timed([sys.executable, "-m", "monitor", "status", "-c", str(cfg)], env, args.runs, 0)
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                         "VALUES ('hubwatch', 'm999_future', 'x')")
        conn.close()
        run = timed([sys.executable, "-m", "monitor", "run", "-c", str(cfg)], env, args.runs, 78)
        print(f"database: {size:.0f} MB, {args.findings} findings")
        print(f"check alone (writer): median {statistics.median(alone):.3f} s, best {min(alone):.3f} s")
        print(f"hubwatch status end to end: median {statistics.median(status):.2f} s, best {min(status):.2f} s")
        print(f"hubwatch run refusing a newer schema: median {statistics.median(run):.2f} s, best {min(run):.2f} s")


if __name__ == "__main__":
    main()
