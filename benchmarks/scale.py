"""Heads in bulk at scale (issue 16): requests per pin, moves found, memory, database size, quota.

Run by hand:
    .venv/bin/python benchmarks/scale.py                      # 10,000 pins in 100 namespaces
    .venv/bin/python benchmarks/scale.py --long-tail          # 400 namespaces, 3 with > 3,000 repos
    .venv/bin/python benchmarks/scale.py --quota              # 1,000 pins, free token, 5 s window (CLI)

Steady scenario: a complete check (baseline), then daemon cycles every 10 minutes of a fake clock
(the emulator's quota lifted, so hours of cycles fit in seconds of real windows). Every third cycle
pushes to the default branch of a few random repos; each push must be found in the cycle right
after it. Prints requests per pin (steady cycles without pushes, and with), the complete check's
requests per pin, the process's RSS after cycle 10 and after the last, and the database size per
pin. Targets: steady <= 0.25, complete <= 2.1, RSS <= 120 MB, growth <= 5 % after cycle 10.

Quota scenario: `hubwatch once` subprocesses against 1,000 pins with a free token's 1,000
requests per window, the window shortened to 5 s: with --wait it must end with 0 unknown; without,
exit 75 and the quota line.

The emulator runs in a child process (its own GIL); commands reach it on stdin.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = r"""
import sys
from tests.emulator import HubEmulator
pins, namespaces, tail, quota, window = (int(x) for x in sys.argv[1:6])
emu = HubEmulator().start()
files = {"config.json": "{}", "README.md": "# m"}
for i in range(pins):
    emu.add_repo(f"org{i % namespaces}/model-{i}", files=files)
    if i % 10 == 0:
        emu.create_tag(f"org{i % namespaces}/model-{i}", "v1")
for t in range(tail):  # big namespaces with few pins: read per repo
    for j in range(3100):
        emu.add_repo(f"big{t}/other-{j}", files=files)
emu.rate_limit(quota or 10_000_000, window=window or 300)
print(emu.url, flush=True)
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "commit":
        emu.commit(arg, {"README.md": f"pushed {line}"})
    elif cmd == "count":
        print(len(emu.requests), flush=True)
        continue
    print("ok", flush=True)
"""


class Hub:
    def __init__(self, pins: int, namespaces: int, tail: int = 0, quota: int = 0, window: int = 0):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(pins), str(namespaces), str(tail), str(quota),
                                      str(window)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.url = self.proc.stdout.readline().strip()

    def commit(self, repo: str) -> None:
        self.proc.stdin.write(f"commit {repo}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pins_toml(repos: list[str]) -> str:
    return "".join(f'[[pin]]\nrepo = "{r}"\ntrack = "main"\n' for r in repos)


def steady(args: argparse.Namespace) -> None:
    import logging

    logging.disable(logging.WARNING)  # one line per finding would drown the figures
    tail = 3 if args.long_tail else 0
    namespaces = 400 if args.long_tail else args.namespaces
    hub = Hub(args.pins, namespaces, tail)
    os.environ["HF_ENDPOINT"] = hub.url
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    from datetime import datetime, timedelta, timezone

    from monitor import config as config_mod
    from monitor.jobs.pins import scan_pins
    from monitor.runtime import Runtime

    repos = [f"org{i % namespaces}/model-{i}" for i in range(args.pins)]
    # Long tail: the three big namespaces hold 2 pins each among their 3,100 repos (read per repo).
    extra = [f"big{t}/other-{j}" for t in range(tail) for j in (0, 1)]
    tmp = Path(tempfile.mkdtemp(prefix="hubwatch-scale-"))
    (tmp / "config.toml").write_text(
        f'[hub]\nendpoint = "{hub.url}"\nconcurrency = {args.concurrency}\n[state]\npath = "state.db"\n'
        '[pins]\nevery = "10m"\n' + pins_toml(repos + extra))
    settings = config_mod.load(tmp / "config.toml")
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    rt = Runtime.build(settings, clock=lambda: now[0])
    rng = random.Random(16)
    n = len(repos) + len(extra)
    try:
        t0 = time.monotonic()
        base = scan_pins(rt, complete=True)
        print(f"pins {n} in {namespaces + tail} namespaces{' (long tail)' if tail else ''}")
        print(f"baseline (first complete check): {base.requests / n:.2f} requests/pin, {time.monotonic() - t0:.1f} s")
        now[0] += timedelta(minutes=10)
        full = scan_pins(rt, complete=True)
        print(f"complete check, unchanged:       {full.requests / n:.2f} requests/pin (target <= 2.1)")
        quiet, pushed_cycles, missed, rss10, t_cycles = [], [], 0, None, time.monotonic()
        for cycle in range(1, args.cycles + 1):
            pushed = set(rng.sample(repos, 3)) if cycle % 3 == 0 else set()
            for repo in pushed:
                hub.commit(repo)
            now[0] += timedelta(minutes=10)
            before = {s.finding.subject for s in rt.store.findings() if s.finding.kind == "ref_moved"} if pushed else set()
            r = scan_pins(rt)
            if pushed:
                found = {s.finding.subject for s in rt.store.findings() if s.finding.kind == "ref_moved"} - before
                missed += len(pushed - found)
                pushed_cycles.append(r.requests)
            elif cycle > 1:
                quiet.append(r.requests)
            if cycle == 10:
                rss10 = rss_mb()
        rss_end = rss_mb()
        per_cycle = (time.monotonic() - t_cycles) / args.cycles
        print(f"steady cycles (no push):         {sum(quiet) / len(quiet) / n:.3f} requests/pin on average "
              f"over {len(quiet)} cycles, worst {max(quiet) / n:.3f} (target <= 0.25)")
        print(f"cycles with 3 pushes:            {sum(pushed_cycles) / len(pushed_cycles) / n:.3f} requests/pin; "
              f"pushes not found within one cycle: {missed}")
        ratio = sum(quiet) / len(quiet) / n
        print(f"pins one free token covers: {int(950 / ratio)} in one window's cycle, {int(1900 / ratio)} every "
              f"10 minutes over its two windows; {per_cycle:.1f} s per cycle (wall, this machine)")
        print(f"RSS after cycle 10: {rss10:.0f} MB, after cycle {args.cycles}: {rss_end:.0f} MB "
              f"(growth {100 * (rss_end - rss10) / rss10:+.1f} %; targets <= 120 MB, <= 5 %)")
        size = (tmp / "state.db").stat().st_size + sum(p.stat().st_size for p in tmp.glob("state.db-*"))
        print(f"SQLite size: {size / 1e6:.1f} MB, {size / n / 1000:.1f} kB per pin")
    finally:
        rt.close()
        hub.close()


def quota(args: argparse.Namespace) -> None:
    pins = args.pins if args.pins != 10_000 else 1000
    hub = Hub(pins, 10, quota=1000, window=5)
    tmp = Path(tempfile.mkdtemp(prefix="hubwatch-quota-"))
    repos = [f"org{i % 10}/model-{i}" for i in range(pins)]
    (tmp / "hf_token").write_text("hf_" + "q" * 34)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUBWATCH_", "PYTHON"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT))
    try:
        for wait in (False, True):
            state = tmp / f"state-{wait}.db"
            (tmp / "config.toml").write_text(
                f'[hub]\nendpoint = "{hub.url}"\nconcurrency = 32\n[state]\npath = "{state}"\n'
                '[pins]\nevery = "10m"\n' + pins_toml(repos))
            t0 = time.monotonic()
            run = subprocess.run([sys.executable, "-m", "monitor", "once", "-c", str(tmp / "config.toml")]
                                 + (["--wait"] if wait else []), capture_output=True, text=True, env=env, cwd=tmp)
            summary = re.search(r"^checked .*$", run.stderr, re.M)
            line = re.search(r"^hubwatch: the Hub's API quota is spent until .*$", run.stderr, re.M)
            print(f"once{' --wait' if wait else ''}: exit {run.returncode}, {time.monotonic() - t0:.1f} s; "
                  f"{summary.group(0) if summary else run.stderr[-300:]}")
            if line:
                print(f"  {line.group(0)}")
    finally:
        hub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--long-tail", action="store_true")
    ap.add_argument("--quota", action="store_true")
    args = ap.parse_args()
    quota(args) if args.quota else steady(args)


if __name__ == "__main__":
    main()
