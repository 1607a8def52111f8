"""scan_lookalikes: find impostor namespaces of the protected orgs on the Hub, judge and alert.

Three sources, cheapest evidence first:
1. probe  — generated candidates checked for existence, most likely first, under a request
            budget per cycle; results are remembered so successive cycles cover the whole
            candidate space, negatives re-probed after `reprobe_after`, positives every cycle.
2. feed   — authors of newly created models, datasets and spaces, paged newest first until the
            last repo already seen.
3. search — the Hub's quick search for each protected name's stems.
Every suspect that exists is assessed (lookup) and recorded as a `lookalike` finding.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

from monitor.detect import lookalike_risk as lr
from monitor.detect.findings import Finding
from monitor.detect.lookalike import Screener
from monitor.detect.names import is_registrable, normalise
from monitor.detect.times import iso
from monitor.detect.probe_order import tiered_queue
from monitor.errors import HubError
from monitor.hub.namespaces import REPO_TYPES, Namespace, NamespaceClient
from monitor.jobs.clones import CloneReport, scan_clones
from monitor.jobs.lookup import TargetCache, lookup, record, screener_for
from monitor.jobs.summary import lookalike_fields
from monitor.jobs.token import halted, note_job_token, token_refused
from monitor.runtime import Runtime

log = logging.getLogger("hubwatch.lookalikes")
FEED_PAGE = 1000
FEED_PAGES = 5


@dataclass(frozen=True)
class LookalikeReport:
    probed: int
    probe_hits: int
    feed_authors: int
    searched: int
    assessed: int
    new_findings: tuple[Finding, ...]
    requests: int
    errors: int
    clones: CloneReport | None = None  # the republished-repo watch, when it ran


LAST_RUN = "lookalike.last_run"


def save_last_run(rt: Runtime, report: LookalikeReport) -> None:
    """What `hubwatch status` and the digest show about discovery: when it last ran, what it did,
    and the request budget it left."""
    snap = rt.client.budget.snapshot()
    rt.store.set_meta(LAST_RUN, json.dumps({
        "at": iso(rt.clock()), **lookalike_fields(report),
        "budget": {"quota": snap.quota, "used": snap.used, "remaining": snap.remaining,
                   "hub_remaining": snap.hub_remaining}}, sort_keys=True))


def candidate_queue(screener: Screener, protected: Iterable[str], skip: set[str]) -> list[str]:
    """Every target's candidates in probe order (`probe_order`): affixed and separator forms, then
    single edits, then two edits, round-robin over the targets within each tier."""
    per_target = [(t, [(c, techs) for c, techs, _ in screener.candidates(t)]) for t in protected]
    return [n for n in tiered_queue(per_target) if n.lower() not in skip and is_registrable(n)]


def stems(target: str) -> list[str]:
    """Quick-search terms for a protected name: itself, its compact form, its words, without 'ai'."""
    norm = normalise(target)
    words = [w for w in norm.split("-") if len(w) >= 4]
    compact = norm.replace("-", "")
    bare = compact[:-2] if compact.endswith("ai") and len(compact) > 5 else compact
    return list(dict.fromkeys([target, compact, bare, *words]))


class _Scan:
    def __init__(self, rt: Runtime):
        self.rt, self.s = rt, rt.settings.lookalike
        self.hub = NamespaceClient(rt.client.with_low_priority())
        self.screener = screener_for(self.s.protected, self.s.allow)
        self.targets = TargetCache(self.hub, self.s.allow)
        self.now = rt.clock()
        self.errors = 0
        self.suspects: dict[str, tuple[str, Namespace | None]] = {}

    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, min(8, self.rt.settings.hub.concurrency)),
                                  thread_name_prefix="lookalike")

    def probe(self, budget: int) -> tuple[int, int]:
        protected = {p.lower() for p in self.s.protected} | {a.lower() for a in self.s.allow}
        known = self.rt.store.load_probes()
        positives = [n for n, (_, found) in known.items() if found and n not in protected]
        fresh = [n for n in candidate_queue(self.screener, self.s.protected, protected)
                 if n.lower() not in known or
                 (self.now - known[n.lower()][0]).total_seconds() >= self.s.reprobe_after]
        # A name that exists as neither org nor user costs two requests: the budget is in requests.
        picks = list(dict.fromkeys(positives + fresh))[:budget // 2]

        def one(name: str) -> tuple[str, Namespace | None, bool] | None:
            if halted(self.rt):
                return None  # shutting down: not probed, not an error
            try:
                return name, self.hub.overview(name), True
            except HubError as e:  # unknown: not recorded, so it is probed again next cycle
                log.info("probe of %s failed: %s", name, e)
                return name, None, False

        with self._pool() as pool:
            results = [r for r in pool.map(one, picks) if r is not None]
        answered = [(n, ns is not None) for n, ns, ok in results if ok]
        self.errors += sum(1 for _, _, ok in results if not ok)
        self.rt.store.save_probes(answered, self.now)
        for name, ns, _ in results:
            if ns is not None:
                self.suspects.setdefault(ns.name.lower(), (ns.name, ns))
        # Only answered probes count as probed: a Hub out of reach must not read "25 probed (0 exist)".
        return len(answered), sum(1 for _, found in answered if found)

    def feed(self) -> int:
        authors: set[str] = set()
        for rtype in REPO_TYPES:
            if halted(self.rt):
                break
            key = f"lookalike.feed.{rtype}"
            cursor = json.loads(self.rt.store.get_meta(key) or "{}")
            newest: dict | None = None
            try:
                for page in self.hub.newest(rtype, FEED_PAGE, FEED_PAGES):
                    done = not cursor  # first run: start the cursor at today, do not page all history
                    for stub in page:
                        newest = newest or {"id": stub.id, "created_at": stub.created_at}
                        if stub.id == cursor.get("id") or (
                                stub.created_at and cursor.get("created_at")
                                and stub.created_at < cursor["created_at"]):
                            done = True
                            break
                        if stub.author:
                            authors.add(stub.author)
                    if done or not page:
                        break
            except HubError as e:
                self.errors += 1
                log.info("feed of new %ss failed: %s", rtype, e)
                continue
            if newest:
                self.rt.store.set_meta(key, json.dumps(newest))
        for m in self.screener.screen_many(sorted(authors)):
            self.suspects.setdefault(m.name.lower(), (m.name, None))
        return len(authors)

    def search(self) -> int:
        terms = list(dict.fromkeys(t for p in self.s.protected for t in stems(p)))
        answered = 0  # searches the Hub answered (a failed one is an error, not a search done)
        for term in terms:
            if halted(self.rt):
                break
            try:
                hits = self.hub.quicksearch(term)
            except HubError as e:
                self.errors += 1
                log.info("quicksearch %r failed: %s", term, e)
                continue
            answered += 1
            for _, name in hits:
                if self.screener.screen(name):
                    self.suspects.setdefault(name.lower(), (name, None))
        return answered

    def assess(self) -> tuple[int, list[Finding]]:
        def one(item: tuple[str, Namespace | None]) -> list[Finding]:
            name, ns = item
            if halted(self.rt):
                return []
            try:
                result = lookup(name, self.hub, self.screener, self.targets, self.now, ns=ns)
            except HubError as e:
                self.errors += 1
                log.info("assessment of %s failed: %s", name, e)
                return []
            return record(self.rt, result, self.now)

        with self._pool() as pool:
            found = [f for fs in pool.map(one, sorted(self.suspects.values())) for f in fs]
        return len(self.suspects), found


def scan_lookalikes(rt: Runtime, *, budget: int | None = None,
                    sources: tuple[str, ...] = ("probe", "feed", "search", "clones")) -> LookalikeReport:
    """One discovery cycle; a failing source is logged and the others still run. `clones` is the
    republished-repo watch (jobs/clones.py), under its own budget."""
    if not rt.settings.lookalike.protected or rt.stop.is_set() or token_refused(rt, "scan_lookalikes"):
        return LookalikeReport(0, 0, 0, 0, 0, (), 0, 0)
    started, before, accepted = time.monotonic(), rt.client.stats.requests, rt.client.stats.accepted()
    scan = _Scan(rt)
    probed, hits = scan.probe(rt.settings.lookalike.probe_budget if budget is None else budget) \
        if "probe" in sources else (0, 0)
    authors = scan.feed() if "feed" in sources else 0
    searched = scan.search() if "search" in sources else 0
    assessed, found = scan.assess()
    clones = scan_clones(rt) if "clones" in sources else None
    if clones:
        found += clones.new_findings
    found += note_job_token(rt, accepted)
    report = LookalikeReport(probed, hits, authors, searched, assessed, tuple(found),
                             rt.client.stats.requests - before, scan.errors, clones)
    save_last_run(rt, report)
    log.info("scan_lookalikes: probed %d (%d exist), %d feed authors, %d searches, %d assessed, %d new findings, "
             "%d requests, %d errors", probed, hits, authors, searched, assessed, len(found), report.requests,
             scan.errors, extra={"job": "scan_lookalikes", "duration": round(time.monotonic() - started, 3)})
    return report
