"""How dangerous is an existing look-alike namespace? Pure: Hub facts and `now` in, a verdict out.

The strongest signal is copying: repos named like the protected org's (PoisonGPT's
`EleuterAI/gpt-j-6B` next to `EleutherAI/gpt-j-6b`). Then a copied display name, then the
usual marks of a throw-away account: unverified, new, few followers. A verified, old, popular
org is at most `low`, whatever its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from rapidfuzz import fuzz

from monitor.detect.findings import Finding, Link, severity_rank
from monitor.detect.lookalike import Match
from monitor.detect.names import normalise
from monitor.detect.times import parse_iso

RISKS = ("none", "low", "medium", "high", "critical")
NEW_DAYS = 90
OLD_DAYS = 365
FEW_FOLLOWERS = 10
POPULAR_FOLLOWERS = 1000


@dataclass(frozen=True)
class Facts:
    """What the Hub told us about a namespace that imitates a protected one."""

    name: str
    kind: str  # org | user
    verified: bool | None
    fullname: str
    followers: int | None  # None: the Hub did not say (never read as 0)
    models: int | None
    created_at: str | None
    repo_names: tuple[str, ...]  # names (without namespace) of its repos
    members: int | None = None
    details: str = ""  # the namespace's description


@dataclass(frozen=True)
class Verdict:
    risk: str
    reasons: tuple[str, ...]
    copied_repos: tuple[str, ...]


def raise_risk(risk: str, to: str) -> str:
    """The higher of two risks ('none' ... 'critical')."""
    return to if RISKS.index(to) > RISKS.index(risk) else risk


def copies_text(theirs: str, ours: str) -> bool:
    """A description that is the protected org's, give or take a few characters."""
    a, b = " ".join(theirs.lower().split()), " ".join(ours.lower().split())
    return len(a) >= 20 and len(b) >= 20 and fuzz.ratio(a, b) >= 90


def assess(facts: Facts, match: Match, target_repos: Sequence[str], target_fullname: str,
           now: datetime, target_details: str = "") -> Verdict:
    """Risk of one existing look-alike, with the reasons a security engineer would want listed."""
    reasons: list[str] = [f"imitates {match.target} ({', '.join(match.techniques)}; similarity {match.score:.2f})"]
    theirs = {normalise(n): n for n in target_repos}
    copied = tuple(sorted(n for n in facts.repo_names if normalise(n) in theirs))
    risk = "medium"
    if copied:
        risk = "critical"
        reasons.append(f"copies repo names of {match.target}: {', '.join(copied[:5])}"
                       + (f" and {len(copied) - 5} more" if len(copied) > 5 else ""))
    fn = normalise(facts.fullname) if facts.fullname else ""
    if fn and (fn in (normalise(target_fullname or ""), normalise(match.target))):
        risk = raise_risk(risk, "high")
        reasons.append(f"display name {facts.fullname!r} copies {match.target}'s")
    if facts.details and target_details and copies_text(target_details, facts.details):
        risk = raise_risk(risk, "high")
        reasons.append(f"description copies {match.target}'s")
    if facts.kind == "org" and not facts.verified:
        reasons.append("organization is not verified")
    elif facts.kind == "user":
        reasons.append("a user account, not an organization")
    age_days = age_in_days(facts.created_at, now)
    if age_days is not None and age_days < NEW_DAYS:
        risk = raise_risk(risk, "high")
        reasons.append(f"created {age_days} day(s) ago")
    elif age_days is None:
        reasons.append("creation date unknown")
    if facts.followers is None:
        reasons.append("follower count not published")
    elif facts.followers < FEW_FOLLOWERS:
        reasons.append(f"few followers ({facts.followers})")
    if not facts.repo_names and not copied and facts.models in (0, None):
        reasons.append("no public models")
    if facts.members:
        reasons.append(f"{facts.members} member(s) — people may have joined it thinking it is {match.target}")
    old_and_followed = age_days is not None and age_days >= OLD_DAYS and (facts.followers or 0) >= POPULAR_FOLLOWERS
    if facts.verified and old_and_followed:
        risk = "low"
        reasons.append("verified, older than a year and widely followed: most likely legitimate")
    elif facts.verified and not copied:
        risk = "low" if risk == "medium" else risk
        reasons.append("verified by the Hub")
    elif not copied and risk == "medium" and old_and_followed:
        # Real neighbours one edit apart exist (deepset / deepseek-ai, HuggingFaceM4 / H4): years
        # of history and a following an impostor cannot fake, and nothing copied.
        risk = "low"
        reasons.append(f"older than a year with {facts.followers} followers and nothing copied: "
                       "most likely a legitimate neighbour")
    return Verdict(risk, tuple(reasons), copied)


def age_in_days(created_at: str | None, now: datetime) -> int | None:
    """Whole days since `created_at`; None when unknown or in the future (untrusted data)."""
    created = parse_iso(created_at)
    if created is None or created > now:
        return None
    return (now - created).days


def finding(facts: Facts, match: Match, verdict: Verdict, base: str) -> Finding:
    """One alert per namespace, and a new one when its risk rises (the risk is part of the key): the
    rise a new copy causes names the copies (detect/incidents.py: one incident, one alert)."""
    severity = verdict.risk if verdict.risk != "none" else "info"
    page = f"{base.rstrip('/')}/{facts.name}"
    copies = verdict.copied_repos
    holds = (f"; holds copies of {match.target}'s repos: {', '.join(copies[:5])}"
             + (f" and {len(copies) - 5} more" if len(copies) > 5 else "")) if copies else ""
    return Finding.make(
        "lookalike", severity, facts.name,
        f"looks like {match.target} ({', '.join(match.techniques)}): risk {verdict.risk}{holds}",
        key=[facts.name.lower(), verdict.risk],
        evidence={"namespace": facts.name, "target": match.target, "techniques": list(match.techniques),
                  "score": match.score, "risk": verdict.risk, "reasons": list(verdict.reasons),
                  "kind": facts.kind, "verified": facts.verified, "followers": facts.followers,
                  "models": facts.models, "created_at": facts.created_at,
                  "copied_repos": list(verdict.copied_repos)},
        links=(Link("Namespace", page), Link("Protected org", f"{base.rstrip('/')}/{match.target}")))


def worth_alerting(verdict: Verdict, floor: str = "medium") -> bool:
    return verdict.risk != "none" and severity_rank(verdict.risk) >= severity_rank(floor)
