"""The daemon's HTTP server: stdlib `ThreadingHTTPServer`, hardened by hand, and its `Backend` interface.

What a framework would have given us, done here and tested:
- bounded reads: a body cap (413 beyond it, 411/400 without a usable Content-Length, never more
  than the cap read into memory), a per-read socket timeout and a whole-request read deadline
  (a client trickling one byte at a time can't hold a thread forever), and http.server's own
  limits on the request line (64 KiB) and headers (100 lines of at most 64 KiB);
- one connection, one request (HTTP/1.0 semantics), so nothing lingers between requests;
- JSON error bodies everywhere, with no exception text or traceback;
- access logs on logger `hubwatch.http` at DEBUG only, with method, path (never the query
  string: the Hub can be told to put its webhook secret there), status and duration. Headers and
  bodies are never logged: they carry the webhook secret, Slack signatures and response_urls.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from monitor.config import HttpSettings, Secret
from monitor.http.routes import Context, Request, Response, dispatch, error
from monitor.http.slack_command import SlackCommands

if TYPE_CHECKING:
    from monitor.http.hub_events import HubEvent
    from monitor.jobs.lookup import LookupResult

logger = logging.getLogger("hubwatch.http")

DEFAULT_TIMEOUT = 10.0
_DIGITS = re.compile(r"[0-9]{1,15}")
_DISCARD_SECONDS = 1.0


class Backend(Protocol):
    """What the HTTP endpoints need from the daemon. Secrets are read per request (SIGHUP reloads)."""

    hub_webhook_secret: Secret | None
    slack_signing_secret: Secret | None

    def lookup(self, name: str) -> "LookupResult":
        """Judge a namespace now. May raise monitor.errors.HubError (Transient -> 503 + Retry-After)."""

    def hub_event(self, event: "HubEvent") -> str:
        """Queue the work for a verified Hub event and say what was done ("checked", "ignored: not
        watched", ...). Must return fast: the Hub waits for our answer."""

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """(ready, {check: "ok" or the reason it is not})."""

    def metrics(self) -> tuple[bytes, str]:
        """(body, content type), e.g. from prometheus_client.generate_latest."""


class HttpServer:
    """`HttpServer(settings.http, backend).start()`; `.port` is the bound port (settings may say 0)."""

    def __init__(self, settings: HttpSettings, backend: Backend, *, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.time, response_url_prefixes: Iterable[str] = (),
                 slack_deadline: float = 2.5, slack_jobs: int = 4):
        """`timeout`: per-read socket timeout and whole-request read deadline (seconds).
        `clock`: unix time for Slack's timestamp window. `response_url_prefixes`: where delayed
        Slack answers may go besides https://hooks.slack.com/ (tests pass their receiver's URL).
        `slack_deadline`: how long a slash command waits for its lookup before answering
        "Looking up…"; `slack_jobs`: lookups in flight at most."""
        self.settings, self.backend, self.timeout = settings, backend, timeout
        self.slack = SlackCommands(backend.lookup, deadline=slack_deadline,
                                   allowed_prefixes=tuple(response_url_prefixes), max_jobs=slack_jobs,
                                   ack=getattr(backend, "ack", None))
        self.context = Context(backend, self.slack, clock)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "HttpServer":
        """Bind and serve in a daemon thread. Raises OSError if the address is unusable."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("HTTP server already started")
            server = _Server((self.settings.host, self.settings.port), self.context, self.timeout,
                             self.settings.max_body)
            thread = threading.Thread(target=server.serve, name="hubwatch-http", daemon=True)
            thread.start()
            self._server, self._thread = server, thread
        logger.info("HTTP endpoints listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop accepting, close the listening socket and drop open connections. Idempotent, prompt."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        server.stop_serving()
        thread.join(1.0)
        server.server_close()
        server.close_connections()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("HTTP server not started")
        host, port = self._server.server_address[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def __enter__(self) -> "HttpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck handler must not block stop() or interpreter exit

    def __init__(self, address: tuple[str, int], context: Context, timeout: float, max_body: int):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context, self.conn_timeout, self.max_body = context, timeout, max_body
        self._conn_lock = threading.Lock()
        self._conns: dict[_Handler, float | None] = {}  # open connection -> read deadline (None: read)
        self._closing = threading.Event()
        # Before super().__init__: a failed bind calls server_close(), which closes these too.
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__(address, _Handler)
        threading.Thread(target=self._reap, name="hubwatch-http-reaper", daemon=True).start()

    def serve(self) -> None:
        """serve_forever without its polling: stop_serving() wakes the loop at once."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self and not self._closing.is_set():
                        self._handle_request_noblock()

    def stop_serving(self) -> None:
        self._closing.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(host): a reverse DNS lookup that can hang without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def track(self, handler: "_Handler") -> None:
        with self._conn_lock:
            self._conns[handler] = time.monotonic() + self.conn_timeout
            if self._closing.is_set():
                _drop(handler)

    def done_reading(self, handler: "_Handler") -> bool:
        """The request is fully read: its read deadline no longer applies. False if it had passed."""
        with self._conn_lock:
            if handler in self._conns:
                self._conns[handler] = None
            return not handler.expired

    def untrack(self, handler: "_Handler") -> None:
        with self._conn_lock:  # before the socket is closed, so _reap never touches a closed socket
            self._conns.pop(handler, None)

    def close_connections(self) -> None:
        self._closing.set()
        with self._conn_lock:
            for handler in self._conns:
                _drop(handler)

    def _reap(self) -> None:
        tick = max(0.02, min(0.25, self.conn_timeout / 5))
        while not self._closing.wait(tick):
            now = time.monotonic()
            with self._conn_lock:
                for handler, deadline in self._conns.items():
                    if deadline is not None and deadline <= now:
                        self._conns[handler] = None
                        _drop(handler)
                        logger.debug("dropped a client too slow to send its request")

    def handle_error(self, request, client_address) -> None:
        # The default prints the traceback to stderr. A client hanging up is routine; anything
        # else is our bug and goes to the log.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            logger.debug("connection error: %s", type(exc).__name__)
        else:
            logger.error("HTTP handler crashed: %s", type(exc).__name__, exc_info=True)


def _drop(handler: "_Handler") -> None:
    handler.expired = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    disable_nagle_algorithm = True  # headers and body are written separately: avoid delayed-ACK stalls
    expired = False

    def version_string(self) -> str:
        return "hubwatch"

    def setup(self) -> None:
        self.timeout = self.server.conn_timeout  # per socket operation
        self._started = time.monotonic()
        super().setup()
        self.server.track(self)

    def finish(self) -> None:
        self.server.untrack(self)
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self) -> None:
        if self.request_version == "HTTP/0.9":
            self._send(error(400, "HTTP/0.9 is not supported"))
            return
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        body = b""
        if self.command == "POST":
            read = self._read_body(path)
            if read is None:
                return
            body = read
        if not self.server.done_reading(self):
            return  # too slow: the reaper already shut the socket
        try:
            resp = dispatch(self.server.context, Request(self.command, path, self.headers, body))
        except Exception as e:  # noqa: BLE001 - answer 500, keep serving
            logger.error("%s %s failed: %s", self.command, _loggable(path), type(e).__name__, exc_info=True)
            resp = error(500, "internal error")
        self._send(resp, head_only=self.command == "HEAD")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def _read_body(self, path: str) -> bytes | None:
        """The body, or None once an error was answered (or the client is gone)."""
        if self.headers.get("Transfer-Encoding") is not None:
            self._send(error(411, "chunked bodies are not supported: send Content-Length"))
            return None
        values = [v.strip() for v in self.headers.get_all("Content-Length") or []]
        if not values:
            self._send(error(411, "Content-Length required"))
            return None
        if len(set(values)) != 1 or not _DIGITS.fullmatch(values[0]):
            self._send(error(400, "invalid Content-Length"))
            return None
        length, cap = int(values[0]), self.server.max_body
        if length > cap:
            self._send(error(413, f"body larger than {cap} bytes"))
            self._discard(length)
            return None
        try:
            body = self.rfile.read(length) if length else b""
        except OSError:  # socket timeout, reset, or shut by the reaper
            self.close_connection = True
            return None
        if self.expired:
            return None
        if len(body) < length:
            self._send(error(400, "body shorter than Content-Length"))
            return None
        return body

    def _discard(self, length: int) -> None:
        """Swallow (at most the cap of) an oversized body for a moment, so the client can finish
        sending and read our 413 instead of a connection reset."""
        left, until = min(length, self.server.max_body), time.monotonic() + _DISCARD_SECONDS
        try:
            self.connection.settimeout(min(self.timeout or _DISCARD_SECONDS, _DISCARD_SECONDS))
            while left > 0 and time.monotonic() < until:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _send(self, resp: Response, head_only: bool = False) -> None:
        self.close_connection = True
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in resp.headers:
                self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if resp.body and not head_only:
                self.wfile.write(resp.body)
        except OSError:
            pass
        path = getattr(self, "path", "") or ""
        logger.debug("%s %s %d %.1fms", getattr(self, "command", None) or "-",
                     _loggable(path.split("?", 1)[0].split("#", 1)[0]), resp.status,
                     (time.monotonic() - self._started) * 1000)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own protocol errors (bad request line, 414, 431, 501, 505): same JSON shape,
        # standard phrase only, because its messages quote the request line (query string included).
        try:
            phrase = HTTPStatus(code).phrase.lower()
        except ValueError:
            phrase = "error"
        self._send(error(code, phrase), head_only=getattr(self, "command", None) == "HEAD")

    def send_response_only(self, code: int, message: str | None = None) -> None:
        # http.server omits the status line and headers for HTTP/0.9 requests (a one-word request
        # line counts as one); we never speak 0.9, so every answer has a status line and headers.
        self.request_version = "HTTP/1.0"
        super().send_response_only(code, message)

    def log_request(self, code="-", size="-") -> None:
        pass  # _send writes the access log line

    def log_message(self, format: str, *args) -> None:
        # http.server's messages quote request lines and headers; keep only the fixed text.
        logger.debug("http: %s", format.split(":")[0].split("%")[0].strip())


def _loggable(path: str) -> str:
    if not path.startswith("/"):  # absolute-form target: its authority may hold user:password
        return "(not a path)"
    return "".join(c if c.isprintable() and c != " " else "?" for c in path[:200])
