"""The daemon's HTTP endpoints, end to end: a `hubwatch run` subprocess, real HTTP requests, the Hub
emulator and the Slack receiver. Hub webhook events trigger that repo's check at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
import re
import time
from urllib.parse import urlencode

import pytest
import requests

from monitor.http.slack_command import sign
from tests.test_daemon import FILES, Daemon, Env, child_env, wait_for

HOOK_SECRET = "whsec-DaemonHookSecret42"
SIGNING = "slack-signing-Secret-77"


class HttpEnv(Env):
    def render(self) -> str:
        (self.tmp / "hook_secret").write_text(HOOK_SECRET)
        (self.tmp / "signing").write_text(SIGNING)
        text = super().render().replace('[slack]\n', '[slack]\nsigning_secret_file = "signing"\n')
        return text + ('[hub_webhook]\nsecret_file = "hook_secret"\n'
                       '[lookalike]\nprotected = ["EleutherAI"]\nevery = "1d"\nprobe_budget = 0\n')


@pytest.fixture
def env(hub, slack, tmp_path):
    e = HttpEnv(tmp_path, hub, slack)
    e.pins_every = "1h"  # polling would be too slow: only the webhook can explain a quick alert
    yield e
    e.stop_all()


def base_url(daemon) -> str:
    def found():
        m = re.search(r"http (http://127\.0\.0\.1:\d+)", daemon.text())
        return m.group(1) if m else None
    return wait_for(found, "the HTTP server's address", show=daemon)


def event(repo: str, refs=(), scope="repo.content") -> dict:
    return {"event": {"action": "update", "scope": scope},
            "repo": {"type": "model", "name": repo, "id": "0" * 24, "headSha": "a" * 40},
            "updatedRefs": [{"ref": r, "oldSha": o, "newSha": n} for r, o, n in refs],
            "webhook": {"id": "w1", "version": 3}}


def test_hub_event_triggers_the_pin_check_at_once(env, hub, slack):
    hub.add_repo("org/alpha", files=FILES)
    hub.add_repo("org/beta", files=FILES)
    env.pins = ["org/alpha", "org/beta"]
    d = env.start()
    url = base_url(d)
    wait_for(lambda: env.baselined(2), "baseline", show=d)
    hub.commit("org/alpha", {"README.md": "changed"}, title="silent change")
    assert requests.post(f"{url}/hooks/hub", json=event("org/alpha"), timeout=5).status_code == 401
    r = requests.post(f"{url}/hooks/hub", json=event("org/alpha"), timeout=5,
                      headers={"X-Webhook-Secret": "wrong"})
    assert r.status_code == 401
    hub.clear_log()
    r = requests.post(f"{url}/hooks/hub", json=event("org/alpha"), timeout=5,
                      headers={"X-Webhook-Secret": HOOK_SECRET})
    assert r.status_code == 200 and r.json()["status"] == "checking pinned repo"
    wait_for(lambda: env.kinds() == ["ref_moved"], "the alert", timeout=10, show=d)
    assert not any("/org/beta/" in q.path for q in hub.requests), "only that pin was checked"
    other = requests.post(f"{url}/hooks/hub", json=event("someone/else"), timeout=5,
                          headers={"X-Webhook-Secret": HOOK_SECRET})
    assert other.json()["status"] == "ignored: not watched"


def test_tag_moved_and_back_is_reported_from_the_event(env, hub, slack):
    hub.add_repo("org/alpha", files=FILES)
    v1 = hub.create_tag("org/alpha", "v1")
    env.pins = ["org/alpha"]
    d = env.start()
    url = base_url(d)
    wait_for(lambda: env.baselined(1), "baseline", show=d)
    evil = hub.commit("org/alpha", {"pytorch_model.bin": b"x"}, branch="main")
    # moved and moved back before we could look: only the event knows
    refs = [("refs/tags/v1", v1, evil)]
    r = requests.post(f"{url}/hooks/hub", json=event("org/alpha", refs), timeout=5,
                      headers={"X-Webhook-Secret": HOOK_SECRET})
    assert r.status_code == 200
    wait_for(lambda: "tag_moved" in env.kinds(), "tag alert", timeout=10, show=d)
    tags = [f for f in env.findings() if f[0] == "tag_moved"]
    assert len(tags) == 1


def test_health_ready_metrics_lookup_and_slack_command(env, hub, slack):
    hub.add_org("EleutherAI", verified=True, followers=5000, created_at="2020-01-01T00:00:00.000Z")
    hub.add_org("EleuterAI", created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
    hub.add_repo("org/alpha", files=FILES)
    env.pins = ["org/alpha"]
    d = env.start()
    url = base_url(d)
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = wait_for(lambda: (r := requests.get(f"{url}/readyz", timeout=5)).status_code == 200 and r,
                     "readiness", show=d)
    assert ready.json()["checks"] == {"database": "ok", "scheduler": "ok", "outbox": "ok"}
    wait_for(lambda: env.baselined(1), "baseline", show=d)
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    for name in ("hubwatch_job_runs_total", "hubwatch_hub_requests_total", "hubwatch_outbox_depth",
                 "hubwatch_hub_budget_quota", "hubwatch_job_last_success_timestamp_seconds"):
        assert name in metrics
    assert HOOK_SECRET not in metrics and SIGNING not in metrics
    look = requests.get(f"{url}/v1/lookup/EleuterAI", timeout=10)
    assert look.status_code == 200
    body = look.json()
    assert body["exists"] is True and body["imitates"][0]["target"] == "EleutherAI" and body["risk"] != "none"
    assert requests.get(f"{url}/v1/lookup/bad%20name", timeout=5).status_code == 400
    form = urlencode({"command": "/hubwatch", "text": "lookup EleuterAI", "user_id": "U1",
                      "response_url": "https://hooks.slack.com/commands/T/1/x"}).encode()
    ts = str(int(time.time()))
    r = requests.post(f"{url}/slack/commands", data=form, timeout=5,
                      headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(SIGNING, ts, form),
                               "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["response_type"] == "ephemeral"
    assert "EleuterAI" in json.dumps(r.json())
    bad = requests.post(f"{url}/slack/commands", data=form, timeout=5,
                        headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + "0" * 64})
    assert bad.status_code == 401
    assert HOOK_SECRET not in d.text() and SIGNING not in d.text()


def test_port_in_use_exits_75_with_one_line(env, hub, slack, tmp_path):
    import socket
    import subprocess
    import sys

    from tests.test_daemon import ROOT, child_env

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        env.pins = ["org/alpha"]
        hub.add_repo("org/alpha", files=FILES)
        text = env.render().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{busy.getsockname()[1]}"')
        env.write(text)
        p = subprocess.run([sys.executable, "-m", "monitor", "run", "-c", str(env.config)], cwd=tmp_path,
                           env=child_env(tmp_path, hub), capture_output=True, text=True, timeout=60)
        assert p.returncode == 75, p.stderr
        assert "cannot listen" in p.stderr and "Traceback" not in p.stderr
    finally:
        busy.close()


HTTP_TOKEN = "http-bearer-Token-5150"


def test_400_lookups_cannot_spend_the_pin_budget(env, hub, slack):
    """The rate limit is lifted here so that only the lookups' share of the Hub budget stands
    between 400 lookups of distinct names and the Hub: it must hold them to <= 150 requests, and
    a pin change right after must still be alerted within its normal cycle."""
    hub.add_repo("org/alpha", files=FILES)
    env.pins = ["org/alpha"]
    env.pins_every = "2s"
    (env.tmp / "http_token").write_text(HTTP_TOKEN + "\n")
    env.write(env.render().replace('listen = "127.0.0.1:0"',
                                   'listen = "127.0.0.1:0"\ntoken_file = "http_token"\nlookups_per_minute = 10000'))
    d = env.start()
    url = base_url(d)
    wait_for(lambda: env.baselined(1), "baseline", show=d)
    assert requests.get(f"{url}/v1/lookup/someone", timeout=5).status_code == 401
    assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    hub.clear_log()
    auth = {"Authorization": f"Bearer {HTTP_TOKEN}"}
    codes = Counter(requests.get(f"{url}/v1/lookup/visitor-{i}", headers=auth, timeout=10).status_code
                    for i in range(400))
    lookups = [q for q in hub.requests if "/org/alpha" not in q.path]
    assert len(lookups) <= 150, f"{len(lookups)} Hub requests for 400 lookups"
    assert codes[200] >= 10 and codes[503] > 0 and set(codes) <= {200, 503}, codes
    hub.commit("org/alpha", {"README.md": "changed"}, title="silent change")
    wait_for(lambda: "ref_moved" in env.kinds(), "the pin alert within its cycle", timeout=10, show=d)


class LimitedDaemon(Daemon):
    """`hubwatch run` with RLIMIT_NOFILE lowered, as a tight LimitNOFILE= would."""

    def __init__(self, tmp, hub, n: int, nofile: int):
        super().__init__(tmp, hub, n)
        self.nofile = nofile

    def start(self, config):
        import resource

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "-c", str(config), "-v", "--log-format", "json"],
                cwd=self.tmp, env=child_env(self.tmp, self.hub), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=limit)
        return self


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the daemon's /proc entries")
def test_400_idle_connections_under_a_256_file_limit(env, hub, slack):
    """400 clients that connect and never finish a request, against a daemon allowed 256 files: it
    keeps answering /healthz, keeps checking pins and alerts a change."""
    hub.add_repo("org/alpha", files=FILES)
    env.pins = ["org/alpha"]
    env.pins_every = "1s"
    env.write()
    d = LimitedDaemon(env.tmp, hub, 0, 256).start(env.config)
    env.daemons.append(d)
    url = base_url(d)
    port = int(url.rsplit(":", 1)[1])
    wait_for(lambda: env.baselined(1), "baseline", show=d)
    idle = []
    try:
        for _ in range(400):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /heal")  # a request begun, never finished
                idle.append(s)
            except OSError:
                pass
            time.sleep(0.002)
        assert len(idle) >= 300, "the clients could connect (the kernel queues what the daemon holds off)"
        fds = threads = 0
        for _ in range(3):
            assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
            fds = max(fds, len(os.listdir(f"/proc/{d.proc.pid}/fd")))
            threads = max(threads, int(re.search(r"Threads:\s+(\d+)", open(f"/proc/{d.proc.pid}/status").read())[1]))
            time.sleep(0.5)
        # connections are capped well below the file limit, and cost no thread each
        assert fds <= 200 and threads <= 60, (fds, threads)
        hub.commit("org/alpha", {"README.md": "changed"}, title="silent change")
        wait_for(lambda: "ref_moved" in env.kinds(), "the alert under load", timeout=20, show=d)
        assert d.alive() and "Traceback" not in d.text()
    finally:
        for s in idle:
            s.close()
