"""One incident, one alert: which findings tell of the same event. Pure: findings and matches in.

An impostor org holding a copy of a protected repo (PoisonGPT's `EleuterAI/gpt-j-6B`) is one
incident: the namespace imitating `EleutherAI`, with the copy as its strongest evidence. So a copy
inside a namespace that itself imitates the same protected name belongs to that namespace's
`lookalike` finding (its evidence lists the copied repos, and the rise of its risk that a new
copy causes re-alerts once, naming the copy); `repo_clone` is for copies in namespaces that
imitate nothing (or imitate another protected name: copying someone else's repo is another
incident). The daily digest counts incidents the same way (`incident_keys`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from monitor.detect.clones import CloneMatch
from monitor.detect.findings import Finding, severity_rank
from monitor.detect.lookalike_risk import Verdict, raise_risk


def protected_namespace(match: CloneMatch) -> str:
    return match.original.split("/", 1)[0]


def copy_joins_lookalike(match: CloneMatch, imitated: Iterable[str]) -> bool:
    """Does the copy `match` belong to its namespace's `lookalike` finding? Yes when that namespace
    imitates (`imitated`: the protected names the screener says it imitates) the very namespace
    whose repo it copies."""
    return protected_namespace(match).lower() in {t.lower() for t in imitated}


def fold_copies_into_lookalike(verdict: Verdict, copies: Sequence[CloneMatch]) -> Verdict:
    """The namespace's look-alike verdict with the copies the clone watch found in it: each copied
    repo listed (`copied_repos`), a reason naming it, and the risk raised — to critical for an exact
    copy (as `lookalike_risk.assess` does for the copies it sees itself), to high for a derivative."""
    risk, reasons, copied = verdict.risk, list(verdict.reasons), list(verdict.copied_repos)
    for m in copies:
        name = m.foreign.split("/", 1)[-1]
        if name in copied:
            continue
        copied.append(name)
        what = f"a derivative ({', '.join(m.derivative)}) of" if m.derivative else "a copy of"
        reasons.append(f"holds {m.foreign}, {what} {m.original}")
        risk = raise_risk(risk, "high" if m.derivative else "critical")
    return Verdict(risk, tuple(reasons), tuple(sorted(copied)))


def _namespace_of(f: Finding) -> str | None:
    ev = f.evidence if isinstance(f.evidence, dict) else {}
    if f.kind == "lookalike":
        return str(ev.get("namespace") or f.subject)
    if f.kind == "repo_clone":
        repo = str(ev.get("repo") or "")
        return str(ev.get("namespace") or repo.split("/", 1)[0]) if (ev.get("namespace") or "/" in repo) else None
    return None


def incident_keys(findings: Sequence[Finding]) -> list[str]:
    """One key per finding, equal for findings of the same incident: every `lookalike` finding of a
    namespace (its first alert and each rise), and a `repo_clone` of a copy held by a namespace that
    imitates the copied repo's protected namespace (findings recorded before copies were folded);
    any other finding is its own incident."""
    targets: dict[str, set[str]] = {}
    for f in findings:
        if f.kind == "lookalike" and isinstance(f.evidence, dict):
            targets.setdefault(_namespace_of(f).lower(), set()).add(str(f.evidence.get("target", "")).lower())
    keys = []
    for f in findings:
        ns = _namespace_of(f)
        if f.kind == "lookalike":
            keys.append(f"namespace:{ns.lower()}")
        elif f.kind == "repo_clone" and ns and isinstance(f.evidence, dict) and \
                str(f.evidence.get("copies", "")).split("/", 1)[0].lower() in targets.get(ns.lower(), set()):
            keys.append(f"namespace:{ns.lower()}")
        else:
            keys.append(f"finding:{f.fingerprint}")
    return keys


def incidents(findings: Sequence[Finding]) -> dict[str, Finding]:
    """Incident key -> its most severe finding (the latest of equals, `findings` in time order)."""
    out: dict[str, Finding] = {}
    for key, f in zip(incident_keys(findings), findings):
        if key not in out or severity_rank(f.severity) >= severity_rank(out[key].severity):
            out[key] = f
    return out
