"""HTTP routes of the Hub emulator: request in, Response out, computed under the state lock.

Routing works on the raw (still percent-encoded) path, one segment at a time, like the Hub does:
`/api/models/ns/name/revision/refs%2Fpr%2F1` has the revision as a single encoded segment.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import secrets
from dataclasses import dataclass, field
from email.message import Message
from html import escape
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .hub_state import HubState, Repo, git_oid, hub_created, iso

PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space"}
SUBPATHS = {"revision", "refs", "commits", "tree", "paths-info", "resolve", "discussions", "settings"}
_COMMON_EXPAND = {"author", "cardData", "createdAt", "disabled", "lastModified", "likes", "private",
                  "resourceGroup", "sha", "siblings", "tags", "trendingScore", "usedStorage"}
EXPAND_KEYS = {  # the client's Expand*Property_T literals
    "model": _COMMON_EXPAND | {"baseModels", "childrenModelCount", "config", "downloads", "downloadsAllTime",
                               "evalResults", "gated", "gguf", "inference", "inferenceProviderMapping",
                               "library_name", "mask_token", "model-index", "pipeline_tag", "safetensors",
                               "spaces", "transformersInfo", "widgetData"},
    "dataset": _COMMON_EXPAND | {"citation", "description", "downloads", "downloadsAllTime", "gated", "mainSize",
                                 "paperswithcode_id"},
    "space": _COMMON_EXPAND | {"datasets", "models", "region", "runtime", "sdk", "subdomain"},
}
SORT_KEYS = {
    "createdAt": lambda st, r: r.created_at.timestamp(),
    "lastModified": lambda st, r: r.commits[r.branches["main"]].date.timestamp(),
    "downloads": lambda st, r: r.downloads,
    "likes": lambda st, r: r.likes,
    "trendingScore": lambda st, r: 0,
    "id": lambda st, r: 0,
}
DISABLED_MESSAGE = "Access to this resource is disabled."
LIST_KEYS = frozenset({"_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                       "library_name", "createdAt", "modelId"})


@dataclass
class Request:
    method: str
    path: str  # raw, percent-encoded
    query: str
    headers: Message
    body: bytes
    user: str | None
    base_url: str
    write: bool = False  # the token's write permission
    params: list = field(init=False)

    def __post_init__(self):
        self.params = parse_qsl(self.query, keep_blank_values=True)

    def get(self, key: str, default=None):
        return next((v for k, v in self.params if k == key), default)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.params if k in (key, key + "[]")]

    def flag(self, key: str) -> bool:
        return str(self.get(key, "")).lower() in ("1", "true", "yes")

    def int_param(self, key: str, default: int | None) -> int | None:
        value = self.get(key)
        return default if value in (None, "") else int(value)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list = field(default_factory=list)


class HttpError(Exception):
    def __init__(self, response: Response):
        self.response = response


def jresp(obj, status: int = 200, headers=()) -> Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Response(status, body, [("Content-Type", "application/json; charset=utf-8"), *headers])


def error(status: int, message: str, code: str | None = None) -> Response:
    headers = [("X-Error-Message", message)] + ([("X-Error-Code", code)] if code else [])
    return jresp({"error": message}, status, headers)


def redirect(location: str) -> Response:
    """The Hub's 307: a relative Location (path + query)."""
    return Response(307, f"Temporary Redirect. Redirecting to {location}".encode(),
                    [("Location", location), ("Content-Type", "text/plain; charset=utf-8")])


def not_found() -> Response:
    return error(404, "Sorry, we can't find the page you are looking for.")


def _fail(response: Response):
    raise HttpError(response)


# ---- dispatch ------------------------------------------------------------------------------
def route(st: HubState, req: Request) -> Response:
    segs = req.path.split("/")[1:]
    if segs and segs[-1] == "" and len(segs) > 1:
        segs = segs[:-1]
    try:
        if segs[:1] == ["api"]:
            return _api(st, req, segs[1:])
        return _resolve(st, req, segs)
    except HttpError as e:
        return e.response
    except ValueError as e:  # malformed params, cursor or body
        return error(400, f"Bad request: {e}")


def _api(st: HubState, req: Request, segs: list[str]) -> Response:
    get = req.method in ("GET", "HEAD")
    head = segs[0] if segs else ""
    if segs == ["agent-harnesses"] and get:
        return jresp({"standardEnvVars": [], "harnesses": {}})
    if segs == ["whoami-v2"] and get:
        return _whoami(st, req)
    if head == "resolve-cache" and len(segs) > 1 and segs[1] in PLURALS:
        return _resolve_cache(st, req, PLURALS[segs[1]], segs[2:])
    if segs == ["quicksearch"] and get:
        return _quicksearch(st, req)
    if segs[:2] == ["settings", "webhooks"]:
        return _webhooks(st, req, segs[2:])
    if head == "organizations" and len(segs) == 3 and get:
        return _org(st, req, unquote(segs[1]), segs[2])
    if head == "users" and len(segs) == 3 and segs[2] == "overview" and get:
        return _user_overview(st, req, unquote(segs[1]))
    if head in PLURALS and len(segs) == 1 and get:
        return _list_repos(st, req, PLURALS[head])
    if head in PLURALS and len(segs) > 1:
        return _repo_api(st, req, PLURALS[head], segs[1:])
    return not_found()


def _repo_api(st: HubState, req: Request, rtype: str, segs: list[str]) -> Response:
    n = _id_segments(st, rtype, segs)
    repo = _lookup(st, req, rtype, ["api", rtype + "s"], segs, n)
    asked = "/".join(unquote(s) for s in segs[:n])
    shown = asked if (rtype, asked.lower()) in st._aliases else repo.repo_id  # the 200 variant: its own id
    rest, get = segs[n:], req.method in ("GET", "HEAD")
    if not rest and get:
        return _info(st, req, repo, "main", shown)
    if rest[0] == "revision" and len(rest) > 1 and get:
        return _info(st, req, repo, "/".join(unquote(s) for s in rest[1:]), shown)
    if rest == ["refs"] and get:
        return _refs(repo, req)
    if rest[0] in ("commits", "tree", "paths-info"):
        _require_history(st, req, repo)
    if rest[0] == "commits" and get:
        return _commits(st, req, repo, "/".join(unquote(s) for s in rest[1:]) or "main")
    if rest[0] == "tree" and len(rest) > 1 and get:
        rev, path = _rev_and_path(rest[1:])
        return _tree(st, req, repo, rev, path)
    if rest == ["discussions"] and get:  # open even on gated and disabled repos
        return jresp({"discussions": [], "count": 0, "start": 0, "numClosedDiscussions": 0})
    if rest[0] == "paths-info" and len(rest) > 1 and req.method == "POST":
        return _paths_info(st, req, repo, "/".join(unquote(s) for s in rest[1:]))
    return not_found()


def _id_segments(st: HubState, rtype: str, segs: list[str]) -> int:
    """1 for legacy un-namespaced ids (`gpt2/refs`), else 2."""
    if len(segs) >= 2 and not (unquote(segs[1]) in SUBPATHS and st._find(rtype, unquote(segs[0]))[0]):
        return 2
    return 1


def _rev_and_path(segs: list[str]) -> tuple[str, str]:
    """Revision is one encoded segment; tolerate an unencoded `refs/pr/1`-style one too."""
    if unquote(segs[0]) == "refs" and len(segs) >= 3:
        return "/".join(unquote(s) for s in segs[:3]), "/".join(unquote(s) for s in segs[3:])
    return unquote(segs[0]), "/".join(unquote(s) for s in segs[1:])


def _lookup(st: HubState, req: Request, rtype: str, prefix: list[str], segs: list[str], n: int) -> Repo:
    repo, how = st._find(rtype, "/".join(unquote(s) for s in segs[:n]))
    if repo is None or not st._visible(repo, req.user):
        if req.user is None:  # the real Hub: no X-Error-Code on this one (shared/HUB_API.md)
            _fail(error(401, "Invalid username or password."))
        _fail(error(404, "Repository not found", "RepoNotFound"))
    if how == "moved" and (rtype, "/".join(unquote(s) for s in segs[:n]).lower()) in st._aliases:
        return repo  # the 200 variant of a legacy alias (NOTES.md): answered in place
    if how != "exact":
        # Renamed or mis-cased: a relative 307 to the same URL under the canonical id, query kept.
        parts = prefix + [quote(p, safe="") for p in repo.repo_id.split("/")] + segs[n:]
        location = "/" + "/".join(parts) + (f"?{req.query}" if req.query else "")
        _fail(redirect(location))
    return repo


def _require_history(st: HubState, req: Request, repo: Repo) -> None:
    """Commits, trees and files of a gated repo we were not granted, or of a disabled one: 401
    `GatedRepo` anonymously, 403 with a token (info and refs stay 200)."""
    if not st._history_readable(repo, req.user):
        anonymous = req.user is None
        msg = (f"Access to {repo.type} {repo.repo_id} is restricted. You must have access to it and be "
               f"authenticated to access it. Please log in." if anonymous else
               f"Access to {repo.type} {repo.repo_id} is restricted and you are not in the authorized list.")
        _fail(error(401 if anonymous else 403, msg, "GatedRepo"))


def _commit_or_404(st: HubState, repo: Repo, rev: str):
    commit = st._resolve(repo, rev)
    if commit is None:
        _fail(error(404, f"Invalid rev id: {rev}", "RevisionNotFound"))
    return commit


# ---- pagination --------------------------------------------------------------------------------
def _paginate(st: HubState, req: Request, items: list, size: int, param: str = "cursor") -> tuple[list, list]:
    size = max(1, min(size, 1000, st.page_size or 1000))
    raw = req.get(param)
    if param == "p":
        start = int(raw or 0) * size
    else:
        start = int(base64.urlsafe_b64decode((raw or "") + "===").decode().removeprefix("o:") or 0) if raw else 0
    headers = []
    if start + size < len(items):
        token = str(start // size + 1) if param == "p" else (
            base64.urlsafe_b64encode(f"o:{start + size}".encode()).decode().rstrip("="))
        nxt = urlencode([(k, v) for k, v in req.params if k != param] + [(param, token)])
        headers.append(("Link", f'<{req.base_url}{req.path}?{nxt}>; rel="next"'))
    return items[start:start + size], headers


# ---- repo info and listing ---------------------------------------------------------------------
def _full_info(st: HubState, repo: Repo, commit, *, blobs: bool = False) -> dict:
    tree = commit.tree
    d = {"_id": repo.oid, "id": repo.repo_id}
    if repo.type == "model":
        d["modelId"] = repo.repo_id
    d.update(author=repo.author, sha=commit.sha, lastModified=iso(commit.date),
             createdAt=iso(hub_created(repo.created_at, repo.import_second)), private=repo.private,
             gated="auto" if repo.disabled else repo.gated, disabled=repo.disabled, likes=repo.likes,
             tags=list(repo.tags), trendingScore=0, usedStorage=sum(b.size for b in tree.values()))
    if repo.type != "space":
        d["downloads"] = repo.downloads
    if repo.type == "model":
        d["spaces"] = []
    if repo.type == "space":
        d["sdk"] = "static"
    siblings = []
    for path, b in sorted(tree.items()):
        s = {"rfilename": path}
        if blobs:
            s.update(blobId=b.oid, size=b.size)
            if b.is_lfs:
                s["lfs"] = {"sha256": b.sha256, "size": b.size, "pointerSize": b.pointer_size}
        siblings.append(s)
    d["siblings"] = siblings
    return d


def _expand(req: Request, rtype: str, full: dict) -> dict | None:
    keys = req.getall("expand")
    if not keys:
        return None
    bad = [k for k in keys if k not in EXPAND_KEYS[rtype]]
    if bad:
        _fail(error(400, f'"expand" contains invalid values: {bad}'))
    return {"_id": full["_id"], "id": full["id"], **{k: full[k] for k in keys if k in full}}


def _info(st: HubState, req: Request, repo: Repo, rev: str, shown: str | None = None) -> Response:
    if req.getall("expand") and (req.flag("securityStatus") or req.flag("blobs")):
        return error(400, '"expand" cannot be combined with "securityStatus" or "blobs"')
    commit = _commit_or_404(st, repo, rev)
    full = _full_info(st, repo, commit, blobs=req.flag("blobs"))
    if shown is not None and shown != repo.repo_id:  # a legacy alias answering 200: its own id, the target's _id
        full["id"] = shown
        if "modelId" in full:
            full["modelId"] = shown
    expanded = _expand(req, repo.type, full)
    if expanded is not None:
        return jresp(expanded)
    if req.flag("securityStatus"):
        done = st._scan_done(repo, commit.sha)
        full["securityRepoStatus"] = {"scansDone": done,
                                      "filesWithIssues": st._security_for(repo, commit.sha) if done else []}
    return jresp(full)


def _list_repos(st: HubState, req: Request, rtype: str) -> Response:
    author, search = (req.get("author") or "").lower(), (req.get("search") or "").lower()
    wanted_tags = req.getall("filter")
    repos = [r for r in st._repos.values() if r.type == rtype and st._visible(r, req.user)
             and (not author or (r.namespace or "").lower() == author) and search in r.repo_id.lower()
             and all(t in r.tags for t in wanted_tags)]
    sort = req.get("sort") or "trendingScore"
    if sort not in SORT_KEYS:
        return error(400, f"Invalid sort: {sort}")
    ascending = req.get("direction") == "1"
    repos.sort(key=lambda r: r.repo_id.lower())
    repos.sort(key=lambda r: SORT_KEYS[sort](st, r), reverse=not ascending)
    page, headers = _paginate(st, req, repos, req.int_param("limit", 1000))
    out = []
    for r in page:
        full = _full_info(st, r, r.commits[r.branches["main"]])
        expanded = _expand(req, rtype, full)
        if expanded is None:
            # The real list item: no author, no lastModified, no sha unless expanded (shared/HUB_API.md).
            keep = LIST_KEYS
            if req.flag("full"):
                keep = keep | {"siblings", "sha", "author", "lastModified"}
            expanded = {k: v for k, v in full.items() if k in keep}
        out.append(expanded)
    return jresp(out, headers=headers)


def _refs(repo: Repo, req: Request) -> Response:
    def ref(name, full, sha):
        return {"name": name, "ref": full, "targetCommit": sha}

    body = {"branches": [ref(b, f"refs/heads/{b}", s) for b, s in sorted(repo.branches.items())],
            "converts": [], "tags": [ref(t, f"refs/tags/{t}", s) for t, s in sorted(repo.git_tags.items())]}
    if req.flag("include_prs"):
        body["pullRequests"] = [ref(f"refs/pr/{n}", f"refs/pr/{n}", s) for n, s in sorted(repo.prs.items())]
    return jresp(body)


def _commits(st: HubState, req: Request, repo: Repo, rev: str) -> Response:
    history = st._history(repo, _commit_or_404(st, repo, rev))
    page, headers = _paginate(st, req, history, req.int_param("limit", 50), param="p")
    formatted = "formatted" in req.getall("expand")
    items = []
    for c in page:
        item = {"id": c.sha, "title": c.title, "message": c.message, "date": iso(c.date),
                "authors": [{"user": c.author, "avatar": f"/avatars/{c.author}.svg"}]}
        if formatted:
            item["formatted"] = {"title": escape(c.title), "message": escape(c.message)}
        items.append(item)
    return jresp(items, headers=headers + [("X-Total-Count", str(len(history)))])


# ---- files ---------------------------------------------------------------------------------
def _dirs(tree: dict) -> set[str]:
    return {p.rsplit("/", i)[0] for p in tree for i in range(1, p.count("/") + 1)}


def _last_change(st: HubState, repo: Repo, commit, path: str, is_dir: bool):
    def state(c):
        if not is_dir:
            b = c.tree.get(path)
            return b.oid if b else None
        return tuple(sorted((p, b.oid) for p, b in c.tree.items() if p.startswith(path + "/")))

    history = st._history(repo, commit)
    for c, parent in zip(history, history[1:] + [None]):
        if parent is None or state(c) != state(parent):
            return {"id": c.sha, "title": c.title, "date": iso(c.date)}
    return None


def _entry(st: HubState, repo: Repo, commit, path: str, expand: bool) -> dict | None:
    tree = commit.tree
    if path in tree:
        b = tree[path]
        item = {"type": "file", "oid": b.oid, "size": b.size, "path": path}
        if b.is_lfs:
            item["lfs"] = {"oid": b.sha256, "size": b.size, "pointerSize": b.pointer_size}
        if expand:
            unsafe = any(i.get("path") == path for i in st._security_for(repo, commit.sha))
            item["lastCommit"] = _last_change(st, repo, commit, path, False)
            item["securityFileStatus"] = {
                "status": "unsafe" if unsafe else "safe",
                "avScan": {"virusFound": False, "virusNames": None},
                "pickleImportScan": {"highestSafetyLevel": "dangerous" if unsafe else "innocuous", "imports": []}}
        return item
    if path in _dirs(tree):
        under = sorted((p[len(path) + 1:], b.oid) for p, b in tree.items() if p.startswith(path + "/"))
        oid = git_oid("\n".join(f"{p} {o}" for p, o in under).encode())
        item = {"type": "directory", "oid": oid, "size": 0, "path": path}
        if expand:
            item["lastCommit"] = _last_change(st, repo, commit, path, True)
        return item
    return None


def _tree(st: HubState, req: Request, repo: Repo, rev: str, path: str) -> Response:
    commit = _commit_or_404(st, repo, rev)
    path = path.strip("/")
    every = sorted(set(commit.tree) | _dirs(commit.tree))
    if path and path not in _dirs(commit.tree):
        return error(404, f"Entry not found: {path}", "EntryNotFound")
    prefix = path + "/" if path else ""
    under = [p for p in every if p.startswith(prefix)]
    if not req.flag("recursive"):
        under = [p for p in under if "/" not in p[len(prefix):]]
    expand = req.flag("expand")
    page, headers = _paginate(st, req, under, 50 if expand else 1000)
    return jresp([_entry(st, repo, commit, p, expand) for p in page], headers=headers)


def _paths_info(st: HubState, req: Request, repo: Repo, rev: str) -> Response:
    commit = _commit_or_404(st, repo, rev)
    if "json" in (req.headers.get("Content-Type") or ""):
        data = json.loads(req.body or b"{}")
        paths, expand = data.get("paths", []), bool(data.get("expand"))
        paths = [paths] if isinstance(paths, str) else paths
    else:
        form = parse_qsl(req.body.decode(), keep_blank_values=True)
        paths = [v for k, v in form if k in ("paths", "paths[]")]
        expand = any(k == "expand" and v.lower() in ("1", "true") for k, v in form)
    out, seen = [], set()
    for p in paths:
        p = p.strip("/")
        if p not in seen and (item := _entry(st, repo, commit, p, expand)) is not None:
            seen.add(p)
            out.append(item)
    return jresp(out)


def _resolve(st: HubState, req: Request, segs: list[str]) -> Response:
    rtype, prefix = "model", []
    if segs and segs[0] in ("datasets", "spaces"):
        rtype, prefix, segs = PLURALS[segs[0]], [segs[0]], segs[1:]
    if len(segs) >= 4 and segs[2] == "resolve":
        n = 2
    elif len(segs) >= 3 and segs[1] == "resolve":
        n = 1
    else:
        return not_found()
    if req.method not in ("GET", "HEAD"):
        return not_found()
    repo = _lookup(st, req, rtype, prefix, segs, n)
    rev, path = _rev_and_path(segs[n + 1:])
    if repo.disabled:
        return error(403, DISABLED_MESSAGE)
    _require_history(st, req, repo)
    commit = _commit_or_404(st, repo, rev)
    blob = commit.tree.get(path)
    if blob is None:
        return error(404, "Entry not found", "EntryNotFound")
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    etag = f'"{blob.sha256 or blob.oid}"'
    headers = [("ETag", etag), ("X-Repo-Commit", commit.sha)]
    if blob.is_lfs:
        # LFS/Xet: a redirect to a CDN on another origin; the metadata is on the redirect itself
        # (shared/HUB_API.md). The client must not send its token there.
        location = st.cdn.signed_url(blob.sha256, blob.content)
        return Response(302, b"", headers + [("X-Linked-Etag", etag), ("X-Linked-Size", str(blob.size)),
                                             ("Location", location), ("Content-Type", "text/plain; charset=utf-8")])
    if st.resolve_cache:  # a relative redirect to the Hub's own cache of small files (seen 2025-07)
        parts = ["api", "resolve-cache", rtype + "s", *[quote(p, safe="") for p in repo.repo_id.split("/")],
                 commit.sha, *[quote(p, safe="") for p in path.split("/")]]
        return redirect("/" + "/".join(parts) + "?etag=" + quote(etag.strip('"')))
    return _file_body(req, blob, [("Content-Type", ctype), ("Accept-Ranges", "bytes"), *headers])


def _file_body(req: Request, blob, headers: list) -> Response:
    """A small file's content, or the range of it asked for (206 + Content-Range)."""
    body, status = blob.content, 200
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", req.headers.get("Range") or "")
    if m and (m.group(1) or m.group(2)) and blob.size:
        start = int(m.group(1)) if m.group(1) else max(0, blob.size - int(m.group(2)))
        end = min(int(m.group(2)), blob.size - 1) if m.group(1) and m.group(2) else blob.size - 1
        if start >= blob.size:
            return Response(416, b"", [("Content-Range", f"bytes */{blob.size}")])
        body, status = body[start:end + 1], 206
        headers.append(("Content-Range", f"bytes {start}-{end}/{blob.size}"))
    return Response(status, body, headers)


def _resolve_cache(st: HubState, req: Request, rtype: str, segs: list[str]) -> Response:
    """`/api/resolve-cache/{type}s/{ns}/{name}/{sha}/{path}`: the file at that commit."""
    if len(segs) < 4 or req.method not in ("GET", "HEAD"):
        return not_found()
    repo = _lookup(st, req, rtype, ["api", "resolve-cache", rtype + "s"], segs, 2)
    _require_history(st, req, repo)
    commit = _commit_or_404(st, repo, unquote(segs[2]))
    blob = commit.tree.get("/".join(unquote(s) for s in segs[3:]))
    if blob is None or blob.is_lfs:
        return error(404, "Entry not found", "EntryNotFound")
    ctype = mimetypes.guess_type(segs[-1])[0] or "application/octet-stream"
    return _file_body(req, blob, [("Content-Type", ctype), ("Accept-Ranges", "bytes"),
                                  ("ETag", f'"{blob.oid}"'), ("X-Repo-Commit", commit.sha)])


# ---- namespaces, search, webhooks, auth ----------------------------------------------------------
def _avatar(name: str) -> str:
    return f"/avatars/{quote(name.lower(), safe='')}.svg"


def _counts(st: HubState, req: Request, ns: str) -> dict:
    repos = [r for r in st._repos.values() if (r.namespace or "").lower() == ns.lower() and st._visible(r, req.user)]
    return {f"num{k}": sum(r.type == t for r in repos)
            for k, t in (("Models", "model"), ("Datasets", "dataset"), ("Spaces", "space"))}


def _org_brief(o) -> dict:
    return {"_id": o.oid, "name": o.name, "fullname": o.fullname, "avatarUrl": _avatar(o.name)}


def _user_brief(u) -> dict:
    return {"_id": u.oid, "user": u.name, "fullname": u.fullname, "avatarUrl": _avatar(u.name), "type": "user",
            "isPro": False}


def _org(st: HubState, req: Request, name: str, what: str) -> Response:
    org = st._namespaces.get(name.lower())  # case-insensitive, no redirect (`qwen` -> 200 "Qwen")
    if org is None or org.kind != "org":
        return not_found()
    if what == "overview":  # the real overview has no `createdAt` and no `type`; counts may be missing
        counts = {} if org.hide_counts else {"numUsers": len(org.members), **_counts(st, req, org.name),
                                             "numFollowers": org.followers, "numPapers": 0}
        return jresp({**_org_brief(org), "details": org.details, "isVerified": org.verified, "isFollowing": False,
                      "plan": "team" if org.verified else "free", **counts})
    if what == "members":
        members = [st._namespaces[m.lower()] for m in org.members]
        page, headers = _paginate(st, req, members, 500)
        return jresp([_user_brief(u) for u in page], headers=headers)
    return not_found()


def _user_overview(st: HubState, req: Request, name: str) -> Response:
    u = st._namespaces.get(name.lower())
    if u is None or u.kind != "user":
        return error(404, "This user does not exist")
    if u.name != name:  # other casing: 307 to the canonical one (orgs answer 200 instead)
        location = f"/api/users/{quote(u.name, safe='')}/overview" + (f"?{req.query}" if req.query else "")
        return redirect(location)
    orgs = [o for o in st._namespaces.values()
            if o.kind == "org" and u.name.lower() in {m.lower() for m in o.members}]
    return jresp({**_user_brief(u), "details": "", **_counts(st, req, u.name), "numDiscussions": 0, "numPapers": 0,
                  "numUpvotes": 0, "numLikes": 0, "numFollowers": u.followers, "numFollowing": 0,
                  "orgs": [{"id": o.oid, "name": o.name, "fullname": o.fullname, "avatarUrl": _avatar(o.name)}
                           for o in orgs], "createdAt": iso(u.created_at)})


def _quicksearch(st: HubState, req: Request) -> Response:
    q = req.get("q") or ""
    ql = q.lower()
    types = req.getall("type") or ["model", "dataset", "space", "org", "user"]
    limit = max(1, min(req.int_param("limit", 10), 100))

    def rank(name: str):
        n = name.lower()
        return (n != ql, not n.startswith(ql), n)

    body = {"q": q}
    for t in ("model", "dataset", "space"):
        hits = sorted((r for r in st._repos.values() if t in types and r.type == t and ql in r.repo_id.lower()
                       and st._visible(r, req.user)), key=lambda r: rank(r.repo_id))
        body[t + "s"] = [{"_id": r.oid, "id": r.repo_id} for r in hits[:limit]]
        body[t + "sCount"] = len(hits)
    for t, brief in (("org", _org_brief), ("user", _user_brief)):
        hits = sorted((n for n in st._namespaces.values() if t in types and n.kind == t
                       and (ql in n.name.lower() or ql in n.fullname.lower())), key=lambda n: rank(n.name))
        body[t + "s"] = [{k: v for k, v in brief(n).items() if k not in ("type", "isPro")} for n in hits[:limit]]
        body[t + "sCount"] = len(hits)
    return jresp(body)


def _webhooks(st: HubState, req: Request, rest: list[str]) -> Response:
    if req.user is None:
        return error(401, "You must be authenticated to manage webhooks")
    mine = [w for owner, w in st._webhooks if owner == req.user]
    if not rest and req.method in ("GET", "HEAD"):
        return jresp(mine)
    if not rest and req.method == "POST":
        data = json.loads(req.body or b"{}")
        watched = data.get("watched")
        if not watched or not isinstance(watched, list) or not (data.get("url") or data.get("jobSourceId")):
            return error(400, "A webhook needs `watched` items and a `url`")
        hook = {"id": secrets.token_hex(12), "url": data.get("url"), "watched": watched,
                "domains": data.get("domains") or ["repo", "discussion"], "secret": data.get("secret"),
                "disabled": False}
        st._webhooks.append((req.user, hook))
        return jresp({"webhook": hook})
    hook = next((w for w in mine if rest and w["id"] == unquote(rest[0])), None)
    if hook is None or len(rest) != 1:
        return error(404, "Webhook not found")
    if req.method == "DELETE":
        st._webhooks = [(o, w) for o, w in st._webhooks if w is not hook]
        return jresp({})
    if req.method == "POST":  # update_webhook: only the fields sent change
        data = json.loads(req.body or b"{}")
        for key in ("url", "watched", "domains", "secret"):
            if key in data:
                hook[key] = data[key]
        return jresp({"webhook": hook})
    return jresp({"webhook": hook}) if req.method in ("GET", "HEAD") else not_found()


def _whoami(st: HubState, req: Request) -> Response:
    if req.user is None:
        return error(401, "Invalid username or password.")
    u = st._namespaces[req.user.lower()]
    orgs = [o for o in st._namespaces.values()
            if o.kind == "org" and u.name.lower() in {m.lower() for m in o.members}]
    return jresp({"type": "user", "id": u.oid, "name": u.name, "fullname": u.fullname, "isPro": False,
                  "avatarUrl": _avatar(u.name), "orgs": [{**_org_brief(o), "roleInOrg": "read"} for o in orgs],
                  "auth": {"type": "access_token",
                           "accessToken": {"displayName": "emulator", "role": "write" if req.write else "read"}}})
