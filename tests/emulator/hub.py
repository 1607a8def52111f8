"""HubEmulator: a real HTTP server on 127.0.0.1 that speaks the Hub REST API as huggingface_hub uses it.

The socket is bound in the constructor, so `.url` is known before huggingface_hub is imported (it reads
HF_ENDPOINT once, at import). State lives in HubState (hub_state.py), routes in hub_routes.py; this file
adds transport, faults, latency, rate limiting and the request log. It never imports huggingface_hub.
"""

from __future__ import annotations

import math
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .cdn import Cdn
from .hub_routes import Request, Response, error, route
from .hub_state import HubState

FAULT_KINDS = ("status", "timeout", "garbled", "truncated", "reset", "redirect_loop")
MAX_BODY = 10 * 1024 * 1024
# The Hub's API quotas per 5-minute window (shared/HUB_API.md): anonymous per client, a free token per user.
QUOTA_ANONYMOUS, QUOTA_TOKEN, QUOTA_WINDOW = 500, 1000, 300
# Buckets metered apart (hub-docs rate-limits.md): (anonymous, free token) per window.
BUCKET_QUOTAS = {"api": (QUOTA_ANONYMOUS, QUOTA_TOKEN), "resolvers": (3000, 5000), "pages": (100, 200)}


def bucket_of(path: str) -> str:
    """The Hub's bucket of a request path: /api/… is api, a /resolve/ segment resolvers, else pages."""
    if path.startswith("/api/"):
        return "api"
    return "resolvers" if "/resolve/" in path else "pages"
MAX_DELAY = 30.0
LOG_LIMIT = 50_000


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # raw, percent-encoded
    query: str
    status: int  # 0 when no response was sent (reset, timeout)
    time: float  # time.time() when the request arrived
    fault: str | None = None  # the injected fault kind, if any
    authenticated: bool = False

    @property
    def target(self) -> str:
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")


@dataclass
class Fault:
    pattern: re.Pattern | None
    status: int
    times: int | None  # None = unlimited
    kind: str
    probability: float | None
    rng: random.Random
    retry_after: int | None
    hits: int = 0
    body: bytes | None = None  # kind "respond": the canned answer
    headers: tuple = ()  # kind "respond": its headers, e.g. (("X-Error-Message", "..."),)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, emu: HubEmulator):
        self.emu = emu
        self.abort: set[int] = set()  # ids of sockets to close with RST instead of FIN
        self.live: set[socket.socket] = set()  # open connections, severed by stop()
        self.live_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's getfqdn() reverse lookup
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A client hanging up mid-body (a ranged reader that has what it needs) is not an emulator bug.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def get_request(self):
        sock, addr = super().get_request()
        # http.server writes headers and body separately; Nagle + delayed ACK would stall each response ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.live_lock:
            self.live.add(sock)
        return sock, addr

    def sever_all(self) -> None:
        with self.live_lock:
            live, self.live = list(self.live), set()
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def shutdown_request(self, request):
        with self.live_lock:
            self.live.discard(request)
        if id(request) in self.abort:
            self.abort.discard(id(request))
            self.close_request(request)  # SO_LINGER 0 + close = RST
        else:
            super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HubEmulator/1.0"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are dropped after this: bounds thread lifetime

    def log_message(self, format, *args):  # noqa: A002 - silence stderr access logs
        pass

    def _serve(self):
        try:
            self.server.emu._serve(self)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass


class HubEmulator(HubState):
    """Emulated Hub. See hub_state.HubState for the state API; faults/latency/rate limits/log here."""

    def __init__(self) -> None:
        super().__init__()
        self.cdn = Cdn()  # the second origin LFS/Xet downloads are redirected to
        self._server = _Server(self)
        self._thread: threading.Thread | None = None
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._init_transport()

    def _init_transport(self) -> None:
        self._faults: list[Fault] = []
        self._latency = 0.0
        self._body_only_errors = False
        self._rate: dict[str, dict] = {}  # bucket -> an override of the Hub's quota, for every identity
        self._buckets: dict[tuple[str, str], dict] = {}  # (identity, bucket) -> {"start", "used"} of its window
        self._log: deque[RequestRecord] = deque(maxlen=LOG_LIMIT)
        self.errors: deque[str] = deque(maxlen=100)  # tracebacks of emulator bugs (answered as 500)
        self.timeout_sleep = 2.0
        self.bytes_served = 0  # response body bytes this origin sent (the CDN counts its own)
        self._wake = threading.Event()  # set on reset/stop: interrupts injected sleeps

    @property
    def port(self) -> int:
        return self._server.server_port

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> HubEmulator:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"hub-emulator-{self.port}", daemon=True)
            self._thread.start()
        self.cdn.start()
        return self

    def stop(self) -> None:
        self.cdn.stop()
        self._wake.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server.sever_all()

    def __enter__(self) -> HubEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all state, faults, latency, rate limit and the request log (the server keeps running)."""
        with self._lock:
            self._wake.set()
            self._clear_state()
            self._init_transport()
        self.cdn.reset()

    # ---- faults, latency, rate limit ---------------------------------------------------------
    def fail(self, pattern: str | None = None, *, status: int = 500, times: int | None = 1, kind: str = "status",
             probability: float | None = None, seed: int | None = None, retry_after: int | None = None) -> Fault:
        """Inject a fault into requests whose "METHOD /raw/path?query" matches `pattern` (re.search)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        fault = Fault(re.compile(pattern) if pattern else None, status, times, kind, probability,
                      random.Random(seed), retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def respond(self, pattern: str | None, status: int = 200, body: bytes | str = b"", *,
                times: int | None = 1, headers=()) -> Fault:
        """Answer matching requests with `status`, this raw body and these headers instead of routing
        them (fuzzing, and answers the real Hub may give where none was recorded)."""
        data = body.encode() if isinstance(body, str) else bytes(body)
        fault = Fault(re.compile(pattern) if pattern else None, status, times, "respond", None,
                      random.Random(0), None, body=data, headers=tuple(headers))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def errors_in_body_only(self, on: bool = True) -> None:
        """The recorded variant (NOTES.md, round 2): error answers carry their message only in the body
        `{"error": ...}`, without `X-Error-Message` (codes stay where they are)."""
        with self._lock:
            self._body_only_errors = bool(on)

    def latency(self, seconds: float) -> None:
        """Delay every request by `seconds` (0 to disable)."""
        if not 0 <= seconds <= MAX_DELAY:
            raise ValueError(f"latency must be within [0, {MAX_DELAY}] s")
        with self._lock:
            self._latency = float(seconds)

    def rate_limit(self, quota: int | None, window: int = QUOTA_WINDOW, bucket: str = "api") -> None:
        """Every identity gets `quota` requests of `bucket` (api, resolvers, pages) per fixed `window`;
        `quota=None` restores the Hub's own quotas (api: anonymous 500, token 1000 per 300 s). That
        bucket's windows start afresh; the other buckets are untouched."""
        with self._lock:
            if quota is None:
                self._rate.pop(bucket, None)
            else:
                self._rate[bucket] = {"quota": int(quota), "window": int(window)}
            self._buckets = {k: v for k, v in self._buckets.items() if k[1] != bucket}

    def _policy(self, identity: str | None, bucket: str) -> tuple[int, int]:
        if bucket in self._rate:
            return self._rate[bucket]["quota"], self._rate[bucket]["window"]
        return BUCKET_QUOTAS[bucket][0 if identity is None else 1], QUOTA_WINDOW

    def spend_window(self, resets_in: int, identity: str | None = None, bucket: str = "api") -> None:
        """Somebody else (`identity`: a token's user, None: anonymous) spent the current window of
        `bucket`, which resets in `resets_in` seconds: the next calls in that bucket get 429
        `"<bucket>";r=0;t=resets_in`; the other buckets are untouched."""
        with self._lock:
            quota, window = self._policy(identity, bucket)
            self._buckets[(identity or "", bucket)] = {"start": time.monotonic() - window + resets_in, "used": quota}

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.exhausted or (f.pattern is not None and not f.pattern.search(target)):
                    continue
                if f.probability is not None and f.rng.random() >= f.probability:
                    continue
                f.hits += 1
                return f
        return None

    def _rate_headers(self, path: str, identity: str | None) -> tuple[bool, list]:
        """-> (allowed, headers) for one request of `identity` (a user name, None: anonymous), in
        its bucket (api, resolvers, pages), each metered on its own. Like the Hub, every answer
        (200, 307, 4xx, 429) carries that bucket's RateLimit and RateLimit-Policy; a 429 has no
        Retry-After."""
        with self._lock:
            bucket = bucket_of(path)
            quota, window = self._policy(identity, bucket)
            now = time.monotonic()
            rl = self._buckets.setdefault((identity or "", bucket), {"start": now, "used": 0})
            if now >= rl["start"] + window:
                rl["start"] += window * math.floor((now - rl["start"]) / window)
                rl["used"] = 0
            reset = max(1, math.ceil(round(rl["start"] + window - now, 6)))
            allowed = rl["used"] < quota
            rl["used"] += allowed
            policy = f'"fixed window";"{bucket}";q={quota};w={window}'
            return allowed, [("RateLimit", f'"{bucket}";r={quota - rl["used"]};t={reset}'),
                             ("RateLimit-Policy", policy)]

    def _identity(self, auth: str | None) -> str | None:
        scheme, _, token = (auth or "").partition(" ")
        with self._lock:
            found = self._user_for(token.strip()) if scheme.lower() == "bearer" else None
        return found[0] if found else None

    # ---- request log -------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(self, pattern: str | None = None) -> int:
        """Number of logged requests whose "METHOD /raw/path?query" matches `pattern` (re.search)."""
        rx = re.compile(pattern) if pattern else None
        return sum(1 for r in self.requests if rx is None or rx.search(r.target))

    def clear_log(self) -> None:
        """Forget the request log, here and at the CDN."""
        with self._lock:
            self._log.clear()
        self.cdn.clear_log()

    def _record(self, *args, **kwargs) -> None:
        with self._lock:
            self._log.append(RequestRecord(*args, **kwargs))

    # ---- serving --------------------------------------------------------------------------------
    def _serve(self, h: _Handler) -> None:
        arrived = time.time()
        method, raw = h.command, h.path
        if "://" in raw.split("?", 1)[0]:  # absolute-form target
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        path, _, query = raw.partition("?")
        body = self._read_body(h)
        wake = self._wake
        auth = h.headers.get("Authorization")
        log = {"method": method, "path": path, "query": query, "time": arrived, "authenticated": bool(auth)}
        if body is None:
            self._record(status=413, **log)
            h.close_connection = True
            return self._write(h, error(413, "Request body too large"), method)
        if self._latency and wake.wait(self._latency):
            return self._abort(h, log, "latency")
        target = f"{method} {path}" + (f"?{query}" if query else "")
        fault = self._take_fault(target)
        if fault is not None and fault.kind != "timeout":
            return self._inject(h, fault, log, raw)
        if fault is not None:
            self._record(status=0, fault="timeout", **log)  # logged now: the answer comes after the client left
            if wake.wait(min(self.timeout_sleep, MAX_DELAY)):
                return self._abort(h, None, "timeout")
        allowed, rl_headers = self._rate_headers(path, self._identity(auth))
        if not allowed:
            resp = error(429, "You have exceeded our rate limit. Please retry later.")
        else:
            resp = self._route(method, path, query, h, body)
        resp.headers.extend(rl_headers)
        if self._body_only_errors and resp.status >= 400:
            resp.headers[:] = [(k, v) for k, v in resp.headers if k.lower() != "x-error-message"]
        if fault is None:  # logged before answering, so a client never sees an answer the log lacks
            self._record(status=resp.status, **log)
        self._write(h, resp, method)

    def _route(self, method: str, path: str, query: str, h: _Handler, body: bytes) -> Response:
        with self._lock:
            user, write = None, False
            auth = h.headers.get("Authorization")
            if auth:
                scheme, _, token = auth.partition(" ")
                found = self._user_for(token.strip()) if scheme.lower() == "bearer" else None
                if found is None:
                    return error(401, "Invalid credentials in Authorization header")
                user, write = found
            req = Request("GET" if method == "HEAD" else method, path, query, h.headers, body, user, self.url, write)
            try:
                return route(self, req)
            except Exception:  # an emulator bug: answer 500 and keep it for the test to see
                self.errors.append(traceback.format_exc())
                print(self.errors[-1], file=sys.stderr)
                return error(500, "emulator internal error")

    def _inject(self, h: _Handler, fault: Fault, log: dict, raw: str) -> None:
        kind = fault.kind
        if kind == "reset":
            return self._abort(h, log, kind)
        if kind == "status":
            resp = error(fault.status, f"Injected fault: HTTP {fault.status}")
            if fault.retry_after is not None:
                resp.headers.append(("Retry-After", str(fault.retry_after)))
                if fault.status == 429:  # the Hub's own header, which the client reads first
                    resp.headers += [("RateLimit", f'"api";r=0;t={fault.retry_after}'),
                                     ("RateLimit-Policy", '"fixed window";"api";q=1000;w=300')]
        elif kind == "respond":
            resp = Response(fault.status, fault.body or b"", [("Content-Type", "application/json"), *fault.headers])
        elif kind == "garbled":
            resp = Response(200, b'{"_id": "garbled", "id": [tru', [("Content-Type", "application/json")])
        elif kind == "redirect_loop":
            resp = Response(307, b"", [("Location", raw)])
        else:  # truncated: promise more bytes than sent, then hang up
            self._record(status=200, fault=kind, **log)
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "4096")
            h.send_header("X-Request-Id", uuid.uuid4().hex)
            h.end_headers()
            h.wfile.write(b'{"id": "trunc')
            h.close_connection = True
            return
        self._record(status=resp.status, fault=kind, **log)
        self._write(h, resp, log["method"])

    def _abort(self, h: _Handler, log: dict | None, kind: str) -> None:
        """Close the connection without an answer (RST)."""
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._server.abort.add(id(h.connection))
        except OSError:
            pass
        if log is not None:
            self._record(status=0, fault=kind, **log)

    @staticmethod
    def _read_body(h: _Handler) -> bytes | None:
        if (h.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
            return b"".join(chunks)
        length = int(h.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return h.rfile.read(length) if length else b""

    def _write(self, h: _Handler, resp: Response, method: str) -> None:
        h.send_response(resp.status)
        has_id = False
        for k, v in resp.headers:
            has_id |= k.lower() == "x-request-id"
            h.send_header(k, v)
        if not has_id:
            h.send_header("X-Request-Id", uuid.uuid4().hex)
        h.send_header("Content-Length", str(len(resp.body)))  # HEAD: the GET length, no body
        h.end_headers()
        if method != "HEAD" and resp.body:
            with self._lock:
                self.bytes_served += len(resp.body)
            h.wfile.write(resp.body)
