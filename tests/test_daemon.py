"""The daemon as operators run it: `hubwatch run` in a subprocess against the session's Hub emulator
and Slack receiver. Signals, reloads, failing jobs, kill -9 and secrecy are checked from outside,
through what an operator can see: the exit code, the JSON log lines, the Slack messages and the
state database. Every wait is a bounded poll; nothing sleeps for a fixed long time."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.emulator.slack import fingerprints

ROOT = Path(__file__).resolve().parent.parent  # the checkout, so `python -m monitor` imports this code
WAIT = 20.0
FILES = {"config.json": '{"model_type": "gptj"}', "README.md": "# model"}
TOKEN = "hf_DaemonTestTokenValue987"

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


def wait_for(cond, what: str, timeout: float = WAIT, every: float = 0.05, show: "Daemon | None" = None):
    """Poll `cond` until it returns something truthy (returned) or fail after `timeout` seconds,
    showing the end of `show`'s output (as it is then) in the failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"\n--- daemon output (exit {show.proc.poll()}):\n{show.text()[-4000:]}" if show else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(every)


def child_env(tmp: Path, hub) -> dict[str, str]:
    """The environment of a hubwatch child process: this checkout, the emulator, nothing inherited
    that could point it elsewhere (HF_TOKEN, HUBWATCH_*, a PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUBWATCH_", "PYTHON"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(tmp / "hf-home"),
               PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


def fingerprint(message: dict) -> str:
    """The finding's fingerprint, read back from the message's context block."""
    found = fingerprints(message)
    assert len(found) == 1, message
    return found[0]


class Daemon:
    """One `hubwatch run` subprocess; stdout and stderr go to files so nothing blocks on a pipe."""

    def __init__(self, tmp: Path, hub, n: int):
        self.tmp, self.hub, self.n = tmp, hub, n
        self.out = tmp / f"daemon{n}.out"
        self.err = tmp / f"daemon{n}.err"
        self.proc: subprocess.Popen | None = None

    def start(self, config: Path) -> "Daemon":
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "-c", str(config), "-v", "--log-format", "json"],
                cwd=self.tmp, env=child_env(self.tmp, self.hub), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        return self

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def logs(self) -> list[dict]:
        out = []
        for line in self.err.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a partly written last line, or a traceback from a crash (seen in text())
        return out

    def scans(self) -> int:
        """Completed pin scans so far (the job's summary line)."""
        return sum(1 for r in self.logs() if r.get("msg", "").startswith("scan_pins:"))

    def wait_scans(self, more: int, timeout: float = WAIT) -> None:
        target = self.scans() + more
        wait_for(lambda: self.alive() and self.scans() >= target, f"{more} more scan(s)", timeout, show=self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)


class Env:
    """A config for the daemon, its state database, and the daemons started for one test."""

    def __init__(self, tmp: Path, hub, slack):
        self.tmp, self.hub, self.slack = tmp, hub, slack
        self.pins: list[str] = []
        self.pins_every = "1s"
        self.concurrency = 4
        self.token: str | None = None
        self.daemons: list[Daemon] = []
        self.clis: list[subprocess.Popen] = []

    @property
    def config(self) -> Path:
        return self.tmp / "config.toml"

    @property
    def state(self) -> Path:
        return self.tmp / "state.db"

    def render(self) -> str:
        lines = ["[hub]", f'endpoint = "{self.hub.url}"', "retries = 0", 'timeout = "5s"',
                 f"concurrency = {self.concurrency}"]
        if self.token:
            (self.tmp / "hf_token").write_text(self.token + "\n")
            lines.append('token_file = "hf_token"')
        lines += ["[state]", 'path = "state.db"',
                  "[pins]", f'every = "{self.pins_every}"', "jitter = 0",
                  "[alerts]", 'every = "1s"', "min_interval = 0", "[http]", 'listen = "127.0.0.1:0"',
                  "[slack]", f'webhook_url = "{self.slack.url}"']
        for repo in self.pins:
            lines += ["[[pin]]", f'repo = "{repo}"', 'track = "main"']
        return "\n".join(lines) + "\n"

    def write(self, text: str | None = None) -> Path:
        # Write-then-rename, as a config manager would: a SIGHUP never sees half a file.
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(self.render() if text is None else text)
        tmp.replace(self.config)
        return self.config

    def start(self) -> Daemon:
        if not self.config.exists():
            self.write()
        d = Daemon(self.tmp, self.hub, len(self.daemons)).start(self.config)
        self.daemons.append(d)
        return d

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read the daemon's database as a second process would (WAL: never blocks the writer)."""
        if not self.state.exists():
            return []
        conn = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # migrations not applied yet
                return []
            raise
        finally:
            conn.close()

    def baselined(self, n: int) -> bool:
        return len(self.query("SELECT key FROM repo_state")) >= n

    def findings(self) -> list[tuple[str, str, str]]:
        return self.query("SELECT kind, subject, fingerprint FROM findings ORDER BY id")

    def outbox(self) -> dict[str, int]:
        return dict(self.query("SELECT state, count(*) FROM outbox GROUP BY state"))

    def kinds(self) -> list[str]:
        """The finding kind of each Slack message, read from its fallback text."""
        known = ("ref_moved", "tag_moved", "repo_unavailable", "monitoring_degraded", "risky_change")
        return [next((k for k in known if k in m["text"]), m["text"]) for m in self.slack.messages]

    def cli(self, *args: str) -> subprocess.Popen:
        """Start `hubwatch ARGS -c CONFIG` as a second process, output piped."""
        p = subprocess.Popen([sys.executable, "-m", "monitor", *args, "-c", str(self.config)], cwd=self.tmp,
                             env=child_env(self.tmp, self.hub), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.clis.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.clis:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)
        for d in self.daemons:
            d.kill()


@pytest.fixture
def env(hub, slack, tmp_path):
    e = Env(tmp_path, hub, slack)
    yield e
    e.stop_all()  # whatever happened, no daemon outlives its test


def start_baselined(env: Env, *repos: str, **repo_kw) -> Daemon:
    for repo in repos:
        env.hub.add_repo(repo, files=FILES, author=repo.split("/")[0], **repo_kw)
    env.pins = list(repos)
    d = env.start()
    wait_for(lambda: env.baselined(len(repos)), f"baseline of {repos}", show=d)
    assert env.slack.messages == [] and env.findings() == [], "the first observation is a baseline, never an alert"
    return d


# ---------------------------------------------------------------------------------------------------


def test_one_commit_one_alert_across_cycles(env, hub, slack):
    d = start_baselined(env, "org/alpha")
    sha = hub.commit("org/alpha", {"README.md": "# v2"}, title="Docs")
    wait_for(lambda: slack.messages, "the alert", show=d, timeout=10)
    assert env.kinds() == ["ref_moved"]
    assert sha in json.dumps(slack.messages[0])
    d.wait_scans(3)
    assert len(slack.messages) == 1 and env.kinds() == ["ref_moved"]
    ((kind, subject, fp),) = env.findings()
    assert (kind, subject) == ("ref_moved", "org/alpha") and fingerprint(slack.messages[0]) == fp
    assert env.outbox() == {"sent": 1}
    assert d.alive()


def test_sigterm_drains_the_running_scan_then_exits_0(env, hub, slack):
    repos = [f"org/m{i}" for i in range(3)]
    env.concurrency = 1
    d = start_baselined(env, *repos)
    for repo in repos:
        hub.commit(repo, {"README.md": "# v2"})
    hub.latency(0.2)  # one repo at a time, ~3 requests each: the scan runs ~2 s
    hub.clear_log()
    wait_for(lambda: hub.requests, "a scan to start")
    d.signal(signal.SIGTERM)
    try:
        code = d.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit 15 s after SIGTERM\n{d.text()[-4000:]}") from None
    assert code == 0, d.text()[-3000:]
    msgs = [r["msg"] for r in d.logs()]
    after = msgs[next(i for i, m in enumerate(msgs) if m.startswith("signal 15")):]
    # drained: the check that was running finished and recorded what it found; repos whose check
    # had not started are left for the next start (a fast stop, nothing half-done)
    assert "job scan_pins done" in after and after[-1] == "hubwatch stopped", after
    found = [k for k, _, _ in env.findings()]
    assert 1 <= len(found) <= 3 and set(found) == {"ref_moved"}
    assert not [r for r in d.logs() if r["level"] in ("error", "critical")], d.text()[-3000:]
    assert env.outbox() == {"pending": len(found)}, "found but not yet sent: queued for the next start"
    hub.latency(0)
    d2 = env.start()
    wait_for(lambda: len(slack.messages) == 3, "every change alerted after the restart", show=d2)
    assert [k for k, _, _ in env.findings()] == ["ref_moved"] * 3
    assert len({fingerprint(m) for m in slack.messages}) == 3


def test_a_second_sigterm_while_draining_is_said_not_a_traceback(env, hub, slack):
    """An impatient operator (Ctrl-C twice, `timeout`, which signals the process and its group):
    the second signal finds the scheduler already shut down; it must not crash a thread."""
    d = start_baselined(env, "org/alpha")
    hub.commit("org/alpha", {"README.md": "# v2"})
    hub.latency(0.5)
    hub.clear_log()
    wait_for(lambda: hub.requests, "a scan to start")
    d.signal(signal.SIGTERM)
    wait_for(lambda: any(r["msg"].startswith("signal 15") for r in d.logs()), "the first signal", show=d)
    time.sleep(0.2)  # let the first signal's shutdown thread finish: the scheduler is stopped
    assert d.alive(), "still draining the running scan"
    d.signal(signal.SIGTERM)
    assert d.proc.wait(timeout=15) == 0, d.text()[-3000:]
    assert "Traceback" not in d.text() and "SchedulerNotRunningError" not in d.text(), d.text()[-3000:]
    assert [r["msg"] for r in d.logs()][-1] == "hubwatch stopped"


def test_sighup_bad_config_keeps_old_one_and_good_config_adds_a_pin(env, hub, slack):
    d = start_baselined(env, "org/alpha")
    hub.add_repo("org/beta", files=FILES)

    env.write(env.render().replace('every = "1s"', 'every = "soon"', 1))
    d.signal(signal.SIGHUP)
    err = wait_for(lambda: [r for r in d.logs() if r["level"] == "error" and "reload" in r["msg"]],
                   "the reload error", show=d, timeout=10)
    assert "pins.every" in err[0]["msg"] and "soon" in err[0]["msg"], err
    d.wait_scans(1)  # still scanning at the old cadence, with the old pins
    assert d.alive()
    hub.commit("org/alpha", {"README.md": "# v2"})
    wait_for(lambda: slack.messages, "an alert under the old config", show=d, timeout=10)

    # the good reload lands while a scan (with a change to record) is running on the old config
    hub.latency(0.2)
    hub.commit("org/alpha", {"README.md": "# v3"})
    hub.clear_log()
    env.pins = ["org/alpha", "org/beta"]
    env.write()
    wait_for(lambda: hub.requests, "a scan to start")
    d.signal(signal.SIGHUP)
    wait_for(lambda: any(r["msg"].startswith("config reloaded") for r in d.logs()), "the reload", show=d, timeout=10)
    wait_for(lambda: len(slack.messages) == 2, "the alert from the scan the reload overlapped", show=d)
    hub.latency(0)
    wait_for(lambda: env.baselined(2), "baseline of the new pin", show=d)
    hub.commit("org/beta", {"README.md": "# beta v2"})
    wait_for(lambda: len(slack.messages) == 3, "an alert for the new pin", show=d, timeout=10)
    d.wait_scans(1)
    assert [s for k, s, _ in env.findings() if k == "ref_moved"] == ["org/alpha", "org/alpha", "org/beta"]
    assert len(slack.messages) == 3 and "org/beta" in slack.messages[2]["text"]
    assert d.alive()
    assert not [r for r in d.logs() if r["level"] in ("error", "critical") and "reload" not in r["msg"]], \
        d.text()[-3000:]


def test_hub_failures_never_kill_the_daemon_nor_become_findings(env, hub, slack):
    d = start_baselined(env, "org/alpha", "org/beta")
    # every Hub call fails, in the ways a Hub outage looks: 5xx, garbage, resets
    hub.fail(r"/api/models/org/alpha", status=500, times=None)
    hub.fail(r"/api/models/org/beta", kind="garbled", times=None)
    hub.fail(r"/api/models\?author=", status=502, times=None)  # the namespace listing too: read per repo
    d.wait_scans(2)
    hub.clear_faults()
    hub.fail(r"/api/models/org/alpha", status=503, times=None)
    hub.fail(None, kind="reset", times=None)
    d.wait_scans(2)
    statuses = [r["msg"] for r in d.logs() if re.match(r"org/\w+: unknown", r["msg"])]
    assert len(statuses) >= 8, statuses  # the faults were really seen: 2 repos x 4 scans
    assert d.alive() and env.findings() == [] and slack.messages == [], "a transient error is unknown, never gone"
    hub.clear_faults()
    hub.commit("org/beta", {"README.md": "# v2"})
    wait_for(lambda: slack.messages, "the alert after recovery", show=d, timeout=10)
    d.wait_scans(1)
    assert [(k, s) for k, s, _ in env.findings()] == [("ref_moved", "org/beta")]
    assert len(slack.messages) == 1 and "org/beta" in slack.messages[0]["text"]
    assert d.alive()


def test_kill_9_mid_scan_with_slack_down_loses_and_duplicates_nothing(env, hub, slack):
    repos = [f"org/k{i}" for i in range(5)]
    env.concurrency = 1
    d = start_baselined(env, *repos)
    slack.down()
    hub.latency(0.2)  # ~0.6 s per changed repo, one at a time: the scan runs ~3 s
    for repo in repos:
        hub.commit(repo, {"README.md": "# v2"})

    def mid_scan() -> bool:
        # Some changes recorded, others not yet (the scan is running); delivery of the recorded
        # ones failed (Slack is down) so they wait in the outbox; no row is claimed right now.
        n, box = len(env.findings()), env.outbox()
        return 1 <= n < len(repos) and 500 in slack.attempts and not box.get("claimed")

    wait_for(mid_scan, "a scan half done with deliveries pending", show=d, every=0.01)
    d.proc.send_signal(signal.SIGKILL)
    assert d.proc.wait(timeout=10) == -signal.SIGKILL
    before = env.findings()
    assert 1 <= len(before) < len(repos) and slack.messages == []

    hub.latency(0)
    d2 = env.start()
    slack.up()
    wait_for(lambda: len(slack.messages) >= len(repos), "every alert", show=d2)
    d2.wait_scans(2)
    found = env.findings()
    assert sorted(s for _, s, _ in found) == repos, "each change found once, across the crash"
    assert found[:len(before)] == before
    sent = Counter(fingerprint(m) for m in slack.messages)
    assert sent == Counter(fp for _, _, fp in found), "every finding delivered exactly once"
    assert env.outbox() == {"sent": len(repos)}


def test_token_and_webhook_url_never_in_daemon_output(env, hub, slack):
    repo = "hubwatch-bot/private-model"
    hub.add_token(TOKEN)  # the token's user owns the namespace: only the token sees the repo
    env.token = TOKEN
    d = start_baselined(env, repo, private=True)
    assert hub.requests and all(r.authenticated for r in hub.requests), "the token was really sent"
    # the error paths, whose messages name the sink and the Hub request: a refused alert
    # (dead-lettered at once, logged as an error) and Hub 500s
    slack.fail(status=400, times=1, body="invalid_blocks")  # this message refused, not the sink
    hub.fail(r"/refs", status=500, times=2)
    hub.commit(repo, {"README.md": "# v2"})
    wait_for(lambda: "dead-lettered" in d.text(), "the dead letter", show=d)
    hub.commit(repo, {"README.md": "# v3"})
    wait_for(lambda: slack.messages, "the alert", show=d)
    d.signal(signal.SIGHUP)  # a reload re-reads both secrets and re-installs the log redaction
    wait_for(lambda: "config reloaded" in d.text(), "the reload", timeout=10)
    d.signal(signal.SIGTERM)
    assert d.proc.wait(timeout=15) == 0
    text = d.text()
    assert "SlackSink(" in text and "Hub error 500" in text, "the error paths really ran"
    assert TOKEN not in text
    assert slack.url not in text and slack.path not in text and slack.token not in text
    assert slack.token not in json.dumps(slack.messages)


def test_findings_cli_reads_while_the_daemon_writes(env, hub, slack):
    repos = [f"org/r{i}" for i in range(4)]
    d = start_baselined(env, *repos)
    def read(p: subprocess.Popen) -> list[dict]:
        out, err = p.communicate(timeout=WAIT)
        assert p.returncode == 0 and b"locked" not in err, err.decode(errors="replace")
        return [json.loads(line) for line in out.decode().splitlines()]

    seen: list[list[dict]] = []
    for round_ in range(3):
        for repo in repos:
            hub.commit(repo, {"README.md": f"# v{round_ + 2}"})
        # readers start while the daemon scans, records and delivers this round
        readers = [env.cli("findings", "--json") for _ in range(2)]
        wait_for(lambda: len(env.findings()) == (round_ + 1) * len(repos), f"round {round_} findings", show=d)
        seen += [read(p) for p in readers]
    rows = read(env.cli("findings", "--json"))
    by_fp = {r["fingerprint"]: r for r in rows}
    assert sorted(by_fp) == sorted(fp for _, _, fp in env.findings()) and len(rows) == 3 * len(repos)
    assert all(r["kind"] == "ref_moved" for r in rows)
    assert any(0 < len(snapshot) < len(rows) for snapshot in seen), "some reads overlapped the writes"
    for snapshot in seen:  # every read saw committed rows only, each as it finally is
        assert all(by_fp[r["fingerprint"]] == r for r in snapshot)
    assert "database is locked" not in d.text() and d.alive()
