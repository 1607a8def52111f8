"""Sinks against real sockets: status classification, and the webhook URL never leaking."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import traceback
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from monitor.alerts.render import slack_message
from monitor.alerts.sinks import Sink, SlackSink, StdoutSink, WebhookSink, _retry_after, redact_url
from monitor.detect.findings import Finding, Link
from monitor.errors import SinkError
from tests.emulator import SlackReceiver
from tests.emulator.slack import validate_message

FINDING = Finding.make("revision_changed", "high", "org/model", "main moved <!channel>", key=1,
                       evidence={"repo": "org/model", "old_sha": "a" * 40, "new_sha": "b" * 40},
                       links=(Link("Commit", "https://huggingface.co/org/model/commit/" + "b" * 40),))


@pytest.fixture(scope="module")
def server():
    with SlackReceiver() as r:
        yield r


@pytest.fixture
def receiver(server):
    server.reset()
    yield server
    server.reset()


def secret_forms(r: SlackReceiver) -> list[str]:
    return [r.url, r.path, r.token]


def assert_no_secret(err: SinkError, sink, r: SlackReceiver, caplog) -> None:
    shown = [str(err), repr(err), *map(str, err.args), repr(sink), str(sink), caplog.text,
             "".join(traceback.format_exception(err))]
    for text in shown:
        for secret in secret_forms(r):
            assert secret not in text
    assert err.__cause__ is None and err.__context__ is None  # no chained requests exception


def send_error(sink, finding=FINDING) -> SinkError:
    with pytest.raises(SinkError) as info:
        sink.send(finding)
    return info.value


def test_ok_posts_the_rendered_message(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    sink = SlackSink(receiver.url)
    sink.send(FINDING)
    assert receiver.messages == [slack_message(FINDING)] and receiver.attempts == [200]
    assert isinstance(sink, Sink) and sink.name == "slack"
    assert receiver.token not in caplog.text  # urllib3 logs request paths at DEBUG


def test_500_is_transient(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.fail(500)
    sink = SlackSink(receiver.url)
    err = send_error(sink)
    assert not err.permanent and err.retry_after is None and "HTTP 500 rollup_error" in str(err)
    assert_no_secret(err, sink, receiver, caplog)
    assert receiver.attempts == [500], "no hidden transport retries (a retried POST can double-post)"


@pytest.mark.parametrize("header,expected", [(7, 7.0), (0.5, 0.5)])
def test_429_is_transient_with_retry_after(receiver, caplog, header, expected):
    receiver.rate_limit(1, retry_after=header)
    err = send_error(SlackSink(receiver.url))
    assert not err.permanent and err.retry_after == expected and "429" in str(err)


@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), ("soon", None), ("nan", None), ("-5", 0.0), ("30", 30.0),
    ("99999999", 3600.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_retry_after_parsing(value, expected):
    assert _retry_after(value) == expected


def test_retry_after_http_date_in_future():
    future = datetime(2999, 1, 1, tzinfo=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert _retry_after(future) == 3600.0


@pytest.mark.parametrize("status,body", [(400, "invalid_payload"), (403, "action_prohibited"),
                                         (404, "channel_not_found"), (410, "channel_is_archived")])
def test_client_errors_are_permanent(receiver, caplog, status, body):
    caplog.set_level(logging.DEBUG)
    receiver.fail(status, body=body)
    sink = SlackSink(receiver.url)
    err = send_error(sink)
    assert err.permanent and f"HTTP {status} {body}" in str(err)
    assert_no_secret(err, sink, receiver, caplog)


@pytest.mark.parametrize("status,body", [(404, "no_service"), (410, "channel_is_archived")])
def test_revoked_webhook_is_permanent(receiver, caplog, status, body):
    receiver.gone(status)
    sink = SlackSink(receiver.url)
    err = send_error(sink)
    assert err.permanent and body in str(err)
    assert_no_secret(err, sink, receiver, caplog)


def test_wrong_path_is_no_service(receiver, caplog):
    sink = SlackSink(receiver.base_url + "/services/T000/B000/WRONGTOKEN123")
    err = send_error(sink)
    assert err.permanent and "404 no_service" in str(err) and "WRONGTOKEN123" not in str(err)


def test_timeout_is_transient(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.stall(1.0)
    sink = SlackSink(receiver.url, timeout=0.2)
    err = send_error(sink)
    assert not err.permanent and "timed out" in str(err)
    assert_no_secret(err, sink, receiver, caplog)


def test_connection_refused_is_transient(caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "XXXXREFUSEDSECRET42"
    url = f"http://127.0.0.1:{port}/services/T000/B000/{token}"
    sink = SlackSink(url, timeout=2)
    err = send_error(sink)
    assert not err.permanent and "ConnectionError" in str(err)
    for text in (str(err), repr(sink), caplog.text, "".join(traceback.format_exception(err))):
        assert token not in text and "/services/T000/B000/X" not in text
    assert err.__context__ is None


def test_redact_url_keeps_only_what_identifies_the_webhook():
    assert redact_url("https://hooks.slack.com/services/T0ABC/B0DEF/abcSECRETxyz") == \
        "https://hooks.slack.com/services/T0ABC/B0DEF/***"
    assert redact_url("https://user:pw@example.com:8443/hook/tok?key=secret") == "https://example.com:8443/***"


@pytest.mark.parametrize("payload,error", [
    ({}, "no_text"), ({"text": ""}, "no_text"), ([1], "invalid_payload"),
    ({"text": "x" * 40_001}, "invalid_payload"),
    ({"blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
    ({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]}, "invalid_blocks"),
    ({"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "text": {"type": "markdown", "text": "x"}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "image"}]}, "invalid_blocks"),
])
def test_receiver_enforces_slack_rules(receiver, payload, error):
    resp = requests.post(receiver.url, json=payload, timeout=5)
    assert (resp.status_code, resp.text) == (400, error)
    assert receiver.messages == []


def test_receiver_rejects_non_json_and_accepts_form_payload(receiver):
    assert requests.post(receiver.url, data=b"{nope", timeout=5).text == "invalid_payload"
    ok = requests.post(receiver.url, data={"payload": json.dumps({"text": "hi"})}, timeout=5)
    assert (ok.status_code, ok.text) == (200, "ok") and receiver.messages == [{"text": "hi"}]
    assert validate_message(slack_message(FINDING)) is None


def test_receiver_down_then_up(receiver):
    receiver.down()
    assert requests.post(receiver.url, json={"text": "a"}, timeout=5).status_code == 500
    receiver.up()
    assert requests.post(receiver.url, json={"text": "a"}, timeout=5).status_code == 200
    assert receiver.attempts == [500, 200]


class _Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    replies: list = []
    bodies: list = []

    def do_POST(self):
        self.bodies.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
        status, headers = self.replies.pop(0) if self.replies else (204, {})
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    _Hook.replies, _Hook.bodies = [], []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}/hooks/tok3nSECRET99?key=qSECRET77"
    srv.shutdown()
    srv.server_close()


def test_webhook_sink_posts_the_json_payload(hook):
    srv, url = hook
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    sink = WebhookSink(url, headers={"Authorization": "Bearer hdrSECRET55"}, clock=lambda: now)
    sink.send(FINDING)
    headers, body = _Hook.bodies[0]
    assert json.loads(body) == {**FINDING.to_dict(), "source": "hubwatch", "version": 1, "sent_at": "2025-01-01T00:00:00Z"}
    assert headers["Authorization"] == "Bearer hdrSECRET55"
    assert "SECRET" not in repr(sink)


@pytest.mark.parametrize("status,permanent", [(400, True), (401, True), (422, True), (408, False),
                                              (429, False), (500, False), (503, False), (302, False)])
def test_webhook_sink_classification(hook, caplog, status, permanent):
    caplog.set_level(logging.DEBUG)
    srv, url = hook
    _Hook.replies = [(status, {"Retry-After": "9"})]
    sink = WebhookSink(url, headers={"Authorization": "Bearer hdrSECRET55"})
    err = send_error(sink)
    assert err.permanent is permanent
    assert "SECRET" not in str(err) + repr(sink) + caplog.text
    if status == 429:
        assert err.retry_after == 9.0


def test_stdout_sink_writes_one_clean_line(capsys):
    f = Finding.make("revision_changed", "low", "org/m", "a\nb\x1b[0m", key=2)
    StdoutSink().send(f)
    assert capsys.readouterr().out == f"[LOW] revision_changed org/m: a\\nb\\x1b[0m ({f.fingerprint})\n"
    buf = io.StringIO()
    StdoutSink(buf).send(f)
    assert buf.getvalue().count("\n") == 1


def test_stdout_sink_closed_stream_is_transient():
    buf = io.StringIO()
    buf.close()
    assert send_error(StdoutSink(buf)).permanent is False


# --- bounded generic webhook payloads -----------------------------------------------------------

BIG = Finding.make("risky_change", "critical", "org/model", "a push of 100,000 files", key=3,
                   evidence={"repo": "org/model", "old_sha": "a" * 40, "new_sha": "b" * 40,
                             "files_added": [f"shard-{i:06d}/config.json" for i in range(100_000)],
                             "commits": [{"sha": "c" * 40, "title": "t" * 100_000, "authors": ["x"]}],
                             "rules": [{"rule": "remote_code_config", "severity": "critical"}]})


def test_webhook_payload_is_capped_and_says_what_was_cut(hook):
    srv, url = hook
    WebhookSink(url).send(BIG)
    ((_, body),) = _Hook.bodies
    payload = json.loads(body)
    assert len(body) <= 256_000 < len(json.dumps(BIG.to_dict()))
    cut = {c["path"]: c for c in payload["truncated"]}
    assert cut["evidence.files_added"]["total"] == 100_000
    assert cut["evidence.files_added"]["shown"] == len(payload["evidence"]["files_added"]) > 0
    assert payload["evidence"]["rules"] == [{"rule": "remote_code_config", "severity": "critical"}]
    assert payload["fingerprint"] == BIG.fingerprint and payload["form"] == "full"
    assert len(payload["evidence"]["commits"][0]["title"]) < 100_000


def test_webhook_413_is_retried_at_once_with_the_compact_form(hook):
    srv, url = hook
    _Hook.replies = [(413, {})]
    WebhookSink(url).send(BIG)
    (_, full), (_, compact) = _Hook.bodies
    small = json.loads(compact)
    assert len(compact) < len(full) and small["form"] == "compact"
    assert small["fingerprint"] == BIG.fingerprint and small["severity"] == "critical"
    assert {"path": "evidence.files_added", "total": 100_000, "shown": len(small["evidence"]["files_added"])} \
        in small["truncated"]


def test_webhook_413_to_every_form_is_transient_never_dead_lettered(hook):
    srv, url = hook
    _Hook.replies = [(413, {})] * 3
    err = send_error(WebhookSink(url), BIG)
    assert err.permanent is False and "413" in str(err)
    forms = [json.loads(b).get("form") for _, b in _Hook.bodies]
    assert forms == ["full", "compact", "minimal"]
    assert json.loads(_Hook.bodies[-1][1])["evidence"]["files_added"] == []


def test_webhook_413_to_a_digest_is_transient_never_dead_lettered(hook):
    from monitor.detect.reports import Report

    srv, url = hook
    _Hook.replies = [(413, {})]
    with pytest.raises(SinkError) as info:
        WebhookSink(url).send_report(Report("digest", {"pins": 3}, "2026-11-28T09:00:00Z"))
    assert info.value.permanent is False and "413" in str(info.value)
    assert json.loads(_Hook.bodies[0][1])["event"] == "digest"


def test_a_small_finding_is_sent_whole(hook):
    srv, url = hook
    WebhookSink(url).send(FINDING)
    payload = json.loads(_Hook.bodies[0][1])
    assert "truncated" not in payload and "form" not in payload and payload["evidence"] == FINDING.evidence


# --- connect-time address check: a name that resolves to the metadata service -------------------

@pytest.fixture
def dns(monkeypatch):
    """A local resolver: names in `table` resolve to the given IP, every name asked is recorded.
    (socket.getaddrinfo, not an HfApi method: the check under test is ours.)"""
    real, table, asked = socket.getaddrinfo, {}, []

    def getaddrinfo(host, port, *args, **kw):
        asked.append(host)
        return real(table.get(host, host), port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table, asked


@pytest.mark.parametrize("ip", ["169.254.169.254", "fe80::1", "fd00:ec2::254", "100.100.100.200", "64:ff9b::a9fe:a9fe",
                                "0.0.0.0"])
def test_a_sink_name_resolving_to_a_metadata_address_is_refused_before_connecting(dns, monkeypatch, ip):
    table, _ = dns
    table["hooks.example.net"] = ip
    connects = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, sa: connects.append(sa))
    for sink in (SlackSink("https://hooks.example.net/services/T0/B0/XXXXSECRET"),
                 WebhookSink("https://hooks.example.net/hook?token=XXXXSECRET")):
        err = send_error(sink)
        assert not err.permanent and "resolves to" in str(err) and "XXXXSECRET" not in str(err)
        assert ("unspecified" if ip == "0.0.0.0" else "link-local or cloud metadata") in str(err)
    assert connects == [], "nothing was sent to the forbidden address"


def test_a_sink_connects_to_the_address_it_checked_without_a_second_lookup(dns, receiver):
    """The name is resolved once and the vetted address is the one connected to (no rebinding)."""
    table, asked = dns
    table["relay.example"] = "127.0.0.1"
    port = receiver.url.split(":")[2].split("/")[0]
    sink = SlackSink(receiver.url.replace(f"127.0.0.1:{port}", f"relay.example:{port}"))
    sink.send(FINDING)
    assert len(receiver.messages) == 1
    assert asked.count("relay.example") == 1


def test_plain_http_to_a_name_that_is_not_loopback_is_refused(dns, receiver):
    table, _ = dns
    table["localhost"] = "10.1.2.3"  # /etc/hosts says localhost, the resolver says otherwise
    port = receiver.url.split(":")[2].split("/")[0]
    err = send_error(SlackSink(receiver.url.replace(f"127.0.0.1:{port}", f"localhost:{port}")))
    assert "not loopback (plain http)" in str(err) and receiver.messages == []
