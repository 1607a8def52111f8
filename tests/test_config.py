"""Config contract: every bad value is one ConfigError line naming the file and key."""

from __future__ import annotations

import json

import pytest

from monitor import config
from monitor.errors import ConfigError

SHA = "a" * 40


def write(tmp_path, text: str):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


GOOD = f"""
[hub]
endpoint = "http://127.0.0.1:9"
[state]
path = "state.db"
[pins]
every = "10m"
[[pin]]
repo = "EleutherAI/gpt-j-6b"
revision = "{SHA}"
[[pin]]
repo = "openai-community/gpt2"
track = "main"
[[pin]]
repo = "HuggingFaceFW/fineweb"
type = "dataset"
track = "v1.0"
"""


def test_good_config_parses(tmp_path):
    s = config.load(write(tmp_path, GOOD), env={})
    assert s.hub.endpoint == "http://127.0.0.1:9"
    assert s.state_path == (tmp_path / "state.db").resolve()
    assert s.pins.every == 600
    assert [(p.repo, p.type, p.revision, p.track) for p in s.pin] == [
        ("EleutherAI/gpt-j-6b", "model", SHA, None),
        ("openai-community/gpt2", "model", None, "main"),
        ("HuggingFaceFW/fineweb", "dataset", None, "v1.0"),
    ]
    assert s.slack_webhook_url is None and s.webhook_url is None


def test_example_config_is_valid():
    from pathlib import Path

    s = config.load(Path(__file__).parent.parent / "config.example.toml", env={})
    assert len(s.pin) >= 3


@pytest.mark.parametrize("fragment, key, words", [
    ('[[pin]]\nrepo = "a/b"\nrevision = "abc123"', "pin[0].revision", "40-hex"),
    ('[[pin]]\nrepo = "not a repo"\ntrack = "main"', "pin[0].repo", "bad repo id"),
    ('[[pin]]\nrepo = "a/b/c"\ntrack = "main"', "pin[0].repo", "bad repo id"),
    ('[[pin]]\nrepo = "-a/b"\ntrack = "main"', "pin[0].repo", "bad repo id"),
    ('[[pin]]\nrepo = "a/b"', "pin[0].revision", "give revision"),
    ('[[pin]]\nrepo = "a/b"\ntrack = "main"\ncolour = 1', "pin[0].colour", "unknown key"),
    ('[[pin]]\nrepo = "a/b"\ntrack = "main"\ntype = "kernel"', "pin[0].type", "must be one of"),
    ('[[pin]]\nrepo = "a/b"\ntrack = "a..b"', "pin[0].track", "branch or tag"),
    ('[[pin]]\nrepo = "a/b"\ntrack = "main"\n[[pin]]\nrepo = "A/B"\ntrack = "main"', "pin[1].repo", "duplicate"),
    ('[pins]\nevery = "10x"', "pins.every", "bad duration"),
    ('[pins]\nevery = "-5m"', "pins.every", "bad duration"),
    ('[pins]\nevry = "10m"', "pins.evry", "unknown key"),
    ('[bogus]\nx = 1', "bogus", "unknown key"),
    ('[hub]\ntoken_file = "missing-token"', "hub.token_file", "cannot read"),
    ('[hub]\nendpoint = "ftp://x"', "hub.endpoint", "https:// URL"),
    ('[hub]\nconcurrency = 0', "hub.concurrency", "whole number"),
    ('[slack]\nwebhook_url_file = "nope.txt"', "slack.webhook_url_file", "cannot read"),
    ('[slack]\nwebhook_url = "not a url"', "slack.webhook_url", "spaces"),
    ('[slack]\nhook = "x"', "slack.hook", "unknown key"),
    ('pin = 3', "pin", "array of tables"),
])
def test_bad_values_name_the_key(tmp_path, fragment, key, words):
    path = write(tmp_path, fragment)
    with pytest.raises(ConfigError) as e:
        config.load(path, env={})
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path.resolve()) in msg
    assert f": {key}: " in msg
    assert words in msg


def test_missing_file_and_bad_toml(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(tmp_path / "nope.toml", env={})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:  # `-c nope.toml`: the message names the absolute path
        config.load("nope.toml", env={})
    assert str(e.value).startswith(f"{tmp_path / 'nope.toml'}: ") and "cannot read config" in str(e.value)
    with pytest.raises(ConfigError, match="invalid TOML"):
        config.load(write(tmp_path, "[pins\nevery="), env={})


def test_durations():
    assert config.parse_duration("30s") == 30
    assert config.parse_duration("10m") == 600
    assert config.parse_duration("1h") == 3600
    assert config.parse_duration("1d") == 86400
    for bad in ("", "10", "1w", "m", "0s", True, None):
        with pytest.raises(ValueError):
            config.parse_duration(bad)


def test_secrets_from_files_and_env_never_in_repr(tmp_path):
    (tmp_path / "tok").write_text("hf_supersecrettoken\n")
    (tmp_path / "hook").write_text("https://hooks.slack.com/services/T/B/verysecret\n")
    s = config.load(write(tmp_path, '[hub]\ntoken_file = "tok"\n[slack]\nwebhook_url_file = "hook"\n'), env={})
    assert s.hub.token.reveal() == "hf_supersecrettoken"
    assert s.slack_webhook_url.reveal().endswith("verysecret")
    text = repr(s) + str(s)
    assert "supersecret" not in text and "verysecret" not in text
    s2 = config.load(write(tmp_path, ""), env={"HF_TOKEN": "hf_envtoken1", "HF_ENDPOINT": "http://127.0.0.1:1"})
    assert s2.hub.token.reveal() == "hf_envtoken1" and s2.hub.endpoint == "http://127.0.0.1:1"


def test_config_path_precedence(monkeypatch):
    monkeypatch.delenv("HUBWATCH_CONFIG", raising=False)
    assert str(config.config_path(None)) == "/etc/hubwatch/config.toml"
    monkeypatch.setenv("HUBWATCH_CONFIG", "/x/env.toml")
    assert str(config.config_path(None)) == "/x/env.toml"
    assert str(config.config_path("/y/cli.toml")) == "/y/cli.toml"


def test_http_defaults_and_listen_parsing(tmp_path):
    s = config.load(write(tmp_path, ""), env={})
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8787)  # loopback by default
    s = config.load(write(tmp_path, '[http]\nlisten = "[::1]:9000"\n'), env={})
    assert (s.http.host, s.http.port) == ("::1", 9000)
    with pytest.raises(ConfigError, match="http.listen"):
        config.load(write(tmp_path, '[http]\nlisten = "8787"\n'), env={})
    s = config.load(write(tmp_path, '[limits]\nhub_requests_per_5min = 2500\n'), env={})
    assert s.hub_requests_per_5min == 2500


# --- outbound URLs (sinks and the Hub endpoint): config and environment alike -------------------

BAD_URLS = [
    ("https://[hooks.slack.com/services/T/B/x", "parseable"),
    ("https://hooks.slack.com:99999/x", "parseable"),
    ("http://hooks.slack.com/services/T/B/x", "https"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://2852039166/", "metadata"),  # 169.254.169.254 as one decimal number
    ("https://0xa9.0xfe.0xa9.0xfe/", "metadata"),
    ("https://[::ffff:169.254.169.254]/", "metadata"),
    ("https://[64:ff9b::a9fe:a9fe]/", "metadata"),  # NAT64
    ("https://[2002:a9fe:a9fe::1]/", "metadata"),  # 6to4
    ("https://[fe80::1]/", "metadata"),
    ("https://[fd00:ec2::254]/", "metadata"),
    ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("https://METADATA.google.internal./x", "metadata"),
    ("https:///no-host", "with a host"),
    ("javascript:alert(1)", "https:// URL"),
    ("https://0.0.0.0/x", "unspecified"),
]


@pytest.mark.parametrize("url, words", BAD_URLS)
@pytest.mark.parametrize("table, key", [("slack", "webhook_url"), ("webhook", "url"), ("hub", "endpoint")])
def test_outbound_urls_in_the_config_are_checked(tmp_path, url, words, table, key):
    path = write(tmp_path, f'[{table}]\n{key} = "{url}"\n')
    with pytest.raises(ConfigError) as e:
        config.load(path, env={})
    msg = str(e.value)
    assert f": {table}.{key}: " in msg and words in msg and "\n" not in msg
    assert "hooks.slack.com/services" not in msg, "the URL (a credential) is never quoted"


@pytest.mark.parametrize("url, words", BAD_URLS)
@pytest.mark.parametrize("env_name, key", [("HUBWATCH_SLACK_WEBHOOK_URL", "slack.webhook_url"),
                                           ("HUBWATCH_WEBHOOK_URL", "webhook.url"),
                                           ("HF_ENDPOINT", "hub.endpoint")])
def test_outbound_urls_from_the_environment_are_checked(tmp_path, url, words, env_name, key):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, ""), env={env_name: url})
    assert f": {key} (${env_name}): " in str(e.value) and words in str(e.value)


def test_outbound_urls_from_a_file_are_checked(tmp_path):
    (tmp_path / "hook").write_text("http://169.254.169.254/x\n")
    with pytest.raises(ConfigError, match=r": slack\.webhook_url_file: .*metadata"):
        config.load(write(tmp_path, '[slack]\nwebhook_url_file = "hook"\n'), env={})


@pytest.mark.parametrize("url", ["https://hooks.slack.com/services/T0/B0/x", "http://127.0.0.1:8080/hook",
                                 "http://localhost:9/x", "http://[::1]:9/x", "https://alerts.example.internal/h",
                                 "https://10.0.0.5/internal-relay"])
def test_good_outbound_urls_are_accepted(tmp_path, url):
    s = config.load(write(tmp_path, ""), env={"HUBWATCH_WEBHOOK_URL": url, "HF_ENDPOINT": url})
    assert s.webhook_url.reveal() == url.rstrip("/") and s.hub.endpoint == url.rstrip("/")


@pytest.mark.parametrize("command", ["check-config", "run", "once"])
def test_a_bad_sink_url_is_exit_78_naming_the_key_never_a_traceback(tmp_path, command):
    import os
    import subprocess
    import sys

    path = write(tmp_path, GOOD)
    env = {**os.environ, "HUBWATCH_SLACK_WEBHOOK_URL": "https://[hooks.slack.com/services/T/B/x"}
    p = subprocess.run([sys.executable, "-m", "monitor", command, "-c", str(path)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 78, p.stderr
    assert "slack.webhook_url ($HUBWATCH_SLACK_WEBHOOK_URL)" in p.stderr and "Traceback" not in p.stderr


def test_http_token_file_and_lookup_rate(tmp_path):
    (tmp_path / "http_token").write_text("tok-Secret-42\n")
    s = config.load(write(tmp_path, '[http]\ntoken_file = "http_token"\nlookups_per_minute = 5\n'), env={})
    assert s.http.token.reveal() == "tok-Secret-42" and s.http.lookups_per_minute == 5
    assert "tok-Secret-42" in s.secrets() and "tok-Secret-42" not in repr(s)
    assert config.load(write(tmp_path, ""), env={}).http.token is None
    with pytest.raises(ConfigError, match=r": http\.token_file: cannot read"):
        config.load(write(tmp_path, '[http]\ntoken_file = "missing"\n'), env={})
    with pytest.raises(ConfigError, match=r": http\.lookups_per_minute: "):
        config.load(write(tmp_path, '[http]\nlookups_per_minute = 0\n'), env={})


# --- an unknown key is named before any other problem (through the CLI) ---------------------------

def _check_config(tmp_path, text: str):
    import contextlib
    import io

    from monitor.cli import main

    path = tmp_path / "c.toml"
    path.write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check-config", "-c", str(path)])
    return code, err.getvalue().strip()


@pytest.mark.parametrize("text, key", [
    ('[[pin]]\nrepo = "a/b"\ntrakc = "main"\n', "pin[0].trakc"),
    ('[[pin]]\nrepo = "a/b"\ntrack = "main"\n[[pin]]\nrepo = "bad repo"\ntrakc = "x"\n', "pin[1].trakc"),
    ('[pins]\nevery = "forever"\nevry = "10m"\n', "pins.evry"),
    ('[hub]\ntimeout = "-1s"\n[[pin]]\nrepo = "a/b"\nrevison = "abc"\n', "pin[0].revison"),
    ('[[pin]]\ntrack = "main"\n[slakc]\nwebhook_url = "x"\n', "slakc"),
    ('[pins]\ninclude = ["absent.toml"]\n[[pin]]\nrepo = "a/b"\ntrakc = "main"\n', "pin[0].trakc"),
])
def test_unknown_key_is_reported_before_any_other_problem(tmp_path, text, key):
    code, err = _check_config(tmp_path, text)
    assert code == 78
    assert err.endswith(f": {key}: unknown key") and len(err.splitlines()) == 1


def test_without_unknown_keys_the_first_problem_is_reported(tmp_path):
    code, err = _check_config(tmp_path, '[[pin]]\nrepo = "a/b"\n')
    assert code == 78 and err.endswith("pin[0].revision: give revision (a commit sha), track (a branch or tag), or both")
    code, err = _check_config(tmp_path, '[pins]\nevery = "forever"\n[[pin]]\nrepo = "a/b"\n')
    assert code == 78 and "pins.every: bad duration 'forever'" in err


def test_token_source_is_known_and_the_quota_follows_the_hub_unless_set(tmp_path):
    (tmp_path / "tok").write_text("hf_from_file\n")
    s = config.load(write(tmp_path, '[hub]\ntoken_file = "tok"\n'), env={"HF_TOKEN": "hf_env"})
    assert (s.hub.token.reveal(), s.hub.token_source) == ("hf_from_file", "hub.token_file")
    s = config.load(write(tmp_path, ""), env={"HF_TOKEN": "hf_env"})
    assert (s.hub.token.reveal(), s.hub.token_source) == ("hf_env", "$HF_TOKEN")
    s = config.load(write(tmp_path, ""), env={})
    assert (s.hub.token, s.hub.token_source, s.hub_requests_per_5min) == (None, None, None)


@pytest.mark.parametrize("pin, key", [
    ({"repo": "org/model\n", "track": "main"}, "pin[0].repo"),
    ({"repo": "org/model", "track": "main\n"}, "pin[0].track"),
    ({"repo": "org/model", "revision": SHA + "\n"}, "pin[0].revision"),
])
def test_a_trailing_newline_is_not_part_of_a_valid_name(tmp_path, pin, key):
    """`$` also matches before a final newline; names, refs and shas are checked to their very end."""
    body = "".join(f'{k} = {json.dumps(v)}\n' for k, v in pin.items())
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, f'[state]\npath = "s.db"\n[[pin]]\n{body}'), env={})
    assert key in str(e.value)


# --- issue 18: secret files, who may acknowledge, event checks ------------------------------------

def test_check_config_warns_about_loose_or_escaping_secret_files(tmp_path, monkeypatch):
    """One line per problem, naming the key; the config is still valid (exit 0)."""
    import os

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    creds = tmp_path / "credentials"
    creds.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name, mode in (("hf_token", 0o600), ("signing", 0o644), ("hook", 0o600), ("http", 0o600)):
        (creds / name).write_text(f"secret-{name}")
        os.chmod(creds / name, mode)
    (elsewhere / "hook").write_text("secret-hook-elsewhere")
    os.chmod(elsewhere / "hook", 0o600)
    (creds / "hook_link").symlink_to(elsewhere / "hook")
    (creds / "http_link").symlink_to(creds / "http")  # inside the directory: fine
    text = ('[hub]\ntoken_file = "credentials/hf_token"\n[slack]\nsigning_secret_file = "credentials/signing"\n'
            '[hub_webhook]\nsecret_file = "credentials/hook_link"\n[http]\ntoken_file = "credentials/http_link"\n')
    code, err = _check_config(tmp_path, text)
    lines = err.splitlines()
    assert code == 0 and len(lines) == 2, err
    assert lines[0].startswith("hubwatch: warning: slack.signing_secret_file: ") and "mode 0644" in lines[0]
    assert lines[1].startswith("hubwatch: warning: hub_webhook.secret_file: ") and "symlink" in lines[1]
    assert "secret-" not in err, "never the secret itself"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))  # systemd's: both files are inside it
    os.chmod(creds / "signing", 0o600)
    assert _check_config(tmp_path, text) == (0, "")


def test_slack_ack_keys_and_event_min_interval(tmp_path):
    s = config.load(write(tmp_path, '[slack]\nack_users = ["U024BE7LH", "W1"]\nack_channels = ["C1"]\n'
                                    'team_id = "T0001"\n[hub_webhook]\nmin_interval = "2m"\n'), env={})
    assert s.slack_acks == config.SlackAcks(("U024BE7LH", "W1"), ("C1",), "T0001")
    assert s.event_min_interval == 120.0
    default = config.load(write(tmp_path, ""), env={})
    assert default.slack_acks == config.SlackAcks() and default.event_min_interval == 60.0
    for bad, key in (('[slack]\nack_users = "U1"\n', "slack.ack_users"), ('[slack]\nack_users = ["u1 x"]\n', "slack.ack_users"),
                     ('[slack]\nteam_id = 5\n', "slack.team_id"), ('[hub_webhook]\nmin_interval = "0s"\n', "hub_webhook.min_interval")):
        with pytest.raises(ConfigError, match=rf": {key}: "):
            config.load(write(tmp_path, bad), env={})
