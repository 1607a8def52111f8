"""Hub JSON -> models. Anything malformed raises ValueError with a one-line reason."""

from __future__ import annotations

import re
from typing import Any

from monitor.hub.models import Commit, FileEntry, Refs, RepoInfo, ScanIssue

_SHA = re.compile(r"^[0-9a-f]{40}\Z")


def _require(d: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"expected an object, got {type(d).__name__}")
    if key not in d or not isinstance(d[key], kind):
        raise ValueError(f"field {key!r} missing or not {getattr(kind, '__name__', kind)}")
    return d[key]


def _sha(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SHA.match(value):
        raise ValueError(f"{what} is not a 40-hex sha: {str(value)[:60]!r}")
    return value


def _ref_list(items: Any, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise ValueError(f"{what} is not a list")
    out = []
    for item in items:
        name = _require(item, "name", str)
        out.append((name, _sha(_require(item, "targetCommit", str), f"{what}[{name}]")))
    return tuple(sorted(out))


def refs(data: Any, canonical_id: str) -> Refs:
    return Refs(canonical_id, _ref_list(_require(data, "branches", list), "branches"),
                _ref_list(_require(data, "tags", list), "tags"))


def _file(item: Any) -> FileEntry:
    path = _require(item, "rfilename", str)
    lfs = item.get("lfs") if isinstance(item.get("lfs"), dict) else None
    size = item.get("size") if isinstance(item.get("size"), int) else None
    blob = item.get("blobId") if isinstance(item.get("blobId"), str) else None
    sha256 = lfs.get("sha256") if lfs and isinstance(lfs.get("sha256"), str) else None
    return FileEntry(path, blob, size, sha256)


def _scan_issue(item: Any) -> ScanIssue:
    """A file the scan lists, with the level exactly as the Hub spelled it (detect/ judges it).
    An entry without a readable level keeps the level "" — an unknown level, never "clean"."""
    if not isinstance(item, dict):
        return ScanIssue(str(item)[:500], "")
    level = item.get("level")
    return ScanIssue(str(item.get("path", item))[:500], level[:100] if isinstance(level, str) else "")


def repo_info(data: Any, listed: bool = True) -> RepoInfo:
    repo_id = _require(data, "id", str)
    sha = _sha(_require(data, "sha", str), "sha")
    siblings = data.get("siblings") or []
    if not isinstance(siblings, list):
        raise ValueError("siblings is not a list")
    status = data.get("securityRepoStatus")
    scan: tuple[ScanIssue, ...] | None = None
    if isinstance(status, dict) and status.get("scansDone", True) is not False:
        issues = status.get("filesWithIssues") or []
        if not isinstance(issues, list):
            raise ValueError("securityRepoStatus.filesWithIssues is not a list")
        scan = tuple(sorted({_scan_issue(i) for i in issues}, key=lambda i: (i.path, i.level)))
    gated = data.get("gated", False)
    if gated not in (False, True, "auto", "manual"):
        gated = str(gated)
    return RepoInfo(
        object_id=data.get("_id") if isinstance(data.get("_id"), str) else None,
        id=repo_id,
        sha=sha,
        created_at=data.get("createdAt") if isinstance(data.get("createdAt"), str) else None,
        last_modified=data.get("lastModified") if isinstance(data.get("lastModified"), str) else None,
        private=bool(data.get("private", False)),
        gated=gated,
        disabled=bool(data.get("disabled", False)),
        files=tuple(sorted((_file(s) for s in siblings), key=lambda f: f.path)),
        scan_issues=scan,
        files_listed=listed,
    )


def commits(items: Any) -> list[Commit]:
    if not isinstance(items, list):
        raise ValueError("commit page is not a list")
    out = []
    for item in items:
        authors = item.get("authors") if isinstance(item, dict) else None
        names = tuple(a.get("user", "?") for a in authors if isinstance(a, dict)) if isinstance(authors, list) else ()
        out.append(Commit(_sha(_require(item, "id", str), "commit id"), str(item.get("title") or ""),
                          tuple(str(n) for n in names), item.get("date") if isinstance(item.get("date"), str) else None))
    return out
