"""`hubwatch webhooks install/list` against the emulator's webhook API."""

from __future__ import annotations

import json

from tests.pins_env import PinsEnv


def make_env(hub, slack, tmp_path, secret=True):
    env = PinsEnv(tmp_path, hub, slack)
    env.token = "hf_WebhookAdminToken1"
    hub.add_token(env.token, user="secops", write=True)
    try:
        hub.add_repo("org/model", files={"a": "b"})
    except ValueError:  # a second env in the same test
        pass
    env.pins = [{"repo": "org/model", "track": "main"},
                {"repo": "org/data", "type": "dataset", "track": "main"}]
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\n'
    if secret:
        (tmp_path / "hook_secret").write_text("whsec-very-secret-1234")
        env.extra += '[hub_webhook]\nsecret_file = "hook_secret"\n'
    return env


def test_install_creates_then_updates_and_list_shows_it(hub, slack, tmp_path):
    env = make_env(hub, slack, tmp_path)
    r = env.run("webhooks", "install", "--url", "https://hubwatch.example.org/hooks/hub")
    assert r.code == 0 and r.out.startswith("created webhook"), r
    (hook,) = hub.webhooks
    assert hook["url"] == "https://hubwatch.example.org/hooks/hub" and hook["secret"] == "whsec-very-secret-1234"
    assert sorted((w["type"], w["name"]) for w in hook["watched"]) == [
        ("dataset", "org/data"), ("model", "org/model"), ("org", "EleutherAI")]
    assert hook["domains"] == ["repo"]
    r2 = env.run("webhooks", "install", "--url", "https://hubwatch.example.org/hooks/hub")
    assert r2.code == 0 and r2.out.startswith("updated webhook") and len(hub.webhooks) == 1
    listed = env.run("webhooks", "list")
    assert listed.code == 0 and "https://hubwatch.example.org/hooks/hub" in listed.out
    assert "model:org/model" in listed.out
    everything = r.out + r.err + r2.out + r2.err + listed.out + listed.err
    assert "whsec-very-secret-1234" not in everything and "hf_WebhookAdminToken1" not in everything


def test_install_needs_token_secret_and_url(hub, slack, tmp_path):
    env = make_env(hub, slack, tmp_path, secret=False)
    r = env.run("webhooks", "install", "--url", "https://x.example/hooks/hub")
    assert r.code == 78 and "hub_webhook.secret_file" in r.err
    env.token = None
    r = env.run("webhooks", "list")
    assert r.code == 78 and "hub.token_file" in r.err
    env2 = make_env(hub, slack, tmp_path)
    assert env2.run("webhooks", "install").code == 2


def test_refused_token_is_a_clear_error(hub, slack, tmp_path):
    env = make_env(hub, slack, tmp_path)
    env.token = "hf_NotARealToken"
    r = env.run("webhooks", "list")
    assert r.code != 0 and len(r.err.strip().splitlines()) == 1 and "hf_NotARealToken" not in r.err


def test_install_refuses_plain_http_unless_loopback(hub, slack, tmp_path):
    """The Hub sends the webhook secret with every event: over plain http it would cross the
    network in clear. Exit 2, one line, nothing registered; loopback (a local relay) is fine."""
    env = make_env(hub, slack, tmp_path)
    before = len(hub.webhooks)
    for url in ("http://hubwatch.example.org/hooks/hub", "http://10.0.0.5:8787/hooks/hub",
                "http://169.254.169.254/hooks/hub", "ftp://x.example/hooks"):
        r = env.run("webhooks", "install", "--url", url)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and url not in r.err, (url, r)
    assert "https" in r.err and len(hub.webhooks) == before
    r = env.run("webhooks", "install", "--url", "http://127.0.0.1:8787/hooks/hub")
    assert r.code == 0 and r.out.startswith("created webhook"), r


def test_list_passes_hub_text_through_terminal_escaping(hub, slack, tmp_path):
    """What the Hub answers about a webhook (its URL, the watched names) reaches the terminal
    through the same escaping as `findings`: no escape sequence, no raw control character."""
    env = make_env(hub, slack, tmp_path)
    assert env.run("webhooks", "install", "--url", "https://hubwatch.example.org/hooks/hub").code == 0
    hook = hub._webhooks[0][1]
    hook["url"] = "https://hubwatch.example.org/\x1b]0;pwned\x07\x1b[2J\r\u202ehooks"
    hook["watched"] = [*hook["watched"], {"type": "org", "name": "evil\x1b[31m\nfake line"}]
    listed = env.run("webhooks", "list")
    assert listed.code == 0, listed
    assert "\x1b" not in listed.out and "\x07" not in listed.out and "\r" not in listed.out
    assert "\u202e" not in listed.out and "\\u202e" in listed.out
    assert len(listed.out.strip().splitlines()) == 1 and "org:evil\\nfake line" in listed.out
    assert "https://hubwatch.example.org/" in listed.out and "model:org/model" in listed.out
