"""In-memory model of the Hub: repos with git-like history, namespaces, tokens, webhooks.

No I/O here. The HTTP layer reads this state while holding the same lock (`self._lock`), so a
test mutating the emulator never races a request being answered.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .cdn import Virtual

REPO_TYPES = ("model", "dataset", "space")
LFS_PATTERNS = ("*.bin", "*.safetensors", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.h5", "*.onnx", "*.gguf", "*.joblib")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS)
_SHA_RE = re.compile(r"[0-9a-f]{40}")
_PR_RE = re.compile(r"refs/pr/(\d+)")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_datetime(value: datetime | str | None) -> datetime:
    if value is None:
        return utcnow()
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso(dt: datetime) -> str:
    """The Hub's timestamp format: milliseconds and a literal Z."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# Every repo created before the Hub's 2022 import reports a `createdAt` in that import's minute (and
# an `_id` of that second), whatever the dates of its commits (shared/HUB_API.md: gpt2 and
# bert-base-uncased `:04`; deepset/roberta-base-squad2 and 19 more recorded import-era repos `:05`).
LEGACY_CREATED_AT = datetime(2022, 3, 2, 23, 29, 4, tzinfo=timezone.utc)


def object_id(created: datetime) -> str:
    """A Mongo ObjectId like the Hub's `_id`: the first 8 hex digits are the creation Unix second."""
    return f"{int(created.timestamp()) & 0xFFFFFFFF:08x}" + secrets.token_hex(8)


def hub_created(created: datetime, import_second: int = 4) -> datetime:
    """What the Hub reports as a repo's creation time: never earlier than the 2022 import (whose
    repos got second `import_second` of its minute)."""
    return max(created, LEGACY_CREATED_AT.replace(second=import_second))


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True, eq=False)
class Blob:
    oid: str  # git object id of what git stores: the pointer file for LFS blobs
    size: int  # size of the real content
    content: bytes | Virtual
    sha256: str | None = None  # set for LFS blobs only
    pointer_size: int | None = None

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None


def make_blob(path: str, content: bytes | str | Virtual) -> Blob:
    if isinstance(content, Virtual):  # a huge file served slice by slice: always LFS
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{content.sha256}\nsize {content.size}\n"
        return Blob(git_oid(pointer.encode()), content.size, content, content.sha256, len(pointer))
    data = content.encode() if isinstance(content, str) else bytes(content)
    name = path.rsplit("/", 1)[-1]
    if len(data) > LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS):
        sha = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
        return Blob(git_oid(pointer), len(data), data, sha, len(pointer))
    return Blob(git_oid(data), len(data), data)


@dataclass(frozen=True, eq=False)
class Commit:
    sha: str
    parent: str | None
    tree: dict  # path -> Blob; never mutated after creation
    title: str
    message: str
    author: str
    date: datetime


@dataclass(eq=False)
class Repo:
    type: str
    repo_id: str  # canonical casing
    oid: str  # the `_id`: identifies this repo object, changes on delete + re-create
    author: str | None
    created_at: datetime
    private: bool = False
    gated: bool | str = False
    disabled: bool = False
    downloads: int = 0
    likes: int = 0
    tags: list = field(default_factory=list)
    commits: dict = field(default_factory=dict)  # sha -> Commit
    branches: dict = field(default_factory=dict)  # name -> sha
    git_tags: dict = field(default_factory=dict)  # name -> sha
    prs: dict = field(default_factory=dict)  # number -> sha
    security: dict = field(default_factory=dict)  # sha or None (all revisions) -> [issue dict]
    scan_pending: set = field(default_factory=set)  # shas (None: every revision) not scanned yet
    gate_grants: set = field(default_factory=set)  # lower-cased user names
    import_second: int = 4  # legacy repos: the second of the 2022 import minute they report

    @property
    def namespace(self) -> str | None:
        return self.repo_id.split("/")[0] if "/" in self.repo_id else None


@dataclass(eq=False)
class Namespace:
    kind: str  # "user" | "org"
    name: str
    oid: str
    fullname: str
    created_at: datetime
    followers: int = 0
    verified: bool = False
    details: str = ""
    members: list = field(default_factory=list)  # orgs only: user names
    hide_counts: bool = False  # the real org overview may omit its num* counts


def _check_type(type: str) -> None:
    if type not in REPO_TYPES:
        raise ValueError(f"repo type must be one of {REPO_TYPES}, not {type!r}")


def _gate_value(gated) -> bool | str:
    if gated is True:
        return "auto"
    if gated in (False, None):
        return False
    if gated not in ("auto", "manual"):
        raise ValueError(f"gated must be False, 'auto' or 'manual', not {gated!r}")
    return gated


class HubState:
    """The mutable Hub. All public methods are thread-safe; repo ids are case-insensitive."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._clear_state()

    def _clear_state(self) -> None:
        self._repos: dict[tuple[str, str], Repo] = {}
        self._redirects: dict[tuple[str, str], Repo] = {}  # old (type, lower id) -> renamed repo
        self._aliases: set[tuple[str, str]] = set()  # redirects that answer 200 instead (add_redirect)
        self._namespaces: dict[str, Namespace] = {}
        self._tokens: dict[str, tuple[str, bool]] = {}
        self._webhooks: list[tuple[str, dict]] = []  # (owner, webhook as served)
        self._counter = itertools.count(1)
        self.page_size: int | None = None  # caps every paginated endpoint's page size when set
        # Small (non-LFS) files answer a relative 307 to /api/resolve-cache/... (seen 2025-07) when set
        self.resolve_cache = False

    # ---- repos ---------------------------------------------------------------------------
    def add_repo(self, repo_id: str, *, type: str = "model", files: dict | None = None, author: str | None = None,
                 created_at: datetime | str | None = None, private: bool = False, gated=False,
                 downloads: int = 0, likes: int = 0, tags=(), import_second: int = 4) -> str:
        """Create a repo (initial `.gitattributes` commit + one commit with `files`); returns head sha.
        A repo created before the 2022 import reports second `import_second` of its minute (`:04`
        like gpt2, `:05` like deepset/roberta-base-squad2)."""
        _check_type(type)
        with self._lock:
            key = (type, repo_id.lower())
            if key in self._repos:
                raise ValueError(f"{type} {repo_id} already exists")
            self._redirects.pop(key, None)  # a new repo at an old name shadows the redirect
            created = to_datetime(created_at)
            ns = repo_id.split("/")[0] if "/" in repo_id else None
            if ns:
                self._ensure_namespace(ns, created)
            repo = Repo(type=type, repo_id=repo_id, oid=object_id(hub_created(created, import_second)),
                        author=author or ns, created_at=created, private=private, gated=_gate_value(gated),
                        downloads=downloads, likes=likes, tags=list(tags), import_second=import_second)
            self._repos[key] = repo
            sha = self._commit(repo, {".gitattributes": GITATTRIBUTES}, title="initial commit", message="",
                               author="system", branch="main", date=created)
            if files:
                sha = self._commit(repo, files, title="Upload files", message="", author=repo.author or "system",
                                   branch="main", date=created)
            return sha

    def commit(self, repo_id: str, files: dict, *, title: str = "Update", message: str = "", author: str = "alice",
               branch: str = "main", type: str = "model", date: datetime | str | None = None) -> str:
        """Commit `files` (path -> bytes|str, None deletes) on top of `branch`; returns the new sha."""
        with self._lock:
            repo = self._repo(type, repo_id)
            if self._ref_sha(repo, branch) is None:
                raise ValueError(f"no branch {branch!r} in {repo.repo_id}; use create_branch/create_pr")
            return self._commit(repo, files, title=title, message=message, author=author, branch=branch, date=date)

    def create_branch(self, repo_id: str, name: str, from_sha: str | None = None, *, type: str = "model") -> str:
        with self._lock:
            repo = self._repo(type, repo_id)
            if name in repo.branches:
                raise ValueError(f"branch {name!r} exists")
            repo.branches[name] = self._rev_sha(repo, from_sha or "main")
            return repo.branches[name]

    def delete_branch(self, repo_id: str, name: str, *, type: str = "model") -> None:
        with self._lock:
            del self._repo(type, repo_id).branches[name]

    def create_tag(self, repo_id: str, tag: str, sha: str | None = None, *, type: str = "model") -> str:
        with self._lock:
            repo = self._repo(type, repo_id)
            if tag in repo.git_tags:
                raise ValueError(f"tag {tag!r} exists")
            repo.git_tags[tag] = self._rev_sha(repo, sha or "main")
            return repo.git_tags[tag]

    def move_tag(self, repo_id: str, tag: str, sha: str, *, type: str = "model") -> None:
        with self._lock:
            repo = self._repo(type, repo_id)
            if tag not in repo.git_tags:
                raise KeyError(f"no tag {tag!r}")
            repo.git_tags[tag] = self._rev_sha(repo, sha)

    def delete_tag(self, repo_id: str, tag: str, *, type: str = "model") -> None:
        with self._lock:
            del self._repo(type, repo_id).git_tags[tag]

    def create_pr(self, repo_id: str, files: dict, *, title: str = "PR", author: str = "alice",
                  type: str = "model") -> int:
        """Open a PR (ref `refs/pr/N`) with one commit on top of main; returns N."""
        with self._lock:
            repo = self._repo(type, repo_id)
            num = max(repo.prs, default=0) + 1
            repo.prs[num] = repo.branches["main"]
            self._commit(repo, files, title=title, message="", author=author, branch=f"refs/pr/{num}")
            return num

    def reset_branch(self, repo_id: str, branch: str, sha: str, *, type: str = "model") -> None:
        """Force-push `branch` to an existing commit."""
        with self._lock:
            repo = self._repo(type, repo_id)
            if branch not in repo.branches:
                raise KeyError(f"no branch {branch!r}")
            repo.branches[branch] = self._rev_sha(repo, sha)

    def rewrite_history(self, repo_id: str, branch: str = "main", files: dict | None = None,
                        title: str = "rewrite", *, author: str = "alice", message: str = "",
                        type: str = "model") -> str:
        """Force-push: a new head (old head's tree + `files`) whose parent is the old grandparent, or a
        fresh root. The old head leaves the branch history but stays resolvable by sha until gc()."""
        with self._lock:
            repo = self._repo(type, repo_id)
            head = repo.commits[repo.branches[branch]]
            parent = repo.commits[head.parent].parent if head.parent else None
            return self._commit(repo, files or {}, title=title, message=message, author=author, branch=branch,
                                parent=parent, base_tree=head.tree)

    def gc(self, repo_id: str, *, type: str = "model") -> int:
        """Drop commits unreachable from any ref; returns how many were dropped."""
        with self._lock:
            repo = self._repo(type, repo_id)
            keep: set[str] = set()
            for sha in [*repo.branches.values(), *repo.git_tags.values(), *repo.prs.values()]:
                while sha and sha not in keep:
                    keep.add(sha)
                    sha = repo.commits[sha].parent
            dropped = [s for s in repo.commits if s not in keep]
            for s in dropped:
                del repo.commits[s]
            return len(dropped)

    def delete_repo(self, repo_id: str, *, type: str = "model") -> None:
        with self._lock:
            repo = self._repo(type, repo_id)
            del self._repos[(type, repo.repo_id.lower())]
            self._redirects = {k: r for k, r in self._redirects.items() if r is not repo}

    def recreate_repo(self, repo_id: str, files: dict | None = None, author: str | None = None, *,
                      type: str = "model", **kwargs) -> str:
        """Delete (if present) and create again: new `_id`, new createdAt, new history."""
        with self._lock:
            if self._find(type, repo_id)[1] in ("exact", "case"):
                self.delete_repo(repo_id, type=type)
            return self.add_repo(repo_id, type=type, files=files, author=author, **kwargs)

    def rename_repo(self, old: str, new: str, *, type: str = "model") -> None:
        """Rename/transfer; the old id (and every URL under it) then answers 307 to the new one."""
        with self._lock:
            repo = self._repo(type, old)
            new_key = (type, new.lower())
            if new_key in self._repos and self._repos[new_key] is not repo:
                raise ValueError(f"{type} {new} already exists")
            old_ns = repo.namespace
            del self._repos[(type, repo.repo_id.lower())]
            self._redirects[(type, repo.repo_id.lower())] = repo
            self._redirects.pop(new_key, None)
            repo.repo_id = new
            if repo.namespace:
                self._ensure_namespace(repo.namespace, repo.created_at)
                if repo.author == old_ns:
                    repo.author = repo.namespace
            self._repos[new_key] = repo

    def set_private(self, repo_id: str, private: bool = True, *, type: str = "model") -> None:
        with self._lock:
            self._repo(type, repo_id).private = bool(private)

    def set_gated(self, repo_id: str, gated="auto", *, type: str = "model") -> None:
        with self._lock:
            self._repo(type, repo_id).gated = _gate_value(gated)

    def grant_access(self, repo_id: str, user: str, *, type: str = "model") -> None:
        """Let `user` download from a gated repo."""
        with self._lock:
            self._repo(type, repo_id).gate_grants.add(user.lower())

    def set_disabled(self, repo_id: str, disabled: bool = True, *, type: str = "model") -> None:
        with self._lock:
            self._repo(type, repo_id).disabled = bool(disabled)

    def set_security(self, repo_id: str, files_with_issues, sha: str | None = None, *, type: str = "model",
                     level: str = "unsafe") -> None:
        """Scan result for one revision (sha or ref) or, with sha=None, for every revision. Entries are
        paths (served as {"path": p, "level": level}; the Hub's levels are "unsafe" and "caution") or
        ready-made dicts. Marks that revision scanned."""
        with self._lock:
            repo = self._repo(type, repo_id)
            key = self._rev_sha(repo, sha) if sha else None
            repo.security[key] = [{"path": f, "level": level} if isinstance(f, str) else dict(f)
                                  for f in files_with_issues]
            repo.scan_pending.discard(key)

    def set_scan_pending(self, repo_id: str, sha: str | None = None, pending: bool = True, *,
                         type: str = "model") -> None:
        """The Hub has not scanned this revision (sha=None: any revision) yet: `scansDone: false`."""
        with self._lock:
            repo = self._repo(type, repo_id)
            key = self._rev_sha(repo, sha) if sha else None
            (repo.scan_pending.add if pending else repo.scan_pending.discard)(key)

    def update_repo(self, repo_id: str, *, type: str = "model", downloads: int | None = None,
                    likes: int | None = None, tags=None) -> None:
        with self._lock:
            repo = self._repo(type, repo_id)
            repo.downloads = repo.downloads if downloads is None else downloads
            repo.likes = repo.likes if likes is None else likes
            repo.tags = repo.tags if tags is None else list(tags)

    def repo_head(self, repo_id: str, branch: str = "main", *, type: str = "model") -> str:
        with self._lock:
            return self._rev_sha(self._repo(type, repo_id), branch)

    # ---- namespaces and auth -----------------------------------------------------------------
    def add_org(self, name: str, *, fullname: str | None = None, verified: bool = False, followers: int = 0,
                members=(), created_at: datetime | str | None = None, details: str = "",
                hide_counts: bool = False) -> str:
        """An org; `hide_counts` makes its overview omit numModels & co, as the real Hub may."""
        with self._lock:
            ns = self._ensure_namespace(name, to_datetime(created_at))
            ns.kind, ns.fullname, ns.verified, ns.followers, ns.details = (
                "org", fullname or name, verified, followers, details)
            ns.hide_counts = hide_counts
            if created_at is not None:
                self._set_created(ns, to_datetime(created_at))
            for m in members:
                self._ensure_namespace(m, ns.created_at)
                if m.lower() not in {x.lower() for x in ns.members}:
                    ns.members.append(m)
            return ns.name

    def add_user(self, name: str, *, fullname: str | None = None, followers: int = 0, orgs=(),
                 created_at: datetime | str | None = None) -> str:
        with self._lock:
            ns = self._ensure_namespace(name, to_datetime(created_at))
            ns.kind, ns.fullname, ns.followers = "user", fullname or name, followers
            if created_at is not None:
                self._set_created(ns, to_datetime(created_at))
            for org in orgs:
                o = self._namespaces.get(org.lower())
                if o is None or o.kind != "org":
                    self.add_org(org)
                    o = self._namespaces[org.lower()]
                if name.lower() not in {x.lower() for x in o.members}:
                    o.members.append(ns.name)
            return ns.name

    def revoke_token(self, token: str) -> None:
        """The Hub then answers 401 "Invalid credentials in Authorization header" to every call with it."""
        with self._lock:
            self._tokens.pop(token, None)

    def add_redirect(self, old_id: str, new_id: str, *, type: str = "model", answer: int = 307) -> None:
        """`old_id` (and every URL under it) 307s to the existing repo `new_id`, which may be a
        *different* repo object (runwayml/stable-diffusion-v1-5, legacy `gpt2`).

        `answer=200` is the variant recorded in 2025-03 (tests/emulator/NOTES.md): the old id answers
        200 itself, info with `"id": old_id` and the `_id`/`sha` of `new_id`, sub-resources (refs,
        commits, ...) with `new_id`'s data, no redirect anywhere."""
        with self._lock:
            if self._find(type, old_id)[1] in ("exact", "case"):
                raise ValueError(f"{type} {old_id} exists; delete it first")
            self._redirects[(type, old_id.lower())] = self._repo(type, new_id)
            (self._aliases.add if answer == 200 else self._aliases.discard)((type, old_id.lower()))

    def add_token(self, token: str, user: str = "hubwatch-bot", write: bool = False) -> str:
        with self._lock:
            if user.lower() not in self._namespaces:
                self.add_user(user)
            self._tokens[token] = (self._namespaces[user.lower()].name, write)
            return token

    @property
    def webhooks(self) -> list[dict]:
        with self._lock:
            return [dict(w, owner=owner) for owner, w in self._webhooks]

    # ---- internals shared with the routes ------------------------------------------------------
    @staticmethod
    def _set_created(ns: Namespace, created: datetime) -> None:
        ns.created_at, ns.oid = created, object_id(created)

    def _ensure_namespace(self, name: str, created: datetime) -> Namespace:
        ns = self._namespaces.get(name.lower())
        if ns is None:
            ns = Namespace("user", name, object_id(created), name, created)
            self._namespaces[name.lower()] = ns
        return ns

    def _find(self, type: str, repo_id: str) -> tuple[Repo | None, str | None]:
        """-> (repo, how): how is "exact", "case" (mis-cased id) or "moved" (renamed)."""
        key = (type, repo_id.lower())
        repo = self._repos.get(key)
        if repo is not None:
            return repo, "exact" if repo.repo_id == repo_id else "case"
        repo = self._redirects.get(key)
        if repo is not None and self._repos.get((type, repo.repo_id.lower())) is repo:
            return repo, "moved"
        return None, None

    def _repo(self, type: str, repo_id: str) -> Repo:
        _check_type(type)
        repo, how = self._find(type, repo_id)
        if repo is None or how == "moved":
            raise KeyError(f"no {type} repo {repo_id!r}")
        return repo

    def _ref_sha(self, repo: Repo, rev: str) -> str | None:
        if rev in repo.branches:
            return repo.branches[rev]
        if rev in repo.git_tags:
            return repo.git_tags[rev]
        if rev.startswith("refs/heads/"):
            return repo.branches.get(rev[len("refs/heads/"):])
        if rev.startswith("refs/tags/"):
            return repo.git_tags.get(rev[len("refs/tags/"):])
        m = _PR_RE.fullmatch(rev)
        return repo.prs.get(int(m.group(1))) if m else None

    def _resolve(self, repo: Repo, rev: str) -> Commit | None:
        sha = self._ref_sha(repo, rev)
        if sha is None and _SHA_RE.fullmatch(rev):
            sha = rev
        return repo.commits.get(sha) if sha else None

    def _rev_sha(self, repo: Repo, rev: str) -> str:
        commit = self._resolve(repo, rev)
        if commit is None:
            raise KeyError(f"no revision {rev!r} in {repo.repo_id}")
        return commit.sha

    def _history(self, repo: Repo, commit: Commit) -> list[Commit]:
        out = []
        while commit is not None:
            out.append(commit)
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return out

    def _commit(self, repo: Repo, changes: dict, *, title: str, message: str, author: str, branch: str,
                date=None, parent=..., base_tree: dict | None = None) -> str:
        if parent is ...:
            parent = self._ref_sha(repo, branch)
        tree = dict(base_tree if base_tree is not None else (repo.commits[parent].tree if parent else {}))
        for path, content in changes.items():
            path = path.strip("/")
            if content is None:
                tree.pop(path, None)
            else:
                tree[path] = make_blob(path, content)
        digest = hashlib.sha1("\n".join(f"{p} {b.oid}" for p, b in sorted(tree.items())).encode()).hexdigest()
        sha = hashlib.sha1(f"{parent}\n{digest}\n{next(self._counter)}\n{title}".encode()).hexdigest()
        repo.commits[sha] = Commit(sha, parent, tree, title, message, author, to_datetime(date))
        m = _PR_RE.fullmatch(branch)
        if m:
            repo.prs[int(m.group(1))] = sha
        else:
            repo.branches[branch.removeprefix("refs/heads/")] = sha
        return sha

    def _user_for(self, token: str) -> tuple[str, bool] | None:
        return self._tokens.get(token)

    def _is_member(self, user: str | None, namespace: str | None) -> bool:
        if not user or not namespace:
            return False
        if user.lower() == namespace.lower():
            return True
        ns = self._namespaces.get(namespace.lower())
        return ns is not None and ns.kind == "org" and user.lower() in {m.lower() for m in ns.members}

    def _visible(self, repo: Repo, user: str | None) -> bool:
        return not repo.private or self._is_member(user, repo.namespace)

    def _can_download(self, repo: Repo, user: str | None) -> bool:
        return (not repo.gated or self._is_member(user, repo.namespace)
                or (user is not None and user.lower() in repo.gate_grants))

    def _security_for(self, repo: Repo, sha: str) -> list[dict]:
        return repo.security.get(sha, repo.security.get(None, []))

    def _scan_done(self, repo: Repo, sha: str) -> bool:
        return sha not in repo.scan_pending and None not in repo.scan_pending

    def _history_readable(self, repo: Repo, user: str | None) -> bool:
        """Commits, trees and files: closed to those without access to a gated or disabled repo."""
        return not repo.disabled and self._can_download(repo, user)
