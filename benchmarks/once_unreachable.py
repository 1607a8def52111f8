"""How long `hubwatch once` takes when the Hub cannot be reached: process start to exit.

Run by hand:  .venv/bin/python benchmarks/once_unreachable.py
Runs `hubwatch once --dry-run` on config.example.toml (3 pins, 5 protected names, default retries)
with the endpoint pointed at a closed local port (connection refused) and at an unresolvable host
(DNS), and prints the wall time, exit code and last stderr lines of each. Target: <= 30 s, exit 75.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 30.0


def refusing_port() -> socket.socket:
    """A port bound but never listened on: connections are refused, and no other process can take
    the port meanwhile (a merely closed port could be reused by any server on this busy host)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def measure(endpoint: str) -> tuple[float, int, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text((ROOT / "config.example.toml").read_text().replace(
            'endpoint = "https://huggingface.co"', f'endpoint = "{endpoint}"'))
        env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
        started = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "monitor", "once", "-c", str(config), "--dry-run"],
                           capture_output=True, text=True, cwd=tmp, env={**env, "PYTHONPATH": str(ROOT)})
        return time.monotonic() - started, p.returncode, p.stderr.strip().splitlines()[-3:]


def main() -> None:
    worst, codes = 0.0, set()
    refusing = refusing_port()
    # https: plain http is accepted only to a loopback address (exit 78 otherwise)
    for label, endpoint in (("connection refused", f"http://127.0.0.1:{refusing.getsockname()[1]}"),
                            ("unresolvable host", "https://hubwatch-bench.invalid")):
        seconds, code, tail = measure(endpoint)
        worst = max(worst, seconds)
        codes.add(code)
        print(f"{label:<20} {seconds:6.2f} s  exit {code}")
        for line in tail:
            print(f"    {line}")
    print(f"worst: {worst:.2f} s (target <= {TARGET:.0f} s)")
    sys.exit(0 if worst <= TARGET and codes == {75} else 1)


if __name__ == "__main__":
    main()
