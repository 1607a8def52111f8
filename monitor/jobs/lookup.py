"""'Is this org legit?': look a namespace up on the Hub now and judge it against the protected names.

Shared by `hubwatch lookup`, the scan_lookalikes job and (later) the HTTP/Slack lookups.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from monitor.detect import clones as dc
from monitor.detect import incidents
from monitor.detect import lookalike_risk as lr
from monitor.detect.findings import Finding
from monitor.detect.lookalike import Match, Screener
from monitor.hub.namespaces import Namespace, NamespaceClient

if TYPE_CHECKING:
    from monitor.config import LookalikeSettings
    from monitor.runtime import Runtime
    from monitor.hub.client import HubClient

_SCREENERS: dict[tuple, Screener] = {}


@dataclass(frozen=True)
class LookupResult:
    name: str
    exists: bool
    kind: str | None
    verified: bool | None
    created_at: str | None
    followers: int | None
    models: int | None
    imitates: tuple[Match, ...]
    risk: str
    reasons: tuple[str, ...]
    facts: lr.Facts | None = None
    verdict: lr.Verdict | None = None

    def to_json(self) -> dict[str, Any]:
        """The `hubwatch lookup --json` contract."""
        return {
            "name": self.name, "exists": self.exists, "kind": self.kind, "verified": self.verified,
            "created_at": self.created_at, "followers": self.followers, "models": self.models,
            "imitates": [{"target": m.target, "techniques": list(m.techniques), "score": m.score}
                         for m in self.imitates],
            "risk": self.risk, "reasons": list(self.reasons),
        }


class TargetCache:
    """Repo names and display names of protected orgs, fetched once per cycle (they change slowly)."""

    def __init__(self, hub: NamespaceClient, allow: Iterable[str] = ()):
        self.hub = hub
        self.allow = frozenset(a.lower() for a in allow)
        self._lock = threading.Lock()
        self._data: dict[str, tuple[tuple[str, ...], str, str]] = {}

    def get(self, target: str) -> tuple[tuple[str, ...], str, str]:
        """(repo names, display name, description) of a protected namespace."""
        with self._lock:
            if target in self._data:
                return self._data[target]
        ns = self.hub.overview(target)
        repos = tuple(r.name for r in self.hub.repos_of(target, limit=1000)) if ns else ()
        value = (repos, ns.fullname if ns else "", ns.details if ns else "")
        with self._lock:
            self._data[target] = value
        return value


def screener_for(protected: Iterable[str], allow: Iterable[str]) -> Screener:
    """Building the index costs time; reuse it while the config's names stay the same."""
    key = (tuple(protected), tuple(allow))
    if key not in _SCREENERS:
        _SCREENERS.clear()
        _SCREENERS[key] = Screener(key[0], key[1])
    return _SCREENERS[key]


def lookup_now(client: "HubClient", lookalike: "LookalikeSettings", name: str, now: datetime) -> LookupResult:
    """An on-demand lookup (CLI, HTTP, Slack): a fresh target cache, the configured protected names."""
    hub = NamespaceClient(client)
    return lookup(name, hub, screener_for(lookalike.protected, lookalike.allow), TargetCache(hub, lookalike.allow),
                  now)


FOLDED_KEY, MAX_FOLDED = "clones.folded", 10_000  # copies the clone watch folded into a namespace's finding


def folded_copies(store: Any, namespace: str) -> list[dc.CloneMatch]:
    """The copies of protected repos held by `namespace` that belong to its `lookalike` finding."""
    folded = json.loads(store.get_meta(FOLDED_KEY) or "{}")
    return [dc.CloneMatch(c["foreign"], c["original"], tuple(c.get("derivative", ())), c.get("type", "model"))
            for c in folded.values() if isinstance(c, dict) and str(c.get("namespace")) == namespace.lower()]


def fold_copy(store: Any, match: dc.CloneMatch, namespace: str) -> None:
    """Remember that the copy `match` belongs to `namespace`'s `lookalike` finding."""
    folded = json.loads(store.get_meta(FOLDED_KEY) or "{}")
    folded[match.subject.lower()] = {"namespace": namespace.lower(), "foreign": match.foreign,
                                     "original": match.original, "derivative": list(match.derivative),
                                     "type": match.type}
    while len(folded) > MAX_FOLDED:
        folded.pop(next(iter(folded)))
    store.set_meta(FOLDED_KEY, json.dumps(folded))


def record(rt: "Runtime", result: LookupResult, now: datetime,
           content: Mapping[str, Any] | None = None) -> list[Finding]:
    """Record a judged namespace as a `lookalike` finding when it exists and is risky enough, with
    the copies the clone watch found in it folded in (one incident, one alert) and, when given,
    what inspecting a copy's content found (`content`: copy repo -> ContentReport); returns the
    finding if it is new (one per namespace and risk level, and per copy whose content fired)."""
    if not (result.exists and result.verdict and result.imitates):
        return []
    verdict = incidents.fold_copies_into_lookalike(result.verdict, folded_copies(rt.store, result.name))
    if not lr.worth_alerting(verdict):
        return []
    f = lr.finding(result.facts, result.imitates[0], verdict, rt.settings.hub.endpoint)
    judged = dc.lookalike_with_content(f, content or {})
    if judged.fingerprint != f.fingerprint and not rt.store.has_finding(f.fingerprint):
        # the namespace's alert at this risk is yet to be sent: it is this one, naming the payload
        # (a later assessment without content then finds it recorded: one incident, one alert)
        judged = dataclasses.replace(judged, fingerprint=f.fingerprint)
    f = judged
    return rt.store.record(f"namespace:{result.name.lower()}", None, [f], list(rt.sinks), now)


def facts_of(hub: NamespaceClient, ns: Namespace) -> lr.Facts:
    # Listed unless the Hub says there are none: the real org overview may leave the count out,
    # and an impostor's copied repos are the strongest evidence there is.
    repos = hub.repos_of(ns.name, limit=100) if ns.models != 0 else []
    created = ns.created_at or min((r.created_at for r in repos if r.created_at), default=None)
    return lr.Facts(ns.name, ns.kind, ns.verified, ns.fullname, ns.followers, ns.models, created,
                    tuple(r.name for r in repos), ns.members, ns.details)


def lookup(name: str, hub: NamespaceClient, screener: Screener, targets: TargetCache, now: datetime,
           ns: Namespace | None = None) -> LookupResult:
    """Query the Hub for `name` (unless its overview is given) and judge it."""
    matches = screener.screen(name)
    if ns is None:
        ns = hub.overview(name)
    if ns is None:
        reasons = ("no org or user of that name exists on the Hub",)
        if matches:
            reasons += (f"the name is free and imitates {matches[0].target}: consider registering it defensively",)
        return LookupResult(name, False, None, None, None, None, None, matches, "none", reasons)
    facts = facts_of(hub, ns)
    if not matches:
        copies = _republished(facts, screener, targets, skip=None)
        if not copies:
            return LookupResult(ns.name, True, ns.kind, ns.verified, facts.created_at, ns.followers, ns.models, (),
                                "none", ("does not imitate a protected name",), facts)
        risk, why = dc.republish_risk(copies, facts, now)
        reasons = ("its name does not imitate a protected name", *why, *dc.namespace_reasons(facts, now)[1])
        return LookupResult(ns.name, True, ns.kind, ns.verified, facts.created_at, ns.followers, ns.models, (),
                            risk, reasons, facts)
    best = matches[0]
    target_repos, target_fullname, target_details = targets.get(best.target)
    verdict = lr.assess(facts, best, target_repos, target_fullname, now, target_details)
    copies = _republished(facts, screener, targets, skip=best.target)  # the imitated org's: assess did those
    if copies:
        risk, why = dc.republish_risk(copies, facts, now)
        verdict = lr.Verdict(lr.raise_risk(verdict.risk, risk), verdict.reasons + tuple(why), verdict.copied_repos)
    return LookupResult(ns.name, True, ns.kind, ns.verified, facts.created_at, ns.followers, ns.models, matches,
                        verdict.risk, verdict.reasons, facts, verdict)


def _republished(facts: lr.Facts, screener: Screener, targets: TargetCache, skip: str | None
                 ) -> list[dc.CloneMatch]:
    """Protected repos this namespace republishes (exact names or derivatives); the protected
    repo lists cost two requests per protected name, once per TargetCache."""
    if not facts.repo_names or facts.name.lower() in targets.allow | {t.lower() for t in screener.targets}:
        return []
    originals = {t: targets.get(t)[0] for t in screener.targets if t != skip}
    return dc.republished(facts.repo_names, facts.name, originals)


def render_text(r: LookupResult) -> str:
    """The readable `hubwatch lookup` report."""
    lines = [f"{r.name}: {'exists' if r.exists else 'does not exist'}"
             + (f" ({r.kind}{', verified' if r.verified else ', not verified' if r.kind == 'org' else ''})"
                if r.exists else "")]
    if r.exists:
        lines.append(f"  created: {r.created_at or 'unknown'}   followers: {_count(r.followers)}   "
                     f"models: {_count(r.models)}")
    for m in r.imitates:
        lines.append(f"  imitates {m.target} via {', '.join(m.techniques)} (similarity {m.score:.2f})")
    lines.append(f"  risk: {r.risk.upper()}")
    lines += [f"  - {reason}" for reason in r.reasons]
    return "\n".join(lines)


def _count(n: int | None) -> str:
    return "unknown" if n is None else str(n)
