"""Heads in bulk: which pinned repos a steady cycle reads one by one, and which the listing answers.

A steady cycle lists each namespace that holds several pinned repos (`hub/listing.py`: one page
per 1,000 repos, each item with the default-branch head, `lastModified`, `_id` and the access
flags) and reads `refs` only where needed:

- every cycle: repos whose listed head or `lastModified` moved, whose identity or flags changed,
  and pins that track a tag, a non-default branch or an exact revision (what they depend on is
  not in the listing);
- spread over `pins.refs_every` (oldest refs read first): every other pinned repo — the tag and
  branch sweep;
- spread over `pins.scan_every` (oldest first): the security-scan status, one read per repo;
- per repo, as before, when the namespace's listing would take as many pages as it has pinned
  repos, and when a listing is missing, truncated, fails, or disagrees with a later refs read
  (a head the listing did not show): that namespace falls back to per-repo refs, which is said
  once and counted (`hubwatch_hub_listing_fallbacks_total{reason}`).

The plan is pure bookkeeping over the stored states; `jobs/pins.py` carries it out.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping, Sequence

from monitor.config import PinsSettings
from monitor.detect.state import RepoState
from monitor.detect.times import iso, parse_iso
from monitor.hub.client import HubClient
from monitor.hub.listing import ListedHead, list_heads
from monitor.jobs.pin_check import RepoWatch
from monitor.store import Store

log = logging.getLogger("hubwatch.pins")

LISTED, REFS, SCAN, CHECK = "listed", "refs", "scan", "check"
TOO_LARGE_RECHECK = 86400.0  # a namespace too large to list is measured again after a day
# Per store (one per runtime: a daemon's life, a reload, a `once`): namespaces whose fallback was said.
_said: "weakref.WeakKeyDictionary[Store, set[str]]" = weakref.WeakKeyDictionary()
_said_lock = threading.Lock()


@dataclass(frozen=True)
class Step:
    watch: RepoWatch
    action: str  # listed (no request) | refs | scan | check (the per-repo check)
    head: ListedHead | None = None
    sweep: bool = False  # a refs or scan sweep's read: nothing was seen moving (scan_pins orders these last)


@dataclass(frozen=True)
class Fallback:
    type: str
    namespace: str
    reason: str  # missing | truncated | failed | unreadable | disagrees | too_large


@dataclass(frozen=True)
class HeadsPlan:
    steps: tuple[Step, ...]
    fallbacks: tuple[Fallback, ...] = ()
    pages: int = 0  # listing pages read (Hub requests)
    bulk_namespaces: int = 0


def _meta_key(repo_type: str, namespace: str) -> str:
    return f"heads:{repo_type}:{namespace.lower()}"


def _load_meta(store: Store, key: str) -> dict:
    try:
        value = json.loads(store.get_meta(key) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def say_fallback(store: Store, fb: Fallback, detail: str = "") -> None:
    """Once per namespace and run: the operator learns why its pins cost one request each."""
    key = f"{fb.type}:{fb.namespace.lower()}"
    with _said_lock:
        said = _said.setdefault(store, set())
        if key in said:
            return
        said.add(key)
    log.warning("heads in bulk: %s %s is read per repo (%s%s)", fb.type, fb.namespace, fb.reason,
                f": {detail}" if detail else "", extra={"job": "scan_pins", "subject": fb.namespace})


def hold_per_repo(store: Store, fb: Fallback, now: datetime, seconds: float, pages: int | None = None) -> None:
    """Remember that `fb.namespace` is read per repo until `now + seconds`."""
    key = _meta_key(fb.type, fb.namespace)
    meta = _load_meta(store, key)
    meta.update(per_repo_until=iso(now + timedelta(seconds=seconds)), reason=fb.reason)
    if pages is not None:
        meta["pages"] = pages
    store.set_meta(key, json.dumps(meta, sort_keys=True))


def default_branch(st: RepoState) -> str | None:
    """The branch the listing's `sha` speaks of: `main`, else the one at the head last listed."""
    if "main" in st.branches:
        return "main"
    return next((b for b, sha in st.branches.items() if st.listed_sha and sha == st.listed_sha), None)


def _depends_beyond_default(w: RepoWatch, st: RepoState) -> bool:
    """Pins on a tag, a non-default branch or an exact revision: the listing does not show those."""
    if w.exact:
        return True
    default = default_branch(st)
    return any(ref.removeprefix("refs/heads/") != default for ref in w.tracked)


def _changed(head: ListedHead, st: RepoState) -> str | None:
    """Why the listed head says this repo needs a read now, or None when nothing changed."""
    if head.sha is None:
        return CHECK
    if (head.object_id and st.object_id and head.object_id != st.object_id) or head.private != st.private \
            or bool(head.gated) != bool(st.gated) or head.disabled != st.disabled:
        return SCAN  # identity or access changed: the metadata read tells (and reads refs if moved)
    known_sha = st.listed_sha or st.branches.get(default_branch(st) or "main")
    known_modified = st.listed_modified or st.last_modified
    if head.sha != known_sha or (known_modified is not None and head.last_modified != known_modified):
        return REFS
    return None


def _oldest(steps: list[Step], states: Mapping[str, RepoState], field: str, every: float,
            cycle: float, now: datetime, population: int) -> tuple[list[Step], list[Step]]:
    """(picked, rest): this cycle's share of a sweep over `population` repos, taken from `steps` —
    everything overdue, and at least population * cycle / every of them, oldest `field` first — so
    each is read about every `every`, and the reads spread evenly over the cycles."""
    def age(s: Step) -> float:
        st = states[s.watch.key]
        at = parse_iso(getattr(st, field) or st.checked_at)
        return math.inf if at is None else (now - at).total_seconds()

    ordered = sorted(steps, key=age, reverse=True)
    share = math.ceil(population * min(1.0, cycle / every)) if every > 0 else len(steps)
    overdue = sum(1 for s in ordered if age(s) >= every)
    n = max(share, overdue)
    return ordered[:n], ordered[n:]


def plan_cycle(client: HubClient, store: Store, settings: PinsSettings, watches: Sequence[RepoWatch],
               states: Mapping[str, RepoState], now: datetime) -> HeadsPlan:
    """Decide each repo's read for one steady cycle; lists the namespaces worth listing."""
    groups: dict[tuple[str, str], list[RepoWatch]] = {}
    for w in watches:
        if "/" in w.repo.id:  # legacy names without a namespace are read per repo
            groups.setdefault((w.repo.type, w.repo.id.split("/", 1)[0].lower()), []).append(w)
    steps: list[Step] = [Step(w, CHECK) for w in watches if "/" not in w.repo.id]
    fallbacks: list[Fallback] = []
    pages, bulk = 0, 0
    candidates: list[Step] = []
    for (rtype, ns), ws in groups.items():
        key = _meta_key(rtype, ns)
        meta = _load_meta(store, key)
        held = parse_iso(meta.get("per_repo_until"))
        known_pages = meta.get("pages") if isinstance(meta.get("pages"), int) else 1
        # Listing pays off only when it takes fewer pages than the repos it replaces.
        if len(ws) < 2 or known_pages >= len(ws) or (held is not None and held > now):
            steps += [Step(w, CHECK) for w in ws]
            continue
        listing = list_heads(client, rtype, ws[0].repo.id.split("/", 1)[0], max_pages=len(ws) - 1)
        pages += listing.pages
        if not listing.complete:
            reason = (listing.reason or "failed").split(" ", 1)[0]
            fb = Fallback(rtype, ns, reason)
            fallbacks.append(fb)
            say_fallback(store, fb, listing.reason or "")
            if reason == "truncated":  # too large for its pins: measured again tomorrow
                hold_per_repo(store, fb, now, TOO_LARGE_RECHECK, pages=max(len(ws), listing.pages + 1))
            # A failed or unreadable listing is asked again next cycle (it costs one request).
            steps += [Step(w, CHECK) for w in ws]
            continue
        if not any(w.repo.id.lower() in listing.heads for w in ws):
            # Complete, yet none of our repos in it (an empty or wrong answer, or all made private):
            # nothing here to trust; each repo's own read tells what happened to it.
            fb = Fallback(rtype, ns, "missing")
            fallbacks.append(fb)
            say_fallback(store, fb, "the listing shows none of the pinned repos")
            hold_per_repo(store, fb, now, settings.refs_every)
            steps += [Step(w, CHECK) for w in ws]
            continue
        bulk += 1
        if meta.get("pages") != listing.pages or meta.get("per_repo_until"):
            store.set_meta(key, json.dumps({"pages": max(1, listing.pages)}, sort_keys=True))
        for w in ws:
            st = states[w.key]
            head = listing.heads.get(w.repo.id.lower())
            if not st.baseline or st.unknown_since is not None or st.unavailable_kind is not None:
                steps.append(Step(w, CHECK, head))
            elif head is None:
                steps.append(Step(w, CHECK))  # not listed: deleted, renamed, made private — ask it
            elif (why := _changed(head, st)) is not None:
                steps.append(Step(w, why, head))
            elif _depends_beyond_default(w, st):
                steps.append(Step(w, REFS, head))
            else:
                candidates.append(Step(w, LISTED, head))
    # The scan sweep first (its read also shows a move of the tracked ref), then the refs sweep;
    # each share is of all the candidates, so neither sweep falls behind and bunches up later.
    n = len(candidates)
    scans, rest = _oldest(candidates, states, "metadata_at", settings.scan_every, settings.every, now, n)
    sweep, rest = _oldest(rest, states, "refs_at", settings.refs_every, settings.every, now, n)
    steps += [Step(s.watch, SCAN, s.head, sweep=True) for s in scans] + \
        [Step(s.watch, REFS, s.head, sweep=True) for s in sweep] + rest
    return HeadsPlan(tuple(steps), tuple(fallbacks), pages, bulk)


def after_check(step: Step, before: RepoState, after: RepoState, status: str, now: datetime) -> tuple[RepoState, bool]:
    """The state to record after a planned read, and whether the listing disagreed with the refs
    read (a head the listing did not show: its namespace then falls back to per-repo reads)."""
    head = step.head
    if status != "ok":
        return after, False
    changes: dict = {}
    if step.action in (REFS, CHECK):  # a per-repo check reads refs (or its metadata slot stands in)
        changes["refs_at"] = iso(now)
    if head is None or head.sha is None:
        return after.with_(**changes), False
    if step.action == REFS and head.sha not in after.branches.values():
        return after.with_(**changes), True
    if head.sha in after.branches.values():
        changes.update(listed_sha=head.sha, listed_modified=head.last_modified)
    return after.with_(**changes), False


