"""scan_roster: where are our people? Their orgs' names are screened against the protected ones.

Our people are the public members of `[roster] orgs` plus `[roster] users`. Each cycle lists the
members (one request per page of 500), then reads user overviews round-robin (one request each)
under `[roster] budget` requests, and looks up only the orgs whose names are suspect (one
overview, plus one repo listing when the Hub leaves the count out). Judgement: detect/roster.py.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from monitor.detect import roster as dr
from monitor.detect.findings import Finding
from monitor.errors import HubError, NotFound
from monitor.hub.budget import Priority
from monitor.hub.namespaces import Namespace, NamespaceClient
from monitor.jobs.lookup import screener_for
from monitor.jobs.round_robin import RoundRobin
from monitor.jobs.token import halted, note_job_token, token_refused
from monitor.runtime import Runtime

log = logging.getLogger("hubwatch.roster")
SEEN_KEY, CURSOR_KEY, ALERTED_KEY = "roster.memberships", "roster.cursor", "roster.alerted"


@dataclass(frozen=True)
class RosterReport:
    people: int
    checked: int
    suspect_orgs: int
    new_findings: tuple[Finding, ...]
    requests: int
    errors: int


class _Scan:
    def __init__(self, rt: Runtime):
        self.rt, self.s, self.la = rt, rt.settings.roster, rt.settings.lookalike
        self.hub = NamespaceClient(rt.client.for_priority(Priority.ROSTER))
        self.now = rt.clock()
        self.spent = self.errors = 0
        self.orgs: dict[str, tuple[Namespace | None, tuple[str, ...], int | None]] = {}
        self.screener = screener_for(self.la.protected, self.la.allow) if self.la.protected else None
        self.tokens = dr.distinctive_tokens(self.la.protected)
        self.ours = {n.lower() for n in (*self.s.orgs, *self.la.protected, *self.la.allow)}

    def afford(self, cost: int) -> bool:
        return self.spent + cost <= self.s.budget and not halted(self.rt)

    def people(self) -> list[str]:
        out: dict[str, str] = {}
        for org in self.s.orgs:
            if not self.afford(1):
                break
            try:
                names, pages = self.hub.members(org)
                self.spent += pages
            except HubError as e:
                self.spent += 1
                self.errors += 1
                log.info("members of %s could not be listed: %s", org, e)
                continue
            for n in names:
                out.setdefault(n.lower(), n)
        for n in self.s.users:
            out.setdefault(n.lower(), n)
        return sorted(out.values(), key=str.lower)

    def org(self, name: str) -> tuple[Namespace | None, tuple[str, ...], int | None]:
        """(overview, repo names, repo count) of a suspect org, once per cycle."""
        key = name.lower()
        if key not in self.orgs:
            self.spent += 1
            ns = self.hub.overview(name)
            repos: tuple[str, ...] = ()
            count = None
            if ns is not None and ns.models != 0:
                self.spent += 1
                repos = tuple(r.name for r in self.hub.repos_of(ns.name, limit=100))
            if ns is not None:
                known = (ns.models, ns.datasets, ns.spaces)
                count = sum(known) if None not in known else (len(repos) if len(repos) < 100 else None)
            self.orgs[key] = (ns, repos, count)
        return self.orgs[key]

    def judge(self, member: str, org: str, new: bool, alerted: dict) -> list[Finding] | None:
        """New findings for one membership; None when it could not be judged within the budget."""
        if org.lower() in self.ours:
            return []
        matches = self.screener.screen(org) if self.screener else ()
        target = matches[0].target if matches else dr.token_in(org, self.tokens)
        hw_key = f"{member.lower()}|{org.lower()}"
        # A token-only org is judged when the membership is new, and after it was alerted, to see
        # whether the org has gained repos since (our member may be uploading there).
        if target is None or (not matches and not new and hw_key not in alerted):
            return []
        if org.lower() not in self.orgs and not self.afford(2):
            return None
        ns, repos, count = self.org(org)
        if ns is None or ns.kind != "org" or ns.verified:
            return []
        if hw_key in alerted and (count is None or count <= alerted[hw_key]):
            return []  # already told, and the org has not gained repos since
        f = dr.finding(member, ns.name, target, matches[0] if matches else None, ns.verified, ns.created_at,
                       repos, count, self.rt.settings.hub.endpoint)
        found = self.rt.store.record(f"roster:{hw_key}", None, [f], list(self.rt.sinks), self.now)
        alerted[hw_key] = count if count is not None else alerted.get(hw_key, 0)
        return found


def scan_roster(rt: Runtime) -> RosterReport:
    """One roster cycle: people listed, overviews read round-robin under the budget."""
    s = rt.settings.roster
    if not (s.orgs or s.users) or rt.stop.is_set() or token_refused(rt, "scan_roster"):
        return RosterReport(0, 0, 0, (), 0, 0)
    started, accepted = time.monotonic(), rt.client.stats.accepted()
    scan = _Scan(rt)
    people = scan.people()
    raw_seen = rt.store.get_meta(SEEN_KEY)
    first_run = raw_seen is None  # what everybody is in today is the baseline for "newly"
    seen: dict[str, list[str]] = json.loads(raw_seen or "{}")
    alerted: dict[str, int] = json.loads(rt.store.get_meta(ALERTED_KEY) or "{}")
    rotation = RoundRobin(rt.store, CURSOR_KEY, people)
    found: list[Finding] = []
    checked = 0
    for person in rotation.order():
        if not scan.afford(1):
            break
        scan.spent += 1
        try:
            orgs = scan.hub.user_orgs(person)
        except NotFound:
            checked += 1
            continue  # gone, or an org name listed as a user: nothing to watch
        except HubError as e:
            checked += 1
            scan.errors += 1
            log.info("overview of %s failed: %s", person, e)
            continue
        before = set(seen.get(person.lower(), ()))
        unjudged: set[str] = set()  # not recorded as seen, so still "new" when judged again
        out_of_budget = False
        for org in orgs:
            new = not first_run and org.lower() not in before
            try:
                judged = scan.judge(person, org, new, alerted)
            except HubError as e:
                scan.errors += 1
                log.info("org %s of %s could not be read: %s", org, person, e)
                judged = []
                unjudged.add(org.lower())
            if judged is None:
                out_of_budget = True
                break
            found += judged
        if out_of_budget:
            break  # the cursor stays on this person: judged first next cycle
        checked += 1
        seen[person.lower()] = sorted({o.lower() for o in orgs} - unjudged)
    if checked or not first_run:  # an empty first baseline would make every membership "new" next time
        rt.store.set_meta(SEEN_KEY, json.dumps(seen))
    rt.store.set_meta(ALERTED_KEY, json.dumps(alerted))
    rotation.advance(checked)
    found += note_job_token(rt, accepted)
    report = RosterReport(len(people), checked, len(scan.orgs), tuple(found), scan.spent, scan.errors)
    log.info("scan_roster: %d people, %d checked, %d suspect orgs, %d new findings, ~%d requests, %d errors",
             len(people), checked, len(scan.orgs), len(found), scan.spent, scan.errors,
             extra={"job": "scan_roster", "duration": round(time.monotonic() - started, 3)})
    return report
