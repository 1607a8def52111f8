"""Request economy and speed of the pin scan: 1,000 pins on the Hub emulator, 50 ms per request.

Run by hand:  .venv/bin/python benchmarks/pins_cycle.py [--pins 1000] [--latency 0.05]
Prints requests per pin for a complete check and for steady daemon cycles (two hours of 10-minute
cycles: heads in bulk, one listing page per namespace of 20 pinned repos, the hourly refs sweep and
the 6-hourly scan sweep), and the complete check's wall time. Targets: <= 2.1, <= 0.25, <= 5 s
(before heads in bulk: <= 2.0, <= 1.0). benchmarks/scale.py goes to 10,000 pins.

The emulator runs in a child process so its request handling does not compete with the
client for this process's GIL.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = r"""
import sys, time
from tests.emulator import HubEmulator
n, latency = int(sys.argv[1]), float(sys.argv[2])
emu = HubEmulator().start()
for i in range(n):
    emu.add_repo(f"org{i % 50}/model-{i}", files={"config.json": "{}", "model.safetensors": b"w" * 64,
                                                  "README.md": f"# model {i}"})
    if i % 10 == 0:
        emu.create_tag(f"org{i % 50}/model-{i}", "v1")
emu.latency(latency)
emu.rate_limit(10_000_000)  # the fake clock packs hours of cycles into seconds of real quota windows
print(emu.url, flush=True)
sys.stdin.read()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.pins), str(args.latency)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = server.stdout.readline().strip()
    os.environ["HF_ENDPOINT"] = url
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        run(url, args)
    finally:
        server.stdin.close()
        server.wait(timeout=10)


def run(url: str, args: argparse.Namespace) -> None:
    from datetime import datetime, timedelta, timezone

    from monitor import config as config_mod
    from monitor.jobs.pins import scan_pins
    from monitor.runtime import Runtime

    tmp = Path(tempfile.mkdtemp(prefix="hubwatch-bench-"))
    pins = "".join(f'[[pin]]\nrepo = "org{i % 50}/model-{i}"\ntrack = "main"\n' for i in range(args.pins))
    (tmp / "config.toml").write_text(
        f'[hub]\nendpoint = "{url}"\nconcurrency = {args.concurrency}\n[state]\npath = "state.db"\n'
        # No [limits]: the budget follows the quota the emulator advertises (lifted in SERVER).
        f'[pins]\nevery = "10m"\nmetadata_every = "1h"\n' + pins)
    settings = config_mod.load(tmp / "config.toml")
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    rt = Runtime.build(settings, clock=lambda: now[0])
    try:
        base = scan_pins(rt, complete=True)
        print(f"baseline (first observation): {base.requests / args.pins:.2f} requests/pin, {base.seconds:.2f} s")
        now[0] += timedelta(minutes=10)
        full = scan_pins(rt, complete=True)
        print(f"complete check, unchanged:    {full.requests / args.pins:.2f} requests/pin "
              f"(target <= 2.1), wall {full.seconds:.2f} s (target <= 5 s)")
        total, cycles, worst = 0, 12, 0.0
        t0 = time.monotonic()
        for _ in range(cycles):
            now[0] += timedelta(minutes=10)
            r = scan_pins(rt)
            total += r.requests
            worst = max(worst, r.seconds)
        print(f"steady daemon cycles:         {total / cycles / args.pins:.2f} requests/pin on average over "
              f"{cycles} cycles (target <= 0.25), slowest cycle {worst:.2f} s, "
              f"{(time.monotonic() - t0) / cycles:.2f} s/cycle")
    finally:
        rt.close()


if __name__ == "__main__":
    main()
