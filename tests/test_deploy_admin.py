"""The admin meets the service, warnings before surprises, an operable daemon (issue 19 points 3-6):
the documented `systemd-run` admin command (its properties match the unit; the environment it
gives the CLI — $STATE_DIRECTORY, $CREDENTIALS_DIRECTORY, HUBWATCH_ACTOR — reaches the service's
database and credentials), check-config warnings, `findings --kind`, `once` under PR_SET_MDWE,
log levels, and status' look-alike line."""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor import config as config_mod
from monitor.config_warnings import warnings
from monitor.detect.findings import KINDS
from tests.pins_env import PinsEnv
from tests.test_state_preflight import child_env, config, place  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "hubwatch.service"
DEPLOYMENT = ROOT / "docs" / "deployment.md"


def documented_admin_command() -> list[str]:
    (line,) = [ln for ln in DEPLOYMENT.read_text().splitlines() if ln.startswith("alias hubwatch-admin=")]
    return shlex.split(line.split("=", 1)[1].strip("'"))


def unit_values(key: str) -> list[str]:
    return [ln.split("=", 1)[1] for ln in UNIT.read_text().splitlines() if ln.startswith(key + "=")]


# --- the admin meets the service ------------------------------------------------------------------

def test_the_documented_admin_command_runs_as_the_services_user_with_its_state_and_credentials():
    argv = documented_admin_command()
    assert argv[:3] == ["sudo", "systemd-run", "--pty"] and {"--wait", "--collect"} <= set(argv)
    props = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-p")
    # the unit's dynamic user is named after the unit: the same name, the same uid, the same files
    assert props["DynamicUser"] == "yes" and props["User"] == UNIT.stem
    assert unit_values("DynamicUser") == ["yes"] and unit_values("User") == []  # so it is named after the unit
    assert [props["StateDirectory"]] == unit_values("StateDirectory")
    # the first command may run before the service ever did: it creates the folder as the unit would
    assert [props["StateDirectoryMode"]] == unit_values("StateDirectoryMode") and [props["UMask"]] == unit_values("UMask")
    assert [props["LoadCredential"]] == unit_values("LoadCredential")
    assert argv[argv.index("-E") + 1].startswith("HUBWATCH_ACTOR=")
    assert argv[-1] == "/opt/hubwatch/bin/hubwatch" == unit_values("ExecStart")[0].split()[0]


def test_the_cli_under_systemd_run_uses_the_services_database_and_credentials(hub, slack, place):  # noqa: F811
    """What systemd-run gives the CLI, without systemd: STATE_DIRECTORY, CREDENTIALS_DIRECTORY,
    HUBWATCH_ACTOR. A config with relative paths (as docs/deployment.md advises) finds both."""
    state_dir, creds = place / "var-lib-hubwatch", place / "credentials"
    state_dir.mkdir()
    creds.mkdir()
    (creds / "hubwatch_slack_webhook_url").write_text(slack.url)
    hub.add_repo("org/m", files={"a": "b"})
    cfg = place / "config.toml"
    cfg.write_text(f'[hub]\nendpoint = "{hub.url}"\nretries = 0\n[state]\npath = "state.db"\n'
                   '[slack]\nwebhook_url_file = "hubwatch_slack_webhook_url"\n[alerts]\nmin_interval = 0\n'
                   '[[pin]]\nrepo = "org/m"\ntrack = "main"\n')
    env = child_env(STATE_DIRECTORY=str(state_dir), CREDENTIALS_DIRECTORY=str(creds), HUBWATCH_ACTOR="alice",
                    HF_HOME=str(place / "hf"), HUBWATCH_CONFIG=str(cfg))

    def hubwatch(*args):
        return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                              timeout=120, env=env, stdin=subprocess.DEVNULL)

    r = hubwatch("check-config")
    assert r.returncode == 0 and f"state: {state_dir / 'state.db'}," in r.stdout and "sinks: slack" in r.stdout
    r = hubwatch("status")
    assert r.returncode == 0 and not (state_dir / "state.db").exists(), "status never creates the database"
    r = hubwatch("once")
    assert r.returncode == 0, r.stderr
    assert "Hub quota: this run drew on this host's address (no token)" in r.stderr
    assert (state_dir / "state.db").exists() and not (place / "state.db").exists()
    hub.commit("org/m", {"a": "c"})
    assert hubwatch("once").returncode == 0 and len(slack.messages) == 1
    assert hubwatch("test-sink").returncode == 0 and len(slack.messages) == 2


def test_once_names_the_tokens_quota(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    env.token = "hf_QuotaTokenForOnce1"
    hub.add_token(env.token)
    hub.add_repo("org/m", files={"a": "b"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    r = env.run("once")
    assert r.code == 0
    (line,) = [ln for ln in r.err.splitlines() if "Hub quota" in ln]
    assert "the token from hub.token_file, the same quota a hubwatch daemon with this config uses" in line
    assert re.search(r"\d+ requests made, \d+ of 1000 left in this 5-minute window", line), line
    assert env.token not in r.err


# --- warnings before surprises -----------------------------------------------------------------------

def write(tmp_path: Path, body: str, mode: int = 0o600) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(textwrap.dedent(body) + '[[pin]]\nrepo = "org/m"\ntrack = "main"\n')
    p.chmod(mode)
    return p


def test_check_config_warns_one_line_each_and_exits_0(tmp_path):
    cfg = write(tmp_path, """
        [http]
        listen = "0.0.0.0:8787"
        [slack]
        webhook_url = "https://hooks.slack.com/services/T0/B0/XXXXsecret"
        [pins]
        every = 600
    """, mode=0o644)
    s = config_mod.load(cfg, env={})
    lines = warnings(s, env={"INVOCATION_ID": "abc"})
    assert len(lines) == 3, lines
    assert any("http.listen" in ln and "http.token_file" in ln for ln in lines)
    assert any("slack.webhook_url" in ln and "0644" in ln and "webhook_url_file" in ln for ln in lines)
    assert any("pins.every" in ln and "seconds" in ln for ln in lines)
    assert all(str(cfg) in ln and "XXXXsecret" not in ln for ln in lines)
    # the CLI: exit 0, the warnings on stderr, one line each
    r = subprocess.run([sys.executable, "-m", "monitor", "check-config", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=60, env=child_env())
    assert r.returncode == 0 and len(r.stderr.strip().splitlines()) == 3 and "XXXXsecret" not in r.stderr + r.stdout


def test_no_warning_for_a_quiet_config(tmp_path):
    cfg = write(tmp_path, """
        [http]
        listen = "127.0.0.1:8787"
        [slack]
        webhook_url = "https://hooks.slack.com/services/T0/B0/XXXXsecret"
        [pins]
        every = "10m"
        jitter = 0
    """)
    assert warnings(config_mod.load(cfg, env={}), env={"INVOCATION_ID": "x"}) == []


@pytest.mark.parametrize("environ, warned", [({"INVOCATION_ID": "1"}, True), ({"JOURNAL_STREAM": "8:1"}, True),
                                             ({}, False)])
def test_stdout_as_the_only_sink_under_systemd(tmp_path, environ, warned):
    s = config_mod.load(write(tmp_path, ""), env={})
    lines = warnings(s, env=environ)
    assert bool(lines) is warned and all("stdout" in ln for ln in lines)


def test_findings_kind_refuses_an_unknown_kind(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    env.pins = [{"repo": "org/m", "track": "main"}]
    hub.add_repo("org/m", files={"a": "b"})
    assert env.run("once").code == 0
    r = env.run("findings", "--kind", "tag_move")
    assert r.code == 2 and "no finding kind 'tag_move'" in r.err and "tag_moved" in r.err and r.out == ""
    assert env.run("findings", "--kind", "tag_moved").code == 0


def test_every_kind_is_documented_and_every_documented_kind_is_known():
    table = (ROOT / "docs" / "detection.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == set(KINDS)


# --- MemoryDenyWriteExecute: once under PR_SET_MDWE --------------------------------------------------

MDWE_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("MDWE-REFUSED", os.strerror(ctypes.get_errno()), file=sys.stderr)
    sys.exit(99)
assert libc.prctl(66, 0, 0, 0, 0) & 1, "PR_GET_MDWE"
import numpy, rapidfuzz  # loaded before the run, as the daemon loads them
from rapidfuzz.distance import Levenshtein
assert int(numpy.arange(10).sum()) == 45 and Levenshtein.distance("EleutherAI", "EleuterAI") == 1
from monitor.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_once_runs_under_memory_deny_write_execute(hub, slack, tmp_path):
    """What systemd's MemoryDenyWriteExecute=yes enforces, applied with prctl(PR_SET_MDWE) in the
    child: no mapping may become writable and executable. numpy, rapidfuzz, huggingface_hub,
    SQLite and the whole `once` must get by."""
    env = PinsEnv(tmp_path, hub, slack)
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 5\n'
    hub.add_repo("org/m", files={"a": "b"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    cfg = env.write()
    hub.commit("org/m", {"a": "c"})
    r = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, "once", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=180, env=child_env(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=hub.url))
    if r.returncode == 99 and "MDWE-REFUSED" in r.stderr:
        pytest.skip(f"the kernel refuses PR_SET_MDWE (needs Linux >= 6.3): {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "checked 1 pins" in r.stderr and "look-alike discovery:" in r.stderr


# --- operable: log levels ---------------------------------------------------------------------------

def test_heartbeat_is_debug_other_jobs_info_and_lifecycle_shown_by_default(hub, slack, tmp_path, caplog):
    from monitor import logs
    from monitor.daemon import Daemon

    env = PinsEnv(tmp_path, hub, slack)
    env.pins = [{"repo": "org/m", "track": "main"}]
    hub.add_repo("org/m", files={"a": "b"})
    d = Daemon(env.settings(), env.config)
    try:
        caplog.set_level(logging.DEBUG)
        d._guard("heartbeat", d.job_heartbeat)()
        d._guard("deliver", d.job_deliver)()
        done = {r.getMessage(): r.levelno for r in caplog.records if r.getMessage().endswith(" done")}
        assert done == {"job heartbeat done": logging.DEBUG, "job deliver done": logging.INFO}
    finally:
        d.rt.close()
    logs.configure(0)
    try:
        assert logging.getLogger("hubwatch.lifecycle").isEnabledFor(logging.INFO)
        assert not logging.getLogger("hubwatch.daemon").isEnabledFor(logging.INFO)
    finally:
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers if not getattr(h, "_hubwatch", False)]


def test_an_unreachable_hub_warns_once_per_episode(hub, slack, tmp_path, caplog):
    from monitor.daemon import Daemon
    from monitor.runtime import Runtime

    env = PinsEnv(tmp_path, hub, slack)
    env.pins = [{"repo": "org/m", "track": "main"}]
    hub.add_repo("org/m", files={"a": "b"})
    good = env.settings()
    bad = config_mod.load(env.config, env={})
    bad = type(bad)(**{**bad.__dict__, "hub": type(bad.hub)(**{**bad.hub.__dict__, "endpoint": "http://127.0.0.1:9"})})
    caplog.set_level(logging.INFO)
    d = Daemon(bad, env.config)
    try:
        for _ in range(3):
            d.job_scan_pins()
        warned = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
        assert len(warned) == 1 and warned[0].levelno == logging.WARNING
        from monitor.hub import session

        session.STATS.reset()  # the process-wide "no connection: fail fast for 30 s" memory
        old, d.rt = d.rt, Runtime.build(good)
        old.close()
        d.job_scan_pins()
        assert [r.levelno for r in caplog.records if "answers again" in r.getMessage()] == [logging.INFO]
        d.rt.close()
        session.STATS.reset()
        d.rt = Runtime.build(bad)
        d.job_scan_pins()
        assert len([r for r in caplog.records if "cannot be reached" in r.getMessage()]) == 2, "a new episode"
    finally:
        d.rt.close()


def test_finding_log_lines_carry_the_severity(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    env.pins = [{"repo": "org/m", "track": "main"}]
    hub.add_repo("org/m", files={"a": "b"})
    assert env.run("once").code == 0
    hub.commit("org/m", {"evil.py": "x"})
    r = env.run("once", "-v")
    assert re.search(r"WARNING hubwatch\.pins: finding high risky_change org/m [0-9a-f]{32}", r.err), r.err


def test_status_lookalike_line_counts_open_lookalike_findings(hub, slack, tmp_path):
    import time

    env = PinsEnv(tmp_path, hub, slack)
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 0\nclone_watch = 0\n'
    hub.add_org("EleutherAI", verified=True, followers=5000)
    hub.add_org("EleuterAI", created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
    hub.add_repo("EleuterAI/gpt-j-6b", files={"model.bin": b"x"})
    env.pins = [{"repo": "EleutherAI/gpt-j-6b", "track": "main"}]
    hub.add_repo("EleutherAI/gpt-j-6b", files={"a": "b"})
    assert env.run("once").code == 0
    found = env.findings("lookalike")
    assert found, "the feed or search met the look-alike"
    (line,) = [x for x in env.run("status").out.splitlines() if x.startswith("look-alike discovery: ")]
    assert f"{len(found)} open look-alike finding(s)" in line and " 0 exist" not in line, line
