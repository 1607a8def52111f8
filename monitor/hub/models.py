"""Frozen views of what the Hub answered, independent of huggingface_hub's own classes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RepoId:
    type: str  # model | dataset | space
    id: str

    @property
    def api_path(self) -> str:
        return f"api/{self.type}s/{self.id}"

    @property
    def web_path(self) -> str:
        """Path of the repo's page on the website: models have no prefix."""
        return self.id if self.type == "model" else f"{self.type}s/{self.id}"


@dataclass(frozen=True)
class Refs:
    canonical_id: str  # the id the Hub answered for, after following redirects
    branches: tuple[tuple[str, str], ...]  # (name, sha), sorted
    tags: tuple[tuple[str, str], ...]

    def branch(self, name: str) -> str | None:
        return dict(self.branches).get(name)

    def tag(self, name: str) -> str | None:
        return dict(self.tags).get(name)

    def head(self, ref: str) -> str | None:
        """A tracked ref: branch first, then tag (refs/heads/x and refs/tags/x forms accepted)."""
        if ref.startswith("refs/heads/"):
            return self.branch(ref[len("refs/heads/"):])
        if ref.startswith("refs/tags/"):
            return self.tag(ref[len("refs/tags/"):])
        return self.branch(ref) or self.tag(ref)


@dataclass(frozen=True)
class FileEntry:
    path: str
    blob_id: str | None
    size: int | None
    lfs_sha256: str | None

    @property
    def content_id(self) -> str:
        """What identifies the file's content: the LFS sha256 when stored in LFS, else the git blob id."""
        return self.lfs_sha256 or self.blob_id or ""


@dataclass(frozen=True)
class ScanIssue:
    """One file the Hub's security scan lists, `level` as the Hub spelled it: one of `unscanned`,
    `safe`, `queued`, `error`, `caution`, `suspicious`, `unsafe` (its OpenAPI document), or anything
    else it may send one day ("" when it sent none). detect/revisions.py says what each means."""

    path: str
    level: str


@dataclass(frozen=True)
class RepoInfo:
    object_id: str | None  # `_id`: changes when a repo is deleted and its name re-created
    id: str
    sha: str
    created_at: str | None
    last_modified: str | None
    private: bool
    gated: str | bool
    disabled: bool
    files: tuple[FileEntry, ...]
    # None when the Hub reported no scan, or one not done yet (`scansDone: false`): neither clean nor flagged
    scan_issues: tuple[ScanIssue, ...] | None
    # False when the Hub's answer was too large to hold and only identity and flags were read:
    # `files` is then empty, not "no files"
    files_listed: bool = True


@dataclass(frozen=True)
class Commit:
    sha: str
    title: str
    authors: tuple[str, ...]
    date: str | None


@dataclass(frozen=True)
class History:
    """Commits newest first, from a revision back to `stop_at` (exclusive) when it was found."""

    commits: tuple[Commit, ...]
    reached: bool  # True when a stop_at commit was met: the old head is an ancestor
    complete: bool  # True when the walk reached the root or a stop commit, not a page cap
