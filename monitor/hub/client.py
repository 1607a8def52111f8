"""HubClient: the few Hub calls hubwatch makes, with retries and typed errors.

We call the endpoints through huggingface_hub's shared session (`get_session`/`http_backoff`)
rather than `HfApi` methods because we need what those methods drop: the repo `_id`, the final
URL after a rename redirect, and early exit from commit pagination. Errors are classified
once, here: definitive answers (NotFound, Gated, Disabled, RevisionNotFound) versus Transient
(5xx, 429, timeouts, network, garbled bodies), which callers treat as "unknown", never "gone".
"""

from __future__ import annotations

import copy
from dataclasses import replace
import json
import re
import threading
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote, urljoin, urlsplit

from monitor.config import HubSettings
from monitor.errors import Disabled, Gated, HubError, NotFound, RevisionNotFound, TokenRejected, Transient
from monitor.hub import parse, session
from monitor.hub.budget import Priority, bucket_of
from monitor.hub.models import Commit, History, Refs, RepoId, RepoInfo

MAX_TEXT_BYTES = 1_000_000
# One JSON answer held in memory: the file list of a repo with ~60,000 LFS files. Parsed, it costs
# about four times its size, so answers past LARGE_JSON_BYTES are read and parsed two at a time
# whatever `hub.concurrency` is (a few huge repos cannot add up past MemoryMax).
MAX_JSON_BYTES = 16_000_000
LARGE_JSON_BYTES = 1_000_000
_LARGE_SLOTS = threading.BoundedSemaphore(2)
UNREACHABLE = "Hub unreachable"  # prefix of every "could not connect" error (status reads it)
UNREACHABLE_HOLD = 30.0  # seconds every call fails at once after a connection could not be opened
_UNSURE = "cannot connect"  # a connect failure that says nothing about the next attempt: no hold
BAD_TOKEN_MESSAGE = "Invalid credentials in Authorization header"
DISABLED_MESSAGE = "Access to this resource is disabled."  # a takedown (DisabledRepoError), header or body
TOKEN_REJECTED_HOLD = 300.0  # seconds no call is sent after a 401 Invalid credentials (one quota window)
_DEFAULT_PORTS = {"http": 80, "https": 443}
BUDGET_SPENT = "Hub request budget spent"  # prefix of the error when the budget refused a call


class EntryNotFound(NotFound):
    """Definitive: the file does not exist at that revision."""


class OffOrigin(HubError):
    """A pagination `Link` named another origin than the endpoint: not followed (the token stays home)."""


class AnswerTooLarge(HubError):
    """A JSON answer larger than MAX_JSON_BYTES (a repo with ~100,000 files, thousands of branches):
    not held. Retrying reads the same, so callers report what it would have told as not inspected."""


class EventShareSpent(Exception):
    """The budget's event share is spent: a webhook's check stops here and its repo goes first in
    the next scheduled scan. Not a HubError: nothing is known about the repo, not even "unknown"."""


class FileTooLarge(Exception):
    """A file is larger than we read into memory; `size` is None when only the stream said so.

    Not a HubError: the Hub answered fine, and the caller reports the file as not inspected."""

    def __init__(self, path: str, size: int | None):
        self.path, self.size = path, size
        shown = f"{size / 1e6:.0f} MB" if size is not None and size >= 1e6 else "larger than 1 MB"
        super().__init__(f"{path} is {shown}: too large to inspect")


class HubClient:
    """Thread-safe; one per process is enough."""

    def __init__(self, settings: HubSettings):
        session.prepare(settings.endpoint, pool_size=max(8, settings.concurrency))
        from huggingface_hub import utils as hf_utils

        self._hf = hf_utils
        self.endpoint = settings.endpoint.rstrip("/")
        self.timeout = settings.timeout
        self.retries = settings.retries
        self.retry_wait = settings.retry_wait
        self._headers = {"Accept": "application/json"}
        if settings.token is not None:
            self._headers["Authorization"] = f"Bearer {settings.token.reveal()}"
        self.stats = session.STATS
        self.stats.clear_token_rejected()  # a new client (start, reload) may carry a new token
        self.budget = session.BUDGET
        self.priority = Priority.PINS  # the row of the budget's share table this client draws on
        self.event = False  # a Hub webhook's check: a refused call raises EventShareSpent

    def token_headers(self) -> dict[str, str]:
        """The Authorization header our calls carry ({} when anonymous): for the Hub's origin only."""
        return {k: v for k, v in self._headers.items() if k == "Authorization"}

    def for_priority(self, priority: Priority) -> "HubClient":
        """A view of this client whose calls draw on `priority`'s row of the budget (hub/budget.py)."""
        view = copy.copy(self)
        view.priority = Priority(priority)
        return view

    def with_low_priority(self) -> "HubClient":
        """A view of this client whose calls yield to pin checks when the request budget runs short."""
        return self.for_priority(Priority.LOOKALIKES)

    def for_on_demand(self) -> "HubClient":
        """A view for lookups anyone may ask for (HTTP, Slack): the lowest row of the budget (EVENTS)."""
        return self.for_priority(Priority.EVENTS)

    def for_events(self) -> "HubClient":
        """A view for checks a Hub webhook asked for: the budget's lowest row (EVENTS); a refused
        call raises EventShareSpent (the repo then goes first in the next scheduled scan)."""
        view = self.for_priority(Priority.EVENTS)
        view.event = True
        return view

    # --- transport -----------------------------------------------------------------------
    def _request(self, method: str, url: str, **kw: Any):
        """One call. The process's first call goes alone: the others wait for its answer (quota,
        remaining requests, a rejected token) before they fan out."""
        first = self.budget.first_call()
        try:
            return self._send(method, url, **kw)
        finally:
            if first:
                self.budget.first_done()

    def _send(self, method: str, url: str, *, stream: bool = False, headers: dict | None = None, **kw: Any):
        import httpx2
        from huggingface_hub import errors as hf_errors

        down = self.stats.unreachable()
        if down is not None:
            raise Transient(f"{UNREACHABLE} ({down})")
        if self.stats.token_rejected():
            raise TokenRejected(f"the Hub rejected the token: {BAD_TOKEN_MESSAGE} (not asked again yet)", status=401)
        bucket = bucket_of(url)  # api, resolvers (file reads) and pages are metered apart
        paused = self.stats.paused_for(bucket)
        if paused > 0:
            raise Transient(f"Hub rate limit: paused for {paused:.0f}s", retry_after=paused)
        if not self.budget.admit(self.priority, bucket):
            if self.event:
                raise EventShareSpent("the request budget's event share is spent for this window")
            wait = self.budget.resets_in(bucket)
            raise Transient(f"{BUDGET_SPENT} for this window (resets in {wait:.0f}s)", retry_after=wait)
        try:
            send = self._open_stream if stream else self._hf.http_backoff
            r = send(
                method, url, headers={**self._headers, **(headers or {})}, timeout=self.timeout,
                max_retries=self.retries, base_wait_time=self.retry_wait,
                max_wait_time=self.retry_wait * 8, retry_on_status_codes=(500, 502, 503, 504), **kw)
            self._hf.hf_raise_for_status(r)
            return r
        except hf_errors.HfHubHTTPError as e:
            raise self._classify(e, url) from None
        except (httpx2.TransportError, OSError) as e:
            reason = connect_failure(e)
            if reason is None:  # connected, then failed (reset, read timeout): this call only
                raise Transient(f"Hub connection failed: {type(e).__name__}") from None
            if not reason.startswith(_UNSURE):  # refused, DNS, no route, timeout: the Hub is out of reach
                self.stats.on_unreachable(reason, UNREACHABLE_HOLD)
            raise Transient(f"{UNREACHABLE} ({reason})") from None
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as e:
            # hf_raise_for_status choked formatting an error body it could not read (not UTF-8, JSON
            # that is not an object, "errors": 5, ...): the answer is unreadable, so the outcome unknown.
            raise Transient(f"unreadable error answer from the Hub ({type(e).__name__})") from None

    def _classify(self, e: Any, url: str) -> HubError:
        """What a Hub error answer means. The code is read from `X-Error-Code`; the message from
        `X-Error-Message` or, when the Hub sent it only in the body, from `{"error": ...}` — for
        every rule alike (huggingface_hub reads the header only)."""
        response = getattr(e, "response", None)
        status = _status(e)
        code = response.headers.get("X-Error-Code") if response is not None else None
        message = error_message(response)
        if status == 401 and message == BAD_TOKEN_MESSAGE:  # about the token, never about a repo
            return self._token_refused(e)
        if code == "RevisionNotFound":
            return RevisionNotFound(_msg("revision not found", e), status=status)
        if code == "EntryNotFound":
            return EntryNotFound(_msg("file not found", e), status=status)
        if code == "GatedRepo":
            return Gated(_msg("gated", e), status=status)
        if message == DISABLED_MESSAGE:
            return Disabled(_msg("repository disabled", e), status=status)
        if code == "RepoNotFound":
            return NotFound(_msg("repository not found", e), status=status)
        if status == 429:
            rl = self._hf.parse_ratelimit_headers(response.headers)
            return Transient("Hub rate limit (429)", status=429, retry_after=float(rl.reset_in_seconds) if rl else 60.0)
        if status is not None and (status >= 500 or status in (408, 425)):
            return Transient(f"Hub error {status}", status=status)
        if status == 404:
            return NotFound(_msg("not found", e), status=404)
        if status == 401 and _is_repo_url(url):  # not the token (checked above)
            # What the real Hub answers anonymously for a missing or private repo: 401 without an
            # X-Error-Code (the client maps it to RepositoryNotFoundError on https:// only).
            return NotFound(_msg("repository not found", e), status=401)
        return HubError(_msg(f"Hub refused ({status})", e), status=status)

    def _token_refused(self, e: Any) -> TokenRejected:
        self.stats.on_token_rejected(TOKEN_REJECTED_HOLD)
        return TokenRejected(_msg(f"the Hub rejected the token: {BAD_TOKEN_MESSAGE}", e), status=401)

    def _open_stream(self, method: str, url: str, **kw: Any):
        """An open streamed answer: the caller reads what it needs, then closes it. Error answers
        are small JSON bodies the classification must read, so those are read whole here."""
        opened = self._hf.http_stream_backoff(method, url, **kw)
        r = opened.__enter__()
        r.hubwatch_stream = opened  # the stream lives while the response does; r.close() ends it
        if r.status_code >= 400:
            r.read()
        return r

    def _next_page(self, r: Any) -> str | None:
        """The `Link: rel=next` URL of a paginated answer, only when it stays on the endpoint's
        origin (scheme, host, port): our token goes with every request. OffOrigin otherwise."""
        link = r.links.get("next", {}).get("url")
        if link is None:
            return None
        url = urljoin(str(r.url), link)
        if _origin(url) is None or _origin(url) != _origin(self.endpoint):
            raise OffOrigin(f"pagination link to another origin not followed ({urlsplit(url).netloc[:100]!r})")
        return url

    def _json(self, method: str, url: str, parse: Callable[[Any], Any] = lambda data: data,
              **kw: Any) -> tuple[Any, Any]:
        """(parse(the JSON answer), the response). The body is streamed and never held past
        MAX_JSON_BYTES (AnswerTooLarge); a large one is read and parsed in one of two slots."""
        # identity: a compressed body would be inflated past the cap before we could count it
        r = self._request(method, url, stream=True, headers={"Accept-Encoding": "identity"}, **kw)
        slot: list[bool] = []  # the large-answer slot, once taken
        try:
            body = _read_capped(r, MAX_JSON_BYTES, on_large=lambda: slot.append(_LARGE_SLOTS.acquire()))
            if body is None:
                raise AnswerTooLarge(f"the Hub's answer to {urlsplit(url).path[:200]} is larger than "
                                     f"{MAX_JSON_BYTES // 1_000_000} MB: too large to inspect")
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                raise Transient(f"garbled JSON from {urlsplit(url).path}") from None
            del body
            return self._parsed(parse, data), r
        finally:
            r.close()
            if slot:
                _LARGE_SLOTS.release()

    def _parsed(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            raise Transient(f"unexpected Hub response: {e}") from None

    def _api(self, repo: RepoId, *parts: str) -> str:
        return "/".join([self.endpoint, repo.api_path, *parts])

    # --- calls -----------------------------------------------------------------------------
    def page(self, url: str, params: Any = None) -> tuple[Any, str | None]:
        """One page of a paginated JSON answer -> (the JSON, the next page's URL or None). The next
        URL is only one on the endpoint's origin (OffOrigin otherwise)."""
        data, r = self._json("GET", url, params=params)
        return data, self._next_page(r)

    def refs(self, repo: RepoId) -> Refs:
        """Every branch and tag head in one request; `canonical_id` reveals renames."""
        data, r = self._json("GET", self._api(repo, "refs"))
        refs = self._parsed(parse.refs, data, repo.id)
        if getattr(r, "history", None):  # redirected: which repo answered is the answer's `id`, never a URL
            refs = replace(refs, canonical_id=self.identity(repo).id)
        return refs

    def info(self, repo: RepoId, revision: str | None = None, *, files: bool = True,
             security: bool = True) -> RepoInfo:
        """Repo metadata at a revision: `_id`, flags, file manifest (blob ids, LFS sha256), scan."""
        url = self._api(repo) if revision is None else self._api(repo, "revision", quote(revision, safe=""))
        params = {}
        if security:
            params["securityStatus"] = "true"
        if files:
            params["blobs"] = "true"
        info, _ = self._json("GET", url, parse.repo_info, params=params)
        return info

    def identity(self, repo: RepoId, revision: str | None = None) -> RepoInfo:
        """What `info` says but the file list and the scan (`expand=` leaves both out): for a repo
        whose full answer is too large to hold (AnswerTooLarge). `files_listed` is False."""
        url = self._api(repo) if revision is None else self._api(repo, "revision", quote(revision, safe=""))
        keys = ["sha", "createdAt", "lastModified", "private", "disabled"] + (["gated"] if repo.type != "space" else [])
        info, _ = self._json("GET", url, lambda data: parse.repo_info(data, listed=False),
                             params=[("expand", k) for k in keys])
        return info

    def history(self, repo: RepoId, revision: str, stop_at: Iterable[str] = (),
                max_pages: int = 5) -> History:
        """Commits from `revision` back until one of `stop_at` (or the root, or `max_pages`)."""
        stops = set(stop_at)
        out: list[Commit] = []
        url: str | None = self._api(repo, "commits", quote(revision, safe=""))
        pages = 0
        while url is not None and pages < max_pages:
            data, r = self._json("GET", url)
            pages += 1
            for c in self._parsed(parse.commits, data):
                if c.sha in stops:
                    return History(tuple(out), True, True)
                out.append(c)
            try:
                url = self._next_page(r)
            except OffOrigin:  # the end of what we may read: the walk stays incomplete (fail closed)
                return History(tuple(out), False, False)
        return History(tuple(out), False, url is None)

    def contains(self, repo: RepoId, revision: str, sha: str, max_pages: int = 50) -> bool | None:
        """Is `sha` in the history of `revision`? None when the walk hit the page cap."""
        h = self.history(repo, revision, stop_at=[sha], max_pages=max_pages)
        return True if h.reached else (False if h.complete else None)

    def file_text(self, repo: RepoId, revision: str, path: str, size: int | None = None) -> str | None:
        """A small text file's content at a revision (None when absent).

        Never holds more than MAX_TEXT_BYTES of it: a file whose manifest `size` or whose answer
        headers (Content-Length, X-Linked-Size) say it is larger is not downloaded, and a body that
        runs past the cap is abandoned mid-stream; both raise FileTooLarge."""
        if size is not None and size > MAX_TEXT_BYTES:
            raise FileTooLarge(path, size)
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        url = f"{self.endpoint}/{prefix}{repo.id}/resolve/{quote(revision, safe='')}/{quote(path)}"
        try:
            # identity: a compressed body would be inflated past the cap before we could count it
            r = self._request("GET", url, stream=True, headers={"Accept-Encoding": "identity"})
        except EntryNotFound:
            return None
        try:
            body = _read_capped(r, MAX_TEXT_BYTES)
            if body is None:
                raise FileTooLarge(path, _declared_size(r.headers))
        finally:
            r.close()
        return body.decode("utf-8", errors="replace")


def _read_capped(r: Any, cap: int, on_large: Callable[[], Any] | None = None) -> bytearray | None:
    """The streamed body of `r`, or None once it is known to pass `cap` bytes: by its declared size
    (nothing is read then) or by the bytes received (the rest is not read). `on_large()` runs once,
    when the body held passes LARGE_JSON_BYTES within the cap."""
    declared = _declared_size(r.headers)
    if declared is not None and declared > cap:
        return None
    body = bytearray()
    for chunk in _body_chunks(r):
        was_large = len(body) > LARGE_JSON_BYTES
        body += chunk
        if len(body) > cap:
            return None
        if on_large is not None and not was_large and len(body) > LARGE_JSON_BYTES:
            on_large()
    return body


def _body_chunks(r: Any) -> Iterator[bytes]:
    """A streamed body in chunks; a connection lost mid-body is Transient (it was reachable)."""
    import httpx2

    try:
        yield from r.iter_bytes(chunk_size=65536)
    except (httpx2.TransportError, OSError) as e:
        raise Transient(f"Hub connection failed: {type(e).__name__}") from None


def connect_failure(e: BaseException) -> str | None:
    """Why no connection could be opened ("connection refused", "DNS: …", "network unreachable",
    "connect timed out"), or None when the failure came after connecting."""
    import socket

    import httpx2

    if not isinstance(e, (httpx2.ConnectError, httpx2.ConnectTimeout, OSError)):
        return None
    if isinstance(e, httpx2.ConnectTimeout):
        return "connect timed out"
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, socket.gaierror):
            return f"DNS: {cur.strerror or cur}"
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, OSError) and cur.errno in (101, 113, 65, 51):  # ENETUNREACH/EHOSTUNREACH (Linux, BSD)
            return "network unreachable"
        cur = cur.__cause__ or cur.__context__
    text = str(e).lower()
    for needle, reason in (("name or service not known", "DNS: name or service not known"),
                           ("name resolution", "DNS: temporary failure in name resolution"),
                           ("nodename nor servname", "DNS: nodename nor servname provided"),
                           ("refused", "connection refused"), ("unreachable", "network unreachable"),
                           ("no route to host", "network unreachable")):
        if needle in text:
            return reason
    # e.g. a reset during the TLS handshake: this connection failed, the next one may not.
    return f"{_UNSURE}: {type(e).__name__}" if isinstance(e, httpx2.ConnectError) else None


def _declared_size(headers: Any) -> int | None:
    """The size an answer announces: X-Linked-Size (the LFS file behind a redirect) or Content-Length."""
    for key in ("X-Linked-Size", "Content-Length"):
        value = headers.get(key)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port; None for a URL we cannot read."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


_REPO_URL = re.compile(r"/api/(models|datasets|spaces)/|/resolve/")


def _is_repo_url(url: str) -> bool:
    return _REPO_URL.search(urlsplit(url).path) is not None


def _status(e: Any) -> int | None:
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


ERROR_BODY_CAP = 64_000  # an error body larger than this is not the Hub's small `{"error": ...}`


def error_message(response: Any) -> str | None:
    """The Hub's error message: `X-Error-Message`, else the body's `{"error": "..."}` (recorded
    Hub errors may carry it only there: shared/HUB_API.md, "error bodies")."""
    if response is None:
        return None
    header = response.headers.get("X-Error-Message")
    if header:
        return header
    try:
        content = response.content
        if len(content) > ERROR_BODY_CAP:
            return None
        body = json.loads(content)
    except Exception:  # noqa: BLE001 - an unreadable body carries no message
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _msg(what: str, e: Any) -> str:
    response = getattr(e, "response", None)
    rid = response.headers.get("X-Request-Id") if response is not None else None
    return f"{what} ({_status(e)}{', request ' + rid if rid else ''})"


