"""Content verdicts (pickle imports, chat templates) as rules and findings. Pure: the inspectors
(monitor/content/) produced the verdicts, jobs/content_check.py read the bytes.

Rules: `pickle_imports` (critical: a dangerous import; high: a global neither allowlisted nor
dangerous), `not_inspected` (high: a pickle-family file or template we could not inspect, and
why), `chat_template_changed` (medium), `chat_template_code` (critical), `chat_template_injection`
(high). A pickle change whose every global is allowlisted stays `pickle_file_changed`, medium.
Our verdict never waits for the Hub's scan; when the Hub calls a file clean, or has not scanned
it, and we find a dangerous import, the detail says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from monitor.detect.findings import Finding, Link, max_severity, severity_rank
from monitor.detect.risk import ContentRules, RuleHit
from monitor.hub.models import RepoId

SHOWN = 5  # names listed in one rule's detail
DIFF_CHARS = 4000  # a template diff kept in evidence
DIFFS_KEPT = 5
HUB_MISSED = "the Hub's scan did not flag it"
HUB_NOT_SCANNED = HUB_MISSED + ": the Hub has not scanned it"  # the words in both cases
SCAN_UNKNOWN: Mapping[str, str] = {"<scan not asked>": ""}  # the Hub's scan was not read (copies): no note


class PickleLike(Protocol):  # monitor.content.pickles.PickleVerdict
    path: str
    container: str
    imports: tuple[str, ...]
    dangerous: tuple[str, ...]
    unknown: tuple[str, ...]
    not_inspected: str | None

    @property
    def severity(self) -> str: ...

    @property
    def is_pickle(self) -> bool: ...


@dataclass(frozen=True)
class TemplateResult:
    """A chat-template comparison for one source: "chat templates" (tokenizer_config.json,
    chat_template.jinja, chat_template.json together) or one .gguf file."""

    source: str
    verdict: Any  # monitor.content.templates.TemplateVerdict: hits, diff, not_inspected


@dataclass(frozen=True)
class ContentReport:
    """What one inspection (a move, a baseline, a copy) found."""

    pickles: tuple[Any, ...] = ()  # PickleLike verdicts
    templates: tuple[TemplateResult, ...] = ()
    unread: tuple[tuple[str, str], ...] = ()  # (path, why) of pickle-family files never read
    unread_other: tuple[tuple[str, str], ...] = ()  # template sources not read: evidence only
    keras: tuple[str, ...] = ()  # Keras files: listed as not inspected
    bytes_read: int = 0
    requests: int = 0


def _list(items: Sequence[str], limit: int = SHOWN) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def hub_note(path: str, flagged: Mapping[str, str] | None) -> str:
    """What the Hub's scan said of a file we found dangerous ("" when it flagged it too)."""
    if flagged is SCAN_UNKNOWN:
        return ""
    if flagged is None:
        return HUB_NOT_SCANNED
    return "" if path in flagged else HUB_MISSED


def pickle_hits(report: ContentReport, flagged: Mapping[str, str] | None = None) -> list[RuleHit]:
    """`pickle_imports` and `not_inspected` hits of the pickle verdicts. `flagged`: path -> level of
    the files the Hub's scan flags at that revision; None when it has not scanned it."""
    hits: list[RuleHit] = []
    for v in report.pickles:
        if v.dangerous:
            note = hub_note(v.path, flagged)
            hits.append(RuleHit("pickle_imports", "critical",
                                f"{v.path} imports {_list(list(v.dangerous))}" + (f" ({note})" if note else "")))
        if v.unknown:
            hits.append(RuleHit("pickle_imports", "high",
                                f"{v.path} imports {_list(list(v.unknown))}, not on the allowlist"))
        if v.not_inspected:
            hits.append(RuleHit("not_inspected", "high", f"not inspected: {v.path} ({v.not_inspected})"))
    if report.unread:
        hits.append(RuleHit("not_inspected", "high", "not inspected: " + "; ".join(
            f"{p} ({why})" for p, why in report.unread[:SHOWN]) + (
            f" and {len(report.unread) - SHOWN} more" if len(report.unread) > SHOWN else "")))
    return hits


def template_hits(report: ContentReport) -> list[RuleHit]:
    hits: list[RuleHit] = []
    for t in report.templates:
        for h in t.verdict.hits:
            where = t.source if h.template == "default" else f"{t.source} ({h.template})"
            hits.append(RuleHit(h.rule, h.severity, f"{where}: {h.detail}"))
        if t.verdict.not_inspected:
            hits.append(RuleHit("not_inspected", "high", f"not inspected: {t.source} ({t.verdict.not_inspected})"))
    return hits


def sniffed_pickles(report: ContentReport) -> list[str]:
    """Files whose bytes said pickle although their name did not (a pickle named model.safetensors)."""
    from monitor.detect.risk import PICKLE_EXTS

    return [v.path for v in report.pickles if v.is_pickle and not v.path.lower().endswith(PICKLE_EXTS)]


def rules(report: ContentReport, flagged: Mapping[str, str] | None = None) -> ContentRules:
    """What `risk.assess` needs of a report."""
    clean = {v.path: len(v.imports) for v in report.pickles
             if not (v.not_inspected or v.dangerous or v.unknown)}
    return ContentRules(hits(report, flagged), tuple(sniffed_pickles(report)), clean)


def evidence(report: ContentReport, flagged: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The content part of a finding's evidence: per file what was imported, template diffs."""
    out: dict[str, Any] = {
        "pickles": [{"path": v.path, "container": v.container, "imports": list(v.imports),
                     "dangerous": list(v.dangerous), "unknown": list(v.unknown),
                     "not_inspected": v.not_inspected, "severity": v.severity,
                     **({} if flagged is SCAN_UNKNOWN else {"hub_scan": flagged.get(v.path, "not flagged")}
                        if flagged is not None else {"hub_scan": "not scanned"})}
                    for v in report.pickles],
        # diffs of the first DIFFS_KEPT sources only: a 20-file GGUF update carries one template 20 times
        "templates": [{"source": t.source, "diff": (t.verdict.diff or "")[:DIFF_CHARS] if i < DIFFS_KEPT else "",
                       "rules": [{"rule": h.rule, "severity": h.severity, "template": h.template,
                                  "detail": h.detail} for h in t.verdict.hits],
                       "not_inspected": t.verdict.not_inspected} for i, t in enumerate(report.templates)],
    }
    clean = [n for v in report.pickles if not (v.not_inspected or v.dangerous or v.unknown) for n in v.imports]
    out["allowlisted_globals"] = list(dict.fromkeys(clean))
    if report.unread:
        out["not_inspected"] = [{"path": p, "reason": why} for p, why in report.unread]
    if report.unread_other:
        out["not_read"] = [{"path": p, "reason": why} for p, why in report.unread_other]
    if report.keras:
        out["keras_not_inspected"] = list(report.keras)
    out["bytes_read"], out["requests"] = report.bytes_read, report.requests
    return out


def hits(report: ContentReport, flagged: Mapping[str, str] | None = None) -> tuple[RuleHit, ...]:
    """Every rule the report fires, most severe first."""
    found = pickle_hits(report, flagged) + template_hits(report)
    return tuple(sorted(found, key=lambda h: -severity_rank(h.severity)))


# --- the baseline audit ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentState:
    """Stored per watched repo (store content_state): the audit's conclusion and the templates read
    at `sha`, which later moves are compared with."""

    sha: str | None = None
    status: str = "not_inspected"  # clean | flagged | not_inspected
    reason: str | None = None
    templates: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # source -> name -> text
    retry: bool = False  # a transient failure: the audit runs again at the next check

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> "ContentState | None":
        if not text:
            return None
        try:
            data = json.loads(text)
            templates = {str(s): {str(k): str(v) for k, v in t.items()} for s, t in data.get("templates", {}).items()}
            return cls(data.get("sha"), str(data.get("status", "not_inspected")), data.get("reason"), templates,
                       bool(data.get("retry", False)))
        except (ValueError, AttributeError, TypeError):
            return None


def audit_status(report: ContentReport, flagged: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """clean / flagged / not_inspected (with the reason) of a baseline audit."""
    found = hits(report, flagged)
    bad = [h for h in found if h.rule != "not_inspected" and severity_rank(h.severity) >= severity_rank("high")]
    if bad:
        return "flagged", "; ".join(h.detail for h in bad[:2])
    skipped = [h for h in found if h.rule == "not_inspected"]
    if skipped:
        return "not_inspected", "; ".join(h.detail.removeprefix("not inspected: ") for h in skipped[:2])
    return "clean", None


def content_flagged(repo: RepoId, base: str, sha: str, report: ContentReport,
                    flagged: Mapping[str, str] | None = None) -> Finding | None:
    """The baseline audit's finding: a pinned revision that already carries a dangerous pickle or
    a poisoned template at its first observation. None when nothing high or critical fired."""
    found = [h for h in hits(report, flagged) if severity_rank(h.severity) >= severity_rank("high")]
    if not found:
        return None
    severity = max_severity(*(h.severity for h in found))
    shown = [h.detail for h in found[:2]] + [h.detail for h in found[2:] if h.rule == "not_inspected"][:1]
    summary = f"content of the pinned revision {sha[:7]} is flagged: " + "; ".join(shown)
    page = f"{base.rstrip('/')}/{repo.web_path}"
    return Finding.make(
        "content_flagged", severity, repo.web_path, summary,
        key=[sha, sorted({f"{h.rule}:{h.detail}" for h in found})],
        evidence={"repo": repo.id, "type": repo.type, "sha": sha,
                  "rules": [h.to_dict() for h in found],
                  "files": sorted({v.path for v in report.pickles} | {p for p, _ in report.unread}
                                  | {t.source for t in report.templates}),
                  "content": evidence(report, flagged)},
        links=(Link("Files", f"{page}/tree/{sha}"),))
