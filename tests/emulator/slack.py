"""A real HTTP server that behaves like a Slack incoming webhook, for tests.

Why a real server and not a mocked `requests`: the sinks' behaviour that matters (timeouts, refused
connections, status classification, URLs leaking into exception texts) only shows up on real sockets.
Validation follows Slack's documented rules and errs on the strict side (lengths are counted in UTF-16
units), so a message it accepts is one Slack accepts; errors use Slack's status codes and body strings.
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

BLOCK_TYPES = {"section", "header", "context", "divider", "actions"}
MAX_BLOCKS, SECTION_TEXT, FIELD_TEXT, MAX_FIELDS = 50, 3000, 2000, 10
HEADER_TEXT, CONTEXT_ELEMENTS, MESSAGE_TEXT, BLOCK_ID = 150, 10, 40_000, 255


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _text_obj(obj, limit: int, *, plain_only: bool = False) -> str | None:
    """None if `obj` is a valid text object of at most `limit` characters, else the reason."""
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return "text object needs type plain_text or mrkdwn"
    if plain_only and obj["type"] != "plain_text":
        return "plain_text required"
    text = obj.get("text")
    if not isinstance(text, str) or not 1 <= _u16(text) <= limit:
        return f"text must be 1..{limit} characters"
    allowed = {"type", "text", "emoji"} if obj["type"] == "plain_text" else {"type", "text", "verbatim"}
    if set(obj) - allowed:
        return f"unexpected keys {sorted(set(obj) - allowed)}"
    return None


def _block(block) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return "unknown block type"
    if "block_id" in block and (not isinstance(block["block_id"], str) or len(block["block_id"]) > BLOCK_ID):
        return "bad block_id"
    kind = block["type"]
    if kind == "header":
        return _text_obj(block.get("text"), HEADER_TEXT, plain_only=True)
    if kind == "divider":
        return None if set(block) <= {"type", "block_id"} else "divider takes no fields"
    if kind == "section":
        if "text" not in block and "fields" not in block:
            return "section needs text or fields"
        if "text" in block and (err := _text_obj(block["text"], SECTION_TEXT)):
            return err
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_FIELDS:
                return f"fields must be 1..{MAX_FIELDS}"
            return next((e for f in fields if (e := _text_obj(f, FIELD_TEXT))), None)
        return None
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            return f"context needs 1..{CONTEXT_ELEMENTS} elements"
        return next((e for el in elements if (e := _text_obj(el, SECTION_TEXT))), None)
    elements = block.get("elements")  # actions: buttons only, which is all an alert could want
    if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
        return "actions needs 1..25 elements"
    for el in elements:
        if not isinstance(el, dict) or el.get("type") != "button":
            return "only buttons supported"
        if err := _text_obj(el.get("text"), 75, plain_only=True):
            return err
        if "url" in el and (not isinstance(el["url"], str) or len(el["url"]) > 3000):
            return "bad button url"
    return None


def validate_message(payload) -> tuple[int, str] | None:
    """None if Slack would accept `payload`, else (status, Slack's error string)."""
    if not isinstance(payload, dict):
        return 400, "invalid_payload"
    text, blocks = payload.get("text"), payload.get("blocks")
    if not text and not blocks:
        return 400, "no_text"
    if text is not None and (not isinstance(text, str) or _u16(text) > MESSAGE_TEXT):
        return 400, "invalid_payload"
    for key in ("unfurl_links", "unfurl_media", "mrkdwn"):
        if key in payload and not isinstance(payload[key], bool):
            return 400, "invalid_payload"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            return 400, "invalid_blocks"
        if any(_block(b) for b in blocks):
            return 400, "invalid_blocks"
    return None


class SlackReceiver:
    """Slack incoming-webhook emulator: `.url` accepts messages, `.messages` holds what was accepted."""

    def __init__(self) -> None:
        self.token = "XXXX" + secrets.token_hex(10).upper()
        self.path = f"/services/T000/B000/{self.token}"
        self.messages: list[dict] = []
        self.attempts: list[int] = []
        self._lock = threading.Lock()
        self.reset()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = self.base_url + self.path
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-receiver", daemon=True)
        self._thread.start()

    # fault API ---------------------------------------------------------------------------------
    def fail(self, status: int = 500, times: int = 1, body: str = "rollup_error",
             retry_after: float | None = None) -> None:
        """Answer the next `times` well-addressed POSTs with `status`/`body` instead of accepting them."""
        with self._lock:
            self._faults.extend([(status, body, retry_after)] * times)

    def rate_limit(self, times: int, retry_after: float = 1) -> None:
        self.fail(429, times, "rate_limited", retry_after)

    def down(self) -> None:
        with self._lock:
            self._down = True

    def up(self) -> None:
        with self._lock:
            self._down = False

    def gone(self, status: int = 404) -> None:
        """The webhook was revoked (404 no_service) or its channel archived (410 channel_is_archived)."""
        with self._lock:
            self._gone = (status, "channel_is_archived" if status == 410 else "no_service")

    def stall(self, seconds: float, times: int = 1) -> None:
        """Sleep before answering the next `times` requests (client timeouts)."""
        with self._lock:
            self._stalls.extend([seconds] * times)

    def reset(self) -> None:
        with self._lock:
            self._faults: deque = deque()
            self._stalls: deque = deque()
            self._down = False
            self._gone: tuple[int, str] | None = None
            self.messages.clear()
            self.attempts.clear()

    def texts(self) -> list[str]:
        return [m.get("text", "") for m in self.messages]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    stop = close  # tests/conftest.py stops every emulator with .stop()

    def __enter__(self) -> "SlackReceiver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # request handling --------------------------------------------------------------------------
    def _answer(self, method: str, path: str, ctype: str, body: bytes) -> tuple[int, str, float | None]:
        with self._lock:
            stall = self._stalls.popleft() if self._stalls else 0
        if stall:
            time.sleep(stall)
        with self._lock:
            if path != self.path:
                result = (404, "no_service", None)
            elif method != "POST":
                result = (405, "invalid_method", None)
            elif self._gone:
                result = (*self._gone, None)
            elif self._down:
                result = (500, "rollup_error", None)
            elif self._faults:
                result = self._faults.popleft()
            else:
                result = self._accept(ctype, body)
            self.attempts.append(result[0])
            return result

    def _accept(self, ctype: str, body: bytes) -> tuple[int, str, float | None]:
        try:
            if ctype.startswith("application/x-www-form-urlencoded"):
                payload = json.loads(parse_qs(body.decode("utf-8"))["payload"][0])
            else:
                payload = json.loads(body.decode("utf-8"))
        except (ValueError, KeyError, UnicodeDecodeError):
            return 400, "invalid_payload", None
        if err := validate_message(payload):
            return (*err, None)
        self.messages.append(payload)
        return 200, "ok", None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: SlackReceiver

    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/ack stalls
        return sock, addr

    def handle_error(self, request, client_address) -> None:
        """A client that timed out and hung up (stall()) is expected; anything else is shown."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, text, retry_after = self.server.receiver._answer(
            self.command, self.path, self.headers.get("Content-Type", ""), body)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET = do_PUT = _handle

    def log_message(self, *args) -> None:  # keep test output (and the webhook path) out of stderr
        pass
