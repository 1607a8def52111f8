"""`hubwatch run` checks the config and the state database before starting (issue 19 point 3, issue
18 point 4): exit 78 for what a restart cannot fix, 75 for what may pass, one line naming the
config file, `state.path` and the absolute path. Run as real subprocesses, as systemd runs them.
Also: a relative state.path under $STATE_DIRECTORY, --new-state, read-only commands never create
the database, and a database owned by another uid is refused."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from monitor.store import Store
from monitor.store.preflight import classify_os, classify_sqlite
from tests.pins_env import PinsEnv

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUBWATCH_", "STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "INVOCATION_ID",
                                "JOURNAL_STREAM", "NOTIFY_SOCKET"))}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def _drop_dac() -> None:  # pragma: no cover - runs in the child, before exec
    """Root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file modes apply to it as to the
    service's user (dropped from the bounding set, so the exec'd interpreter never regains them)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(97)


def hubwatch(*args: str, modes_apply: bool = False, env: dict | None = None, timeout: float = 60):
    """`python -m monitor ARGS` in a child process; `modes_apply`: as root, without the
    capabilities that let root ignore file modes (skips when they cannot be dropped)."""
    limited = modes_apply and os.geteuid() == 0
    r = subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                       timeout=timeout, env=env or child_env(), stdin=subprocess.DEVNULL,
                       preexec_fn=_drop_dac if limited else None)
    if limited and r.returncode == 97 and not r.stderr:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here (no CAP_SETPCAP): root ignores file modes")
    return r


@pytest.fixture
def place():
    """A short, world-traversable folder of our own (messages name absolute paths in it)."""
    d = Path(tempfile.mkdtemp(prefix="hw-state-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def config(folder: Path, state: str = "state.db", extra: str = "") -> Path:
    path = folder / "config.toml"
    path.write_text(f'[hub]\nendpoint = "http://127.0.0.1:9"\n[state]\npath = "{state}"\n'
                    f'[[pin]]\nrepo = "org/m"\ntrack = "main"\n{extra}')
    path.chmod(0o644)
    return path


def hubwatch_db(path: Path) -> None:
    Store.open(path).close()


def refused(r, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


# --- 78: a restart cannot fix it ---------------------------------------------------------------

def test_run_config_error_is_78(place):
    cfg = config(place, extra="trakc = 1\n")
    refused(hubwatch("run", "-c", str(cfg)), 78, str(cfg), "trakc")


@pytest.mark.parametrize("case", ["empty", "foreign", "corrupt", "garbage", "newer", "no_schema_row"])
def test_run_refuses_a_database_it_must_not_use_with_78(place, case):
    db = place / "state.db"
    if case == "empty":
        db.write_bytes(b"")
        words = ["empty file", "--new-state"]
    elif case == "foreign":
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE invoices (id INTEGER)")
        conn.commit()
        conn.close()
        words = ["another program's SQLite database", "invoices"]
    elif case == "no_schema_row":
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA user_version = 1")  # a valid SQLite file, no table at all
        conn.commit()
        conn.close()
        words = ["without hubwatch's schema row"]
    elif case == "garbage":
        db.write_bytes(b"not a database at all" * 100)
        words = ["not an SQLite database"]
    elif case == "corrupt":
        hubwatch_db(db)
        data = bytearray(db.read_bytes())
        data[100:4096] = b"\xff" * (4096 - 100)  # page 1's b-tree header and cells: the schema
        db.write_bytes(bytes(data))
        words = ["corrupt"]
    else:
        hubwatch_db(db)
        conn = sqlite3.connect(db)
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('hubwatch', 'm999_from_the_future', '2030-01-01')")
        conn.commit()
        conn.close()
        words = ["newer hubwatch", "m999_from_the_future"]
    before = db.read_bytes()
    cfg = config(place)
    refused(hubwatch("run", "-c", str(cfg)), 78, f"{cfg}: state.path: {db}:", *words)
    assert db.read_bytes() == before, "a refused database is left exactly as it was"


def test_run_refuses_a_missing_folder_and_a_relative_path_names_the_absolute_one(place):
    cfg = config(place, state="nowhere/state.db")
    refused(hubwatch("run", "-c", str(cfg)), 78, "state.path", str(place / "nowhere" / "state.db"), "does not exist")
    assert not (place / "nowhere").exists()


def test_run_refuses_a_read_only_folder(place):
    folder = place / "ro"
    folder.mkdir(mode=0o555)
    folder.chmod(0o555)
    cfg = config(place, state="ro/state.db")
    refused(hubwatch("run", "-c", str(cfg), modes_apply=True), 78, str(folder / "state.db"), "read-only")


def test_run_refuses_an_inaccessible_database(place):
    db = place / "state.db"
    hubwatch_db(db)
    db.chmod(0)
    refused(hubwatch("run", "-c", str(config(place)), modes_apply=True), 78, str(db), os.strerror(errno.EACCES))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file another uid owns")
def test_every_command_refuses_a_database_owned_by_another_uid(place):
    db = place / "state.db"
    hubwatch_db(db)
    os.chown(db, NOBODY, NOBODY)
    cfg = config(place)
    for cmd in (["run"], ["once"], ["status"], ["findings"]):
        refused(hubwatch(*cmd, "-c", str(cfg)), 78, str(db), f"owned by uid {NOBODY}", "systemd-run")
    assert os.stat(db).st_uid == NOBODY and not Path(str(db) + "-wal").exists()


# --- 75: it may pass ------------------------------------------------------------------------------

def test_run_on_a_locked_database_is_75(place):
    db = place / "state.db"
    hubwatch_db(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
    try:
        refused(hubwatch("run", "-c", str(config(place))), 75, str(db), "locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("err, permanent", [
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (OSError(errno.EIO, "Input/output error"), False),
    (OSError(errno.EACCES, "Permission denied"), True),
    (OSError(errno.EROFS, "Read-only file system"), True),
])
def test_os_errors_are_classified(err, permanent):
    assert classify_os(err)[0] is permanent


@pytest.mark.parametrize("message, permanent", [
    ("database or disk is full", False),
    ("disk I/O error", False),
    ("database is locked", False),
    ("file is not a database", True),
    ("database disk image is malformed", True),
    ("attempt to write a readonly database", True),
])
def test_sqlite_errors_are_classified(message, permanent):
    assert classify_sqlite(sqlite3.OperationalError(message))[0] is permanent


def test_cli_maps_a_full_disk_to_75(place, monkeypatch, capsys):
    """ENOSPC met while opening (the preflight passed): 75, the path named."""
    from monitor.cli import main
    from monitor.store import preflight

    def full(*a, **kw):
        raise preflight._fail(config(place), place / "state.db", *reversed(classify_os(
            OSError(errno.ENOSPC, "No space left on device"))))

    monkeypatch.setattr(preflight, "check", full)
    assert main(["once", "-c", str(config(place))]) == 75
    assert "No space left on device" in capsys.readouterr().err


# --- creating, --new-state, read-only commands -------------------------------------------------

def test_a_missing_database_is_created_once_and_said_once(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    hub.add_repo("org/m", files={"a": "b"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    first, second = env.run("once"), env.run("once")
    assert first.code == second.code == 0
    assert f"creating a new state database at {env.state}" in first.err
    assert "creating a new state database" not in second.err


def test_new_state_accepts_an_empty_file(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    hub.add_repo("org/m", files={"a": "b"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    env.write()
    env.state.write_bytes(b"")
    r = env.run("once")
    assert r.code == 78 and "--new-state" in r.err and env.state.stat().st_size == 0
    assert env.run("once", "--new-state").code == 0
    assert env.state.stat().st_size > 0 and env.run("once").code == 0


def test_read_only_commands_never_create_the_database(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    env.pins = [{"repo": "org/m", "track": "main"}]
    for cmd in ("status", "findings"):
        r = env.run(cmd)
        assert r.code == 0 and "no state database" in r.err, r
    assert not env.state.exists() and not list(tmp_path.glob("state.db*"))


def test_relative_state_path_lives_in_state_directory_and_check_config_prints_it(place):
    state_dir = place / "var-lib-hubwatch"
    state_dir.mkdir()
    cfg = config(place, state="state.db")
    r = hubwatch("check-config", "-c", str(cfg), env=child_env(STATE_DIRECTORY=str(state_dir)))
    assert r.returncode == 0 and f"state: {state_dir / 'state.db'}," in r.stdout, r
    r = hubwatch("check-config", "-c", str(cfg))
    assert r.returncode == 0 and f"state: {place / 'state.db'}," in r.stdout, r  # else beside the config


def test_secret_paths_may_be_relative_to_the_credentials_directory(place):
    from monitor import config as config_mod

    creds = place / "creds"
    creds.mkdir()
    (creds / "hubwatch_hf_token").write_text("hf_FromTheCredentialsDirectory")
    cfg = config(place, extra="")
    cfg.write_text(cfg.read_text().replace("[state]", '\ntoken_file = "hubwatch_hf_token"\n[state]', 1))
    s = config_mod.load(cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert s.hub.token.reveal() == "hf_FromTheCredentialsDirectory"
    with pytest.raises(Exception, match="token_file"):  # without it: beside the config, absent there
        config_mod.load(cfg, env={})


def test_status_opens_the_database_read_only_while_a_writer_holds_it(hub, slack, tmp_path):
    env = PinsEnv(tmp_path, hub, slack)
    hub.add_repo("org/m", files={"a": "b"})
    env.pins = [{"repo": "org/m", "track": "main"}]
    assert env.run("once").code == 0
    holder = sqlite3.connect(env.state, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = env.run("status", "--json")
        assert r.code == 0 and '"state": "ok"' in r.out, r
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_database_another_process_is_creating_right_now_is_waited_for_not_refused(tmp_path):
    """Two commands started at once on a fresh install (the daemon and an admin's `once`): the
    second finds the file the first just opened, 0 bytes or without tables for a few ms. That is
    waited for; an empty file left from before (old mtime) is still refused at once."""
    import os
    import threading
    import time

    from monitor.errors import StateError
    from monitor.store import preflight

    db = tmp_path / "state.db"
    db.write_bytes(b"")  # what sqlite3.connect leaves before the first write
    creator = threading.Timer(0.3, lambda: (db.unlink(), hubwatch_db(db)))
    creator.start()
    try:
        assert preflight.check(db, tmp_path / "config.toml", write=True).exists
    finally:
        creator.join()
    stale = tmp_path / "stale.db"
    stale.write_bytes(b"")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    with pytest.raises(StateError, match="empty file"):
        preflight.check(stale, tmp_path / "config.toml", write=True)
