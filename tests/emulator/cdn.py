"""The CDN the Hub's `resolve` redirects LFS/Xet files to: a second origin (another 127.0.0.1 port).

Like the real one (shared/HUB_API.md, last rows): the URL is signed (a query the CDN checks), it
honours `Range` with 206 + `Content-Range`, and it is not the Hub — so a request carrying an
`Authorization` header is a leak of the token, recorded in `auth_seen` for the tests to assert on.
It counts requests and body bytes served (benchmarks read them). Files may be virtual (`Virtual`):
a 5 GB archive is served slice by slice, never held.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Virtual:
    """File content produced on demand: `parts` is a list of (size, bytes | None) segments, None
    meaning that many zero bytes. Only the small real segments are held."""

    def __init__(self, parts: list[tuple[int, bytes | None]], tag: str = ""):
        self.parts, self.size = parts, sum(n for n, _ in parts)
        digest = hashlib.sha256(tag.encode())
        for n, data in parts:
            digest.update(b"%d:" % n + (hashlib.sha256(data).digest() if data is not None else b"z"))
        self.sha256 = digest.hexdigest()  # stands in for the content hash: computing it would read 5 GB

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file."""
        out, pos = [], 0
        for n, data in self.parts:
            lo, hi = max(start, pos), min(end, pos + n)
            if lo < hi:
                out.append(data[lo - pos:hi - pos] if data is not None else bytes(hi - lo))
            pos += n
            if pos >= end:
                break
        return b"".join(out)


def content_slice(content, start: int, end: int) -> bytes:
    """Bytes [start, end) of a blob's content, real or virtual."""
    return content.read(start, end) if isinstance(content, Virtual) else content[start:end]


@dataclass(frozen=True)
class CdnRecord:
    method: str
    path: str  # without the signed query: a signed URL is never logged
    range: str | None
    status: int
    bytes: int
    authorization: bool
    accept_encoding: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cdn: "Cdn"):
        self.cdn = cdn
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):  # a client hanging up mid-body is normal here
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CdnEmulator/1.0"
    timeout = 30

    def log_message(self, format, *args):  # noqa: A002
        pass

    def _serve(self):
        try:
            self.server.cdn._serve(self)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    do_GET = do_HEAD = _serve


class Cdn:
    """Serves registered blobs at signed URLs; thread-safe."""

    CHUNK = 1 << 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(16)
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._blobs: dict[str, object] = {}
            self.log: list[CdnRecord] = []
            self.bytes_served = 0
            self.ignore_range = False  # answer 200 with the whole body to a Range request (a misbehaving proxy)
            self.fail_status: int | None = None  # answer every request with this status

    def clear_log(self) -> None:
        """Forget the requests and bytes counted so far (the signed URLs stay valid)."""
        with self._lock:
            self.log, self.bytes_served = [], 0

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.log)

    @property
    def auth_seen(self) -> list[str]:
        """Paths of requests that reached the CDN with an Authorization header (must stay empty)."""
        with self._lock:
            return [r.path for r in self.log if r.authorization]

    def signed_url(self, sha256: str, content) -> str:
        """Register `content` and return a signed URL for it (what resolve's Location carries)."""
        with self._lock:
            self._blobs[sha256] = content
        sig = hmac.new(self._secret, sha256.encode(), "sha256").hexdigest()
        return f"{self.url}/repos/{sha256[:2]}/{sha256[2:4]}/{sha256}?X-Amz-Expires=3600&X-Amz-Signature={sig}"

    def start(self) -> "Cdn":
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="cdn-emulator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def _serve(self, h: _Handler) -> None:
        path, _, query = h.path.partition("?")
        rng = h.headers.get("Range")
        auth = h.headers.get("Authorization") is not None
        sha = path.rsplit("/", 1)[-1]
        sig = dict(parse_qsl(query)).get("X-Amz-Signature", "")
        with self._lock:
            content = self._blobs.get(sha)
            fail, ignore = self.fail_status, self.ignore_range
        good = hmac.compare_digest(sig, hmac.new(self._secret, sha.encode(), "sha256").hexdigest())
        size = getattr(content, "size", None) if content is not None and not isinstance(content, bytes) else (
            len(content) if content is not None else None)
        headers: list[tuple[str, str]] = []
        if fail is not None:
            status, start, end = fail, 0, 0
        elif content is None or not good:
            status, start, end = 403, 0, 0  # an unsigned or unknown URL: AccessDenied, as S3 answers
        else:
            status, start, end = 200, 0, size
            headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"),
                       ("ETag", f'"{sha}"')]
            m = _RANGE.fullmatch(rng or "")
            if m and (m.group(1) or m.group(2)) and not ignore:
                start = int(m.group(1)) if m.group(1) else max(0, size - int(m.group(2)))
                end = min(int(m.group(2)) + 1, size) if m.group(1) and m.group(2) else size
                if start >= size:
                    status, start, end = 416, 0, 0
                    headers = [("Content-Range", f"bytes */{size}")]
                else:
                    status = 206
                    headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        length = end - start if h.command != "HEAD" else 0
        # Logged before answering, so a client never sees an answer the log lacks; bytes a client
        # hung up on are taken back below.
        with self._lock:
            self.bytes_served += length
            self.log.append(CdnRecord(h.command, path, rng, status, length, auth, h.headers.get("Accept-Encoding")))
        sent = 0
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(end - start))
        h.end_headers()
        try:
            for pos in range(start, start + length, self.CHUNK):
                chunk = content_slice(content, pos, min(end, pos + self.CHUNK))
                h.wfile.write(chunk)
                sent += len(chunk)
        finally:
            if sent < length:
                with self._lock:
                    self.bytes_served -= length - sent
