"""Namespace-level Hub calls for look-alike discovery: overviews, new-repo feeds, quick search.

Built on HubClient's transport so they share its retries, error classification, request
accounting and rate-limit pause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote

from monitor.detect.times import iso, object_id_time, parse_iso
from monitor.errors import NotFound
from monitor.hub.client import HubClient

REPO_TYPES = ("model", "dataset", "space")
MAX_LISTED_FILES = 2000  # per repo in a search answer: hostile repos can list any number
MAX_USER_ORGS = 500  # orgs read from one user overview
SEARCH_EXPAND = ("createdAt", "siblings")


@dataclass(frozen=True)
class Namespace:
    """What the Hub says about an org or user (users and orgs share one namespace)."""

    name: str
    kind: str  # org | user
    fullname: str
    verified: bool | None  # users carry no verification flag
    # The real org overview may omit its counts: None is "unknown", never 0.
    followers: int | None
    models: int | None
    datasets: int | None
    spaces: int | None
    members: int | None
    created_at: str | None  # users: `createdAt`; orgs have none, so the time in their `_id`
    details: str


@dataclass(frozen=True)
class RepoStub:
    type: str
    id: str
    author: str
    created_at: str | None
    object_id: str | None
    files: tuple[str, ...] = ()  # only when listed with expand=siblings

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[-1]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _namespace(d: Any, kind: str) -> Namespace:
    if not isinstance(d, dict):
        raise ValueError("overview is not an object")
    name = d.get("name") if kind == "org" else d.get("user")
    if not isinstance(name, str) or not name:
        raise ValueError("overview has no name")
    return Namespace(
        name=name, kind=kind, fullname=_str(d.get("fullname")),
        verified=bool(d.get("isVerified")) if kind == "org" else None,
        followers=_int(d.get("numFollowers")), models=_int(d.get("numModels")),
        datasets=_int(d.get("numDatasets")), spaces=_int(d.get("numSpaces")),
        members=_int(d.get("numUsers")) if kind == "org" else None,
        created_at=(d.get("createdAt") if parse_iso(d.get("createdAt")) else None) or _id_time(d.get("_id")),
        details=_str(d.get("details"))[:2000])


def _id_time(object_id: Any) -> str | None:
    created = object_id_time(object_id)
    return iso(created) if created else None


def _stub(rtype: str, d: Any) -> RepoStub:
    if not isinstance(d, dict) or not isinstance(d.get("id"), str):
        raise ValueError("repo list item has no id")
    rid = d["id"]
    author = d.get("author") if isinstance(d.get("author"), str) else rid.split("/", 1)[0] if "/" in rid else ""
    siblings = d.get("siblings")
    files = tuple(s["rfilename"] for s in siblings[:MAX_LISTED_FILES]
                  if isinstance(s, dict) and isinstance(s.get("rfilename"), str)) if isinstance(siblings, list) else ()
    return RepoStub(rtype, rid, author, d.get("createdAt") if isinstance(d.get("createdAt"), str) else None,
                    d.get("_id") if isinstance(d.get("_id"), str) else None, files)


class NamespaceClient:
    def __init__(self, client: HubClient):
        self.client = client
        self.endpoint = client.endpoint

    def overview(self, name: str) -> Namespace | None:
        """The org or user called `name`, or None when neither exists (org first: what we protect)."""
        for kind, path in (("org", "organizations"), ("user", "users")):
            try:
                data, _ = self.client._json("GET", f"{self.endpoint}/api/{path}/{quote(name, safe='')}/overview")
            except NotFound:
                continue
            return self.client._parsed(_namespace, data, kind)
        return None

    def repos_of(self, author: str, rtype: str = "model", limit: int = 100, sort: str = "createdAt"
                 ) -> list[RepoStub]:
        """Up to `limit` repos of a namespace, newest (or most `sort`) first (one request)."""
        return self._list(rtype, {"author": author, "limit": str(limit), "sort": sort}, limit)

    def search_repos(self, term: str, rtype: str = "model", limit: int = 100, sort: str | None = None
                     ) -> list[RepoStub]:
        """Repos whose id contains `term`, with their file lists (one request, one page); the
        Hub's order, or most `sort` first."""
        params = [("search", term), ("limit", str(limit))]
        if sort:
            params.append(("sort", sort))
        params += [("expand", k) for k in SEARCH_EXPAND]
        return self._list(rtype, params, limit)

    def _list(self, rtype: str, params: Any, limit: int) -> list[RepoStub]:
        """The first `limit` repos of one listing request."""
        data, _ = self.client._json("GET", f"{self.endpoint}/api/{rtype}s", params=params)
        if not isinstance(data, list):
            self.client._parsed(_raise, "repo list is not a list")
        return [self.client._parsed(_stub, rtype, d) for d in data[:limit]]

    def newest(self, rtype: str, page_size: int = 1000, max_pages: int = 5) -> Iterator[list[RepoStub]]:
        """Pages of the newest repos of a type, newest first; the caller stops when it meets what it saw.

        Pagination follows `Link: rel=next` only within the endpoint's origin."""
        url: str | None = f"{self.endpoint}/api/{rtype}s"
        params: dict | None = {"sort": "createdAt", "limit": str(page_size)}
        for _ in range(max_pages):
            if url is None:
                return
            data, r = self.client._json("GET", url, params=params)
            if not isinstance(data, list):
                self.client._parsed(_raise, "repo list is not a list")
            yield [self.client._parsed(_stub, rtype, d) for d in data]
            # A Link to another origin raises OffOrigin (a HubError): the caller keeps its cursor,
            # so the feed is re-read next cycle rather than assumed complete.
            url, params = self.client._next_page(r), None

    def members(self, org: str, max_pages: int = 20) -> tuple[list[str], int]:
        """(public member user names, requests made) of an org, paginated; NotFound if no such org.
        At most `max_pages` pages: a hostile or huge org cannot hold the roster job; a `Link` to
        another origin is not followed (OffOrigin, a HubError)."""
        url: str | None = f"{self.endpoint}/api/organizations/{quote(org, safe='')}/members"
        out: list[str] = []
        pages = 0
        while url is not None and pages < max_pages:
            data, r = self.client._json("GET", url)
            pages += 1
            out += self.client._parsed(_member_names, data)
            url = self.client._next_page(r)  # only within the endpoint's origin: the token goes along
        return out, pages

    def user_orgs(self, user: str) -> tuple[str, ...]:
        """The orgs a user's public overview lists; NotFound if no such user (an org name included)."""
        data, _ = self.client._json("GET", f"{self.endpoint}/api/users/{quote(user, safe='')}/overview")
        return self.client._parsed(_org_names, data)

    def quicksearch(self, q: str, limit: int = 50) -> list[tuple[str, str]]:
        """(kind, name) of orgs and users whose name or full name matches `q`."""
        data, _ = self.client._json("GET", f"{self.endpoint}/api/quicksearch",
                                    params=[("q", q), ("type", "org"), ("type", "user"), ("limit", str(limit))])
        return self.client._parsed(_search_hits, data)


def _raise(message: str) -> None:
    raise ValueError(message)


def _search_hits(data: Any) -> list[tuple[str, str]]:
    if not isinstance(data, dict):
        raise ValueError("quicksearch answer is not an object")
    out = []
    for kind, key, field in (("org", "orgs", "name"), ("user", "users", "user")):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise ValueError(f"quicksearch {key} is not a list")
        for item in items:
            if isinstance(item, dict) and isinstance(item.get(field), str):
                out.append((kind, item[field]))
    return out


def _member_names(data: Any) -> list[str]:
    if not isinstance(data, list):
        raise ValueError("members answer is not a list")
    return [d["user"] for d in data if isinstance(d, dict) and isinstance(d.get("user"), str) and d["user"]]


def _org_names(data: Any) -> tuple[str, ...]:
    if not isinstance(data, dict):
        raise ValueError("user overview is not an object")
    orgs = data.get("orgs") or []
    if not isinstance(orgs, list):
        raise ValueError("user overview orgs is not a list")
    return tuple(o["name"] for o in orgs[:MAX_USER_ORGS] if isinstance(o, dict) and isinstance(o.get("name"), str)
                 and o["name"])
