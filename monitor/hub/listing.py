"""Heads in bulk: one namespace's repos with their default-branch head, one listing page per 1,000.

`GET /api/{models,datasets,spaces}?author=NS&expand=sha&expand=lastModified&…` — the request
huggingface_hub's `list_models(author=NS, expand=[…])` sends (repeated `expand`, the `Link:
rel="next"` cursor). With `expand`, each item carries only `_id`, `id` and the keys asked for
(huggingface_hub's live tests `test_list_models_expand_author`/`_multiple`; no cassette records a
listing with `expand`): `sha` is the default-branch head, `lastModified` its date, and the identity
and access flags a check compares. Listings carry no security status (shared/HUB_API.md).

A listing is only as good as it is whole: a failed page, a page past `max_pages`, a full last
page without a next link, or an item we cannot read makes it *incomplete*, and the caller falls
back to per-repo reads for that namespace (jobs/heads.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

from monitor.errors import HubError
from monitor.hub.client import AnswerTooLarge, HubClient, OffOrigin

PAGE_SIZE = 1000  # the Hub's largest page (shared/HUB_API.md)
EXPAND = ("sha", "lastModified", "createdAt", "private", "gated", "disabled")
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class ListedHead:
    """One listed repo: its default-branch head and what identifies it."""

    repo_id: str
    object_id: str | None
    sha: str | None
    last_modified: str | None
    created_at: str | None
    private: bool
    gated: Any
    disabled: bool


@dataclass(frozen=True)
class Listing:
    type: str
    namespace: str
    heads: Mapping[str, ListedHead] = field(default_factory=dict)  # lower-cased repo id -> head
    pages: int = 0  # pages read (each one Hub request)
    complete: bool = False
    reason: str | None = None  # why incomplete: truncated | failed (…) | unreadable


def expand_keys(repo_type: str) -> tuple[str, ...]:
    # Spaces have no `gated` expand value (the Hub answers 400 to one it does not know).
    return tuple(k for k in EXPAND if not (repo_type == "space" and k == "gated"))


def listing_params(repo_type: str, namespace: str) -> list[tuple[str, str]]:
    return [("author", namespace), ("limit", str(PAGE_SIZE))] + [("expand", k) for k in expand_keys(repo_type)]


def _head(item: Any, namespace: str) -> ListedHead | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None
    repo_id = item["id"]
    if repo_id.split("/", 1)[0].lower() != namespace.lower():
        return None  # the listing answered for another namespace: not ours to trust
    sha = item.get("sha")

    def text(key: str) -> str | None:
        value = item.get(key)
        return value if isinstance(value, str) else None

    return ListedHead(repo_id, text("_id"), sha if isinstance(sha, str) and _SHA.fullmatch(sha) else None,
                      text("lastModified"), text("createdAt"), item.get("private") is True,
                      item.get("gated", False), item.get("disabled") is True)


def list_heads(client: HubClient, repo_type: str, namespace: str, max_pages: int) -> Listing:
    """Every repo of `namespace` with its head, reading at most `max_pages` pages."""
    url: str | None = f"{client.endpoint}/api/{repo_type}s"
    params: Any = listing_params(repo_type, namespace)
    heads: dict[str, ListedHead] = {}
    pages = 0

    def partial(reason: str) -> Listing:
        return Listing(repo_type, namespace, heads, pages, False, reason)

    while url is not None:
        if pages >= max_pages:
            return partial("truncated")
        try:
            data, url = client.page(url, params)
        except (AnswerTooLarge, OffOrigin):
            return partial("unreadable")
        except HubError as e:
            return partial(f"failed ({e})")
        finally:
            params = None  # the next URL carries the query (and its cursor)
        pages += 1
        if not isinstance(data, list):
            return partial("unreadable")
        for item in data:
            head = _head(item, namespace)
            if head is None:
                return partial("unreadable")
            heads[head.repo_id.lower()] = head
        if url is None and len(data) >= PAGE_SIZE:
            return partial("truncated")  # a full page and no next link: more may exist unseen
    return Listing(repo_type, namespace, heads, pages, True, None)


def listing_url(endpoint: str, repo_type: str, namespace: str) -> str:
    """The listing's first page, for people (docs, logs)."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in listing_params(repo_type, namespace))
    return f"{endpoint.rstrip('/')}/api/{repo_type}s?{query}"
