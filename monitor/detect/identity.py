"""Is the repo answering under a watched name still the one we baselined? Pure: no I/O, no clock.

The Hub's `_id` (an ObjectId) identifies the repo object and changes when a name is deleted and
re-created, or when a path now redirects to another repo. `createdAt` is weaker: every repo
from before the Hub's 2022 import reports the same placeholder, later than many of its own
commits, so that value proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from monitor.detect.times import parse_iso

LEGACY_CREATED_AT = datetime(2022, 3, 2, 23, 29, 4, tzinfo=timezone.utc)  # "2022-03-02T23:29:04.000Z" (gpt2)
# The import stamped repos over that minute: `:04` (gpt2), `:05` (20 of 41 import-era repos in
# huggingface_hub's recorded cassettes, e.g. deepset/roberta-base-squad2). Any second of it is a placeholder.
LEGACY_IMPORT_MINUTE = (datetime(2022, 3, 2, 23, 29, tzinfo=timezone.utc),
                        datetime(2022, 3, 2, 23, 30, tzinfo=timezone.utc))


@dataclass(frozen=True)
class Identity:
    """What an answer says about which repo object it is."""

    object_id: str | None
    created_at: str | None


def is_legacy_created(created_at: str | None) -> bool:
    """A placeholder `createdAt` of repos imported in 2022 (any time in 2022-03-02 23:29 UTC): it
    says nothing about when they were made."""
    when = parse_iso(created_at)
    return when is not None and LEGACY_IMPORT_MINUTE[0] <= when < LEGACY_IMPORT_MINUTE[1]


def recreation(before: Identity, last_known_commit: str | None, now: Identity) -> str | None:
    """Why the repo now answering is a different one (namespace reuse), or None when nothing says so.

    `_id` is authoritative whenever both sides have it. Without it: a `createdAt` that changed (a
    repo's creation time never does), or one later than the last commit we knew of, unless it
    is the legacy placeholder."""
    if before.object_id and now.object_id:
        if before.object_id != now.object_id:
            return f"repository object id changed {before.object_id} → {now.object_id}"
        return None
    old_created, new_created = parse_iso(before.created_at), parse_iso(now.created_at)
    both_placeholders = is_legacy_created(before.created_at) and is_legacy_created(now.created_at)
    if old_created and new_created and old_created != new_created and not both_placeholders:
        return f"creation time changed {before.created_at} → {now.created_at}"
    last = parse_iso(last_known_commit)
    if new_created and last and new_created > last and not is_legacy_created(now.created_at):
        return f"created {now.created_at}, after the last known commit {last_known_commit}"
    return None
