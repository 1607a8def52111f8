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
import unicodedata
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

BLOCK_TYPES = {"section", "header", "context", "divider", "actions", "rich_text"}
MAX_BLOCKS, SECTION_TEXT, FIELD_TEXT, MAX_FIELDS = 50, 3000, 2000, 10
HEADER_TEXT, CONTEXT_ELEMENTS, MESSAGE_TEXT, BLOCK_ID = 150, 10, 40_000, 255
# rich_text (docs.slack.dev "Rich text block"): `elements` of rich_text_section, rich_text_list,
# rich_text_preformatted, rich_text_quote; a list holds sections only and has style bullet|ordered;
# sections hold inline elements (text, link, emoji, user, channel, usergroup, broadcast, date, color);
# text styles are bold, italic, strike, code (booleans). Slack documents no length for a text element:
# we hold each to the section-text limit and every block to the message budget, the strict side.
RICH_CONTAINERS = {"rich_text_section", "rich_text_preformatted", "rich_text_quote"}
RICH_INLINE = {"text", "link", "emoji", "user", "channel", "usergroup", "broadcast", "date", "color"}
RICH_STYLES = {"bold", "italic", "strike", "code"}
RICH_TEXT, RICH_ELEMENTS, LINK_URL = 3000, 100, 3000


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


def _style(el: dict) -> str | None:
    style = el.get("style")
    if style is None:
        return None
    if not isinstance(style, dict) or set(style) - RICH_STYLES or not all(isinstance(v, bool) for v in style.values()):
        return f"style keys must be among {sorted(RICH_STYLES)}, booleans"
    return None


def _inline(el) -> str | None:
    if not isinstance(el, dict) or el.get("type") not in RICH_INLINE:
        return "unknown rich text element"
    kind = el["type"]
    if kind == "text":
        text = el.get("text")
        if not isinstance(text, str) or not 1 <= _u16(text) <= RICH_TEXT:
            return f"rich text `text` must be 1..{RICH_TEXT} characters"
        if set(el) - {"type", "text", "style"}:
            return "unexpected keys in a rich text `text`"
        return _style(el)
    if kind == "link":
        url = el.get("url")
        if not isinstance(url, str) or not 1 <= len(url) <= LINK_URL or not url.startswith(("http://", "https://")):
            return "rich text link needs an http(s) url"
        if "text" in el and (not isinstance(el["text"], str) or not 1 <= _u16(el["text"]) <= RICH_TEXT):
            return "rich text link text must be 1..3000 characters"
        if set(el) - {"type", "url", "text", "unsafe", "style"}:
            return "unexpected keys in a rich text link"
        return _style(el)
    if kind == "emoji":
        return None if isinstance(el.get("name"), str) and el["name"] and set(el) <= {"type", "name", "unicode"} \
            else "emoji needs a name"
    return None  # mentions, dates, colours: hubwatch never sends them; Slack's own checks apply


def _rich_container(el) -> str | None:
    if not isinstance(el, dict):
        return "rich text element must be an object"
    kind = el.get("type")
    elements = el.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= RICH_ELEMENTS:
        return f"{kind} needs 1..{RICH_ELEMENTS} elements"
    if kind == "rich_text_list":
        if el.get("style") not in ("bullet", "ordered"):
            return "rich_text_list style must be bullet or ordered"
        if set(el) - {"type", "elements", "style", "indent", "offset", "border"}:
            return "unexpected keys in rich_text_list"
        if not all(isinstance(e, dict) and e.get("type") == "rich_text_section" for e in elements):
            return "rich_text_list holds rich_text_section elements only"
        return next((e for sec in elements if (e := _rich_container(sec))), None)
    if kind not in RICH_CONTAINERS:
        return "rich_text elements are sections, lists, preformatted or quotes"
    if set(el) - {"type", "elements", "border"}:
        return f"unexpected keys in {kind}"
    return next((e for inline in elements if (e := _inline(inline))), None)


def _block(block) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return "unknown block type"
    if "block_id" in block and (not isinstance(block["block_id"], str) or len(block["block_id"]) > BLOCK_ID):
        return "bad block_id"
    kind = block["type"]
    if kind == "rich_text":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= RICH_ELEMENTS:
            return f"rich_text needs 1..{RICH_ELEMENTS} elements"
        if set(block) - {"type", "elements", "block_id"}:
            return "unexpected keys in rich_text"
        return next((e for el in elements if (e := _rich_container(el))), None)
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


def _entities(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def literal_texts(node) -> list[str]:
    """The strings of every rich_text `text` and `link` element and every plain_text object: text Slack
    shows as it is (rich_text is never parsed as markup)."""
    out: list[str] = []
    if isinstance(node, dict):
        if node.get("type") in ("text", "plain_text", "link") and isinstance(node.get("text"), str):
            out.append(node["text"])
        for v in node.values():
            if isinstance(v, (dict, list)):
                out.extend(literal_texts(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(literal_texts(v))
    return out


def mrkdwn_texts(node) -> list[str]:
    """The strings Slack would parse as markup: every `mrkdwn` text object in the blocks."""
    out: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            out.append(node["text"])
        for v in node.values():
            if isinstance(v, (dict, list)):
                out.extend(mrkdwn_texts(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(mrkdwn_texts(v))
    return out


def shown_text(message: dict) -> str:
    """The fallback text as Slack displays it when the message says `mrkdwn: false` (entities decoded,
    nothing else parsed), followed by the literal strings of the blocks, one per line."""
    text = message.get("text") or ""
    fallback = _entities(text) if message.get("mrkdwn") is False else text
    return "\n".join([fallback, *literal_texts(message.get("blocks") or [])])


def fingerprints(message: dict) -> list[str]:
    """The fingerprints a hubwatch alert shows: the code-styled text after "fingerprint " in a
    rich_text section (its last block), byte-exact."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            elements = node.get("elements")
            if node.get("type") == "rich_text_section" and isinstance(elements, list):
                for a, b in zip(elements, elements[1:]):
                    if str(a.get("text", "")).endswith("fingerprint ") and (b.get("style") or {}).get("code"):
                        found.append(b["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(message.get("blocks") or [])
    return found


INVISIBLE_CATEGORIES = ("Cf", "Co", "Cs", "Cn", "Zl", "Zp")


def invisible_characters(node) -> list[str]:
    """Invisible characters anywhere in a payload's strings (U+2060 WORD JOINER, bidi controls, ...)."""
    found: list[str] = []
    if isinstance(node, str):
        found += [f"U+{ord(c):04X}" for c in node if unicodedata.category(c) in INVISIBLE_CATEGORIES
                  or (unicodedata.category(c) == "Zs" and c != " ")]
    elif isinstance(node, dict):
        for k, v in node.items():
            found += invisible_characters(k) + invisible_characters(v)
    elif isinstance(node, list):
        for v in node:
            found += invisible_characters(v)
    return found


def assert_literal(message: dict, hostile: str, *, in_fallback: bool = True) -> None:
    """`hostile` (Hub text) arrives as literal text: byte-exact in a rich_text/plain_text string, never
    inside a `mrkdwn` object; in the fallback only with markup parsing off and &, <, > as entities;
    and the payload carries no invisible character."""
    assert any(hostile in s for s in literal_texts(message.get("blocks") or [])), \
        f"{hostile!r} not literal in the blocks"
    assert not any(hostile in s or _entities(s).find(hostile) >= 0 for s in mrkdwn_texts(message.get("blocks") or [])), \
        f"{hostile!r} reached a mrkdwn text"
    if in_fallback:
        assert message.get("mrkdwn") is False, "the fallback must be sent with markup parsing off"
        assert hostile in _entities(message["text"]), f"{hostile!r} not literal in the fallback"
        for ch in "<>":
            assert ch not in message["text"], "raw < or > in the fallback"
    assert invisible_characters(message) == [], invisible_characters(message)


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

    def shown(self) -> list[str]:
        """Each message as a person reads it: the fallback `text` as Slack shows it, then every literal
        rich_text string (see `shown_text`)."""
        return [shown_text(m) for m in self.messages]

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
