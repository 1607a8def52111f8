"""scan_clones: find the protected namespaces' repos republished under other namespaces.

Each protected namespace's most downloaded models (up to `[lookalike] clone_watch`) are searched
for by name on the Hub, round-robin across cycles under `[lookalike] clone_budget` requests per
cycle, so every watched repo is covered over successive cycles. A repo of the same name (case and
separators ignored, or a derivative such as ``-GGUF``) in a namespace neither protected nor
allowed is a `repo_clone` finding, judged from its namespace's facts and its files
(`detect/clones.py`). One search request brings the hits' file lists (expand=siblings); each new
hit's namespace costs one or two overview requests, cached for the cycle.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, zip_longest

from monitor.detect import clones as dc
from monitor.detect import lookalike_risk as lr
from monitor.detect.findings import Finding, fingerprint
from monitor.errors import HubError
from monitor.hub.namespaces import NamespaceClient, RepoStub
from monitor.jobs.token import token_refused
from monitor.runtime import Runtime

log = logging.getLogger("hubwatch.clones")
SEARCH_LIMIT = 100  # hits read per search: one page
WATCHED_KEY, CURSOR_KEY = "clones.watched", "clones.cursor"
OVERVIEW_COST = 2  # an org answers in one request; a user costs a 404 first


@dataclass(frozen=True)
class CloneReport:
    watched: int
    searched: int
    hits: int
    new_findings: tuple[Finding, ...]
    requests: int
    errors: int


def facts_from(ns, name: str) -> lr.Facts:
    """A namespace's facts for judging a copy; unknown (fail closed) when no overview came back."""
    if ns is None:
        return lr.Facts(name, "unknown", None, "", None, None, None, ())
    return lr.Facts(ns.name, ns.kind, ns.verified, ns.fullname, ns.followers, ns.models, ns.created_at, (),
                    ns.members, ns.details)


class _Scan:
    def __init__(self, rt: Runtime, budget: int):
        self.rt, self.s = rt, rt.settings.lookalike
        self.hub = NamespaceClient(rt.client.with_low_priority())
        self.now: datetime = rt.clock()
        self.budget, self.spent, self.errors = budget, 0, 0
        self.facts: dict[str, lr.Facts] = {}

    def afford(self, cost: int) -> bool:
        return self.spent + cost <= self.budget and not self.rt.stop.is_set() \
            and not self.rt.client.stats.token_rejected()  # refused: every further call would be too

    def watched(self) -> list[str]:
        """The watched repo ids, interleaved across protected namespaces (most downloaded first);
        re-listed once per `reprobe_after`, or when the protected names change."""
        cached = json.loads(self.rt.store.get_meta(WATCHED_KEY) or "{}")
        fresh = (cached.get("protected") == list(self.s.protected) and cached.get("watch") == self.s.clone_watch
                 and self.now.timestamp() - cached.get("at", 0) < self.s.reprobe_after)
        if fresh:
            return list(cached.get("repos", []))
        per_ns: list[list[str]] = []
        for target in self.s.protected:
            if not self.afford(1):
                return list(cached.get("repos", []))  # finish the listing next cycle
            self.spent += 1
            try:
                per_ns.append([r.id for r in self.hub.repos_of(target, limit=self.s.clone_watch, sort="downloads")])
            except HubError as e:
                self.errors += 1
                log.info("listing repos of %s failed: %s", target, e)
                return list(cached.get("repos", []))  # keep the old list rather than watch less
        repos = [r for r in chain.from_iterable(zip_longest(*per_ns)) if r is not None]
        self.rt.store.set_meta(WATCHED_KEY, json.dumps({"protected": list(self.s.protected), "repos": repos,
                                                        "watch": self.s.clone_watch, "at": self.now.timestamp()}))
        return repos

    def namespace(self, name: str) -> lr.Facts:
        key = name.lower()
        if key not in self.facts:
            self.spent += OVERVIEW_COST
            self.facts[key] = facts_from(self.hub.overview(name), name)
        return self.facts[key]

    def judge(self, index: dc.CloneIndex, hits: list[RepoStub]) -> tuple[list[Finding], int, bool]:
        """(new findings, matching hits, whether every hit could be judged within the budget)."""
        found, matched = [], 0
        for stub in hits:
            m = index.match(stub.id)
            if m is None:
                continue
            matched += 1
            if self.rt.store.has_finding(fingerprint("repo_clone", stub.id, [stub.id.lower()])):
                continue  # one alert per foreign repo: known copies cost nothing more
            owner = stub.id.split("/", 1)[0]
            if owner.lower() not in self.facts and not self.afford(OVERVIEW_COST):
                return found, matched, False
            try:
                facts = self.namespace(owner)
            except HubError as e:  # unknown, not safe: judged again next time round
                self.errors += 1
                log.info("overview of %s failed: %s", owner, e)
                continue
            f = dc.finding(m, facts, stub.files, self.now, self.rt.settings.hub.endpoint)
            found += self.rt.store.record(f"clone:{stub.id.lower()}", None, [f], list(self.rt.sinks), self.now)
        return found, matched, True


def scan_clones(rt: Runtime, *, budget: int | None = None) -> CloneReport:
    """One round of the republished-repo watch; the cursor moves past the repos fully searched."""
    s = rt.settings.lookalike
    budget = s.clone_budget if budget is None else budget
    if not s.protected or s.clone_watch == 0 or budget <= 0 or rt.stop.is_set() or token_refused(rt, "scan_clones"):
        return CloneReport(0, 0, 0, (), 0, 0)
    started = time.monotonic()
    scan = _Scan(rt, budget)
    watched = scan.watched()
    index = dc.CloneIndex(watched, (*s.protected, *s.allow))
    cursor = int(rt.store.get_meta(CURSOR_KEY) or 0) % max(1, len(watched))
    found: list[Finding] = []
    searched = hits = 0
    for rid in (watched[cursor:] + watched[:cursor]):
        if not scan.afford(1):
            break
        scan.spent += 1
        try:
            stubs = scan.hub.search_repos(rid.split("/", 1)[-1], limit=SEARCH_LIMIT)
        except HubError as e:  # skipped this time round; the next round searches it again
            scan.errors += 1
            log.info("search for copies of %s failed: %s", rid, e)
            searched += 1
            continue
        new, matched, complete = scan.judge(index, stubs)
        found += new
        hits += matched
        if not complete:
            break  # the cursor stays here: the hits not yet judged are judged next cycle
        searched += 1
    if watched:
        rt.store.set_meta(CURSOR_KEY, str((cursor + searched) % len(watched)))
    report = CloneReport(len(watched), searched, hits, tuple(found), scan.spent, scan.errors)
    log.info("scan_clones: %d watched, %d searched, %d copies, %d new findings, ~%d requests, %d errors",
             len(watched), searched, hits, len(found), scan.spent, scan.errors,
             extra={"job": "scan_clones", "duration": round(time.monotonic() - started, 3)})
    return report
