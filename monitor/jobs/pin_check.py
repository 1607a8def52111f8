"""One check of one pinned repo: decide what to fetch, fetch it, and let detect/ judge.

Request economy (the Hub quota is the binding limit): a steady cycle costs one `refs` call;
metadata (identity, flags, scan, file manifest) is fetched on a slower cadence, on a complete
check, or when a head moved; commits, manifests and config files only when something moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from monitor.config import Pin, PinsSettings
from monitor.detect import revisions as rv
from monitor.detect.findings import Finding
from monitor.detect.risk import assess, config_watch_paths
from monitor.detect.state import RepoState
from monitor.detect.times import iso, parse_iso
from monitor.errors import Disabled, Gated, HubError, NotFound, RevisionNotFound, Transient
from monitor.hub.client import HubClient
from monitor.hub.models import Commit, Refs, RepoId, RepoInfo

MAX_MOVE_PAGES = 3  # commits listed in an alert: enough to show what changed, bounded in requests


@dataclass(frozen=True)
class RepoWatch:
    """Every pin on one repo, checked together so the repo costs one refs call."""

    key: str
    repo: RepoId
    tracked: tuple[str, ...]
    exact: tuple[str, ...]


@dataclass(frozen=True)
class CheckResult:
    key: str
    status: str  # ok | unknown | unavailable
    state: RepoState
    findings: tuple[Finding, ...]
    error: str | None = None


def group_pins(pins: Iterable[Pin]) -> list[RepoWatch]:
    groups: dict[str, list[Pin]] = {}
    for p in pins:
        groups.setdefault(p.key, []).append(p)
    out = []
    for key, ps in groups.items():
        tracked = tuple(dict.fromkeys(p.track for p in ps if p.track))
        exact = tuple(dict.fromkeys(p.revision for p in ps if p.revision))
        out.append(RepoWatch(key, RepoId(ps[0].type, ps[0].repo), tracked, exact))
    return out


def _answered(now: datetime) -> dict:
    """State fields of a check the Hub answered: no longer unavailable, no longer unknown."""
    return dict(unavailable_kind=None, unavailable_streak=0, unavailable_since=None,
                unknown_since=None, last_error=None, checked_at=iso(now))


def _metadata(info: RepoInfo, now: datetime) -> dict:
    """State fields read from a metadata answer: identity, access flags, security scan."""
    return dict(object_id=info.object_id, created_at=info.created_at, last_modified=info.last_modified,
                private=info.private, gated=info.gated, disabled=info.disabled, scan_sha=info.sha,
                scan_issues=info.scan_issues, metadata_at=iso(now))


class PinChecker:
    def __init__(self, client: HubClient, settings: PinsSettings, base_url: str):
        self.client, self.settings, self.base = client, settings, base_url.rstrip("/")

    def check(self, w: RepoWatch, st: RepoState, now: datetime, complete: bool = False) -> CheckResult:
        try:
            prefetched = None
            if not complete and st.baseline and self._metadata_due(st, now):
                done, prefetched = self._metadata_slot(w, st, now)
                if done is not None:
                    return done
            refs = self.client.refs(w.repo)
            return self._observe(w, st, refs, now, complete, prefetched)
        except (NotFound, Disabled) as e:
            return self._unavailable(w, st, now, e)
        except HubError as e:  # any failure mid-way: nothing from this check is trusted
            return self._unknown(w, st, now, e)

    def _metadata_due(self, st: RepoState, now: datetime) -> bool:
        last = parse_iso(st.metadata_at)
        return last is None or (now - last).total_seconds() >= self.settings.metadata_every

    def _metadata_slot(self, w: RepoWatch, st: RepoState, now: datetime) -> tuple[CheckResult | None, RepoInfo | None]:
        """The slow-cadence metadata read *replaces* this cycle's refs read, keeping the steady cost at
        one request per repo: reading metadata at the tracked ref also tells whether it moved. Only
        when it moved do we go on to read refs (a move earns its details). Tag moves on an
        unchanged branch are seen one cycle later, by the next refs read."""
        ref = w.tracked[0] if w.tracked else None
        known = (st.branches.get(ref) or st.tags.get(ref)) if ref else None
        try:
            info = self.client.info(w.repo, ref or w.exact[0])
        except RevisionNotFound:
            return None, None  # the full check explains which pin or ref vanished
        if ref and info.sha != known:
            return None, info
        findings: list[Finding] = []
        if info.id.lower() != w.repo.id.lower():
            findings.append(rv.renamed(w.repo, self.base, info.id))
        self._identity(w, st, info, findings)
        manifests = {k: dict(v) for k, v in st.manifests.items()}
        manifests[info.sha] = rv.manifest(info)
        state = st.with_(manifests=manifests, **_answered(now), **_metadata(info, now))
        return CheckResult(w.key, "ok", state, tuple(findings)), None

    # --- error outcomes -----------------------------------------------------------------------
    def _unavailable(self, w: RepoWatch, st: RepoState, now: datetime, e: HubError) -> CheckResult:
        what = ("disabled by the Hub" if isinstance(e, Disabled) else
                "gated, no access" if isinstance(e, Gated) else
                "not found (deleted, moved away, or made private)")
        same = st.unavailable_kind == what
        streak = st.unavailable_streak + 1 if same else 1
        since = st.unavailable_since if same and st.unavailable_since else iso(now)
        st = st.with_(unavailable_kind=what, unavailable_streak=streak, unavailable_since=since,
                      unknown_since=None, last_error=str(e), checked_at=iso(now))
        findings = []
        if streak >= self.settings.unavailable_after:
            findings.append(rv.unavailable(w.repo, self.base, what, since, streak))
        return CheckResult(w.key, "unavailable", st, tuple(findings), str(e))

    def _unknown(self, w: RepoWatch, st: RepoState, now: datetime, e: Exception) -> CheckResult:
        since = st.unknown_since or iso(now)
        st = st.with_(unknown_since=since, last_error=str(e), checked_at=iso(now))
        findings = []
        began = parse_iso(since)
        if began is not None and (now - began).total_seconds() >= self.settings.degraded_after:
            minutes = int((now - began).total_seconds() // 60)
            findings.append(rv.degraded(w.repo, self.base, since, str(e), minutes))
        return CheckResult(w.key, "unknown", st, tuple(findings), str(e))

    # --- a successful refs answer ---------------------------------------------------------------
    def _observe(self, w: RepoWatch, st: RepoState, refs: Refs, now: datetime, complete: bool,
                 prefetched: RepoInfo | None = None) -> CheckResult:
        findings: list[Finding] = []
        branches, tags = dict(refs.branches), dict(refs.tags)
        heads = {t: refs.head(t) for t in w.tracked}
        if refs.canonical_id.lower() != w.repo.id.lower():
            findings.append(rv.renamed(w.repo, self.base, refs.canonical_id))
        for ref, sha in heads.items():
            # A tracked branch that vanished after the baseline is reported as a move below.
            if sha is None and not (st.baseline and (ref in st.branches or ref in st.tags)):
                findings.append(rv.missing_ref(w.repo, self.base, ref))
        moves = rv.find_moves(st.branches, st.tags, branches, tags, set(w.tracked)) if st.baseline else []
        primary = w.exact[0] if w.exact else next((s for s in heads.values() if s), None) or branches.get("main")
        if prefetched is not None and prefetched.sha == primary:
            info = prefetched
        else:
            info = self._metadata(w, st, primary, heads, moves, now, complete, findings)
        recreated = self._identity(w, st, info, findings)
        authors = set(st.authors)
        if not st.baseline:
            authors |= self._seed_authors(w, heads, branches)
        manifests: dict[str, dict[str, str]] = {k: dict(v) for k, v in st.manifests.items()}
        if info is not None:
            manifests[info.sha] = rv.manifest(info)
        fast_forward: dict[str, bool | None] = {}
        if not recreated:
            for mv in moves:
                finding, commits, ff = self._describe(w, mv, info, manifests, sorted(authors))
                findings.append(finding)
                fast_forward[mv.ref] = ff
                authors |= {a for c in commits for a in c.authors}
        reachable = self._reachability(w, st, branches, tags, fast_forward, findings)
        keep = {s for s in list(heads.values()) + list(w.exact) if s}
        if info is not None:
            keep.add(info.sha)
        changes = dict(baseline=True, canonical_id=refs.canonical_id, branches=branches, tags=tags,
                       authors=tuple(sorted(authors)),
                       manifests={k: v for k, v in manifests.items() if k in keep}, reachable=reachable,
                       **_answered(now))
        if info is not None:
            changes.update(_metadata(info, now))
        return CheckResult(w.key, "ok", st.with_(**changes), tuple(findings))

    def _metadata(self, w: RepoWatch, st: RepoState, primary: str | None, heads: dict[str, str | None],
                  moves: Sequence[rv.Move], now: datetime, complete: bool,
                  findings: list[Finding]) -> RepoInfo | None:
        """Fetch repo metadata when needed; a pinned sha that no longer resolves is alerted here."""
        fallback = next((s for s in heads.values() if s), None)
        # A pin already known bad whose metadata we read at a live head is not "new" every cycle.
        known_bad = primary in w.exact and st.reachable.get(primary) is False
        last = parse_iso(st.metadata_at)
        due = (complete or not st.baseline or bool(moves) or (primary != st.scan_sha and not known_bad)
               or last is None or (now - last).total_seconds() >= self.settings.metadata_every)
        if not due:
            return None
        try:
            return self.client.info(w.repo, primary)
        except RevisionNotFound:
            if primary not in w.exact:
                raise
            findings.append(rv.pin_unreachable(w.repo, self.base, primary,
                                               "the Hub no longer resolves it (404 RevisionNotFound)",
                                               "unresolvable"))
        return self.client.info(w.repo, fallback)

    def _identity(self, w: RepoWatch, st: RepoState, info: RepoInfo | None, findings: list[Finding]) -> bool:
        """Namespace reuse, newly gated or private: what a 200 answer can reveal about identity."""
        if info is None or not st.baseline:
            return False
        recreated = False
        if st.object_id and info.object_id and st.object_id != info.object_id:
            findings.append(rv.recreated(w.repo, self.base, st.object_id, info.object_id,
                                         f"repository object id changed {st.object_id} → {info.object_id}"))
            recreated = True
        else:
            created, last = parse_iso(info.created_at), parse_iso(st.last_modified)
            if created and last and created > last:
                findings.append(rv.recreated(w.repo, self.base, st.object_id, info.object_id,
                                             f"created {info.created_at}, after the last known commit "
                                             f"{st.last_modified}"))
                recreated = True
        if info.disabled and not st.disabled:  # a takedown answers 200 with disabled: true (and gated "auto")
            findings.append(rv.disabled(w.repo, self.base, info.sha))
        elif info.gated and not st.gated and not info.disabled:
            findings.append(rv.access_changed(w.repo, self.base, f"newly gated ({info.gated})"))
        if info.private and not st.private:
            findings.append(rv.access_changed(w.repo, self.base, "newly private"))
        if info.scan_issues:
            findings.append(rv.scan_flagged(w.repo, self.base, info.sha, info.scan_issues, rv.manifest(info)))
        return recreated

    def _seed_authors(self, w: RepoWatch, heads: dict[str, str | None], branches: dict[str, str]) -> set[str]:
        """Authors of recent history, so a later commit can be flagged as a first-time author."""
        head = next((s for s in heads.values() if s), None) or branches.get("main")
        if head is None:
            return set()
        history = self.client.history(w.repo, head, max_pages=1)
        return {a for c in history.commits for a in c.authors}

    def _manifest(self, w: RepoWatch, sha: str | None, info: RepoInfo | None,
                  manifests: dict[str, dict[str, str]]) -> dict[str, str] | None:
        if sha is None:
            return None
        if sha not in manifests:
            try:
                manifests[sha] = rv.manifest(self.client.info(w.repo, sha, security=False))
            except RevisionNotFound:  # e.g. an old commit garbage-collected after a force-push
                return None
        return manifests[sha]

    def _describe(self, w: RepoWatch, mv: rv.Move, info: RepoInfo | None, manifests: dict[str, dict[str, str]],
                  known_authors: list[str]) -> tuple[Finding, tuple[Commit, ...], bool | None]:
        commits: tuple[Commit, ...] = ()
        ff: bool | None = None
        if mv.new is not None:
            history = self.client.history(w.repo, mv.new, stop_at=[mv.old],
                                          max_pages=MAX_MOVE_PAGES if mv.ref_type == "branch" else 1)
            ff = True if history.reached else (False if history.complete else None)
            commits = history.commits if history.reached else history.commits[:20]
        old_m = self._manifest(w, mv.old, info, manifests)
        new_m = self._manifest(w, mv.new, info, manifests)
        files = rv.diff_files(old_m, new_m)
        hits = ()
        if files is not None:
            configs = {}
            for path in config_watch_paths(list(files.added) + list(files.modified)):
                old_text = self.client.file_text(w.repo, mv.old, path) if path in files.modified else None
                configs[path] = (old_text, self.client.file_text(w.repo, mv.new, path))
            hits = assess(files.added, files.removed, files.modified, configs)
        return rv.describe_move(w.repo, self.base, mv, commits, ff, files, hits, known_authors), commits, ff

    def _reachability(self, w: RepoWatch, st: RepoState, branches: dict[str, str], tags: dict[str, str],
                      fast_forward: dict[str, bool | None], findings: list[Finding]) -> dict[str, bool]:
        """Is every exact pin still in some branch's history? Walk history only when it may have changed."""
        reachable: dict[str, bool] = {}
        heads = set(branches.values()) | set(tags.values())
        branch_changed = st.branches != branches
        for sha in w.exact:
            if any(f.kind == "pin_unreachable" and f.evidence.get("pinned_sha") == sha for f in findings):
                reachable[sha] = False
                continue
            if sha in heads:
                reachable[sha] = True
                continue
            if sha in st.reachable and not branch_changed:
                reachable[sha] = st.reachable[sha]  # nothing moved: the last verdict stands
                continue
            verdicts = [self.client.contains(w.repo, name, sha) for name in sorted(branches)]
            if True in verdicts:
                reachable[sha] = True
            elif None in verdicts:  # history too long to walk now: unknown, keep the old answer
                reachable[sha] = bool(st.reachable.get(sha, True))
            else:
                reachable[sha] = False
                findings.append(rv.pin_unreachable(
                    w.repo, self.base, sha, "it is in the history of no branch (history rewritten or reset)",
                    "orphaned"))
        return reachable
