"""Hostile repos cannot blind or exhaust a pin check, and names/links cannot steer the token.

Each attack is what a repo owner (or a misbehaving answer) controls: how many files a commit
touches, how large a config is, how many branches a repo has, what a pagination `Link` names, a
name that is a path segment. Request counts come from the emulator's own log, so they include
every retry and redirect hop the real client sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from monitor.config import HubSettings, HttpSettings, Secret
from monitor.detect.names import is_valid_name, validate_name
from monitor.errors import ConfigError, HubError
from monitor.hub import client as client_mod
from monitor.hub.client import AnswerTooLarge, FileTooLarge, HubClient, OffOrigin
from monitor.hub.models import RepoId
from monitor.hub.namespaces import NamespaceClient
from monitor.http import HttpServer
from monitor.detect.risk import inspection_order
from monitor.jobs.check_caps import MAX_CONFIG_READS, walk_order
from tests.pins_env import PinsEnv

REPO = "EleutherAI/gpt-j-6b"
CONFIG = {"model_type": "gptj"}
FILES = {"config.json": json.dumps(CONFIG), "model.safetensors": b"\x00weights-v1", "README.md": "# GPT-J"}
SHA = "a" * 40


@pytest.fixture
def env(hub, slack, tmp_path):
    return PinsEnv(tmp_path, hub, slack)


# --- point 1: bounded, fail-closed checks ------------------------------------------------------

def test_remote_code_among_1000_configs_stays_critical_within_150_requests(env, hub, slack):
    """A commit adding auto_map plus 1,000 dN/config.json files used to spend ~1,000 requests and
    end unknown; the top-level config is read first, the rest are reported as not inspected."""
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    hub.clear_log()
    env.once()
    noise = {f"d{i}/config.json": json.dumps({"layer": i}) for i in range(1000)}
    hub.commit(REPO, {**noise, "modeling_gptj.py": "import os",
                      "config.json": json.dumps({**CONFIG, "auto_map": {"AutoModel": "modeling_gptj.GPTJ"}})},
               title="add layers", author="mallory")
    env.once()
    assert hub.count() <= 150, f"{hub.count()} Hub requests for one change, first check included"
    assert hub.count(r"/resolve/") <= 2 * MAX_CONFIG_READS
    (f,) = env.findings()
    assert f["kind"] == "risky_change" and f["severity"] == "critical"
    rules = {r["rule"]: r for r in f["evidence"]["rules"]}
    assert "auto_map" in rules["remote_code_config"]["detail"] and "config.json" in rules["remote_code_config"]["detail"]
    assert rules["not_inspected"]["severity"] == "high"
    assert f"{1001 - MAX_CONFIG_READS} config file(s) not read" in rules["not_inspected"]["detail"]
    assert "not inspected" in f["summary"] and "auto_map" in f["summary"]
    assert len(slack.messages) == 1


def test_oversized_config_is_not_downloaded_and_the_change_is_high(env, hub, slack):
    """The manifest says the new config.json is 3 MB: it is never fetched, and the change says so."""
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    big = json.dumps({**CONFIG, "pad": "x" * 3_000_000})
    new = hub.commit(REPO, {"config.json": big}, title="pad config")
    hub.clear_log()
    env.once()
    assert hub.count(rf"GET /{REPO}/resolve/{new}/config\.json") == 0, "read the size before any download"
    (f,) = env.findings()
    assert f["severity"] == "high" and f["kind"] == "risky_change"
    assert "config.json is 3 MB: too large to inspect" in f["summary"]
    assert [r["rule"] for r in f["evidence"]["rules"]] == ["not_inspected"]


def test_file_text_refuses_a_file_its_answer_says_is_too_large(hub):
    """No manifest size at hand: the answer's own size header stops the read before the body."""
    hub.add_repo(REPO, files={"config.json": "{" + " " * 2_000_000 + "}", "small.json": "{}"})
    client = HubClient(HubSettings(endpoint=hub.url, retries=0))
    with pytest.raises(FileTooLarge) as e:
        client.file_text(RepoId("model", REPO), "main", "config.json")
    assert e.value.size == 2_000_002 and "too large to inspect" in str(e.value)
    assert client.file_text(RepoId("model", REPO), "main", "small.json") == "{}"
    assert client.file_text(RepoId("model", REPO), "main", "absent.json") is None


class _Endless(BaseHTTPRequestHandler):
    """Streams a chunked body with no size header, as long as the client keeps reading."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(50 * 16):  # 50 MB if nobody stops reading
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.server.sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass


def test_file_text_stops_reading_a_stream_at_the_cap():
    """No size anywhere: the streamed read stops past 1 MB instead of holding the whole body."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    srv.daemon_threads, srv.sent = True, 0
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = HubClient(HubSettings(endpoint=f"http://127.0.0.1:{srv.server_port}", retries=0))
        with pytest.raises(FileTooLarge) as e:
            client.file_text(RepoId("model", "a/b"), "main", "config.json")
    finally:
        srv.shutdown()
        srv.server_close()
    assert e.value.size is None and "larger than 1 MB" in str(e.value)
    assert srv.sent < 20 * 1024 * 1024, f"{srv.sent} bytes streamed: the client kept reading"


class _Flood(BaseHTTPRequestHandler):
    """A JSON answer that never ends (chunked, no size), or one that declares 100 MB and sends 2 bytes."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.server.declare:
            self.send_header("Content-Length", "100000000")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b'{"name": "b", "ref": "refs/heads/b", "targetCommit": "' + b"a" * 40 + b'"},' * 1000
        try:
            self.wfile.write(b'%x\r\n{"branches": [\r\n' % len(b'{"branches": ['))
            for _ in range(100 * 1024 * 1024 // len(chunk)):  # 100 MB if nobody stops reading
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.server.sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass


@pytest.mark.parametrize("declare", [False, True])
def test_a_json_answer_is_never_held_past_its_cap(declare):
    """Thousands of branches, a file list of 100,000 files: the JSON answer is streamed and dropped
    at 16 MB (or refused from its declared size) instead of being read whole (today: r.json())."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    srv.daemon_threads, srv.sent, srv.declare = True, 0, declare
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = HubClient(HubSettings(endpoint=f"http://127.0.0.1:{srv.server_port}", retries=0))
        with pytest.raises(AnswerTooLarge) as e:
            client.refs(RepoId("model", "a/b"))
    finally:
        srv.shutdown()
        srv.server_close()
    assert "/api/models/a/b/refs is larger than 16 MB: too large to inspect" in str(e.value)
    assert e.value.permanent, "retrying reads the same answer"
    assert srv.sent < 40 * 1024 * 1024, f"{srv.sent} bytes streamed: the client kept reading"


class _CountingSlots:
    """Stands in for the client's large-answer semaphore (2 slots), recording how many are held."""

    def __init__(self):
        self.inner, self.lock, self.held, self.most, self.taken = threading.BoundedSemaphore(2), threading.Lock(), 0, 0, 0

    def acquire(self):
        got = self.inner.acquire()
        with self.lock:
            self.held += 1
            self.taken += 1
            self.most = max(self.most, self.held)
        return got

    def release(self):
        with self.lock:
            self.held -= 1
        self.inner.release()


def test_large_json_answers_are_read_two_at_a_time(monkeypatch):
    """Six threads reading 2 MB answers at once hold at most two of them; small answers take no slot."""
    slots = _CountingSlots()
    monkeypatch.setattr(client_mod, "_LARGE_SLOTS", slots)
    branches = [{"name": f"b{i}", "ref": f"refs/heads/b{i}", "targetCommit": SHA} for i in range(25_000)]
    big = _Recorder(json.dumps({"branches": branches, "tags": []}).encode())
    small = _Recorder(json.dumps({"branches": branches[:10], "tags": []}).encode())
    try:
        client = HubClient(HubSettings(endpoint=big.url, retries=0))
        results = []
        threads = [threading.Thread(target=lambda: results.append(len(client.refs(RepoId("model", "a/b")).branches)))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [25_000] * 6 and slots.taken == 6 and 1 <= slots.most <= 2 and slots.held == 0
        HubClient(HubSettings(endpoint=small.url, retries=0)).refs(RepoId("model", "a/b"))
        assert slots.taken == 6, "a small answer took a slot"
    finally:
        big.close()
        small.close()


def _many_files(n: int) -> dict:
    return {f"shards/part-{i:05d}.bin": f"shard {i}" for i in range(n)}


def test_a_file_list_too_large_to_hold_is_reported_and_config_json_still_read(env, hub, slack, monkeypatch):
    """A commit adding auto_map plus enough files that the file list is past the JSON cap: the list
    is not held, the change says so (high), and config.json is read anyway, so it stays critical."""
    monkeypatch.setattr(client_mod, "MAX_JSON_BYTES", 40_000)  # the real 16 MB cap costs 60,000 files
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    new = hub.commit(REPO, {**_many_files(600), "config.json": json.dumps(
        {**CONFIG, "auto_map": {"AutoModel": "modeling_gptj.GPTJ"}})}, title="add shards", author="mallory")
    hub.clear_log()
    env.once()
    assert hub.count() <= 150
    assert hub.count(r"/resolve/") == 2, "config.json before and after, nothing else"
    moved = env.findings("risky_change")
    (f,) = moved
    assert f["severity"] == "critical"
    rules = {r["rule"]: r for r in f["evidence"]["rules"]}
    assert "auto_map" in rules["remote_code_config"]["detail"]
    assert f"the file list at {new[:7]} (larger than 0 MB: too large to inspect)" in rules["not_inspected"]["detail"]
    (d,) = env.findings("monitoring_degraded")
    assert d["severity"] == "medium" and "files and security scan not inspected" in d["summary"]


def test_a_repo_too_large_to_list_is_still_watched_for_its_identity(env, hub, slack, monkeypatch):
    """The slim second answer keeps `_id`, flags and takedown watched when the file list is not held."""
    monkeypatch.setattr(client_mod, "MAX_JSON_BYTES", 40_000)
    hub.add_repo(REPO, files={**FILES, **_many_files(600)})
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    (d,) = env.findings()
    assert d["kind"] == "monitoring_degraded" and "too large to inspect" in d["summary"]
    hub.set_disabled(REPO)
    env.once()
    (taken,) = env.findings("repo_unavailable")
    assert taken["severity"] == "critical" and "disabled by the Hub" in taken["summary"]
    env.once()
    assert len(env.findings("monitoring_degraded")) == 1, "said once"


def test_a_refs_answer_too_large_to_hold_leaves_the_pin_unknown_and_says_why(env, hub, slack, monkeypatch):
    """Thousands of branches past the JSON cap: the check is unknown (never "ok", never an alert on
    half an answer), and the reason is what the status shows until monitoring_degraded fires."""
    monkeypatch.setattr(client_mod, "MAX_JSON_BYTES", 40_000)
    hub.add_repo(REPO, files=FILES)
    for i in range(600):
        hub.create_branch(REPO, f"branch-{i}")
    env.pins = [{"repo": REPO, "track": "main"}]
    r = env.run("once")
    assert "1 unknown" in r.err + r.out
    (row,) = [x for x in map(json.loads, filter(str.strip, env.run("status", "--json").out.splitlines()))
              if x["kind"] == "pin"]
    assert row["state"] == "unknown"
    assert row["last_error"].endswith("/api/models/EleutherAI/gpt-j-6b/refs is larger than 0 MB: too large to inspect")
    assert env.findings() == []


def test_a_push_longer_than_the_history_cap_is_high_and_says_so(env, hub, slack):
    """More than 150 commits at once: whether the old head is still an ancestor was not read."""
    hub.add_repo(REPO, files=FILES)
    env.pins = [{"repo": REPO, "track": "main"}]
    env.once()
    for i in range(160):
        hub.commit(REPO, {"README.md": f"v{i}"}, title=f"v{i}")
    hub.clear_log()
    env.once()
    assert hub.count(r"/commits/") == 3
    (f,) = env.findings()
    assert f["severity"] == "high" and f["evidence"]["fast_forward"] is None
    assert "history past 150 commits (fast-forward unverified)" in f["summary"]


def test_many_tags_re_pointed_at_once_stay_within_150_requests(env, hub, slack):
    """Every moved tag is alerted; once the check's request cap is spent, the rest say what was
    not read instead of each costing more requests."""
    hub.add_repo(REPO, files=FILES)
    for i in range(150):
        hub.create_tag(REPO, f"v{i}")
    env.pins = [{"repo": REPO, "track": "main"}]
    hub.clear_log()
    env.once()
    for i in range(150):
        hub.move_tag(REPO, f"v{i}", hub.commit(REPO, {"README.md": f"v{i}"}, title=f"v{i}"))
    env.once()
    assert hub.count() <= 150, f"{hub.count()} requests"
    tags = env.findings("tag_moved")
    assert len(tags) == 150 and all(f["severity"] == "high" for f in tags)
    assert any("request cap of this check spent" in f["summary"] for f in tags)


def _distinct_branches(hub, n: int) -> None:
    """n branches off main, each with its own head: no two walks can be shared."""
    for i in range(n):
        hub.create_branch(REPO, f"b{i}")
        hub.commit(REPO, {"README.md": f"branch {i}"}, branch=f"b{i}", title=f"b{i}")


def test_exact_pin_in_a_1200_branch_repo_costs_at_most_100_requests_per_check(env, hub, slack):
    hub.add_repo(REPO, files=FILES)
    pinned = hub.commit(REPO, {"README.md": "pinned"}, title="pinned")
    for i in range(60):  # the pin sits more than a page deep in main's history
        hub.commit(REPO, {"README.md": f"later {i}"}, title=f"later {i}")
    _distinct_branches(hub, 1200)
    env.pins = [{"repo": REPO, "revision": pinned}]
    hub.clear_log()
    env.once()
    assert hub.count() <= 100, f"first check: {hub.count()} requests"
    hub.commit(REPO, {"README.md": "moved"}, branch="b7")  # branches changed: the walk runs again
    hub.clear_log()
    env.once()
    assert hub.count() <= 100, f"second check: {hub.count()} requests"
    assert env.findings() == [], "main is walked first and holds the pin: no alert"


def test_orphaned_pin_in_a_1200_branch_repo_is_reported_unverified_within_budget(env, hub, slack):
    """The walk cannot cover 1,200 heads; it stops at its cap and says the pin is unverified
    (today's main walked every branch, 1,200+ requests per check)."""
    hub.add_repo(REPO, files=FILES)
    pinned = hub.commit(REPO, {"README.md": "pinned"}, title="pinned")
    hub.rewrite_history(REPO, "main", files={"README.md": "rewritten"})
    _distinct_branches(hub, 1200)
    env.pins = [{"repo": REPO, "revision": pinned}]
    hub.clear_log()
    env.once()
    assert hub.count() <= 100
    (f,) = env.findings()
    assert f["kind"] == "pin_unverified" and f["severity"] == "high"
    assert f["evidence"]["pinned_sha"] == pinned and f["evidence"]["branches"] == 1201
    assert 0 < f["evidence"]["branches_walked"] < 1201 and "not inspected" in f["summary"]


def test_orphaned_pin_among_branches_sharing_a_head_is_still_proven(env, hub, slack):
    """Branches with the same head are one walk: 300 copies of main cost one walk, and the
    orphaned pin is proven (critical), not left unverified."""
    hub.add_repo(REPO, files=FILES)
    pinned = hub.commit(REPO, {"README.md": "pinned"}, title="pinned")
    hub.rewrite_history(REPO, "main", files={"README.md": "rewritten"})
    for i in range(300):
        hub.create_branch(REPO, f"copy{i}")
    env.pins = [{"repo": REPO, "revision": pinned}]
    hub.clear_log()
    env.once()
    assert hub.count(r"/commits/") <= 2
    (f,) = env.findings()
    assert f["kind"] == "pin_unreachable" and f["severity"] == "critical"


def test_inspection_order_reads_what_transformers_loads_first():
    configs = ["z/config.json", "a/b/config.json", "tokenizer_config.json", "m/config.json", "config.json",
               "a/config.json"]
    assert inspection_order(configs, added=["m/modeling.py", "a/b/config.json"]) == [
        "config.json", "tokenizer_config.json", "m/config.json", "a/config.json", "z/config.json",
        "a/b/config.json"]


def test_walk_order_main_first_then_tracked_then_moved_and_one_walk_per_head():
    branches = {"a": "1" * 40, "main": "2" * 40, "rel": "3" * 40, "moved": "4" * 40, "same": "2" * 40,
                "new": "5" * 40}
    previous = {"a": "1" * 40, "main": "2" * 40, "rel": "3" * 40, "moved": "9" * 40, "same": "2" * 40}
    assert walk_order(branches, ("rel",), previous) == ["main", "rel", "moved", "new", "a"]


# --- point 3: the CLI lookup is the operator's ---------------------------------------------------

def test_cli_lookup_is_not_rate_limited(env, hub):
    """Past the HTTP/Slack limit (30 a minute, burst 10), every operator lookup still asks the Hub."""
    hub.add_org("EleutherAI")
    for i in range(35):
        hub.clear_log()
        r = env.run("lookup", f"visitor-{i}", "--json")
        assert r.code == 0 and json.loads(r.out)["name"] == f"visitor-{i}", r
        assert hub.count(rf"visitor-{i}") >= 1, f"lookup {i} answered without asking the Hub"


# --- point 4: names -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", [".", ".."])
def test_dot_segments_are_not_names(name):
    assert not is_valid_name(name)
    assert "path segment" in validate_name(name)
    assert validate_name("a..b") is None, "legacy names with dots inside stay valid"


@pytest.mark.parametrize("name", [".", ".."])
def test_cli_lookup_of_a_dot_segment_is_exit_2_without_a_hub_request(env, hub, name):
    hub.clear_log()
    r = env.run("lookup", name)
    assert r.code == 2 and "path segment" in r.err
    assert hub.count() == 0


@pytest.mark.parametrize("pin,key", [({"repo": "EleutherAI/..", "track": "main"}, "repo"),
                                     ({"repo": "../gpt-j-6b", "track": "main"}, "repo"),
                                     ({"repo": REPO, "track": "."}, "track"),
                                     ({"repo": REPO, "track": "release/../main"}, "track"),
                                     ({"repo": REPO, "track": "release/./x"}, "track")])
def test_pins_with_dot_segments_are_config_errors(env, hub, pin, key):
    env.pins = [pin]
    with pytest.raises(ConfigError) as e:
        env.settings()
    assert e.value.key == f"pin[0].{key}"
    hub.clear_log()
    r = env.run("check-config")
    assert r.code == 78 and f"pin[0].{key}" in r.err
    assert hub.count() == 0


class _Backend:
    hub_webhook_secret = slack_signing_secret = http_token = None

    def __init__(self):
        self.lookups = []

    def lookup(self, name):
        self.lookups.append(name)
        raise AssertionError("an invalid name must not be looked up")


@pytest.mark.parametrize("path", ["/v1/lookup/%2E%2E", "/v1/lookup/%2e", "/v1/lookup/."])
def test_http_lookup_of_a_dot_segment_is_400(path):
    backend = _Backend()
    srv = HttpServer(HttpSettings("127.0.0.1", 0, 4096), backend).start()
    try:
        r = requests.get(srv.url + path, timeout=5)
    finally:
        srv.stop()
    assert r.status_code in (400, 404) and backend.lookups == []


# --- point 4: pagination Link stays on the endpoint's origin ----------------------------------

class _Recorder(ThreadingHTTPServer):
    """A local HTTP server answering every GET with one canned JSON answer, recording who asked."""

    daemon_threads = True

    def __init__(self, body: bytes = b"[]", link: str | None = None):
        self.body, self.link, self.seen = body, link, []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        if self.server.link:
            self.send_header("Link", f'<{self.server.link}>; rel="next"')
        self.end_headers()
        self.wfile.write(self.server.body)


@pytest.fixture
def foreign():
    srv = _Recorder(json.dumps([{"id": "f" * 40, "title": "x", "authors": []}]).encode())
    yield srv
    srv.close()


def _commits_page() -> bytes:
    return json.dumps([{"id": SHA, "title": "first", "authors": [{"user": "alice"}], "date": None}]).encode()


def test_history_does_not_follow_a_link_to_another_origin(foreign):
    """The token never leaves the endpoint's origin; the walk ends there, reported incomplete."""
    home = _Recorder(_commits_page(), link=foreign.url + "/api/models/a/b/commits/main?p=1")
    try:
        client = HubClient(HubSettings(endpoint=home.url, token=Secret("hf_SECRETtoken"), retries=0))
        h = client.history(RepoId("model", "a/b"), "main", stop_at=["b" * 40], max_pages=5)
        assert client.contains(RepoId("model", "a/b"), "main", "b" * 40) is None
    finally:
        home.close()
    assert [c.sha for c in h.commits] == [SHA] and h.complete is False and h.reached is False
    assert foreign.seen == [], "a foreign Link was followed"
    assert home.seen[0][1] == "Bearer hf_SECRETtoken"


@pytest.mark.parametrize("link", ["http://localhost:{port}/next", "https://127.0.0.1:{port}/next",
                                  "http://127.0.0.1:{other}/next", "//evil.example/next"])
def test_origin_means_scheme_host_and_port(foreign, link):
    home = _Recorder(_commits_page())
    home.link = link.format(port=home.server_port, other=foreign.server_port)
    try:
        client = HubClient(HubSettings(endpoint=home.url, retries=0))
        h = client.history(RepoId("model", "a/b"), "main", max_pages=3)
    finally:
        home.close()
    assert h.complete is False and len(home.seen) == 1 and foreign.seen == []


def test_history_follows_a_link_on_the_same_origin(hub):
    """The control: the emulator's own absolute and relative Links are followed."""
    hub.add_repo(REPO, files=FILES)
    for i in range(120):
        hub.commit(REPO, {"README.md": str(i)})
    client = HubClient(HubSettings(endpoint=hub.url, retries=0))
    h = client.history(RepoId("model", REPO), "main", max_pages=10)
    assert h.complete is True and len(h.commits) == 122
    home = _Recorder(_commits_page(), link="/api/models/a/b/commits/main?p=1")
    try:
        client = HubClient(HubSettings(endpoint=home.url, retries=0))
        h = client.history(RepoId("model", "a/b"), "main", max_pages=3)
    finally:
        home.close()
    assert len(home.seen) == 3 and h.complete is False  # page cap, each page on the same origin


def test_newest_feed_stops_at_a_foreign_link_and_reports_it(foreign):
    page = json.dumps([{"id": "someone/new-model", "createdAt": "2026-11-01T00:00:00.000Z"}]).encode()
    home = _Recorder(page, link=foreign.url + "/api/models?cursor=x")
    try:
        ns = NamespaceClient(HubClient(HubSettings(endpoint=home.url, token=Secret("hf_SECRETtoken"), retries=0)))
        pages = []
        with pytest.raises(OffOrigin) as e:
            for p in ns.newest("model", page_size=1, max_pages=5):
                pages.append(p)
    finally:
        home.close()
    assert isinstance(e.value, HubError), "the feed job treats it as a failed, incomplete walk"
    assert [[s.id for s in p] for p in pages] == [["someone/new-model"]]
    assert foreign.seen == []
