"""What hubwatch remembers about one watched repo between checks (stored as JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class RepoState:
    baseline: bool = False  # a full observation has been recorded; moves are alertable from now on
    object_id: str | None = None
    canonical_id: str | None = None
    created_at: str | None = None
    last_modified: str | None = None
    branches: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    private: bool = False
    gated: Any = False
    disabled: bool = False
    scan_sha: str | None = None
    scan_issues: tuple[str, ...] | None = None
    authors: tuple[str, ...] = ()
    manifests: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # sha -> path -> content id
    reachable: Mapping[str, bool] = field(default_factory=dict)  # pinned sha -> still in some branch
    unavailable_kind: str | None = None
    unavailable_streak: int = 0
    unavailable_since: str | None = None
    unknown_since: str | None = None
    last_error: str | None = None
    checked_at: str | None = None
    metadata_at: str | None = None
    last_ok: str | None = None  # when the Hub last answered a check of this repo (hubwatch status)
    # Heads in bulk (jobs/heads.py): the default-branch head and lastModified the namespace listing
    # showed when they last agreed with our refs read, and when refs were last read.
    listed_sha: str | None = None
    listed_modified: str | None = None
    refs_at: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> "RepoState":
        """Tolerant: unknown keys (from a newer version) are dropped, bad JSON starts fresh."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            return cls()
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in names} if isinstance(data, dict) else {}
        for key in ("authors", "scan_issues"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        state = cls(**data)
        return state if _well_typed(state) else cls()

    def with_(self, **changes: Any) -> "RepoState":
        return replace(self, **changes)


_STR_OR_NONE = ("object_id", "canonical_id", "created_at", "last_modified", "scan_sha", "unavailable_kind",
                "unavailable_since", "unknown_since", "last_error", "checked_at", "metadata_at", "last_ok",
                "listed_sha", "listed_modified", "refs_at")


def _well_typed(st: RepoState) -> bool:
    """A state whose fields have the wrong types (hand-edited, corrupted) is dropped, not trusted:
    the next check records a fresh baseline instead of failing every cycle."""
    def str_map(m: Any) -> bool:
        return isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())

    return (isinstance(st.baseline, bool) and str_map(st.branches) and str_map(st.tags)
            and isinstance(st.manifests, dict) and all(isinstance(k, str) and str_map(v)
                                                       for k, v in st.manifests.items())
            and isinstance(st.reachable, dict) and all(isinstance(v, bool) for v in st.reachable.values())
            and isinstance(st.authors, tuple) and all(isinstance(a, str) for a in st.authors)
            and (st.scan_issues is None or (isinstance(st.scan_issues, tuple)
                                            and all(isinstance(i, str) for i in st.scan_issues)))
            and isinstance(st.unavailable_streak, int) and isinstance(st.private, bool)
            and isinstance(st.disabled, bool)
            and all(getattr(st, k) is None or isinstance(getattr(st, k), str) for k in _STR_OR_NONE))
