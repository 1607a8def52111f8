"""A test harness: a config pointing at the emulator and Slack receiver, and `hubwatch` runs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from monitor import config as config_mod
from monitor.cli import main
from monitor.hub import session

WEBHOOK_SECRET_PART = "XXXXSECRET"


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class PinsEnv:
    tmp: Path
    hub: object
    slack: object | None
    pins: list[dict] = field(default_factory=list)
    extra: str = ""
    token: str | None = None
    http_listen: str = "127.0.0.1:0"  # any free port: parallel daemons never clash

    @property
    def config(self) -> Path:
        return self.tmp / "config.toml"

    @property
    def state(self) -> Path:
        return self.tmp / "state.db"

    def write(self) -> Path:
        lines = ["[hub]", f'endpoint = "{self.hub.url}"', 'retries = 1', 'retry_wait = "0.01s"', 'timeout = "5s"',
                 "concurrency = 4"]
        if self.token:
            (self.tmp / "hf_token").write_text(self.token)
            lines.append('token_file = "hf_token"')
        lines += ["[state]", 'path = "state.db"', "[pins]", 'every = "10m"', "jitter = 0",
                  "[alerts]", "min_interval = 0", "[http]", f'listen = "{self.http_listen}"']
        if self.slack is not None:
            lines += ["[slack]", f'webhook_url = "{self.slack.url}"']
        for pin in self.pins:
            lines.append("[[pin]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in pin.items()]
        self.config.write_text("\n".join(lines) + "\n" + self.extra)
        return self.config

    def settings(self):
        return config_mod.load(self.write(), env={})

    def run(self, *args: str) -> Run:
        """Run the real CLI in-process, capturing stdout, stderr and every log record."""
        self.write()
        session.STATS.reset()
        session.BUDGET.reset()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([args[0], "-c", str(self.config), *args[1:]])
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers
                                        if not getattr(h, "_hubwatch", False)]
        return Run(code, out.getvalue(), err.getvalue())

    def once(self, *args: str) -> Run:
        r = self.run("once", *args)
        assert r.code == 0, r
        return r

    def findings(self, kind: str | None = None) -> list[dict]:
        args = ["findings", "--json"] + (["--kind", kind] if kind else [])
        r = self.run(*args)
        assert r.code == 0, r
        return [json.loads(line) for line in r.out.splitlines() if line.strip()]


class Clock:
    """A controllable UTC clock for driving jobs directly."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@contextlib.contextmanager
def json_receiver():
    """A generic-webhook receiver on 127.0.0.1: yields (url, list of received JSON bodies)."""
    import http.server
    import threading

    received: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hubwatch", received
    finally:
        server.shutdown()
