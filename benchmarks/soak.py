"""Soak: memory stays flat over a long run of steady pin scans, with real changes now and then.

Run by hand:  /work/venv/bin/python benchmarks/soak.py [--pins 1000] [--cycles 500] [--change-every 25]

1,000 pins on the Hub emulator (zero latency, in a child process so it does not share this
process's GIL or memory), 500 daemon cycles of `scan_pins` on a fake clock advancing 10 minutes a
cycle (so hourly metadata reads happen too), a few real commits and tag moves every N cycles, and
a delivery pass after each cycle to a stdout sink writing to /dev/null. Prints this process's RSS
after the baseline and at the end, the growth, and cycles/s. Targets: RSS <= 120 MB, growth <= 5%.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RSS_TARGET_MB = 120.0
GROWTH_TARGET = 0.05

# The emulator child: builds the repos, prints its URL, then applies changes read as JSON lines
# from stdin ({"op": "commit"|"move_tag", ...}), answering each with one JSON line.
SERVER = r"""
import json, sys
from tests.emulator import HubEmulator
n = int(sys.argv[1])
emu = HubEmulator().start()
for i in range(n):
    repo = f"org{i % 50}/model-{i}"
    emu.add_repo(repo, files={"config.json": "{}", "model.safetensors": b"w" * 64, "README.md": f"# model {i}"})
    if i % 10 == 0:
        emu.create_tag(repo, "v1")
emu.latency(0)
emu.rate_limit(10_000_000)  # hundreds of fake-clock cycles run within one real quota window
print(emu.url, flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    emu.clear_log()  # the log is bounded anyway; keep the child small too
    if cmd["op"] == "commit":
        out = emu.commit(cmd["repo"], cmd["files"], title=cmd["title"], author=cmd.get("author", "alice"))
    else:
        out = emu.move_tag(cmd["repo"], cmd["tag"], emu.repo_head(cmd["repo"]))
    print(json.dumps(out), flush=True)
"""


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def repo_name(i: int) -> str:
    return f"org{i % 50}/model-{i}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--change-every", type=int, default=25, help="real changes every N cycles")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--report-every", type=int, default=50)
    ap.add_argument("--protected", default="EleutherAI,meta-llama,mistralai,google,openai",
                    help="comma-separated protected names: their look-alike index and probe "
                         "queue are held as the daemon holds them")
    args = ap.parse_args()

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.pins)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = server.stdout.readline().strip()
    if not url:
        print("emulator failed to start", file=sys.stderr)
        return 2
    os.environ["HF_ENDPOINT"] = url
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

    def change(cmd: dict) -> str:
        server.stdin.write(json.dumps(cmd) + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    try:
        return run(url, args, change)
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def run(url: str, args: argparse.Namespace, change) -> int:
    from datetime import datetime, timedelta, timezone

    from monitor import config as config_mod
    from monitor.alerts.delivery import deliver
    from monitor.jobs.pins import scan_pins
    from monitor.runtime import Runtime

    logging.basicConfig(level=logging.ERROR)  # per-finding WARNINGs would only measure the terminal
    tmp = Path(tempfile.mkdtemp(prefix="hubwatch-soak-"))
    pins = "".join(f'[[pin]]\nrepo = "{repo_name(i)}"\ntrack = "main"\n' for i in range(args.pins))
    (tmp / "config.toml").write_text(
        f'[hub]\nendpoint = "{url}"\nconcurrency = {args.concurrency}\n[state]\npath = "state.db"\n'
        f'[pins]\nevery = "10m"\nmetadata_every = "1h"\njitter = 0\n[alerts]\nmin_interval = 0\n'
        f'[limits]\nhub_requests_per_5min = 1000000\n'
        f'[lookalike]\nprotected = {json.dumps([p for p in args.protected.split(",") if p])}\n'
        + pins)
    settings = config_mod.load(tmp / "config.toml")
    from monitor.jobs.lookalikes import candidate_queue
    from monitor.jobs.lookup import screener_for

    # What the look-alike job keeps between cycles: the shared index and the probe queue.
    screener = screener_for(settings.lookalike.protected, settings.lookalike.allow)
    queue = candidate_queue(screener, settings.lookalike.protected, set())
    print(f"look-alike index for {len(screener.targets)} protected names, {len(queue)} probe "
          "candidates", flush=True)
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    devnull = open(os.devnull, "w")
    rt = Runtime.build(settings, clock=lambda: now[0], stdout=devnull)
    expected = 0
    try:
        base = scan_pins(rt, complete=True)
        print(f"baseline: {base.checked} repos, {base.requests} requests, {base.seconds:.1f} s", flush=True)
        gc.collect()
        start_rss = rss_mb()
        print(f"RSS after baseline: {start_rss:.1f} MB", flush=True)
        t0, requests, unknown, errors = time.monotonic(), 0, 0, 0
        for cycle in range(1, args.cycles + 1):
            if cycle % args.change_every == 0:
                moved = {(cycle * 7 + k * 131) % args.pins for k in range(3)}  # a few commits...
                for i in moved:
                    change({"op": "commit", "repo": repo_name(i), "files": {"README.md": f"cycle {cycle}"},
                            "title": f"update {cycle}"})
                tagged = ((cycle // args.change_every) * 10) % args.pins  # ...and a tag re-pointed
                change({"op": "commit", "repo": repo_name(tagged), "files": {"notes.txt": f"{cycle}"}, "title": "t"})
                change({"op": "move_tag", "repo": repo_name(tagged), "tag": "v1"})
                expected += len(moved | {tagged}) + 1  # one move per branch moved, plus the tag
            now[0] += timedelta(minutes=10)
            report = scan_pins(rt)
            requests += report.requests
            unknown += report.unknown
            errors += report.errors
            deliver(rt.store, rt.sinks, now=lambda: now[0], sleep=lambda s: None, min_interval=0)
            if cycle % args.report_every == 0:
                elapsed = time.monotonic() - t0
                print(f"cycle {cycle}: RSS {rss_mb():.1f} MB, {cycle / elapsed:.2f} cycles/s, "
                      f"{requests / cycle / args.pins:.2f} requests/pin/cycle", flush=True)
        elapsed = time.monotonic() - t0
        gc.collect()
        end_rss = rss_mb()
        found = len(rt.store.findings())
        stats = rt.store.outbox_stats(now[0])
    finally:
        rt.close()
        devnull.close()
    growth = (end_rss - start_rss) / start_rss
    db_mb = sum(f.stat().st_size for f in tmp.glob("state.db*")) / 2**20
    print(f"\ncycles: {args.cycles} x {args.pins} pins in {elapsed:.1f} s = {args.cycles / elapsed:.2f} cycles/s "
          f"({requests / elapsed:.0f} requests/s, {unknown} unknown, {errors} errors)")
    print(f"findings: {found} (expected {expected}); outbox pending {stats.pending}, sent {stats.sent}, "
          f"dead {stats.dead}; database {db_mb:.1f} MB")
    print(f"RSS start {start_rss:.1f} MB, end {end_rss:.1f} MB, growth {growth * 100:+.1f}% "
          f"(targets: <= {RSS_TARGET_MB:.0f} MB, <= {GROWTH_TARGET * 100:.0f}%)")
    ok = end_rss <= RSS_TARGET_MB and growth <= GROWTH_TARGET and found == expected and errors == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
