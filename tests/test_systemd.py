"""The systemd side of hubwatch: the unit's sandbox score and directives, the sd_notify client, and
the daemon's READY / WATCHDOG / STOPPING messages seen from a real $NOTIFY_SOCKET.

The unit is measured with the real `systemd-analyze` (Debian package `systemd`; `.ci/run` installs
it). Notifications are received on real AF_UNIX datagram sockets, as systemd would receive them.
Every wait is bounded."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from monitor import sd_notify
from tests.pins_env import PinsEnv

ROOT = Path(__file__).resolve().parent.parent  # the checkout, so `python -m monitor` imports this code
UNIT = ROOT / "systemd" / "hubwatch.service"
MAX_EXPOSURE = 1.5
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install systemd; .ci/run does this)")

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="AF_UNIX sockets")


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""})


def directives(unit: str = "Service") -> list[tuple[str, str]]:
    """(key, value) of one section of the unit, in order, repeated keys kept (comments dropped)."""
    out, section = [], None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == unit:
            key, _, value = line.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def values(key: str) -> list[str]:
    return [v for k, v in directives() if k == key]


# --- the unit ---------------------------------------------------------------------------------------

@needs_analyze
def test_unit_exposure_score_is_at_most_1_5():
    r = analyze("security", "--offline=yes", "--no-pager", str(UNIT))
    m = re.search(r"Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)", r.stdout)
    assert m, f"no overall score in systemd-analyze output (exit {r.returncode}):\n{r.stdout}\n{r.stderr}"
    score = float(m.group(1))
    exposed = "\n".join(line for line in r.stdout.splitlines() if line.lstrip().startswith("✗"))
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}; exposed:\n{exposed}"


def installed_hubwatch() -> Path:
    """The `hubwatch` this test run uses (the venv's console script), for ExecStart=."""
    script = Path(sys.executable).parent / "hubwatch"
    if not script.exists():
        pytest.skip(f"no hubwatch console script beside {sys.executable} (pip install -e . first)")
    return script


@needs_analyze
def test_unit_verifies(tmp_path):
    # verify insists that ExecStart's binary exists: point it at this test install, every other
    # line unchanged.
    copy = tmp_path / "hubwatch.service"
    copy.write_text(UNIT.read_text().replace("/opt/hubwatch/bin/hubwatch", str(installed_hubwatch())))
    r = analyze("verify", "--man=no", str(copy))
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 and re.search(r"Failed to (initialize manager|connect to bus)|not been booted with systemd", out):
        pytest.skip(f"systemd-analyze verify needs a running systemd here: {out.splitlines()[0]}")
    # verify exits 0 on unknown keys and bad values, only warning: any output is a finding.
    assert r.returncode == 0 and out == "", out


@needs_analyze
def test_the_smoke_test_installs_a_unit_of_its_own_that_verifies(tmp_path):
    """contrib/systemd/smoke-test.sh (run where systemd is PID 1) installs the unit under another
    name: nothing of it may still point at the real service's paths (HF_HOME outside its state
    directory is read-only under ProtectSystem=strict)."""
    script = ROOT / "contrib" / "systemd" / "smoke-test.sh"
    r = subprocess.run(["bash", str(script), "--print-unit", str(installed_hubwatch())], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    unit = "\n".join(ln for ln in r.stdout.splitlines() if not ln.lstrip().startswith(("#", "Documentation=")))
    assert "StateDirectory=hubwatch-smoke" in unit and "LoadCredential=hubwatch-smoke:/etc/hubwatch-smoke/" in unit
    assert "HF_HOME=%S/hubwatch-smoke/" in unit and "HUBWATCH_CONFIG=/etc/hubwatch-smoke/config.toml" in unit
    assert not re.search(r"/hubwatch/|Directory=hubwatch(?![-\w])|Credential=hubwatch:|/etc/hubwatch(?![-\w])", unit), unit
    copy = tmp_path / "hubwatch-smoke.service"
    copy.write_text(r.stdout)
    v = analyze("verify", "--man=no", str(copy))
    assert v.returncode == 0 and (v.stdout + v.stderr).strip() == "", v.stdout + v.stderr


def test_unit_stops_when_it_should():
    """No ExecStartPre (RestartPreventExitStatus= does not cover it: a bad config would restart
    for ever); start limits in [Unit] (systemd ignores them in [Service]) that a crash loop does
    reach: burst x RestartSec < interval."""
    unit = dict(directives("Unit"))
    assert values("ExecStartPre") == [] and all(k != "ExecStartPre" for k, _ in directives("Unit"))
    assert "StartLimitIntervalSec" not in dict(directives()) and "StartLimitBurst" not in dict(directives())
    interval, burst = int(unit["StartLimitIntervalSec"]), int(unit["StartLimitBurst"])
    (restart_sec,) = values("RestartSec")
    assert (interval, burst) == (300, 5) and burst * int(restart_sec) < interval
    assert values("Restart") == ["on-failure"] and values("RestartPreventExitStatus") == ["78"]
    assert values("ExecStart") == ["/opt/hubwatch/bin/hubwatch run --log-format json"]


def test_unit_documentation_points_at_docs_the_walkthrough_installs():
    (docs,) = [v for k, v in directives("Unit") if k == "Documentation"]
    walkthrough = (ROOT / "docs" / "deployment.md").read_text()
    for url in docs.split():
        assert url.startswith("file:///usr/share/doc/hubwatch/"), url
        name = url.rsplit("/", 1)[1]
        assert (ROOT / "docs" / name).is_file(), f"{url}: no docs/{name}"
    assert "/usr/share/doc/hubwatch" in walkthrough and "systemctl reset-failed hubwatch" in walkthrough


@pytest.mark.parametrize("key, expected", [
    ("Type", "notify"),
    ("NotifyAccess", "main"),
    ("RestartPreventExitStatus", "78"),
    ("DynamicUser", "yes"),
    ("ProtectSystem", "strict"),
    ("NoNewPrivileges", "yes"),
    ("CapabilityBoundingSet", ""),  # empty: no capabilities at all
    ("MemoryDenyWriteExecute", "yes"),
])
def test_unit_directive(key, expected):
    assert values(key) == [expected], f"{key}= in {UNIT.name}"


def test_unit_watchdog_credentials_filters():
    (watchdog,) = values("WatchdogSec")
    assert watchdog and watchdog not in ("0", "infinity")
    assert "@system-service" in values("SystemCallFilter")
    (families,) = values("RestrictAddressFamilies")
    assert set(families.split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    # one directory: every credential the README and config.example.toml name, none required
    assert values("LoadCredential") == ["hubwatch:/etc/hubwatch/credentials"]
    assert values("LimitNOFILE") == ["1024"] and values("TasksMax") == ["512"]


def documented_credentials() -> dict[str, str]:
    """config key -> value, from docs/deployment.md's table of secrets."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    return dict(re.findall(r"^\| `([a-z_]+\.[a-z_]+_file)` \| `([^`]+)` \|$", text, re.M))


def test_every_credential_the_docs_name_is_one_the_unit_provides():
    """docs/deployment.md and config.example.toml name each secret by its credential name (a path
    relative to $CREDENTIALS_DIRECTORY); the unit's directory credential provides hubwatch_FILE for
    every file, so each name must be hubwatch_* and every secret key of the config documented."""
    table = documented_credentials()
    example = dict(re.findall(r'^# ([a-z_]+_file) = "([^"]+)"', (ROOT / "config.example.toml").read_text(), re.M))
    named = set(table.values()) | set(example.values())
    assert named, "the docs name no credential"
    assert set(example.values()) <= set(table.values()), example
    (spec,) = values("LoadCredential")
    prefix = spec.partition(":")[0] + "_"
    assert all(n.startswith(prefix) and "/" not in n for n in named), named
    assert {n[len(prefix):] for n in named} >= {"hf_token", "slack_webhook_url", "slack_signing_secret",
                                                 "hub_webhook_secret", "http_token"}
    assert values("StateDirectory") == ["hubwatch"]


@pytest.mark.parametrize("unit", ["hubwatch.service", "run-u123.service"])
def test_the_documented_secrets_work_in_the_service_and_in_the_admin_command(tmp_path, unit):
    """systemd gives each unit its own $CREDENTIALS_DIRECTORY (/run/credentials/UNIT): the service
    and a `systemd-run` admin command see the same files in different folders. A config written as
    docs/deployment.md says must pass check-config in both (an absolute
    /run/credentials/hubwatch.service/... path would fail in the second)."""
    table = documented_credentials()
    assert len(table) == 6, table
    creds = tmp_path / "run" / "credentials" / unit
    creds.mkdir(parents=True)
    sections: dict[str, list[str]] = {}
    for key, value in table.items():
        section, name = key.split(".")
        sections.setdefault(section, []).append(f'{name} = "{value}"')
        secret = creds / Path(value).name
        secret.write_text("https://hooks.example/x" if "url" in value else "s3cret-value-0123456789")
        secret.chmod(0o400)
    cfg = tmp_path / "etc" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())
                   + '[state]\npath = "state.db"\n[[pin]]\nrepo = "org/m"\ntrack = "main"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")}
    env.update(CREDENTIALS_DIRECTORY=str(creds), STATE_DIRECTORY=str(tmp_path / "state"), INVOCATION_ID="x")
    r = subprocess.run([sys.executable, "-m", "monitor", "check-config", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "token: set" in r.stdout and f"state: {tmp_path / 'state' / 'state.db'}" in r.stdout, r.stdout


# --- sd_notify --------------------------------------------------------------------------------------

class Listener:
    """What systemd is, for sd_notify: a datagram socket that receives one message per call."""

    def __init__(self, address: str | bytes):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def recv(self, timeout: float = 5.0) -> list[str] | None:
        """The next message's lines, or None when nothing arrives within `timeout` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sock_dir():
    # Not tmp_path: an AF_UNIX path must fit in 108 bytes, and pytest's tmp paths can be long.
    d = tempfile.mkdtemp(prefix="hw-notify-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def listener(sock_dir, monkeypatch):
    path = sock_dir / "notify.sock"
    lst = Listener(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield lst
    lst.close()


def test_notify_path_socket(listener):
    assert sd_notify.ready("running: 3 pin(s)")
    assert listener.recv() == ["READY=1", "STATUS=running: 3 pin(s)"]
    assert sd_notify.watchdog()
    assert listener.recv() == ["WATCHDOG=1"]
    assert sd_notify.stopping()
    assert listener.recv()[0] == "STOPPING=1"
    assert sd_notify.notify("STATUS=a", "EXTEND_TIMEOUT_USEC=1")
    assert listener.recv() == ["STATUS=a", "EXTEND_TIMEOUT_USEC=1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_notify_abstract_socket(monkeypatch):
    name = f"hubwatch-test-{uuid.uuid4().hex}"
    lst = Listener(b"\0" + name.encode())
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify.ready() and lst.recv() == ["READY=1", "STATUS=running"]
        assert sd_notify.watchdog() and lst.recv() == ["WATCHDOG=1"]
        assert sd_notify.stopping() and lst.recv()[0] == "STOPPING=1"
    finally:
        lst.close()


def test_status_cannot_inject_another_assignment(listener):
    sd_notify.ready("repo\nWATCHDOG=1")
    assert listener.recv() == ["READY=1", "STATUS=repo WATCHDOG=1"]


def test_noop_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify.ready() is False
    assert sd_notify.watchdog() is False
    assert sd_notify.stopping() is False


def test_never_raises_when_the_socket_is_gone(sock_dir, monkeypatch, caplog):
    caplog.set_level("DEBUG", logger="hubwatch.sd_notify")
    for target in (str(sock_dir / "absent.sock"), "@hubwatch-test-nobody-" + uuid.uuid4().hex, str(sock_dir)):
        monkeypatch.setenv("NOTIFY_SOCKET", target)
        assert sd_notify.watchdog() is False
    assert len([r for r in caplog.records if r.levelname == "DEBUG"]) == 3


@pytest.mark.parametrize("usec, pid, expected", [
    ("2000000", None, 2.0),
    ("60000000", "self", 60.0),
    ("2000000", "other", None),   # the watchdog is another process's (we inherited its environment)
    ("0", None, None),
    ("soon", None, None),
    (None, None, None),
    ("2000000", "not-a-pid", None),
])
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    for key, value in (("WATCHDOG_USEC", usec),
                       ("WATCHDOG_PID", {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid))):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert sd_notify.watchdog_interval() == expected


# --- the daemon, as systemd sees it -----------------------------------------------------------------

@pytest.mark.slow
def test_daemon_ready_watchdog_stopping(hub, tmp_path, sock_dir):
    env = PinsEnv(tmp_path, hub, slack=None)
    config = env.write()
    path = sock_dir / "notify.sock"
    lst = Listener(str(path))
    child_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("HF_", "HUBWATCH_", "PYTHON", "NOTIFY_", "WATCHDOG_"))}
    child_env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(tmp_path / "hf-home"),
                     PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
                     NOTIFY_SOCKET=str(path), WATCHDOG_USEC="2000000")  # 2 s: heartbeat every 1 s
    out = tmp_path / "daemon.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config), "-v", "--log-format", "json"],
                                cwd=tmp_path, env=child_env, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)

    def output() -> str:
        return f"\n--- daemon output (exit {proc.poll()}):\n{out.read_text(errors='replace')[-4000:]}"

    def messages(until, timeout: float) -> list[list[str]]:
        """Messages received until `until(received)` holds; fails after `timeout` seconds."""
        got, deadline = [], time.monotonic() + timeout
        while not until(got):
            left = deadline - time.monotonic()
            assert left > 0 and (proc.poll() is None or got), f"after {timeout}s: {got}{output()}"
            msg = lst.recv(timeout=min(left, 0.5))
            if msg is not None:
                got.append(msg)
        return got

    try:
        # Start-up imports huggingface_hub and numpy: on a busy 2-core CI machine that can take a while.
        first = messages(lambda got: got, timeout=60)
        assert first[0][0] == "READY=1", f"the first message must be READY=1, not {first}"
        # READY=1 and the first WATCHDOG=1 come from the same heartbeat; the next one within 1 s
        # (half of WATCHDOG_USEC), not the default 5 s.
        pings = messages(lambda got: sum(m == ["WATCHDOG=1"] for m in got) >= 2, timeout=3.5)
        assert not any("READY=1" in m for m in pings), "READY=1 is sent once"
        proc.send_signal(signal.SIGTERM)
        messages(lambda got: any(m[0] == "STOPPING=1" for m in got), timeout=10)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit 30 s after SIGTERM{output()}") from None
        assert code == 0, output()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        lst.close()
