"""Is the Hub accepting our token? One `token_rejected` finding per rejection episode.

The episode's start is kept in the store (meta), so a restart during a rejection alerts nothing
new, and a new finding comes only after the token worked in between.
"""

from __future__ import annotations

import logging
from datetime import datetime

from monitor.detect.findings import Finding
from monitor.detect.times import iso
from monitor.detect.token import token_origin, token_rejected
from monitor.runtime import Runtime

log = logging.getLogger("hubwatch.token")

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


def halted(rt: Runtime) -> bool:
    """Shutting down, or the Hub refused our token (every further call would be refused too)."""
    return rt.stop.is_set() or rt.client.stats.token_rejected()


def token_refused(rt: Runtime, job: str) -> bool:
    """True when the Hub refused our token a moment ago: the job sends nothing this time (every
    call would be one more 401) and says so in one line; the refusal is reported on its own."""
    if not rt.client.stats.token_rejected():
        return False
    log.info("%s: skipped, the Hub rejected the token from %s", job,
             token_origin(rt.settings.hub.token_source), extra={"job": job})
    return True


def note_job_token(rt: Runtime, accepted_before: int) -> list[Finding]:
    """What a job other than the pin scan learnt about the token (a deployment may have no pins):
    the same one finding per episode; a 2xx answer since `accepted_before` means it worked."""
    rejected = rt.client.stats.token_rejected()
    return note_token(rt, rejected=rejected, worked=not rejected and rt.client.stats.accepted() > accepted_before,
                      now=rt.clock())
