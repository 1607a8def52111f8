"""What a scan finds: references to Hub repos, the ones it could not resolve, the files it could not read."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

SHA = re.compile(r"^[0-9a-fA-F]{40}\Z")
# A Hub id as code writes it: "org/name" or a legacy single name ("gpt2"). Anything else
# ("./out", "/data/model", "C:\\x", "a/b/c") is a local path, not a Hub reference.
_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"  # huggingface_hub's validate_repo_id
_REPO = re.compile(rf"{_PART}(?:/{_PART})?")  # fullmatch: to the very end, no trailing newline
REPO_TYPES = ("model", "dataset", "space", "kernel")


def is_hub_id(text: str) -> bool:
    return (len(text) <= 200 and _REPO.fullmatch(text) is not None and "--" not in text and ".." not in text
            and not text.endswith(".git"))


@dataclass(frozen=True)
class Reference:
    """One place that loads a Hub repo."""

    repo: str
    type: str                  # model | dataset | space
    file: str
    line: int | None           # 1-based; None for a cache entry (no line to point at)
    revision: str | None       # as written (branch, tag, sha), None = the default branch
    via: str                   # the call or config key that names it, or "cache"
    cell: int | None = None    # notebooks: 1-based index of the cell (line is within the cell)
    cache_refs: tuple[str, ...] = ()  # cache: the ref names (main, v1) pointing at this revision
    revision_expr: str | None = None  # revision= given but not resolved: its source text
    source: str | None = None  # "default": an argparse/dataclass/os.environ default, not a literal load
    ambiguous: bool = False    # a single-segment name that is not a legacy Hub repo: local or Hub
    candidates: int = 1        # > 1: one of the values different branches bind (each reported)
    subset: str | None = None  # a dataset's config name (lm-eval dataset_name, load_dataset(path, name))
    remote_code: bool = False  # loaded with trust_remote_code=True (or a loader that runs the repo's code)
    file_line: int | None = None  # notebooks: the line in the .ipynb JSON (SARIF regions)
    suppressed: tuple[str, ...] = ()  # conditions an inline `# hubwatch: ignore[...]` waives

    @property
    def pinned(self) -> bool:
        """Only a full commit sha pins: a branch or tag can be moved under us."""
        return self.revision is not None and SHA.match(self.revision) is not None

    @property
    def namespace(self) -> str | None:
        return self.repo.split("/", 1)[0] if "/" in self.repo else None


@dataclass(frozen=True)
class Unresolved:
    """A loading call whose repo argument is not a constant we can read (a variable, an f-string)."""

    file: str
    line: int
    via: str
    why: str
    cell: int | None = None
    file_line: int | None = None
    suppressed: tuple[str, ...] = ()
    remote_code: bool = False  # trust_remote_code (or a loader that runs code) and not pinned to a sha


@dataclass(frozen=True)
class Problem:
    """A file that could not be inspected: reported, never silently assumed clean."""

    file: str
    message: str
    skipped: bool = False  # a special file or an outward symlink met in a walk: listed, never read


@dataclass(frozen=True)
class Parsed:
    references: tuple[Reference, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    problems: tuple[Problem, ...] = ()


class NotRegular(Exception):
    """A path that is not a regular file (a FIFO, a socket, a device): never read."""


def read_regular(path: str, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of a regular file (more than `limit` says it is too big). Opened
    non-blocking, so a FIFO swapped in after the walk never blocks the open; fstat then refuses it
    (NotRegular). OSError as open and read raise it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(path)
        return fh.read(limit + 1)
