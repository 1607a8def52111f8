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


def objectid_time(oid: object) -> str | None:
    """Creation time of a Mongo ObjectId (the Hub's `_id`): its first 8 hex digits are Unix seconds.

    The real org overview has no `createdAt`; this is how an org's age is known. None when the
    value is not a 24-hex ObjectId or its time is not plausible (before 2015, or unrepresentable).
    """
    if not isinstance(oid, str) or len(oid) != 24:
        return None
    try:
        seconds = int(oid[:8], 16)
        int(oid[8:], 16)
    except ValueError:
        return None
    if seconds < _HUB_EPOCH:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


_HUB_EPOCH = 1420070400  # 2015-01-01: no Hub object is older
