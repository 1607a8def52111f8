"""Turn two observations of a repo into findings. Pure: the caller fetched everything.

Summaries do not repeat the subject (the repo): every rendering shows `subject: summary`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from monitor.detect.findings import Finding, Link, max_severity
from monitor.detect.risk import RuleHit
from monitor.hub.models import Commit, RepoId, RepoInfo, ScanIssue


@dataclass(frozen=True)
class Move:
    """A ref whose head differs from the last observation."""

    ref: str
    ref_type: str  # branch | tag
    old: str
    new: str | None  # None: the ref was deleted
    tracked: bool


@dataclass(frozen=True)
class FileDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.modified)


@dataclass(frozen=True)
class NotRead:
    """What a move's description could not read (gated without access, disabled), and why."""

    reason: str
    history: bool = False  # the commits between old and new
    configs: tuple[str, ...] = ()  # changed config files whose content the remote-code rule needs


def manifest(info: RepoInfo) -> dict[str, str]:
    return {f.path: f.content_id for f in info.files}


def diff_files(old: Mapping[str, str] | None, new: Mapping[str, str] | None) -> FileDiff | None:
    """Files added/removed/modified between two manifests (None when either is unknown)."""
    if old is None or new is None:
        return None
    added = tuple(sorted(p for p in new if p not in old))
    removed = tuple(sorted(p for p in old if p not in new))
    modified = tuple(sorted(p for p in new if p in old and new[p] != old[p]))
    return FileDiff(added, removed, modified)


def find_moves(old_branches: Mapping[str, str], old_tags: Mapping[str, str],
               branches: Mapping[str, str], tags: Mapping[str, str], tracked: set[str]) -> list[Move]:
    """Tracked branches that moved or vanished, and every tag re-pointed or deleted.

    New tags and untracked branches are not moves: tags are supposed to be immutable, so only a
    change to an existing one matters.
    """
    moves = []
    for name in sorted(tracked):
        if name in old_branches and branches.get(name) != old_branches[name]:
            moves.append(Move(name, "branch", old_branches[name], branches.get(name), True))
    for name, sha in sorted(old_tags.items()):
        if tags.get(name) != sha:
            moves.append(Move(name, "tag", sha, tags.get(name), name in tracked))
    return moves


def anchored_moves(anchors: Sequence[tuple[str, str]], branches: Mapping[str, str],
                   tags: Mapping[str, str]) -> list[Move]:
    """First observation of pins giving both `revision` and `track`: each tracked ref that no
    longer points at its anchor moved from it (before we ever looked), with the usual rules. A
    tracked ref that does not exist is reported as missing elsewhere, not as a move."""
    moves = []
    for ref, anchor in anchors:
        kind = "tag" if ref in tags else "branch"
        head = tags.get(ref) if kind == "tag" else branches.get(ref)
        if head is not None and head != anchor:
            moves.append(Move(ref, kind, anchor, head, True))
    return moves


def _short(sha: str | None) -> str:
    return sha[:7] if sha else "(deleted)"


def links(base: str, repo: RepoId, sha: str | None) -> tuple[Link, ...]:
    """Hub pages for a revision: the commit, the history up to it (compare), and its files."""
    page = f"{base.rstrip('/')}/{repo.web_path}"
    if not sha:
        return (Link("Repository", page),)
    return (Link("Commit", f"{page}/commit/{sha}"), Link("Compare (history)", f"{page}/commits/{sha}"),
            Link("Files", f"{page}/tree/{sha}"))


def describe_move(repo: RepoId, base: str, move: Move, commits: Sequence[Commit], fast_forward: bool | None,
                  files: FileDiff | None, hits: Sequence[RuleHit], known_authors: Sequence[str],
                  not_read: NotRead | None = None, content: Mapping | None = None) -> Finding:
    """One alert for one move: what changed, who changed it, and which rule fired. What could not
    be read is said, never assumed clean; the severity comes from what was readable."""
    seen = set(known_authors)
    authors = sorted({a for c in commits for a in c.authors})
    new_authors = [a for a in authors if seen and a not in seen]
    if move.ref_type == "tag":
        kind, severity = "tag_moved", "high"
        verb = "was deleted" if move.new is None else f"re-pointed {_short(move.old)} → {_short(move.new)}"
        summary = f"tag {move.ref} {verb} (tags should never move)"
    else:
        kind = "risky_change" if hits else "ref_moved"
        severity = "medium"
        if move.new is None:
            severity, summary = "high", f"tracked branch {move.ref} was deleted"
        else:
            summary = f"{move.ref} moved {_short(move.old)} → {_short(move.new)}"
        if fast_forward is False:
            severity = "high"
            summary += " — history rewritten (force-push)"
    if hits:
        severity = max_severity(severity, *(h.severity for h in hits))
        # what a cap left unread is always said, even past the two rules shown
        shown = list(hits[:2]) + [h for h in hits[2:] if h.rule == "not_inspected"]
        summary += "; " + "; ".join(h.detail for h in shown)
    elif commits:
        summary += f" ({len(commits)} commit{'s' if len(commits) != 1 else ''} by {', '.join(authors) or 'unknown'})"
    if new_authors:
        summary += f"; first-time author(s): {', '.join(new_authors)}"
    if not_read is not None and not_read.history:
        summary += f"; commits not readable ({not_read.reason})"
    if not_read is not None and not_read.configs:
        summary += (f"; content of {', '.join(not_read.configs[:3])} could not be read ({not_read.reason}): "
                    "auto_map/custom_pipelines not checked")
    evidence = {
        "repo": repo.id,
        "type": repo.type,
        "ref": move.ref,
        "ref_type": move.ref_type,
        "old_sha": move.old,
        "new_sha": move.new,
        "old_short": _short(move.old),
        "new_short": _short(move.new),
        "fast_forward": fast_forward,
        "commits": [{"sha": c.sha, "title": c.title, "authors": list(c.authors), "date": c.date}
                    for c in commits],
        "new_authors": new_authors,
        "rules": [h.to_dict() for h in hits],
    }
    if not_read is not None and (not_read.history or not_read.configs):
        evidence["not_read"] = {"reason": not_read.reason, "history": not_read.history,
                                "configs": list(not_read.configs),
                                "rules_not_checked": ["remote_code_config"] if not_read.configs else []}
    if content is not None:  # what inspecting the changed files found (detect/content.evidence)
        evidence["content"] = dict(content)
    if files is not None:
        evidence.update(files_added=list(files.added), files_removed=list(files.removed),
                        files_modified=list(files.modified))
    else:
        evidence["files"] = "unknown (file list of one side unavailable)"
    return Finding.make(kind, severity, repo.web_path, summary, key=[move.ref_type, move.ref, move.old, move.new],
                        evidence=evidence, links=links(base, repo, move.new))


def pin_unreachable(repo: RepoId, base: str, sha: str, reason: str, cause: str) -> Finding:
    """`cause` ("orphaned" or "unresolvable") is part of the identity: an orphaned pin that later
    stops resolving at all is a second, worse event."""
    return Finding.make(
        "pin_unreachable", "critical", repo.web_path,
        f"pinned commit {sha[:7]} is no longer reachable: {reason}",
        key=[sha, cause], evidence={"repo": repo.id, "type": repo.type, "pinned_sha": sha, "reason": reason,
                                    "cause": cause},
        links=links(base, repo, None))


def pin_unverified(repo: RepoId, base: str, sha: str, walked: int, branches: int, reason: str) -> Finding:
    """A capped reachability walk could neither find the pin nor finish: unknown, said out loud.
    One alert per pinned commit; a later proof either way supersedes it in the state."""
    return Finding.make(
        "pin_unverified", "high", repo.web_path,
        f"could not verify pinned commit {sha[:7]} is still on a branch: {reason}; "
        f"searched {walked} of {branches} distinct branch head(s), the rest were not inspected",
        key=[sha, "unverified"],
        evidence={"repo": repo.id, "type": repo.type, "pinned_sha": sha, "branches_walked": walked,
                  "branches": branches, "reason": reason},
        links=links(base, repo, None))


# The Hub's scan levels (its OpenAPI document): what each one means to us.
SCAN_HIGH = ("unsafe", "suspicious")       # a flag: high
SCAN_MEDIUM = ("caution",)                 # a flag: medium
SCAN_NOT_YET = ("queued", "unscanned")     # not scanned yet: neither clean nor flagged
SCAN_FAILED = ("error",)                   # the scan failed: said once, low
SCAN_CLEAN = ("safe",)
SCAN_LEVELS = SCAN_HIGH + SCAN_MEDIUM + SCAN_NOT_YET + SCAN_FAILED + SCAN_CLEAN


def scan_findings(repo: RepoId, base: str, sha: str, issues: Sequence[ScanIssue],
                  contents: Mapping[str, str] | None = None) -> list[Finding]:
    """What the scan's file list means: flagged files (a level we do not know is a flag too,
    medium, named), and files the scan failed on. `safe`, `queued` and `unscanned` raise nothing."""
    flagged = [i for i in issues if i.level not in SCAN_NOT_YET + SCAN_FAILED + SCAN_CLEAN]
    failed = sorted({i.path for i in issues if i.level in SCAN_FAILED})
    pending = [i.path for i in issues if i.level in SCAN_NOT_YET]
    out = [scan_flagged(repo, base, sha, flagged, contents, pending)] if flagged else []
    if failed:
        out.append(scan_failed(repo, base, failed))
    return out


def _level_name(level: str) -> str:
    return repr(level) if level else "(no level)"


def scan_flagged(repo: RepoId, base: str, sha: str, issues: Sequence[ScanIssue],
                 contents: Mapping[str, str] | None = None, pending: Sequence[str] = ()) -> Finding:
    """Keyed by the flagged files' contents and levels, not the commit: a flagged file that stays
    the same across later commits is one alert; a new flagged file, new content under the same
    name, or a file going from "caution" to "unsafe" is another. ("unsafe" entries keep the key
    they had before levels were read, so an upgrade re-sends nothing.) Only `unsafe` and
    `suspicious` are high; `caution` and a level outside the Hub's list are medium."""
    contents = contents or {}
    groups: dict[str, list[str]] = {}
    for i in issues:
        groups.setdefault(i.level, []).append(i.path)
    labels = {"unsafe": "unsafe", "suspicious": "suspicious", "caution": "to use with caution"}
    parts = [f"{len(paths)} {labels.get(level) or 'at an unknown scan level ' + _level_name(level)}: "
             f"{', '.join(paths[:5])}"
             for level, paths in sorted(groups.items(), key=lambda kv: (kv[0] not in SCAN_HIGH, kv[0]))]
    if pending:
        parts.append(f"{len(pending)} not scanned yet")
    return Finding.make(
        "scan_flagged", "high" if any(i.level in SCAN_HIGH for i in issues) else "medium", repo.web_path,
        f"the Hub's security scan flags file(s) at {sha[:7]}: {'; '.join(parts)}",
        key=sorted([i.path, contents.get(i.path) or sha] + ([] if i.level == "unsafe" else [i.level])
                   for i in issues),
        evidence={"repo": repo.id, "type": repo.type, "sha": sha, "files_with_issues": [i.path for i in issues],
                  "levels": {i.path: i.level for i in issues}},
        links=links(base, repo, sha))


def scan_failed(repo: RepoId, base: str, paths: Sequence[str]) -> Finding:
    """The Hub's scan ended in `error` on these files: not inspected by it, said once per set of files."""
    return Finding.make(
        "monitoring_degraded", "low", repo.web_path,
        f"the Hub's security scan failed on {len(paths)} file(s): {', '.join(paths[:5])} (scan failed; "
        "neither clean nor flagged)",
        key=["scan_failed", *paths], evidence={"repo": repo.id, "type": repo.type, "reason": "scan failed",
                                               "files": list(paths)},
        links=links(base, repo, None))


def renamed(repo: RepoId, base: str, new_id: str) -> Finding:
    return Finding.make(
        "repo_renamed", "high", repo.web_path,
        f"now redirects to {new_id}: the repo was renamed or transferred",
        key=[new_id.lower()], evidence={"repo": repo.id, "type": repo.type, "new_id": new_id},
        links=(Link("New location", f"{base.rstrip('/')}/{RepoId(repo.type, new_id).web_path}"),))


def recreated(repo: RepoId, base: str, old_id: str | None, new_id: str | None, reason: str) -> Finding:
    return Finding.make(
        "repo_recreated", "critical", repo.web_path,
        f"a different repository under the same name (namespace reuse): {reason}",
        key=[old_id, new_id, reason if old_id == new_id else ""],
        evidence={"repo": repo.id, "type": repo.type, "old_object_id": old_id, "new_object_id": new_id,
                  "reason": reason},
        links=links(base, repo, None))


def unavailable(repo: RepoId, base: str, what: str, since: str, streak: int) -> Finding:
    return Finding.make(
        "repo_unavailable", "high", repo.web_path,
        f"unavailable: {what} (confirmed by {streak} consecutive checks since {since})",
        key=[what, since], evidence={"repo": repo.id, "type": repo.type, "reason": what, "since": since,
                                     "consecutive_checks": streak},
        links=links(base, repo, None))


def disabled(repo: RepoId, base: str, since: str, sha: str | None = None) -> Finding:
    """Read from a 200 answer (`disabled: true`), so definitive at once: the Hub's takedown, its
    answer to malware such as PoisonGPT's. Keyed by when we first saw it, so a repo re-enabled and
    disabled again is a new alert."""
    return Finding.make(
        "repo_unavailable", "critical", repo.web_path,
        "disabled by the Hub (a takedown, as for malware or abuse): its files can no longer be "
        "downloaded, and whatever made the Hub act may already be in your copies",
        key=["disabled", since], evidence={"repo": repo.id, "type": repo.type, "reason": "disabled by the Hub",
                                           "since": since, "sha": sha},
        links=links(base, repo, None))


def history_unreadable(repo: RepoId, base: str, reason: str) -> Finding:
    """A repo whose history and files we cannot read from the start (gated, no access granted to
    our token): said once; refs and the file list are still watched."""
    return Finding.make(
        "monitoring_degraded", "low", repo.web_path, f"history not readable: {reason}",
        key=["history_unreadable", reason], evidence={"repo": repo.id, "type": repo.type, "reason": reason},
        links=links(base, repo, None))


def files_unlisted(repo: RepoId, base: str, reason: str) -> Finding:
    """A repo whose file list is too large for us to hold: identity, takedown, access and refs are
    still watched, but not its files or the Hub's scan of them. Said once."""
    return Finding.make(
        "monitoring_degraded", "medium", repo.web_path,
        f"files and security scan not inspected: {reason}",
        key=["files_unlisted"], evidence={"repo": repo.id, "type": repo.type, "reason": reason},
        links=links(base, repo, None))


def degraded(repo: RepoId, base: str, since: str, error: str | None, minutes: int) -> Finding:
    return Finding.make(
        "monitoring_degraded", "medium", repo.web_path,
        f"hubwatch could not check this repo for {minutes} min (last error: {error or 'unknown'})",
        key=[since], evidence={"repo": repo.id, "type": repo.type, "unknown_since": since, "last_error": error},
        links=links(base, repo, None))


def missing_ref(repo: RepoId, base: str, ref: str) -> Finding:
    return Finding.make(
        "pin_unreachable", "critical", repo.web_path,
        f"tracked ref {ref!r} does not exist on the Hub",
        key=["ref", ref], evidence={"repo": repo.id, "type": repo.type, "ref": ref,
                                    "reason": "tracked branch or tag not found"},
        links=links(base, repo, None))


def access_changed(repo: RepoId, base: str, what: str) -> Finding:
    return Finding.make(
        "repo_unavailable", "high", repo.web_path, f"{what}: consumers may lose access",
        key=["access", what], evidence={"repo": repo.id, "type": repo.type, "reason": what},
        links=links(base, repo, None))
