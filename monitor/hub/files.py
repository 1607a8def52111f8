"""Ranged reads of files on the Hub, for the content inspectors (monitor/content/).

One `resolve` per file: the Hub answers an LFS/Xet file with a redirect to a CDN on another
host (shared/HUB_API.md); we follow it ourselves, keep the CDN location, and ask it for every
range of that file. The token goes only to the Hub's own origin — never to the CDN, whatever
the redirect says — and a signed URL is never logged or put in an error. Every answer is read
under byte caps (per file, per check): a CDN that ignores `Range` and sends the whole 5 GB is
cut off at the cap like anything else. Content reads are metered apart from the API calls of a
check: they draw on the process's one budget (hub/budget.py) in its `resolvers` bucket, where
the Hub counts file downloads, at the row of the client that opened the session (a Hub event's
check: EVENTS). `_admit` is the one place a content request asks the budget; every content
request counts (the CDN's ranges too: more cautious than the Hub, never less), and the Hub's
`RateLimit` answer on a resolve is taken as its word for that bucket.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from monitor.content.reader import ContentReadError
from monitor.hub.budget import Budget, Priority
from monitor.hub.models import RepoId

MAX_FILES = 200  # files opened per check
CHECK_BYTES = 512 * 1024 * 1024  # bytes fetched per check, every file together
FILE_BYTES = 16 * 1024 * 1024  # bytes fetched per file (a GGUF header's cap; pickles hold far less)
READ_AHEAD = 64 * 1024  # a range request asks at least this much: headers are read in small pieces
WINDOWS = 4  # ranges kept: an archive's directory, then its members, then back
MAX_HOPS = 5
CONTENT_BUCKET = "resolvers"  # the Hub's bucket for file downloads (shared/HUB_API.md)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_PERMANENT = {400, 401, 403, 404, 410, 416}


class ContentMissing(ContentReadError):
    """The file does not exist at that revision (404): absent, not unreadable."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


def _admit(budget: Budget, priority: Priority) -> None:
    """One content request (a resolve or a CDN range) may go out: admitted in the `resolvers`
    bucket at the session's row, unless a 429 paused that bucket, and counted as sent (the API
    session's hook never sees these requests)."""
    from monitor.hub.session import STATS

    paused = STATS.paused_for(CONTENT_BUCKET)
    if paused > 0:
        raise ContentReadError(f"Hub rate limit on downloads: paused for {paused:.0f}s", permanent=False)
    if not budget.admit(priority, CONTENT_BUCKET):
        raise ContentReadError("download budget spent for this window", permanent=False)
    budget.count(CONTENT_BUCKET)


@dataclass
class ContentLimits:
    files: int = field(default_factory=lambda: MAX_FILES)
    check_bytes: int = field(default_factory=lambda: CHECK_BYTES)
    file_bytes: int = field(default_factory=lambda: FILE_BYTES)


_client_lock = threading.Lock()
_clients: dict[float, Any] = {}


def _http(timeout: float):
    """A client of our own: no redirect following (we decide where the token goes), none of the
    API session's hooks (content reads are not API calls), connect errors retried by the transport."""
    import httpx2

    with _client_lock:
        if timeout not in _clients:
            _clients[timeout] = httpx2.Client(follow_redirects=False, timeout=timeout, trust_env=False,
                                              transport=httpx2.HTTPTransport(retries=2))
        return _clients[timeout]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(
        parts.scheme.lower())


@dataclass
class ContentSession:
    """The content reads of one check: how many files were opened and bytes fetched, under caps."""

    endpoint: str
    auth: dict[str, str]  # {"Authorization": "Bearer …"} or {}: sent to the Hub's origin only
    timeout: float = 30.0
    limits: ContentLimits = field(default_factory=ContentLimits)
    files: int = 0
    fetched: int = 0
    requests: int = 0
    resolves: int = 0
    transient: int = 0  # reads that failed in a way a later try may fix (5xx, 429, network)
    refused: int = 0  # reads the Hub refused us (gated without access, disabled): says nothing of the content
    budget: Budget | None = None  # the process's (hub/session.BUDGET) unless given
    priority: Priority = Priority.PINS  # the budget row the reads draw on (the opening client's)

    def __post_init__(self) -> None:
        if self.budget is None:
            from monitor.hub.session import BUDGET

            self.budget = BUDGET

    @classmethod
    def for_client(cls, client: Any, limits: ContentLimits | None = None) -> "ContentSession":
        return cls(client.endpoint, client.token_headers(), client.timeout, limits or ContentLimits(),
                   budget=client.budget, priority=client.priority)

    def files_left(self) -> int:
        return max(0, self.limits.files - self.files)

    def bytes_left(self) -> int:
        return max(0, self.limits.check_bytes - self.fetched)

    def open(self, repo: RepoId, revision: str, path: str, size: int | None = None) -> "HubFileReader":
        """A reader of `path` at `revision`; nothing is sent before its first read. Raises
        ContentReadError (permanent) past the files cap."""
        if self.files >= self.limits.files:
            raise ContentReadError(f"file cap of this check reached ({self.limits.files} files)", permanent=True)
        self.files += 1
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        url = f"{self.endpoint.rstrip('/')}/{prefix}{repo.id}/resolve/{quote(revision, safe='')}/{quote(path)}"
        return HubFileReader(self, url, path, size)


class HubFileReader:
    """A RangeReader (monitor/content/reader.py) over one file on the Hub."""

    def __init__(self, session: ContentSession, url: str, path: str, size: int | None):
        self._s, self._url, self.path, self._size = session, url, path, size
        self._location: str | None = None  # the CDN URL (signed: never logged)
        self._whole: bytes | None = None  # the file as a direct answer gave it, up to the cap
        self._whole_complete = False
        self._windows: list[tuple[int, bytes]] = []  # the last WINDOWS ranges fetched, newest last
        self._read = 0
        self.fetched = 0
        self.requests = 0

    @property
    def size(self) -> int | None:
        return self._size

    @property
    def bytes_read(self) -> int:
        return self._read

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ContentReadError(f"bad range {offset}+{length}", permanent=True)
        if length == 0 or (self._size is not None and offset >= self._size):
            return b""
        try:
            chunk = self._read_range(offset, length)
        except ContentReadError as e:
            if not e.permanent:
                self._s.transient += 1
            raise
        self._read += len(chunk)
        return chunk

    def _read_range(self, offset: int, length: int) -> bytes:
        if self._location is None and self._whole is None:
            self._resolve()
        if self._whole is not None:
            chunk = self._from_whole(offset, length)
        else:
            chunk = self._from_window(offset, length)
            if chunk is None:
                self._fetch(offset, length)
                chunk = (self._from_whole(offset, length) if self._whole is not None
                         else self._from_window(offset, length) or b"")
        return chunk

    # --- answers kept -----------------------------------------------------------------------------
    def _from_whole(self, offset: int, length: int) -> bytes:
        data = self._whole or b""
        if offset + length > len(data) and not self._whole_complete:
            raise ContentReadError(f"{self.path}: the server sent the whole file; its first "
                                   f"{len(data)} bytes were kept (byte cap), the range asked lies past them",
                                   permanent=True)
        return data[offset:offset + length]

    def _from_window(self, offset: int, length: int) -> bytes | None:
        end = offset + length
        if self._size is not None:
            end = min(end, self._size)
        for start, data in reversed(self._windows):
            if start <= offset and end <= start + len(data):
                return data[offset - start:end - start]
        return None

    def _keep(self, start: int, data: bytes) -> None:
        self._windows = self._windows[-(WINDOWS - 1):] + [(start, data)]

    # --- requests ---------------------------------------------------------------------------------
    def _send(self, url: str, headers: dict[str, str]):
        import httpx2

        _admit(self._s.budget, self._s.priority)
        self.requests += 1
        self._s.requests += 1
        try:
            http = _http(self._s.timeout)
            r = http.send(http.build_request("GET", url, headers=headers), stream=True)
        except (httpx2.TransportError, OSError) as e:
            raise ContentReadError(f"{self.path}: download failed ({type(e).__name__})", permanent=False) from None
        if _origin(url) == _origin(self._s.endpoint):  # the Hub's answer: its status and RateLimit count
            from monitor.hub.session import note_answer

            note_answer(r)
        return r

    def _headers_for(self, url: str, extra: dict[str, str]) -> dict[str, str]:
        headers = {"Accept-Encoding": "identity", **extra}
        if _origin(url) == _origin(self._s.endpoint):  # the token stays on the Hub's origin
            headers.update(self._s.auth)
        return headers

    def _resolve(self) -> None:
        """The one resolve: follow the Hub's own redirects (token kept), stop at another origin (the
        CDN: its location is kept for every range), or keep a direct answer's body under the cap."""
        url = self._url
        self._s.resolves += 1
        for _ in range(MAX_HOPS):
            r = self._send(url, self._headers_for(url, {}))
            try:
                if r.status_code in (301, 302, 303, 307, 308) and r.headers.get("Location"):
                    size = r.headers.get("X-Linked-Size")
                    if self._size is None and size and size.strip().isdigit():
                        self._size = int(size)
                    url = urljoin(url, r.headers["Location"])
                    if _origin(url) != _origin(self._s.endpoint):
                        self._location = url
                        return
                    continue
                self._check(r)
                if self._size is None and (r.headers.get("Content-Length") or "").isdigit():
                    self._size = int(r.headers["Content-Length"])
                self._whole, self._whole_complete = self._body(r, 0, self._s.limits.file_bytes)
                return
            finally:
                r.close()
        raise ContentReadError(f"{self.path}: too many redirects", permanent=False)

    def _fetch(self, offset: int, length: int) -> None:
        want = max(length, READ_AHEAD)
        start = offset
        if self._size is not None:
            if offset + want > self._size and self._size - want < offset:  # near the end: take the tail
                start = max(0, min(offset, self._size - want))
            end = min(self._size, start + want) - 1
        else:
            end = start + want - 1
        r = self._send(self._location or self._url, self._headers_for(self._location or self._url,
                                                                      {"Range": f"bytes={start}-{end}"}))
        try:
            if r.status_code == 416:
                self._keep(offset, b"")
                return
            self._check(r)
            if r.status_code == 206:
                m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range") or "")
                if m is None or int(m.group(1)) != start:
                    raise ContentReadError(f"{self.path}: the server answered another range than asked",
                                           permanent=True)
                if m.group(3) != "*" and self._size is None:
                    self._size = int(m.group(3))
                data, _ = self._body(r, start, end - start + 1, strict=True)
                self._keep(start, data)
                return
            # 200 to a Range request: the whole file comes; kept only up to the cap, the rest unread.
            self._whole, self._whole_complete = self._body(r, 0, self._s.limits.file_bytes)
            self._windows = []
        finally:
            r.close()

    def _check(self, r) -> None:
        status = r.status_code
        if 200 <= status < 300:
            return
        gated = r.headers.get("X-Error-Code") == "GatedRepo"
        disabled = "disabled" in (r.headers.get("X-Error-Message") or "").lower()
        what = "gated, no access" if gated else "disabled by the Hub" if disabled else f"HTTP {status}"
        if gated or disabled or status in (401, 403) and _origin(str(r.url)) == _origin(self._s.endpoint):
            self._s.refused += 1
        if status == 404:
            raise ContentMissing(f"{self.path}: not found")
        raise ContentReadError(f"{self.path}: download refused ({what})",
                               permanent=status in _PERMANENT or gated or disabled)

    def _body(self, r, start: int, cap: int, strict: bool = False) -> tuple[bytes, bool]:
        """The body, at most `cap` bytes (and what the file and check caps allow): (data, complete).
        `strict`: a range the caps would cut short is not read at all."""
        import httpx2

        limit = min(cap, self._s.limits.file_bytes - self.fetched, self._s.bytes_left())
        if limit <= 0 or (strict and limit < cap):
            raise ContentReadError(f"{self.path}: byte cap reached ({self._s.limits.file_bytes} per file, "
                                   f"{self._s.limits.check_bytes} per check)", permanent=True)
        out = bytearray()
        complete = True
        try:
            for chunk in r.iter_raw(65536):
                take = chunk[:limit - len(out)]
                out += take
                if len(take) < len(chunk) or len(out) >= limit:
                    complete = len(take) == len(chunk) and _ended(r)
                    break
        except (httpx2.TransportError, OSError) as e:
            raise ContentReadError(f"{self.path}: download failed ({type(e).__name__})", permanent=False) from None
        finally:
            self.fetched += len(out)
            self._s.fetched += len(out)
        return bytes(out), complete


def _ended(r) -> bool:
    """Has the whole body been received? (True when its declared length was reached.)"""
    length = r.headers.get("Content-Length")
    return length is not None and length.isdigit() and int(length) <= r.num_bytes_downloaded
