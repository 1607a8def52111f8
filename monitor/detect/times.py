"""ISO 8601 timestamps as the Hub writes them ('2022-03-02T23:29:04.000Z') and as we store them."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_iso(text: str | None) -> datetime | None:
    """A timezone-aware datetime, or None when absent or unparsable (Hub data is untrusted)."""
    if not text or not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def iso(t: datetime) -> str:
    """UTC, to the second, with a Z."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_id_time(object_id: str | None) -> datetime | None:
    """Creation time of a Hub object from its `_id`, a Mongo ObjectId whose first 8 hex digits are
    the creation Unix second. The real org overview has no `createdAt`: this is how an org's age is known."""
    if not isinstance(object_id, str) or len(object_id) != 24:
        return None
    try:
        int(object_id, 16)
        return datetime.fromtimestamp(int(object_id[:8], 16), timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
