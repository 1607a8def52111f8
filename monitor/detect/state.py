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
        return cls(**data)

    def with_(self, **changes: Any) -> "RepoState":
        return replace(self, **changes)
