"""scan_clones: find the protected namespaces' repos republished under other namespaces.

Each protected namespace's public repos (up to `[lookalike] clone_watch`: the most downloaded
models and datasets and the most liked spaces, the top of each type first) are searched for by
name on the Hub (and, for a name with separators, by its longest word: `dc.search_terms`),
round-robin across cycles under `[lookalike] clone_budget` requests per cycle, so every watched
repo is covered over successive cycles. Listing them costs three requests per protected
namespace, once per `reprobe_after`. A repo of the same name (case and
separators ignored, or a derivative such as ``-GGUF``) in a namespace neither protected nor
allowed is a `repo_clone` finding, judged from its namespace's facts and its files
(`detect/clones.py`) — unless that namespace itself imitates the protected one: then the copy
belongs to the namespace's `lookalike` finding (one incident, one alert: detect/incidents.py), which
is (re)assessed with the copy folded in and alerts again only if its risk rises. One search request
brings the hits' file lists (expand=siblings); each new hit's namespace costs one or two overview
requests, cached for the cycle; a folded copy's namespace costs a look-up (`FOLD_COST`), once.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, zip_longest

from monitor.detect import clones as dc
from monitor.detect import incidents
from monitor.detect import lookalike_risk as lr
from monitor.detect.findings import Finding
from monitor.errors import HubError
from monitor.hub.models import RepoId
from monitor.hub.budget import Priority
from monitor.hub.namespaces import NamespaceClient, RepoStub
from monitor.jobs.lookup import FOLDED_KEY, TargetCache, fold_copy, lookup, record, screener_for
from monitor.jobs.content_check import ContentChecker
from monitor.jobs.round_robin import RoundRobin
from monitor.jobs.token import halted, token_refused
from monitor.runtime import Runtime

log = logging.getLogger("hubwatch.clones")
SEARCH_LIMIT = 100  # hits read per search: one page
WATCHED_KEY, CURSOR_KEY = "clones.watched", "clones.cursor"
OVERVIEW_COST = 2  # an org answers in one request; a user costs a 404 first
FOLD_COST = 5  # a look-alike assessment: overview (<= 2), its repo list, the protected org's (cached)
# What is watched of each protected namespace, and its order: spaces have no download count.
REPO_TYPES = (("model", "downloads"), ("dataset", "downloads"), ("space", "likes"))


@dataclass(frozen=True)
class CloneReport:
    watched: int  # repos
    searched: int  # searches (one or two per repo: dc.search_terms)
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
        self.hub = NamespaceClient(rt.client.for_priority(Priority.CLONES))
        self.now: datetime = rt.clock()
        self.budget, self.spent, self.errors = budget, 0, 0
        self.facts: dict[str, lr.Facts] = {}
        self.seen: set[str] = set()  # copies met this cycle: a repo's two searches may both list one
        self.screener = screener_for(self.s.protected, self.s.allow)
        self.targets = TargetCache(self.hub, self.s.allow)
        self.folded: dict[str, dict] = json.loads(rt.store.get_meta(FOLDED_KEY) or "{}")  # copy -> where
        self.checker = ContentChecker(rt.client)

    def afford(self, cost: int) -> bool:
        return self.spent + cost <= self.budget and not halted(self.rt)

    def watched(self) -> list[tuple[str, str]]:
        """The watched (type, repo id)s, interleaved across protected namespaces; within one, the
        most downloaded model, dataset and most liked space come first, then the second of each...
        up to `clone_watch` per namespace. Re-listed once per `reprobe_after`, or when the
        protected names change; a listing the budget cuts short goes on next cycle from where it
        stopped (meanwhile the old list is searched)."""
        cached = json.loads(self.rt.store.get_meta(WATCHED_KEY) or "{}")
        old = [tuple(r) for r in cached.get("repos", []) if isinstance(r, list)]  # v1 lists held model ids
        same = (cached.get("protected") == list(self.s.protected) and cached.get("watch") == self.s.clone_watch
                and cached.get("types") == [t for t, _ in REPO_TYPES])
        if same and self.now.timestamp() - cached.get("at", 0) < self.s.reprobe_after:
            return old
        listed: dict[str, list] = cached.get("listing", {}) if same else {}

        def unfinished() -> list[tuple[str, str]]:
            self._save_watched(old, cached.get("at", 0) if same else 0, listed)
            return old

        per_ns: list[list[tuple[str, str]]] = []
        for target in self.s.protected:
            per_type: list[list[tuple[str, str]]] = []
            for rtype, sort in REPO_TYPES:
                key = f"{rtype}:{target}"
                if key not in listed:
                    if not self.afford(1):
                        return unfinished()
                    self.spent += 1
                    try:
                        listed[key] = [r.id for r in self.hub.repos_of(target, rtype, limit=self.s.clone_watch,
                                                                        sort=sort)]
                    except HubError as e:
                        self.errors += 1
                        log.info("listing %ss of %s failed: %s", rtype, target, e)
                        return unfinished()  # keep the old list rather than watch less
                per_type.append([(rtype, rid) for rid in listed[key]])
            per_ns.append(_interleave(per_type)[:self.s.clone_watch])
        repos = _interleave(per_ns)
        self._save_watched(repos, self.now.timestamp(), {})
        return repos

    def _save_watched(self, repos: list, at: float, listing: dict[str, list]) -> None:
        self.rt.store.set_meta(WATCHED_KEY, json.dumps({
            "protected": list(self.s.protected), "watch": self.s.clone_watch, "types": [t for t, _ in REPO_TYPES],
            "repos": [list(r) for r in repos], "at": at, "listing": listing}))

    def namespace(self, name: str) -> lr.Facts:
        key = name.lower()
        if key not in self.facts:
            self.spent += OVERVIEW_COST
            self.facts[key] = facts_from(self.hub.overview(name), name)
        return self.facts[key]

    def report(self, m: dc.CloneMatch, stub: RepoStub):
        """The copy's pickles judged, its templates compared with the original's (issue 14); None
        when it could not be read (unknown, not safe: the finding keeps its namespace-based severity)."""
        try:
            return self.checker.copy(RepoId(m.type, m.foreign), "main", stub.files, {},
                                     RepoId(m.type, m.original), "main", None)
        except HubError as e:
            log.info("content of %s not inspected: %s", m.foreign, e)
            return None

    def content(self, m: dc.CloneMatch, stub: RepoStub, f: Finding) -> Finding:
        report = self.report(m, stub)
        return f if report is None else dc.with_content(f, report)

    def judge(self, index: dc.CloneIndex, hits: list[RepoStub]) -> tuple[list[Finding], int, bool]:
        """(new findings, matching hits, whether every hit could be judged within the budget)."""
        found, matched = [], 0
        for stub in hits:
            m = index.match(stub.id)
            if m is None or m.subject in self.seen:
                continue
            self.seen.add(m.subject)
            matched += 1
            owner = stub.id.split("/", 1)[0]
            if incidents.copy_joins_lookalike(m, (x.target for x in self.screener.screen(owner))):
                if m.subject.lower() in self.folded:
                    continue  # already part of its namespace's lookalike finding
                if not self.afford(FOLD_COST):
                    return found, matched, False
                found += self.fold(owner, m, stub)
                continue
            if self.rt.store.has_finding(dc.clone_fingerprint(m)):
                continue  # one alert per foreign repo: known copies cost nothing more
            if owner.lower() not in self.facts and not self.afford(OVERVIEW_COST):
                return found, matched, False
            try:
                facts = self.namespace(owner)
            except HubError as e:  # unknown, not safe: judged again next time round
                self.errors += 1
                log.info("overview of %s failed: %s", owner, e)
                continue
            f = dc.finding(m, facts, stub.files, self.now, self.rt.settings.hub.endpoint)
            f = self.content(m, stub, f)
            found += self.rt.store.record(f"clone:{m.subject.lower()}", None, [f], list(self.rt.sinks), self.now)
        return found, matched, True


    def fold(self, owner: str, m: dc.CloneMatch, stub: RepoStub) -> list[Finding]:
        """The copy joins its namespace's `lookalike` finding: the namespace is assessed with the copy
        folded in; a risk that rises re-alerts once, naming the copy; an unchanged one alerts nothing.
        The copy's content is inspected as a `repo_clone`'s is: a payload raises the finding (and
        alerts once, naming the import or the template rule, even when it was critical already)."""
        self.spent += FOLD_COST
        try:
            result = lookup(owner, self.hub, self.screener, self.targets, self.now)
        except HubError as e:  # unknown, not safe: folded again next time round
            self.errors += 1
            log.info("assessment of %s (holding %s) failed: %s", owner, m.foreign, e)
            return []
        if not result.exists:
            return []
        report = self.report(m, stub)
        fold_copy(self.rt.store, m, owner)  # `record` folds every copy the namespace holds
        self.folded[m.subject.lower()] = {"namespace": owner.lower()}
        return record(self.rt, result, self.now, {m.foreign: report} if report is not None else None)


def _interleave(lists: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [r for r in chain.from_iterable(zip_longest(*lists)) if r is not None]


def scan_clones(rt: Runtime, *, budget: int | None = None) -> CloneReport:
    """One round of the republished-repo watch; the cursor moves past the repos fully searched."""
    s = rt.settings.lookalike
    budget = s.clone_budget if budget is None else budget
    if not s.protected or s.clone_watch == 0 or budget <= 0 or rt.stop.is_set() or token_refused(rt, "scan_clones"):
        return CloneReport(0, 0, 0, (), 0, 0)
    started = time.monotonic()
    scan = _Scan(rt, budget)
    watched = scan.watched()
    exempt = (*s.protected, *s.allow)
    indexes = {t: dc.CloneIndex([rid for rt_, rid in watched if rt_ == t], exempt, t) for t, _ in REPO_TYPES}
    # The round-robin runs over searches, so a budget smaller than one repo's searches still moves on.
    work = [(rtype, rid, term, sort) for rtype, rid in watched
            for term, sort in dc.search_terms(rid.split("/", 1)[-1])]
    rotation = RoundRobin(rt.store, CURSOR_KEY, work)
    found: list[Finding] = []
    searched = hits = 0
    for rtype, rid, term, sort in rotation.order():
        if not scan.afford(1):
            break
        scan.spent += 1
        try:
            stubs = scan.hub.search_repos(term, rtype, limit=SEARCH_LIMIT, sort=sort)
        except HubError as e:  # skipped this time round; the next round searches it again
            scan.errors += 1
            log.info("search %r for copies of %s %s failed: %s", term, rtype, rid, e)
            searched += 1
            continue
        new, matched, complete = scan.judge(indexes[rtype], stubs)
        found += new
        hits += matched
        if not complete:
            break  # the cursor stays here: the hits not yet judged are judged next cycle
        searched += 1
    rotation.advance(searched)
    report = CloneReport(len(watched), searched, hits, tuple(found), scan.spent, scan.errors)
    log.info("scan_clones: %d watched, %d searched, %d copies, %d new findings, ~%d requests, %d errors",
             len(watched), searched, hits, len(found), scan.spent, scan.errors,
             extra={"job": "scan_clones", "duration": round(time.monotonic() - started, 3)})
    return report
