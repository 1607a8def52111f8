"""Republished repos: a protected repo's name in a foreign namespace. Pure: names, facts and `now` in.

Impersonation often copies the repo, not the org's spelling: `Open-OSS/privacy-filter` next to
`openai/privacy-filter`, `deepinsight/inswapper` in a namespace InsightFace never had. So the
severity comes from the foreign namespace's facts (age, verification, following) and from what
the copy would run on a consumer's machine (pickle weights, code), not from how its name is spelt.
A quantised or converted copy (``-GGUF``, ``-AWQ`` ...) is a derivative: the Hub is full of
legitimate ones, so it is low, or medium when its namespace is new and unverified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterable, Mapping, Sequence

from monitor.detect.findings import Finding, Link, fingerprint, max_severity
from monitor.detect.lookalike_risk import FEW_FOLLOWERS, NEW_DAYS, Facts, age_in_days
from monitor.detect.names import compact
from monitor.detect.risk import runs_code_on_load
from monitor.hub.models import RepoId

# Suffixes quantisers and converters append; compared on the compact form (case and separators
# ignored), longest first, repeatedly (``-AWQ-4bit``).
DERIVATIVE_SUFFIXES = tuple(sorted({compact(s) for s in (
    "GGUF", "GGML", "AWQ", "GPTQ", "exl2", "EXL3", "MLX", "bnb-4bit", "bnb-8bit", "4bit", "8bit", "3bit",
    "2bit", "6bit", "fp16", "bf16", "fp8", "int4", "int8", "onnx", "openvino", "mlx-4bit",
    "mlx-8bit", "hqq", "imatrix", "quantized", "unsloth")}, key=len, reverse=True))
MAX_DANGEROUS_LISTED = 10


@dataclass(frozen=True)
class CloneMatch:
    """`foreign` (a repo id) carries the name of the protected repo `original`."""

    foreign: str
    original: str
    derivative: tuple[str, ...]  # suffixes removed to match; () for an exact copy
    type: str = "model"  # both repos are of this type: a search lists one type

    @property
    def subject(self) -> str:
        """The foreign repo as its page path (``datasets/x/y``): a model and a dataset may share an id."""
        return RepoId(self.type, self.foreign).web_path


def repo_key(name: str) -> str:
    """Case- and separator-insensitive form of a repo name (without its namespace)."""
    return compact(name.rsplit("/", 1)[-1])


def search_terms(name: str) -> tuple[tuple[str, str | None], ...]:
    """(term, sort) searches that find copies of the repo called `name` (sort None: the Hub's own).

    The Hub's search matches a substring of the id, ignoring case: the name itself finds copies
    spelt the same in any case, and derivatives (``name-GGUF``). A copy that changes or drops the
    separators (``privacy_filter``, ``privacyfilter`` for ``privacy-filter``) contains neither, so
    a name with separators is also searched by its longest word, newest first: every separator
    variant contains it, and a copy made since the last round is near the top even when the word
    is common. (A separator added to a name that has none, ``privacy-filter`` for
    ``privacyfilter``, has no common substring longer than a word's and is not searched for.)
    """
    words = [w for w in re.split(r"[-_.]+", name) if w]
    if len(words) < 2:
        return ((name, None),)
    return ((name, None), (max(words, key=len), "createdAt"))


def strip_derivative(key: str) -> tuple[str, tuple[str, ...]]:
    """(base, suffixes removed) of a compact repo name: ``llama38bgguf`` -> ``('llama38b', ('gguf',))``."""
    removed: list[str] = []
    while True:
        for suffix in DERIVATIVE_SUFFIXES:
            if key.endswith(suffix) and len(key) - len(suffix) >= 3:
                key = key[:-len(suffix)]
                removed.append(suffix)
                break
        else:
            return key, tuple(removed)


class CloneIndex:
    """Protected repo names, looked up by their compact form."""

    def __init__(self, originals: Iterable[str], exempt_namespaces: Iterable[str], rtype: str = "model"):
        self.type = rtype
        self._by_key: dict[str, str] = {}
        for rid in originals:
            self._by_key.setdefault(repo_key(rid), rid)
        self._exempt = frozenset(n.lower() for n in exempt_namespaces)

    def match(self, foreign: str) -> CloneMatch | None:
        """The protected repo `foreign` republishes, exactly or as a derivative; None if none, or if
        `foreign` lives in a protected or allowed namespace."""
        if "/" not in foreign or foreign.split("/", 1)[0].lower() in self._exempt:
            return None
        key = repo_key(foreign)
        if key in self._by_key:
            return CloneMatch(foreign, self._by_key[key], (), self.type)
        base, removed = strip_derivative(key)
        if removed and base in self._by_key:
            return CloneMatch(foreign, self._by_key[base], removed, self.type)
        return None


def dangerous_files(files: Sequence[str]) -> tuple[str, ...]:
    """Files that run code on the machine that loads the repo: pickle-format weights and code."""
    return tuple(path for path in files if runs_code_on_load(path))


def namespace_reasons(facts: Facts, now: datetime) -> tuple[bool, list[str]]:
    """(established, reasons): is the namespace one people have known for a while?

    Unknown age or following counts against it: what could not be read is not assumed safe.
    """
    age = age_in_days(facts.created_at, now)
    reasons = [f"created {age} day(s) ago" if age is not None else "creation date unknown"]
    if facts.kind == "user":
        reasons.append("a user account, not an organization")
    elif facts.verified:
        reasons.append("verified by the Hub")
    else:
        reasons.append("organization is not verified")
    reasons.append("follower count not published" if facts.followers is None
                   else f"{facts.followers} follower(s)")
    old_and_followed = (age is not None and age >= NEW_DAYS and facts.followers is not None
                        and facts.followers >= FEW_FOLLOWERS)
    return bool(facts.verified) or old_and_followed, reasons


def clone_severity(facts: Facts, now: datetime, derivative: bool, dangerous: Sequence[str] = ()
                   ) -> tuple[str, list[str]]:
    """Severity of a republished repo from its namespace's facts and its dangerous files."""
    established, reasons = namespace_reasons(facts, now)
    age = age_in_days(facts.created_at, now)
    if derivative:
        new_unverified = not facts.verified and (age is None or age < NEW_DAYS)
        return ("medium" if new_unverified else "low"), reasons
    if established:
        return "low", reasons
    return ("critical" if dangerous else "high"), reasons


def clone_fingerprint(match: CloneMatch) -> str:
    """One alert per foreign repo: the fingerprint is the repo, whatever its severity."""
    return fingerprint("repo_clone", match.subject, [match.subject.lower()])


def finding(match: CloneMatch, facts: Facts, files: Sequence[str], now: datetime, base: str) -> Finding:
    """One alert per foreign repo (`clone_fingerprint`)."""
    dangerous = dangerous_files(files)
    severity, reasons = clone_severity(facts, now, bool(match.derivative), dangerous)
    original = RepoId(match.type, match.original).web_path
    what = (f"a derivative ({', '.join(match.derivative)}) of {original}" if match.derivative
            else f"a copy of {original}")
    summary = f"republishes {original} under another namespace: {what}"
    if dangerous:
        summary += f"; runs code when loaded ({', '.join(dangerous[:3])}" + (" ..." if len(dangerous) > 3 else "") + ")"
    base = base.rstrip("/")
    return Finding(
        "repo_clone", severity, match.subject, summary, fingerprint=clone_fingerprint(match),
        evidence={"repo": match.foreign, "type": match.type, "copies": match.original,
                  "derivative": list(match.derivative),
                  "namespace": facts.name, "kind": facts.kind, "verified": facts.verified,
                  "created_at": facts.created_at, "age_days": age_in_days(facts.created_at, now),
                  "followers": facts.followers, "reasons": reasons,
                  "dangerous_files": list(dangerous[:MAX_DANGEROUS_LISTED]),
                  "dangerous_files_total": len(dangerous)},
        links=(Link("Republished repo", f"{base}/{match.subject}"), Link("Original", f"{base}/{original}")))


def republished(repo_names: Iterable[str], namespace: str, originals: Mapping[str, Sequence[str]]
                ) -> list[CloneMatch]:
    """For `lookup`: which protected repos a namespace's repos republish. `originals` maps each
    protected namespace to its repo names."""
    index = CloneIndex((f"{ns}/{n}" for ns, names in originals.items() for n in names), originals)
    out = []
    for name in repo_names:
        m = index.match(f"{namespace}/{name}")
        if m:
            out.append(m)
    return out


def republish_risk(matches: Sequence[CloneMatch], facts: Facts, now: datetime) -> tuple[str, list[str]]:
    """The risk a namespace's republished protected repos add, and the reasons to show."""
    if not matches:
        return "none", []
    exact = [m for m in matches if not m.derivative]
    chosen = exact or matches
    severity, _ = clone_severity(facts, now, derivative=not exact)
    shown = ", ".join(f"{m.original}" for m in chosen[:5]) + (f" and {len(chosen) - 5} more" if len(chosen) > 5 else "")
    reason = (f"republishes protected repo(s) under its own name: {shown}" if exact
              else f"publishes derivatives of protected repo(s): {shown}")
    return severity, [reason]


CONTENT_RULES = ("chat_template_code", "chat_template_injection")


def with_content(f: Finding, report) -> Finding:
    """A copy's finding (`repo_clone`, or its namespace's `lookalike`) after inspecting the copy's
    content (detect/content.ContentReport): a template difference from the original that fires
    chat_template_code or chat_template_injection, or a critical pickle import, raises it to that
    severity and says what fired; anything else (a re-quantizer's template patch, a file we could
    not read) is evidence only. The fingerprint stays: one alert per copy."""
    from monitor.detect import content as dcontent

    fired = _fired(report)
    evidence = {**f.evidence, "content": dcontent.evidence(report, dcontent.SCAN_UNKNOWN)}
    if not fired:
        return replace(f, evidence=evidence)
    return replace(f, severity=max_severity(f.severity, *(h.severity for h in fired)), evidence=evidence,
                   summary=f.summary + "; " + "; ".join(h.detail for h in fired[:2]))


def _fired(report) -> list:
    from monitor.detect import content as dcontent

    return [h for h in dcontent.hits(report, dcontent.SCAN_UNKNOWN)
            if h.rule in CONTENT_RULES or (h.rule == "pickle_imports" and h.severity == "critical")]


def lookalike_with_content(f: Finding, reports: Mapping[str, object]) -> Finding:
    """A namespace's `lookalike` finding with the content of the copies folded into it (issue 17's
    one incident; `reports`: copy repo -> detect/content.ContentReport). What fires (see
    `with_content`) raises it and is named in its summary, and — new knowledge about the same
    incident — makes it a new alert once per copy whose content fired, even when the namespace was
    already critical; anything else is evidence only."""
    from monitor.detect import content as dcontent

    if not reports:
        return f
    evidence = {**f.evidence, "content": {
        **dict(f.evidence.get("content") or {}),
        **{copy: dcontent.evidence(r, dcontent.SCAN_UNKNOWN) for copy, r in reports.items()}}}
    fired = {copy: hits for copy, r in sorted(reports.items()) if (hits := _fired(r))}
    if not fired:
        return replace(f, evidence=evidence)
    every = [h for hits in fired.values() for h in hits]
    severity = max_severity(f.severity, *(h.severity for h in every))
    summary = f.summary + "; " + "; ".join(f"{copy}: {h.detail}" for copy, hits in fired.items()
                                             for h in hits[:2])
    key = [f.subject.lower(), severity, "content", *(c.lower() for c in fired)]
    return replace(f, severity=severity, summary=summary, evidence=evidence,
                   fingerprint=fingerprint(f.kind, f.subject, key))
