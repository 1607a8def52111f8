"""HTTP endpoints: real requests to 127.0.0.1 against a fake Backend.

Covers every route's success and failure, the hardening (body cap, lying Content-Length, slow and
trickling clients, protocol errors as JSON, prompt stop, loopback binding), authentication of the
Hub webhook and of Slack commands, Slack reply escaping, the delayed Slack answer via a local
receiver (and the refusal to POST anywhere else), and that secrets never show in answers or logs.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import hmac
import json
import logging
import socket
import sqlite3
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitor.config import HttpSettings, Secret
from monitor.detect.lookalike import Match
from monitor.errors import HubError, NotFound, Transient
from monitor.http import HttpServer, HubEvent, HubEventError, RefUpdate, parse_hub_event, slack_command
from monitor.http.hub_events import event_from_json
from monitor.http.slack_command import SlackCommands, intent
from monitor.jobs.lookup import LookupResult
from tests.emulator.slack import assert_literal, validate_message

HOOK_SECRET = "hook-secret-Vq8KzP2wLx"
SIGNING_SECRET = "slack-signing-9fT3mQ7rN2"
SECRETS = (HOOK_SECRET, SIGNING_SECRET)
NOW = 1_750_000_000
SHA_A, SHA_B = "a" * 40, "b" * 40
SLACK_RESPONSE_URL = "https://hooks.slack.com/commands/T000/1234/abcdefSECRETPATH"
NASTY = '<!channel> Meta & <https://evil.example|docs>'


def make_result(name: str) -> LookupResult:
    return LookupResult(
        name=name, exists=True, kind="org", verified=False, created_at="2026-11-20T10:00:00Z",
        followers=3, models=2,
        imitates=(Match(name, "meta-llama", ("homoglyph",), 0.97),),
        risk="high", reasons=(f'display name "{NASTY}" copies meta-llama', "created 7 days ago"))


class FakeBackend:
    def __init__(self) -> None:
        self.hub_webhook_secret: Secret | None = Secret(HOOK_SECRET)
        self.slack_signing_secret: Secret | None = Secret(SIGNING_SECRET)
        self.http_token: Secret | None = None
        self.events: list[HubEvent] = []
        self.lookups: list[str] = []
        self.delay = 0.0
        self.in_flight = self.most_in_flight = 0  # lookups running at once: parallelism without a clock
        self._flight = threading.Lock()
        self.fail: BaseException | None = None
        self.ready: tuple[bool, dict[str, str]] = (True, {"database": "ok", "scheduler": "ok"})
        self.registry = CollectorRegistry()
        Counter("hubwatch_test_runs", "runs", registry=self.registry).inc()

    def lookup(self, name: str) -> LookupResult:
        self.lookups.append(name)
        with self._flight:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.delay:
            time.sleep(self.delay)
        with self._flight:
            self.in_flight -= 1
        if self.fail is not None:
            raise self.fail
        return make_result(name)

    def hub_event(self, event: HubEvent) -> str:
        self.events.append(event)
        return "checked"

    def readiness(self) -> tuple[bool, dict[str, str]]:
        if isinstance(self.ready, BaseException):
            raise self.ready
        return self.ready

    def metrics(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


@pytest.fixture(autouse=True)
def no_real_slack(monkeypatch):
    """A test that defers a Slack answer must give a local response_url; fail any that reaches out."""
    real, attempts = requests.post, []

    def guarded(url, *args, **kw):
        if url.startswith("https://"):
            attempts.append(url)
            raise requests.ConnectionError("tests never leave 127.0.0.1")
        return real(url, *args, **kw)

    monkeypatch.setattr(slack_command.requests, "post", guarded)
    yield
    assert attempts == []


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def make_server(backend):
    servers: list[HttpServer] = []

    def make(max_body: int = 4096, **kw) -> HttpServer:
        kw.setdefault("clock", lambda: float(NOW))
        kw.setdefault("timeout", 2.0)
        srv = HttpServer(HttpSettings("127.0.0.1", 0, max_body), kw.pop("backend", backend), **kw).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def server(make_server) -> HttpServer:
    return make_server()


# --- helpers ---------------------------------------------------------------------------------

def raw(srv: HttpServer, data: bytes, *, half_close: bool = False, timeout: float = 5.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_all(s)


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def hub_payload(**over) -> dict:
    payload = {
        "event": {"action": "update", "scope": "repo.content"},
        "repo": {"type": "model", "name": "meta-llama/Llama-3-8B", "id": "6366c000a2abcdf2fd69a080",
                 "private": False, "headSha": SHA_B.upper(), "owner": {"id": "61d2000c3c2083e1c08af22d"},
                 "url": {"web": "https://huggingface.co/meta-llama/Llama-3-8B"}},
        "updatedRefs": [{"ref": "refs/heads/main", "oldSha": SHA_A, "newSha": SHA_B},
                        {"ref": "refs/tags/v1", "oldSha": None, "newSha": SHA_B}],
        "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
    }
    payload.update(over)
    return payload


def post_hook(srv: HttpServer, body, secret: str | None = HOOK_SECRET, **kw) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Webhook-Secret"] = secret
    return requests.post(srv.url + "/hooks/hub", data=data, headers=headers, timeout=5, **kw)


def slack_signature(body: bytes, ts: str, secret: str = SIGNING_SECRET) -> str:
    # computed here independently of monitor.http.slack_command.sign
    return "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()


def command(text: str, response_url: str = SLACK_RESPONSE_URL) -> bytes:
    return urlencode({"token": "legacy", "team_id": "T000", "channel_id": "C000", "user_id": "U000",
                      "command": "/hubwatch", "text": text, "response_url": response_url,
                      "trigger_id": "1.2.3"}).encode()


def post_slack(srv: HttpServer, body: bytes, *, ts: int | str | None = None, signature: str | None = None,
               sign_body: bytes | None = None, omit: tuple[str, ...] = ()) -> requests.Response:
    ts = str(NOW if ts is None else ts)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": signature or slack_signature(sign_body or body, ts)}
    for name in omit:
        headers.pop(name)
    return requests.post(srv.url + "/slack/commands", data=body, headers=headers, timeout=5)


def wait_for(predicate, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- plain routes ----------------------------------------------------------------------------

def test_healthz(server):
    r = requests.get(server.url + "/healthz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"


def test_head_answers_headers_only(server):
    response = raw(server, b"HEAD /healthz HTTP/1.0\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert status_of(response) == 200 and body == b""
    assert b"Content-Length: 15" in head


@pytest.mark.parametrize("ready,status", [((True, {"database": "ok"}), 200),
                                          ((False, {"database": "ok", "hub": "no answer for 1h"}), 503)])
def test_readyz(server, backend, ready, status):
    backend.ready = ready
    r = requests.get(server.url + "/readyz", timeout=5)
    assert r.status_code == status
    assert r.json() == {"ready": ready[0], "checks": ready[1]}


def test_readyz_when_the_check_itself_fails(server, backend):
    backend.ready = RuntimeError("db locked")
    r = requests.get(server.url + "/readyz", timeout=5)
    assert r.status_code == 503
    assert r.json() == {"ready": False, "checks": {"readiness": "check failed"}}


def test_metrics(server):
    r = requests.get(server.url + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert "hubwatch_test_runs_total 1.0" in r.text


def test_lookup_returns_exactly_the_json_contract(server, backend):
    r = requests.get(server.url + "/v1/lookup/meta-IIama", timeout=5)
    assert r.status_code == 200
    assert r.json() == make_result("meta-IIama").to_json()
    assert backend.lookups == ["meta-IIama"]


@pytest.mark.parametrize("path", ["/v1/lookup/", "/v1/lookup/org%2Fmodel", "/v1/lookup/org/model",
                                  "/v1/lookup/bad%20name", "/v1/lookup/" + "a" * 97, "/v1/lookup/%ff%fe",
                                  "/v1/lookup/%3C!channel%3E",
                                  # the Hub client's rule (validate_repo_id): never sent to the Hub
                                  "/v1/lookup/a..b", "/v1/lookup/a--b", "/v1/lookup/-a", "/v1/lookup/a-",
                                  "/v1/lookup/.a", "/v1/lookup/a.", "/v1/lookup/a.git", "/v1/lookup/a%0A"])
def test_lookup_rejects_invalid_names(server, backend, path):
    r = requests.get(server.url + path, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"].startswith("invalid name: ")
    assert backend.lookups == []


@pytest.mark.parametrize("retry_after,header", [(12.2, "13"), (None, "30")])
def test_lookup_transient_is_503_with_retry_after(server, backend, retry_after, header):
    backend.fail = Transient("Hub timed out at https://hub.example/api", retry_after=retry_after)
    r = requests.get(server.url + "/v1/lookup/meta-IIama", timeout=5)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == header
    assert "hub.example" not in r.text


@pytest.mark.parametrize("exc", [HubError("weird answer from https://hub.example", status=418),
                                 NotFound("gone")])
def test_lookup_other_hub_errors_are_502(server, backend, exc):
    backend.fail = exc
    r = requests.get(server.url + "/v1/lookup/meta-IIama", timeout=5)
    assert r.status_code == 502
    assert set(r.json()) == {"error"} and "hub.example" not in r.text


def test_unexpected_exception_is_500_without_trace(server, backend, caplog):
    backend.fail = KeyError("internal-detail")
    with caplog.at_level(logging.ERROR, logger="hubwatch.http"):
        r = requests.get(server.url + "/v1/lookup/meta-IIama", timeout=5)
    assert r.status_code == 500
    assert r.json() == {"error": "internal error"}
    assert "internal-detail" not in r.text and "Traceback" not in r.text
    assert any(rec.levelno == logging.ERROR for rec in caplog.records)  # the operator still sees it


def test_unknown_path_and_wrong_method(server):
    r = requests.get(server.url + "/nope", timeout=5)
    assert (r.status_code, r.json()) == (404, {"error": "not found"})
    r = requests.post(server.url + "/healthz", data=b"", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = requests.get(server.url + "/hooks/hub", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


@pytest.mark.parametrize("request_bytes,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.0\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(700)) + b"\r\n", 431),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
])
def test_protocol_errors_are_json(server, request_bytes, status):
    response = raw(server, request_bytes)
    assert status_of(response) == status
    assert set(body_of(response)) == {"error"}
    assert b"<html" not in response.lower() and b"GARBAGE" not in response and b"waitress" not in response


def test_unknown_method_is_405(server):
    response = raw(server, b"BREW /healthz HTTP/1.0\r\n\r\n")
    assert status_of(response) == 405 and body_of(response) == {"error": "method not allowed"}


# --- request hardening -----------------------------------------------------------------------

def test_post_without_usable_content_length(server, backend):
    for bad in (b"-1", b"12abc", b"\xd9\xa1\xd9\xa2", b"1" * 20):
        assert status_of(raw(server, b"POST /hooks/hub HTTP/1.0\r\nContent-Length: " + bad + b"\r\n\r\n")) in (400, 413)
    conflicting = b"POST /hooks/hub HTTP/1.0\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    assert status_of(raw(server, conflicting)) == 400
    assert backend.events == []


def test_chunked_bodies_are_read_within_the_cap(server, backend):
    body = json.dumps(hub_payload()).encode()
    head = b"POST /hooks/hub HTTP/1.1\r\nHost: x\r\nX-Webhook-Secret: " + HOOK_SECRET.encode()
    chunked = head + b"\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    assert status_of(raw(server, chunked)) == 200 and len(backend.events) == 1
    big = b"x" * 5000
    too_big = head + b"\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)
    assert status_of(raw(server, too_big)) == 413 and len(backend.events) == 1


def test_body_over_the_cap_is_413(server, backend):
    big = json.dumps(hub_payload(padding="x" * 5000)).encode()
    r = post_hook(server, big)
    assert r.status_code == 413 and "4096" in r.json()["error"]
    # announced only: refused before a single body byte is read
    response = raw(server, b"POST /hooks/hub HTTP/1.0\r\nContent-Length: 999999999\r\n\r\n", half_close=True)
    assert status_of(response) == 413
    assert backend.events == []


def test_body_cap_is_inclusive(make_server, backend):
    body = json.dumps(hub_payload()).encode()
    srv = make_server(max_body=len(body))
    assert post_hook(srv, body).status_code == 200
    assert post_hook(srv, body + b" ").status_code == 413


def test_lying_content_length(server, backend):
    body = json.dumps(hub_payload()).encode()
    head = b"POST /hooks/hub HTTP/1.0\r\nX-Webhook-Secret: " + HOOK_SECRET.encode()
    # claims less than it sends: exactly Content-Length bytes are read, the rest is never looked at
    response = raw(server, head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body + b"]" * 20000)
    assert status_of(response) == 200 and len(backend.events) == 1
    # claims more than it sends, then hangs up: nothing dispatched (no one is left to answer)
    response = raw(server, head + b"\r\nContent-Length: %d\r\n\r\n" % (len(body) + 50) + body, half_close=True)
    assert response == b"" or status_of(response) == 400
    assert len(backend.events) == 1


def test_slow_client_is_dropped(make_server, backend):
    srv = make_server(timeout=0.5)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        # Dropped (EOF) well within the socket's own 5 s timeout, which would raise instead.
        assert read_all(s) == b""


def test_trickling_client_is_dropped_by_the_read_deadline(make_server, backend):
    """One byte every 0.1 s never trips the 0.5 s per-read timeout; the whole-request deadline does."""
    srv = make_server(timeout=0.5)
    body = json.dumps(hub_payload()).encode()
    request = (b"POST /hooks/hub HTTP/1.0\r\nX-Webhook-Secret: " + HOOK_SECRET.encode()
               + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        start = time.monotonic()
        closed = False
        for i in range(len(request)):
            try:
                s.sendall(request[i:i + 1])
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - start > 3:
                break
        if not closed:  # a server without the deadline would have answered the full request by now
            assert read_all(s) == b""
    assert backend.events == []


def test_half_sent_body_is_dropped(make_server, backend):
    srv = make_server(timeout=0.5)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /hooks/hub HTTP/1.0\r\nX-Webhook-Secret: " + HOOK_SECRET.encode()
                  + b"\r\nContent-Length: 100\r\n\r\n{\"event\":")
        assert read_all(s) == b""  # EOF, not the socket's 5 s timeout
    assert backend.events == []


def test_stop_is_prompt_and_closes_everything(make_server):
    srv = make_server(timeout=30)
    port = srv.port
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    idle.sendall(b"GET /healthz HTTP/1.0\r\n")
    time.sleep(0.1)
    srv.stop()
    assert read_all(idle) == b""  # an open connection is dropped, not left to its 30 s timeout
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    srv.stop()  # idempotent


def test_default_settings_bind_loopback_only(backend):
    defaults = HttpSettings()
    assert defaults.host == "127.0.0.1"
    srv = HttpServer(dataclasses.replace(defaults, port=0), backend).start()
    try:
        assert srv.address[0] == "127.0.0.1" and srv.port > 0
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200
        other = _non_loopback_address()
        if other:
            with pytest.raises(OSError):
                socket.create_connection((other, srv.port), timeout=1).close()
    finally:
        srv.stop()


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing interface
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


def test_start_twice_and_unstarted_address(backend):
    srv = HttpServer(HttpSettings("127.0.0.1", 0), backend)
    with pytest.raises(RuntimeError):
        _ = srv.port
    with srv:
        with pytest.raises(RuntimeError):
            srv.start()


# --- Hub webhook -----------------------------------------------------------------------------

def test_hub_hook_accepts_a_valid_event(server, backend):
    r = post_hook(server, hub_payload())
    assert (r.status_code, r.json()) == (200, {"status": "checked"})
    assert backend.events == [HubEvent(
        action="update", scope="repo.content", repo_type="model", repo_name="meta-llama/Llama-3-8B",
        head_sha=SHA_B, updated_refs=(RefUpdate("refs/heads/main", SHA_A, SHA_B),
                                      RefUpdate("refs/tags/v1", None, SHA_B)),
        moved_to=None, raw_id="6366c000a2abcdf2fd69a080")]
    assert backend.events[0].key == "model:meta-llama/llama-3-8b"


@pytest.mark.parametrize("secret", [None, "", "wrong", HOOK_SECRET + "x", HOOK_SECRET[:-1], HOOK_SECRET.upper()])
def test_hub_hook_needs_the_secret(server, backend, secret):
    r = post_hook(server, hub_payload(), secret=secret)
    assert r.status_code == 401
    assert backend.events == []


def test_hub_hook_secret_in_query_string_is_not_accepted(server, backend):
    r = requests.post(server.url + f"/hooks/hub?secret={HOOK_SECRET}", json=hub_payload(), timeout=5)
    assert r.status_code == 401 and backend.events == []


def test_hub_hook_is_disabled_without_a_secret(server, backend):
    backend.hub_webhook_secret = None
    r = post_hook(server, hub_payload(), secret="anything")
    assert r.status_code == 401
    assert "disabled" in r.json()["error"]
    assert backend.events == []


@pytest.mark.parametrize("body", [
    b"", b"not json", b"\xff\xfe{}", b"[1, 2]", b"null", b'"text"', b"[" * 100_000,
    b'{"repo": {"type": "model", "name": "a/b"}}',
    json.dumps(hub_payload(event={"action": "update"})).encode(),
    json.dumps(hub_payload(repo={"type": "kernel", "name": "a/b"})).encode(),
    json.dumps(hub_payload(repo={"type": "model", "name": "a/b/c"})).encode(),
    json.dumps(hub_payload(repo={"type": "model", "name": "a/b", "headSha": "main"})).encode(),
    json.dumps(hub_payload(updatedRefs={"ref": "refs/heads/main"})).encode(),
    json.dumps(hub_payload(updatedRefs=[{"ref": "main", "newSha": SHA_A}])).encode(),
    json.dumps(hub_payload(updatedRefs=[{"ref": "refs/heads/x", "newSha": 12}])).encode(),
    json.dumps(hub_payload(movedTo={"owner": {"id": "x"}})).encode(),
])
def test_hub_hook_rejects_unusable_payloads(server, backend, body):
    r = post_hook(server, body) if len(body) <= 4096 else None
    if r is None:  # the nesting bomb is bigger than this server's cap: parse it directly
        with pytest.raises(HubEventError):
            parse_hub_event(body)
        return
    assert r.status_code == 400
    message = r.json()["error"]
    assert message.startswith("bad webhook payload: ") and "\n" not in message
    assert backend.events == []


def test_parser_reads_moves_and_tolerates_unknown_scopes():
    moved = parse_hub_event(json.dumps(hub_payload(
        event={"action": "move", "scope": "repo"}, movedTo={"name": "new-org/Llama", "owner": {"id": "1"}},
        updatedRefs=None)).encode())
    assert (moved.action, moved.moved_to, moved.updated_refs) == ("move", "new-org/Llama", ())
    future = event_from_json(hub_payload(event={"action": "update", "scope": "repo.config.dois"},
                                         updatedConfig={"private": True}))
    assert future.scope == "repo.config.dois"
    deleted_ref = event_from_json(hub_payload(updatedRefs=[{"ref": "refs/heads/dev", "oldSha": SHA_A,
                                                            "newSha": None}]))
    assert deleted_ref.updated_refs == (RefUpdate("refs/heads/dev", SHA_A, None),)
    legacy = event_from_json(hub_payload(repo={"type": "model", "name": "gpt2"}))
    assert (legacy.repo_name, legacy.head_sha, legacy.raw_id) == ("gpt2", None, None)
    with pytest.raises(HubEventError):
        parse_hub_event(b"{}" + b" " * 100, max_bytes=50)
    with pytest.raises(HubEventError):
        parse_hub_event(b'{"x": ' + b"1" * 5000 + b"}")  # int too long for Python to convert


# Hypothesis: the parser raises HubEventError (a ValueError) and nothing else, whatever it is fed.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25)


def _either(valid):
    return st.one_of(valid, JSON_VALUES)


NEAR_VALID = st.fixed_dictionaries({
    "event": _either(st.fixed_dictionaries({"action": _either(st.sampled_from(["update", "move", "create"])),
                                            "scope": _either(st.sampled_from(["repo", "repo.content"]))})),
    "repo": _either(st.fixed_dictionaries({
        "type": _either(st.sampled_from(["model", "dataset", "space"])),
        "name": _either(st.sampled_from(["org/name", "gpt2", "a/b/c", "", "x" * 120])),
        "headSha": _either(st.sampled_from([SHA_A, SHA_A.upper(), "abc"])),
        "id": _either(st.text(max_size=70))})),
    "updatedRefs": _either(st.lists(_either(st.fixed_dictionaries({
        "ref": _either(st.sampled_from(["refs/heads/main", "refs/pr/1", "main", "refs/ x"])),
        "oldSha": _either(st.sampled_from([None, SHA_A])),
        "newSha": _either(st.sampled_from([None, SHA_B]))})), max_size=3)),
    "movedTo": _either(st.fixed_dictionaries({"name": _either(st.just("new/name"))})),
})


def _parse_or_reject(parse, value) -> None:
    try:
        event = parse(value)
    except HubEventError as e:
        assert isinstance(e, ValueError) and "\n" not in str(e)
        return
    assert isinstance(event, HubEvent)
    assert all(isinstance(getattr(event, f), str) for f in ("action", "scope", "repo_type", "repo_name"))
    assert all(isinstance(r, RefUpdate) for r in event.updated_refs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES | NEAR_VALID)
def test_parser_never_crashes_on_json(value):
    _parse_or_reject(event_from_json, value)
    _parse_or_reject(parse_hub_event, json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parser_never_crashes_on_bytes(data):
    _parse_or_reject(parse_hub_event, data)


# --- Slack slash command ---------------------------------------------------------------------

def test_slack_lookup_answers_in_time_and_escapes_hub_text(server, backend):
    r = post_slack(server, command("lookup meta-IIama"))
    assert r.status_code == 200
    msg = r.json()
    assert msg["response_type"] == "ephemeral" and validate_message(msg) is None
    assert_literal(msg, "<!channel> Meta & <https://evil.example|docs>", in_fallback=False)
    assert "meta-IIama" in msg["text"] and "HIGH" in msg["text"]
    assert backend.lookups == ["meta-IIama"]


def test_slack_bare_name_is_a_lookup(server, backend):
    r = post_slack(server, command("  meta-IIama "))
    assert r.json()["response_type"] == "ephemeral"
    assert backend.lookups == ["meta-IIama"]


@pytest.mark.parametrize("text,expect", [("help", "lookup NAME"), ("", "lookup NAME"),
                                         ("lookup", "Usage:"), ("lookup a b", "Usage:"), ("a b", "Usage:")])
def test_slack_help_and_usage(server, backend, text, expect):
    msg = post_slack(server, command(text)).json()
    assert msg["response_type"] == "ephemeral" and expect in msg["text"]
    assert backend.lookups == []


@pytest.mark.parametrize("name", ["<!channel>/x", "a..b", "a--b", "-a", "a.git", "x" * 97])
def test_slack_invalid_name_is_an_ephemeral_error(server, backend, name):
    msg = post_slack(server, command(f"lookup {name}")).json()
    assert msg["response_type"] == "ephemeral"
    assert "not a Hub name" in msg["text"] and "<!channel>" not in msg["text"]
    assert backend.lookups == []


@pytest.mark.parametrize("exc,expect", [(Transient("timeout"), "not answering"), (HubError("odd"), "unexpected"),
                                        (RuntimeError("boom"), "internal error")])
def test_slack_lookup_failures_are_ephemeral_text(server, backend, exc, expect):
    backend.fail = exc
    r = post_slack(server, command("meta-IIama"))
    assert r.status_code == 200 and expect in r.json()["text"] and "boom" not in r.text


@pytest.mark.parametrize("case", ["wrong_secret", "garbage_sig", "old", "future", "tampered", "no_ts", "no_sig",
                                  "bad_ts"])
def test_slack_rejects_unverified_requests(server, backend, case):
    body = command("meta-IIama")
    kw: dict = {
        "wrong_secret": {"signature": slack_signature(body, str(NOW), "not-the-secret")},
        "garbage_sig": {"signature": "v0=" + "0" * 64},
        "old": {"ts": NOW - 301},
        "future": {"ts": NOW + 301},
        "tampered": {"sign_body": command("meta-llama")},
        "no_ts": {"omit": ("X-Slack-Request-Timestamp",)},
        "no_sig": {"omit": ("X-Slack-Signature",)},
        "bad_ts": {"ts": "12.5"},
    }[case]
    r = post_slack(server, body, **kw)
    assert r.status_code == 401 and set(r.json()) == {"error"}
    assert backend.lookups == []


def test_slack_accepts_the_edges_of_the_window(server, backend):
    assert post_slack(server, command("meta-IIama"), ts=NOW - 300).status_code == 200
    assert post_slack(server, command("meta-IIama"), ts=NOW + 300).status_code == 200


def test_slack_is_disabled_without_a_signing_secret(server, backend):
    backend.slack_signing_secret = None
    r = post_slack(server, command("meta-IIama"))
    assert r.status_code == 401 and "disabled" in r.json()["error"]
    assert backend.lookups == []


def test_slack_slow_lookup_answers_later_via_response_url(make_server, backend, slack):
    backend.delay = 0.5
    srv = make_server(slack_deadline=0.15, response_url_prefixes=[slack.base_url + "/"])
    r = post_slack(srv, command("lookup meta-IIama", response_url=slack.url))
    assert r.json()["response_type"] == "ephemeral" and r.json()["text"].startswith(":mag: Looking up")
    assert wait_for(lambda: slack.messages, 3.0)
    [msg] = slack.messages
    assert msg["response_type"] == "ephemeral" and "HIGH" in msg["text"]
    assert_literal(msg, "<!channel> Meta & <https://evil.example|docs>", in_fallback=False)


@pytest.mark.parametrize("prefixes", [(), ("http://127.0.0.1:1/",)])
def test_slack_never_posts_to_an_unlisted_response_url(make_server, backend, slack, prefixes):
    backend.delay = 0.3
    srv = make_server(slack_deadline=0.1, response_url_prefixes=prefixes)
    r = post_slack(srv, command("meta-IIama", response_url=slack.url))
    assert "try again" in r.json()["text"]
    time.sleep(0.5)
    assert slack.attempts == [] and slack.messages == []


@pytest.mark.parametrize("url,ok", [
    ("https://hooks.slack.com/commands/T1/2/x", True),
    ("http://hooks.slack.com/commands/T1/2/x", False),
    ("https://hooks.slack.com.evil.example/commands", False),
    ("https://hooks.slack.com@evil.example/commands", False),
    ("https://hooks.slack.com:8443/commands", False),
    ("https://evil.example/?https://hooks.slack.com/", False),
    ("https://hooks.slack.com/commands\r\nHost: evil", False),
    ("https://hooks.slack.com\\@evil.example/", False),
    ("http://127.0.0.1:8080/hook/x", True),
    ("http://127.0.0.1:80801/hook/x", False),
    ("http://127.0.0.1:8080/other", False),
    ("http://169.254.169.254/latest/meta-data", False),
    ("", False),
])
def test_response_url_allow_list(url, ok):
    slack = SlackCommands(lambda name: make_result(name), allowed_prefixes=("http://127.0.0.1:8080/hook/",))
    assert slack.may_post(url) is ok


def test_slack_busy_when_too_many_lookups_are_in_flight(make_server, backend):
    backend.delay = 0.4
    srv = make_server(slack_deadline=0.05, slack_jobs=1)
    nowhere = "http://127.0.0.1:1/not-allowed"  # never a real Slack URL in a test that defers
    first = post_slack(srv, command("meta-IIama", response_url=nowhere))
    second = post_slack(srv, command("meta-IIama", response_url=nowhere), ts=NOW - 1)  # not a replay
    assert "taking long" in first.json()["text"] and "busy" in second.json()["text"]


def test_intent():
    assert intent("") == ("help", None) and intent("HELP") == ("help", None)
    assert intent("lookup help") == ("lookup", "help")  # an org named "help" can still be looked up
    assert intent("Lookup x") == ("lookup", "x") and intent("x") == ("lookup", "x")


# --- secrets and logs ------------------------------------------------------------------------

def test_secrets_never_in_answers_or_logs(make_server, backend, caplog, slack):
    backend.delay = 0.3
    srv = make_server(slack_deadline=0.1, response_url_prefixes=[slack.base_url + "/"])
    caplog.set_level(logging.DEBUG)
    answers = [
        requests.get(srv.url + f"/healthz?token={HOOK_SECRET}", timeout=5),
        requests.get(srv.url + f"/nope?secret={SIGNING_SECRET}", timeout=5),
        post_hook(srv, hub_payload()),
        post_hook(srv, hub_payload(), secret=SIGNING_SECRET),
        requests.post(srv.url + f"/hooks/hub?secret={HOOK_SECRET}", data=HOOK_SECRET.encode(),
                      headers={"X-Webhook-Secret": HOOK_SECRET}, timeout=5),
        post_slack(srv, command("meta-IIama", response_url=slack.url)),
        post_slack(srv, command("help") + f"&channel_id={SIGNING_SECRET}".encode()),
        post_slack(srv, command("x", response_url=slack.url), signature="v0=" + HOOK_SECRET),
    ]
    assert wait_for(lambda: slack.messages, 3.0)
    for r in answers:
        everything = r.text + json.dumps(dict(r.headers))
        assert not any(s in everything for s in SECRETS)
        assert "Traceback" not in everything
    ours = [rec for rec in caplog.records if rec.name.startswith("hubwatch")]
    assert ours, "the access log should have recorded the requests"
    logged = "\n".join(rec.getMessage() + str(rec.exc_text or "") for rec in ours)
    assert not any(s in logged for s in SECRETS)
    assert slack.token not in logged and "SECRETPATH" not in logged  # response_urls are capabilities
    assert "?" not in logged and "X-Webhook-Secret" not in logged and "X-Slack" not in logged
    access = [rec for rec in ours if rec.getMessage().startswith(("GET ", "POST "))]
    assert access and all(rec.levelno == logging.DEBUG for rec in access)


def test_no_access_log_above_debug(server, caplog):
    caplog.set_level(logging.INFO, logger="hubwatch.http")
    requests.get(server.url + "/healthz", timeout=5)
    requests.get(server.url + "/nope", timeout=5)
    assert not [rec for rec in caplog.records if rec.name == "hubwatch.http"]


def test_concurrent_requests_are_served_in_parallel(make_server, backend):
    backend.delay = 0.3
    srv = make_server()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        requests.get(srv.url + "/v1/lookup/meta-IIama", timeout=5).status_code)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 5 and backend.most_in_flight >= 2, "lookups were served one at a time"


# --- who may ask: Bearer token, rate limit, cache, replays -------------------------------------

HTTP_TOKEN = "http-token-Sekrit-123"


@pytest.mark.parametrize("auth", [None, "", "Bearer", "Bearer wrong", f"Basic {HTTP_TOKEN}", f"Bearer {HTTP_TOKEN}x",
                                  f"Bearer {HTTP_TOKEN[:-1]}", HTTP_TOKEN])
def test_lookup_and_metrics_need_the_bearer_token_when_configured(server, backend, auth):
    backend.http_token = Secret(HTTP_TOKEN)
    headers = {} if auth is None else {"Authorization": auth}
    for path in ("/v1/lookup/meta-IIama", "/metrics"):
        r = requests.get(server.url + path, headers=headers, timeout=5)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert HTTP_TOKEN not in r.text
    assert backend.lookups == []


def test_with_the_token_lookup_and_metrics_answer_and_health_stays_open(server, backend):
    backend.http_token = Secret(HTTP_TOKEN)
    auth = {"Authorization": f"bearer  {HTTP_TOKEN}"}
    assert requests.get(server.url + "/v1/lookup/meta-IIama", headers=auth, timeout=5).status_code == 200
    assert requests.get(server.url + "/metrics", headers=auth, timeout=5).status_code == 200
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(server.url + "/readyz", timeout=5).status_code == 200
    assert post_hook(server, hub_payload()).status_code == 200, "Hub webhooks keep their own secret"
    assert post_slack(server, command("help")).status_code == 200, "Slack keeps its signature"


def test_lookups_are_rate_limited_with_429_and_retry_after(server, backend):
    answers = [requests.get(f"{server.url}/v1/lookup/name-{i}", timeout=5) for i in range(15)]
    codes = [r.status_code for r in answers]
    assert codes[:10] == [200] * 10 and codes[10:] == [429] * 5, codes
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in answers[10:])
    assert len(backend.lookups) == 10, "a refused lookup costs the Hub nothing"


def test_lookups_are_answered_from_a_short_cache(server, backend):
    for _ in range(30):
        assert requests.get(f"{server.url}/v1/lookup/meta-IIama", timeout=5).status_code == 200
    r = requests.get(f"{server.url}/v1/lookup/META-iiama", timeout=5)
    assert r.status_code == 200 and backend.lookups == ["meta-IIama"]


def test_a_refused_budget_is_still_503(server, backend):
    backend.fail = Transient("Hub request budget spent for this window", retry_after=120)
    r = requests.get(f"{server.url}/v1/lookup/meta-IIama", timeout=5)
    assert r.status_code == 503 and r.headers["Retry-After"] == "120"


def test_slack_lookups_share_the_rate_limit_and_say_slow_down(server, backend):
    for i in range(10):
        requests.get(f"{server.url}/v1/lookup/name-{i}", timeout=5)
    r = post_slack(server, command("lookup other-name"))
    assert r.status_code == 200 and r.json()["response_type"] == "ephemeral"
    assert "slow down" in r.json()["text"] and "other-name" not in backend.lookups


def test_a_signed_slack_request_is_accepted_once(server, backend):
    body = command("lookup meta-IIama")
    assert post_slack(server, body).status_code == 200
    replay = post_slack(server, body)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]
    assert backend.lookups == ["meta-IIama"]
    assert post_slack(server, body, ts=NOW + 1).status_code == 200, "a new signed request is fine"


def test_replay_cache_is_bounded_and_fails_closed():
    cache = slack_command.ReplayCache(max_entries=3)
    for i in range(3):
        assert cache.first_time(f"v0={i}", str(NOW), NOW)
    assert not cache.first_time("v0=9", str(NOW), NOW), "full of live entries: refuse"
    assert cache.first_time("v0=9", str(NOW), NOW + 301), "expired entries make room"
    assert not cache.first_time("v0=9", str(NOW), NOW + 302)


def test_a_slack_replay_is_refused_after_a_restart(make_server, backend, tmp_path):
    """The accepted signatures live in the state database: a daemon restarted within the 5-minute
    window (new server, new process memory, same database) still refuses the replay."""
    from monitor.store import Store

    body = command("lookup meta-IIama")
    with Store.open(tmp_path / "state.db") as store:
        backend.first_slack_request = store.first_slack_request
        before = make_server()
        assert post_slack(before, body).status_code == 200
        before.stop()
    with Store.open(tmp_path / "state.db") as store:
        backend.first_slack_request = store.first_slack_request
        after = make_server()
        replay = post_slack(after, body)
        assert replay.status_code == 401 and "replay" in replay.json()["error"]
        assert backend.lookups == ["meta-IIama"], "the replay ran no lookup"
        assert post_slack(after, body, ts=NOW + 1).status_code == 200, "a new signed request is fine"
        assert store.db.execute("SELECT count(*) FROM slack_replays").fetchone()[0] == 2
        assert store.first_slack_request("v0=later", NOW + 2000.0, NOW + 1000.0)
        assert store.db.execute("SELECT signature FROM slack_replays").fetchall() == [("v0=later",)], \
            "signatures past their window are forgotten: the table stays small"


def test_a_replay_check_that_cannot_reach_the_database_refuses():
    def broken(*_):
        raise sqlite3.OperationalError("database is locked")

    cache = slack_command.ReplayCache(persist=broken)
    assert not cache.first_time("v0=1", str(NOW), NOW)


# --- connection bounds -------------------------------------------------------------------------

class _NoDescriptors:
    """The listening socket as seen by the server, except that accept() fails with EMFILE."""

    def __init__(self, real: socket.socket):
        self.real, self.accepts = real, 0

    def accept(self):
        self.accepts += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_accept_failing_with_emfile_does_not_spin(make_server):
    srv = make_server()
    inner = srv._server
    fake = _NoDescriptors(inner.socket)
    inner.socket = fake
    waiting = socket.create_connection(("127.0.0.1", srv.port), timeout=5)  # the listener stays readable
    try:
        time.sleep(1.5)
        # a loop retrying at once makes 10^4..10^6 attempts in that time; a pause makes a handful
        assert 1 <= fake.accepts <= 10, fake.accepts
        inner.socket = fake.real  # descriptors are back: the waiting client is served
        waiting.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert status_of(read_all(waiting)) == 200
    finally:
        waiting.close()


def test_connections_are_capped_and_idle_ones_make_room(make_server):
    srv = make_server(timeout=30, max_connections=20)
    idle = []
    try:
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /heal")  # begun, never finished
            idle.append(s)
        assert wait_for(lambda: len(srv._server.active_channels) >= 20)
        assert len(srv._server.active_channels) <= 20, "never more open connections than the cap"
        r = requests.get(srv.url + "/healthz", timeout=10)  # queued behind 40 waiting ones
        assert r.status_code == 200 and len(srv._server.active_channels) <= 20
    finally:
        for s in idle:
            s.close()
