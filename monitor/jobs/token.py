"""Is the Hub accepting our token? One `token_rejected` finding per rejection episode.

The episode's start is kept in the store (meta), so a restart during a rejection alerts nothing
new, and a new finding comes only after the token worked in between.
"""

from __future__ import annotations

from datetime import datetime

from monitor.detect.findings import Finding
from monitor.detect.times import iso
from monitor.detect.token import token_rejected
from monitor.runtime import Runtime

META_KEY = "hub_token_rejected_since"
STATE_KEY = "hub:token"


def note_token(rt: Runtime, *, rejected: bool, worked: bool, now: datetime) -> list[Finding]:
    """Record what a scan learnt about the token; return the finding when it is new."""
    since = rt.store.get_meta(META_KEY) or None
    if rejected:
        if since is None:
            since = iso(now)
            # Written before the finding: a crash in between re-makes the same fingerprint, never a second one.
            rt.store.set_meta(META_KEY, since)
        finding = token_rejected(rt.settings.hub.endpoint, rt.settings.hub.token_source, since)
        return rt.store.record(STATE_KEY, None, [finding], list(rt.sinks), now)
    if worked and since is not None:
        rt.store.set_meta(META_KEY, "")
    return []
