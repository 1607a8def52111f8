"""The daemon's HTTP server under hostile load, measured from outside a child process.

Run by hand:  .venv/bin/python benchmarks/http_surface.py [--idle 400] [--nofile 256]

A child process serves `monitor.http.server.HttpServer` (a stub backend: no Hub) with
RLIMIT_NOFILE = --nofile. The parent measures, in this order:
  1. throughput: 500 sequential GET /healthz, one connection each (requests per second);
  2. with --idle connections opened and left silent: the child's CPU use over 5 s (a server that
     spins on accept() failing with EMFILE burns a whole core here), its threads and RSS, and
     whether GET /healthz is still answered (and how fast) while they stay open;
  3. a trickling client (one byte every 0.5 s, never finishing its request): how long until the
     server hangs up (the whole-request read deadline).
Every number is printed; docs/security-model.md ("Why waitress") quotes them.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, threading
from monitor.config import HttpSettings
from monitor.http.server import HttpServer

class Stub:
    hub_webhook_secret = slack_signing_secret = http_token = None
    def lookup(self, name): raise RuntimeError("no Hub here")
    def hub_event(self, event): return "ignored"
    def readiness(self): return True, {"stub": "ok"}
    def metrics(self): return b"", "text/plain"

srv = HttpServer(HttpSettings("127.0.0.1", 0), Stub(), timeout=float(sys.argv[1])).start()
print(srv.port, flush=True)
threading.Event().wait()
"""


def proc_stat(pid: int) -> tuple[float, int, float]:
    """(cpu seconds, threads, RSS MB) of `pid` from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return cpu, int(status["Threads"].strip()), int(status["VmRSS"].split()[0]) / 1024


def healthz(port: int, timeout: float = 30.0) -> tuple[bool, float]:
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.startswith(b"HTTP/1.") and b" 200 " in data[:20], time.monotonic() - start
    except OSError:
        return False, time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=400)
    ap.add_argument("--nofile", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=10.0, help="the server's read deadline (s)")
    args = ap.parse_args()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(args.timeout)], cwd=ROOT, stdout=subprocess.PIPE,
                             preexec_fn=limit, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        port = int(child.stdout.readline())
        start = time.monotonic()
        ok = sum(healthz(port)[0] for _ in range(500))
        print(f"throughput: {ok}/500 ok, {500 / (time.monotonic() - start):.0f} requests/s")

        idle = []
        for _ in range(args.idle):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                conn.sendall(b"G")  # a request begun, never finished (data also completes a dropped handshake)
                idle.append(conn)
                time.sleep(0.005)  # paced, so a small listen backlog does not turn them away
            except OSError:
                continue
        cpu0, _, _ = proc_stat(child.pid)
        threads = rss = 0.0
        probes = []
        for _ in range(8):  # 8 s: every idle connection has reached accept() (SYN retries included)
            time.sleep(1.0)
            _, t, r = proc_stat(child.pid)
            threads, rss = max(threads, t), max(rss, r)
            probes.append(healthz(port, timeout=10.0))
        cpu1, _, _ = proc_stat(child.pid)
        print(f"{len(idle)} idle connections, RLIMIT_NOFILE {args.nofile}: child CPU {cpu1 - cpu0:.2f} s "
              f"in {len(probes)} s, up to {threads:.0f} threads, RSS up to {rss:.0f} MB")
        answered = [took for ok, took in probes if ok]
        print(f"/healthz under that load: {len(answered)}/{len(probes)} answered"
              + (f", slowest {max(answered):.2f} s" if answered else ""))
        for s in idle:
            s.close()

        time.sleep(1.0)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            begin = time.monotonic()
            request = b"POST /hooks/hub HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000
            try:
                for byte in request:
                    s.sendall(bytes([byte]))
                    time.sleep(0.5)
                    if time.monotonic() - begin > 60:
                        break
            except OSError:
                pass
            print(f"trickling client dropped after {time.monotonic() - begin:.1f} s "
                  f"(read deadline {args.timeout:g} s)")
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
