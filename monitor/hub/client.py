"""HubClient: the few Hub calls hubwatch makes, with retries and typed errors.

We call the endpoints through huggingface_hub's shared session (`get_session`/`http_backoff`)
rather than `HfApi` methods because we need what those methods drop: the repo `_id`, the final
URL after a rename redirect, and early exit from commit pagination. Errors are classified
once, here: definitive answers (NotFound, Gated, Disabled, RevisionNotFound) versus Transient
(5xx, 429, timeouts, network, garbled bodies), which callers treat as "unknown", never "gone".
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable, Iterable
from urllib.parse import quote, unquote, urlsplit

from monitor.config import HubSettings
from monitor.errors import Disabled, Gated, HubError, NotFound, RevisionNotFound, Transient
from monitor.hub import parse, session
from monitor.hub.models import Commit, History, Refs, RepoId, RepoInfo

MAX_TEXT_BYTES = 1_000_000


class EntryNotFound(NotFound):
    """Definitive: the file does not exist at that revision."""


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
        self.budget = session.BUDGET
        self.low_priority = False

    def with_low_priority(self) -> "HubClient":
        """A view of this client whose calls yield to pin checks when the request budget runs short."""
        view = copy.copy(self)
        view.low_priority = True
        return view

    # --- transport -----------------------------------------------------------------------
    def _request(self, method: str, url: str, **kw: Any):
        import httpx2
        from huggingface_hub import errors as hf_errors

        paused = self.stats.paused_for()
        if paused > 0:
            raise Transient(f"Hub rate limit: paused for {paused:.0f}s", retry_after=paused)
        if not self.budget.allow(self.low_priority):
            wait = self.budget.resets_in()
            raise Transient(f"Hub request budget spent for this window (resets in {wait:.0f}s)", retry_after=wait)
        try:
            r = self._hf.http_backoff(
                method, url, headers=self._headers, timeout=self.timeout,
                max_retries=self.retries, base_wait_time=self.retry_wait,
                max_wait_time=self.retry_wait * 8, retry_on_status_codes=(500, 502, 503, 504), **kw)
            self._hf.hf_raise_for_status(r)
            return r
        except hf_errors.RevisionNotFoundError as e:
            raise RevisionNotFound(_msg("revision not found", e), status=_status(e)) from None
        except hf_errors.GatedRepoError as e:
            raise Gated(_msg("gated", e), status=_status(e)) from None
        except hf_errors.RemoteEntryNotFoundError as e:
            raise EntryNotFound(_msg("file not found", e), status=_status(e)) from None
        except hf_errors.RepositoryNotFoundError as e:
            raise NotFound(_msg("repository not found", e), status=_status(e)) from None
        except hf_errors.DisabledRepoError as e:
            raise Disabled(_msg("repository disabled", e), status=_status(e)) from None
        except hf_errors.HfHubHTTPError as e:
            status = _status(e)
            if status == 429:
                rl = self._hf.parse_ratelimit_headers(e.response.headers)
                raise Transient("Hub rate limit (429)", status=429,
                                retry_after=float(rl.reset_in_seconds) if rl else 60.0) from None
            if status is not None and (status >= 500 or status in (408, 425)):
                raise Transient(f"Hub error {status}", status=status) from None
            if status == 404:
                raise NotFound(_msg("not found", e), status=404) from None
            if status == 401 and _is_repo_url(url) and not _bad_token(e):
                # What the real Hub answers anonymously for a missing or private repo: 401 without an
                # X-Error-Code (the client maps it to RepositoryNotFoundError on https:// only).
                raise NotFound(_msg("repository not found", e), status=401) from None
            raise HubError(_msg(f"Hub refused ({status})", e), status=status) from None
        except (httpx2.TransportError, OSError) as e:
            raise Transient(f"Hub unreachable: {type(e).__name__}") from None
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as e:
            # hf_raise_for_status choked formatting an error body it could not read (not UTF-8, JSON
            # that is not an object, "errors": 5, ...): the answer is unreadable, so the outcome unknown.
            raise Transient(f"unreadable error answer from the Hub ({type(e).__name__})") from None

    def _json(self, method: str, url: str, **kw: Any) -> tuple[Any, Any]:
        r = self._request(method, url, **kw)
        try:
            return r.json(), r
        except (ValueError, RecursionError):
            raise Transient(f"garbled JSON from {urlsplit(url).path}") from None

    def _parsed(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            raise Transient(f"unexpected Hub response: {e}") from None

    def _api(self, repo: RepoId, *parts: str) -> str:
        return "/".join([self.endpoint, repo.api_path, *parts])

    # --- calls -----------------------------------------------------------------------------
    def refs(self, repo: RepoId) -> Refs:
        """Every branch and tag head in one request; `canonical_id` reveals renames."""
        data, r = self._json("GET", self._api(repo, "refs"))
        return self._parsed(parse.refs, data, _canonical_from_url(str(r.url), repo))

    def info(self, repo: RepoId, revision: str | None = None, *, files: bool = True,
             security: bool = True) -> RepoInfo:
        """Repo metadata at a revision: `_id`, flags, file manifest (blob ids, LFS sha256), scan."""
        url = self._api(repo) if revision is None else self._api(repo, "revision", quote(revision, safe=""))
        params = {}
        if security:
            params["securityStatus"] = "true"
        if files:
            params["blobs"] = "true"
        data, _ = self._json("GET", url, params=params)
        return self._parsed(parse.repo_info, data)

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
            url = r.links.get("next", {}).get("url")
        return History(tuple(out), False, url is None)

    def contains(self, repo: RepoId, revision: str, sha: str, max_pages: int = 50) -> bool | None:
        """Is `sha` in the history of `revision`? None when the walk hit the page cap."""
        h = self.history(repo, revision, stop_at=[sha], max_pages=max_pages)
        return True if h.reached else (False if h.complete else None)

    def file_text(self, repo: RepoId, revision: str, path: str) -> str | None:
        """A small text file's content at a revision (None when absent); capped at 1 MB."""
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        url = f"{self.endpoint}/{prefix}{repo.id}/resolve/{quote(revision, safe='')}/{quote(path)}"
        try:
            r = self._request("GET", url)
        except EntryNotFound:
            return None
        body = r.content[:MAX_TEXT_BYTES]
        return body.decode("utf-8", errors="replace")


_REPO_URL = re.compile(r"/api/(models|datasets|spaces)/|/resolve/")


def _is_repo_url(url: str) -> bool:
    return _REPO_URL.search(urlsplit(url).path) is not None


def _bad_token(e: Any) -> bool:
    """401 `Invalid credentials in Authorization header`: the token is bad, nothing is said of any repo."""
    response = getattr(e, "response", None)
    return (response is not None
            and response.headers.get("X-Error-Message") == "Invalid credentials in Authorization header")


def _status(e: Any) -> int | None:
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


def _msg(what: str, e: Any) -> str:
    response = getattr(e, "response", None)
    rid = response.headers.get("X-Request-Id") if response is not None else None
    return f"{what} ({_status(e)}{', request ' + rid if rid else ''})"


_API_PATH = re.compile(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/|$)")


def _canonical_from_url(url: str, asked: RepoId) -> str:
    """The repo id in the final URL after redirects (the Hub 307s renamed and mis-cased ids)."""
    m = _API_PATH.search(urlsplit(url).path)
    return unquote(m.group(2)) if m else asked.id
