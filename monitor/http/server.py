"""The daemon's HTTP server: waitress (a maintained pure-Python WSGI server), its few hubwatch
additions, and the `Backend` interface.

Why waitress, measured in docs/security-model.md: it reads requests in one event loop and hands
only complete ones to a bounded pool of worker threads, so idle or trickling clients cost a file
descriptor, never a thread (the `http.server` it replaced ran a thread per connection: 253 threads
for 255 idle sockets). Waitress gives us the body cap (413, `max_request_body_size`, chunked bodies
included), header and request-line caps, the connection cap (`connection_limit`) and JSON-free
protocol parsing; what it lacks we add here, in a subclass of its server:
- a whole-request read deadline: a connection that has not sent a complete request within
  `timeout` seconds of connecting is closed, however steadily it trickles (waitress's own
  `channel_timeout` counts from the last byte, so one byte a second would hold it forever);
- when the connection cap is reached, the oldest connections still sending their request (older
  than a short grace) are closed to make room, so a flood of idle connections cannot keep
  `/healthz`, Hub webhooks or Slack out;
- `accept()` failing for lack of descriptors (EMFILE/ENFILE/ENOBUFS/ENOMEM) pauses accepting for a
  moment instead of retrying in a loop (waitress would log and retry at once: a core at 100%);
- one request per connection (`Connection: close` on every answer), JSON error bodies everywhere
  (waitress's own protocol errors too), no exception text or traceback;
- access logs on logger `hubwatch.http` at DEBUG only, with method, path (never the query string:
  the Hub can be told to put its webhook secret there), status and duration. Headers and bodies
  are never logged: they carry the webhook secret, Slack signatures and response_urls.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, WSGITask

from monitor.config import HttpSettings, Secret
from monitor.http.lookups import OnDemandLookups
from monitor.http.routes import Context, Request, dispatch, error
from monitor.http.slack_command import ReplayCache, SlackCommands

if TYPE_CHECKING:
    from monitor.http.hub_events import HubEvent
    from monitor.jobs.lookup import LookupResult

logger = logging.getLogger("hubwatch.http")
# waitress warns at every crossing of the connection cap; _sweep says it once a minute instead.
logging.getLogger("waitress").setLevel(logging.ERROR)

DEFAULT_TIMEOUT = 10.0
WORKERS = 12  # request handlers; lookups may hold at most LOOKUP_SLOTS of them
LOOKUP_SLOTS = 8
MAX_CONNECTIONS = 100  # open connections; LimitNOFILE=1024 leaves room for the Hub pool and SQLite
EVICT_GRACE = 0.5  # at the cap, a connection still sending its request after this long may be closed
ACCEPT_PAUSE = 0.5  # seconds without accept() after it failed for lack of descriptors
MAX_HEADER_BYTES = 65_536
_NO_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_COMMON = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


class Backend(Protocol):
    """What the HTTP endpoints need from the daemon. Secrets are read per request (SIGHUP reloads)."""

    hub_webhook_secret: Secret | None
    slack_signing_secret: Secret | None
    http_token: Secret | None  # Bearer token for /v1/lookup and /metrics; None: open

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
                 slack_deadline: float = 2.5, slack_jobs: int = 4, max_connections: int = MAX_CONNECTIONS):
        """`timeout`: whole-request read deadline (seconds from connecting to a complete request).
        `clock`: unix time for Slack's timestamp window. `response_url_prefixes`: where delayed
        Slack answers may go besides https://hooks.slack.com/ (tests pass their receiver's URL).
        `slack_deadline`: how long a slash command waits for its lookup before answering
        "Looking up…"; `slack_jobs`: lookups in flight at most; `max_connections`: open
        connections at most."""
        self.settings, self.backend, self.timeout = settings, backend, timeout
        self.max_connections = max_connections
        self.lookups = OnDemandLookups(backend.lookup, per_minute=settings.lookups_per_minute, slots=LOOKUP_SLOTS)
        self.slack = SlackCommands(self.lookups.lookup, deadline=slack_deadline,
                                   allowed_prefixes=tuple(response_url_prefixes), max_jobs=slack_jobs,
                                   ack=getattr(backend, "ack", None))
        self.context = Context(backend, self.slack, clock, self.lookups, ReplayCache(persist=getattr(backend, "first_slack_request", None)))
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "HttpServer":
        """Bind and serve in a daemon thread. Raises OSError if the address is unusable."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("HTTP server already started")
            server = _Server(self.settings, _App(self.context), self.timeout, self.max_connections)
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
        thread.join(2.0)

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("HTTP server not started")
        return str(self._server.effective_host), int(self._server.effective_port)

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


class _App:
    """WSGI -> the route table: Request in, Response out, JSON errors, the access log line."""

    def __init__(self, context: Context):
        self.context = context

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterator[bytes]:
        started = time.monotonic()
        method = environ["REQUEST_METHOD"]
        path = environ.get("REQUEST_URI", "/").split("?", 1)[0].split("#", 1)[0]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)  # waitress checked it against the cap
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            resp = dispatch(self.context, Request(method, path, _Headers(environ), body))
        except Exception as e:  # noqa: BLE001 - answer 500, keep serving
            logger.error("%s %s failed: %s", method, _loggable(path), type(e).__name__, exc_info=True)
            resp = error(500, "internal error")
        headers = [("Content-Type", resp.content_type), ("Content-Length", str(len(resp.body))),
                   *_COMMON, *resp.headers]
        start_response(f"{resp.status} {_phrase(resp.status)}", headers)
        logger.debug("%s %s %d %.1fms", method, _loggable(path), resp.status, (time.monotonic() - started) * 1000)
        return iter([b"" if method == "HEAD" else resp.body])


class _Headers(Mapping[str, str]):
    """Request headers by their HTTP name, case-insensitive, from the WSGI environ."""

    def __init__(self, environ: dict[str, Any]):
        self._environ = environ

    @staticmethod
    def _key(name: str) -> str:
        key = name.upper().replace("-", "_")
        return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(self._key(name))
        if not isinstance(value, str):
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k[5:].replace("_", "-").title() for k in self._environ if k.startswith("HTTP_"))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _JsonErrorTask(ErrorTask):
    """Waitress's own protocol errors (400, 413, 431, 501, ...) in our shape: {"error": "<phrase>"},
    never its text, which quotes parts of the request."""

    def execute(self) -> None:
        code = int(self.request.error.code)
        message = _phrase(code).lower()
        if code == 413:
            message = f"body larger than {self.channel.server.max_body} bytes"
        resp = error(code, message)
        self.status = f"{code} {_phrase(code)}"
        self.response_headers.extend([("Content-Type", resp.content_type), *_COMMON, ("Connection", "close")])
        self.set_close_on_finish()
        self.content_length = len(resp.body)
        self.write(resp.body)
        logger.debug("protocol error %d", code)


class _OneRequestTask(WSGITask):
    """One request per connection: every answer closes it (WSGI apps may not set Connection:)."""

    def build_response_header(self) -> bytes:
        self.set_close_on_finish()
        self.response_headers.append(("Connection", "close"))
        return super().build_response_header()


class _Channel(HTTPChannel):
    task_class = _OneRequestTask
    error_task_class = _JsonErrorTask

    def sending_request(self) -> bool:
        """Still reading its (one) request: no complete request queued, nothing being answered."""
        return not self.requests and not self.total_outbufs_len and not self.close_when_flushed


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, settings: HttpSettings, app: _App, timeout: float, max_connections: int):
        self.read_deadline, self.max_body = timeout, settings.max_body
        self._accept_paused_until = 0.0
        self._next_sweep = self._next_cap_warning = 0.0
        self._closing = threading.Event()
        adj = Adjustments(
            host=settings.host, port=settings.port, threads=WORKERS, ident="hubwatch",
            # the server, its wake-up pipe, then the connections
            connection_limit=max_connections + 2, max_request_body_size=settings.max_body + 1,  # waitress refuses >= it
            max_request_header_size=MAX_HEADER_BYTES, channel_timeout=max(1, int(timeout)),
            cleanup_interval=1, asyncore_use_poll=True, expose_tracebacks=False, log_socket_errors=False,
            clear_untrusted_proxy_headers=True, url_scheme="http")
        super().__init__(app, adj=adj, map={})

    def serve(self) -> None:
        """The event loop, until stop_serving(); then every socket is closed in this thread."""
        try:
            while not self._closing.is_set():
                wasyncore.poll2(0.25, self._map)
        finally:
            wasyncore.close_all(self._map)
            self.task_dispatcher.shutdown(cancel_pending=True, timeout=0.5)

    def stop_serving(self) -> None:
        self._closing.set()
        try:
            self.trigger.pull_trigger()  # wakes poll() at once
        except OSError:
            pass

    def readable(self) -> bool:
        now = time.time()  # waitress stamps channels with time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + min(0.1, self.read_deadline / 5)
            self._sweep(now)
        if not super().readable():  # waitress's own cap and housekeeping
            return False
        return time.monotonic() >= self._accept_paused_until

    def _sweep(self, now: float) -> None:
        """Close connections past the read deadline; at the cap, the oldest ones still sending."""
        sending = sorted((ch for ch in list(self.active_channels.values()) if ch.sending_request()),
                         key=lambda ch: ch.creation_time)
        for ch in sending:
            if now - ch.creation_time > self.read_deadline:
                logger.debug("dropped a client too slow to send its request")
                ch.handle_close()
        if len(self._map) < self.adj.connection_limit and time.monotonic() >= self._accept_paused_until:
            return  # neither at the cap nor out of descriptors
        # A flood: every connection still sending after the grace goes, oldest first, so the queue
        # of waiting connections (a /healthz probe among them) moves at the pace we can accept.
        closed = 0
        for ch in sending:
            if now - ch.creation_time < EVICT_GRACE:
                break
            if ch.connected:
                ch.handle_close()
                closed += 1
        if closed and now >= self._next_cap_warning:
            self._next_cap_warning = now + 60
            logger.warning("connection cap (%d) or descriptor limit reached: closing connections that have not sent a request "
                           "within %.1fs", self.adj.connection_limit - 2, EVICT_GRACE)

    def handle_accept(self) -> None:
        try:
            super_accept = self.socket.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as e:
            if e.errno in _NO_FDS:
                if time.monotonic() >= self._accept_paused_until + 10:
                    logger.warning("out of file descriptors (%s): not accepting for %.1fs",
                                   errno.errorcode.get(e.errno, e.errno), ACCEPT_PAUSE)
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
            return
        conn, addr = super_accept
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _loggable(path: str) -> str:
    if not path.startswith("/"):  # absolute-form target: its authority may hold user:password
        return "(not a path)"
    return "".join(c if c.isprintable() and c != " " else "?" for c in path[:200])
