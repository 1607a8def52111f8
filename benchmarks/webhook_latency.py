"""Webhook latency: Hub event -> Slack message, through a real `hubwatch run` daemon.

Run by hand:  .venv/bin/python benchmarks/webhook_latency.py [--events 100]
Events come one per second (the default Slack pacing is one message per second per sink).
For each event: commit on the emulator, POST the Hub webhook payload to the daemon's /hooks/hub,
and time until the Slack receiver holds the alert. Prints p50/p95/max; target p95 <= 2 s.
Polling is set to once a day, so only the webhook path can explain an alert.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "bench-webhook-secret"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--pins", type=int, default=50)
    args = ap.parse_args()

    from tests.emulator import HubEmulator, SlackReceiver

    import requests

    hub, slack = HubEmulator().start(), SlackReceiver()
    hub.rate_limit(10_000_000)  # measures latency, not the anonymous quota (100 checks in 100 s)
    tmp = Path(tempfile.mkdtemp(prefix="hubwatch-latency-"))
    (tmp / "secret").write_text(SECRET)
    repos = [f"org/model-{i}" for i in range(args.pins)]
    for r in repos:
        hub.add_repo(r, files={"README.md": "v0"})
    pins = "".join(f'[[pin]]\nrepo = "{r}"\ntrack = "main"\n' for r in repos)
    (tmp / "config.toml").write_text(
        f'[hub]\nendpoint = "{hub.url}"\n[state]\npath = "state.db"\n[pins]\nevery = "1d"\njitter = 0\n'
        f'[alerts]\nevery = "1h"\n[slack]\nwebhook_url = "{slack.url}"\n'
        f'[http]\nlisten = "127.0.0.1:0"\n[hub_webhook]\nsecret_file = "secret"\n' + pins)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT),
           "HF_HOME": str(tmp / "hf")}
    log = open(tmp / "daemon.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(tmp / "config.toml"), "-v"],
                            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            m = re.search(r"http (http://127\.0\.0\.1:\d+)", (tmp / "daemon.log").read_text())
            url = m.group(1) if m else None
            time.sleep(0.05)
        while "scan_pins:" not in (tmp / "daemon.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = []
        for i in range(args.events):
            repo = repos[i % len(repos)]
            before = len(slack.messages)
            hub.commit(repo, {"README.md": f"v{i + 1}"}, title=f"change {i}")
            body = {"event": {"action": "update", "scope": "repo.content"},
                    "repo": {"type": "model", "name": repo, "id": "0" * 24},
                    "updatedRefs": [], "webhook": {"id": "w", "version": 3}}
            t0 = time.monotonic()
            requests.post(f"{url}/hooks/hub", json=body, headers={"X-Webhook-Secret": SECRET}, timeout=10)
            while len(slack.messages) <= before and time.monotonic() - t0 < 30:
                time.sleep(0.002)
            latencies.append(time.monotonic() - t0)
            time.sleep(max(0.0, 1.05 - (time.monotonic() - t0)))  # Slack pacing: 1 message/s
        latencies.sort()
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(f"{len(latencies)} events: p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms (target <= 2000 ms), max {latencies[-1] * 1000:.0f} ms; "
              f"{len(slack.messages)} Slack messages")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        hub.stop()
        slack.stop()


if __name__ == "__main__":
    main()
