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
from monitor.detect import identity
from monitor.detect import revisions as rv
from monitor.detect.findings import Finding
from monitor.detect.risk import assess, config_watch_paths, inspection_order
from monitor.detect.state import RepoState
from monitor.detect.times import iso, parse_iso
from monitor.errors import Disabled, Gated, HubError, NotFound, RevisionNotFound, TokenRejected
from monitor.hub import client as hub_client
from monitor.hub.client import AnswerTooLarge, FileTooLarge, HubClient
from monitor.hub.models import Commit, Refs, RepoId, RepoInfo
from monitor.jobs import content_check
from monitor.jobs.check_caps import (MAX_CONFIG_READS, MAX_REACH_BRANCHES, MAX_REACH_PAGES_PER_BRANCH,
                                     MAX_REACH_REQUESTS, CheckCaps, walk_order)

MAX_MOVE_PAGES = 3  # commits listed in an alert: enough to show what changed, bounded in requests
NO_ACCESS = "gated, no access for this token"


@dataclass(frozen=True)
class RepoWatch:
    """Every pin on one repo, checked together so the repo costs one refs call."""

    key: str
    repo: RepoId
    tracked: tuple[str, ...]
    exact: tuple[str, ...]
    # (track, revision) of pins giving both: the tracked ref is anchored where the pin was written,
    # so the first observation compares with the anchor instead of taking the head on trust.
    anchors: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CheckResult:
    key: str
    status: str  # ok | unknown | unavailable | token_rejected
    state: RepoState
    findings: tuple[Finding, ...]
    error: str | None = None
    content: str | None = None  # content inspection's state to store with the check (jobs/content_check.py)


def _unlisted(sha: str) -> str:
    return (f"the file list at {sha[:7]} (larger than {hub_client.MAX_JSON_BYTES // 1_000_000} MB: "
            "too large to inspect)")


def group_pins(pins: Iterable[Pin]) -> list[RepoWatch]:
    groups: dict[str, list[Pin]] = {}
    for p in pins:
        groups.setdefault(p.key, []).append(p)
    out = []
    for key, ps in groups.items():
        tracked = tuple(dict.fromkeys(p.track for p in ps if p.track))
        exact = tuple(dict.fromkeys(p.revision for p in ps if p.revision))
        anchors = tuple(dict.fromkeys((p.track, p.revision) for p in ps if p.track and p.revision))
        out.append(RepoWatch(key, RepoId(ps[0].type, ps[0].repo), tracked, exact, anchors))
    return out


def _answered(now: datetime) -> dict:
    """State fields of a check the Hub answered: no longer unavailable, no longer unknown."""
    return dict(unavailable_kind=None, unavailable_streak=0, unavailable_since=None,
                unknown_since=None, last_error=None, checked_at=iso(now), last_ok=iso(now))


def _metadata(info: RepoInfo, now: datetime) -> dict:
    """State fields read from a metadata answer: identity, access flags, security scan."""
    scan = None if info.scan_issues is None else tuple(f"{i.level}:{i.path}" for i in info.scan_issues)
    return dict(object_id=info.object_id, created_at=info.created_at, last_modified=info.last_modified,
                private=info.private, gated=info.gated, disabled=info.disabled, scan_sha=info.sha,
                scan_issues=scan, metadata_at=iso(now))


class PinChecker:
    def __init__(self, client: HubClient, settings: PinsSettings, base_url: str, content=None):
        self.client, self.settings, self.base = client, settings, base_url.rstrip("/")
        # key -> jobs.content_check.PinContent for one check; None: content is not inspected
        self.content = content

    def check(self, w: RepoWatch, st: RepoState, now: datetime, complete: bool = False) -> CheckResult:
        try:
            prefetched = None
            if not complete and st.baseline and self._metadata_due(st, now):
                done, prefetched = self._metadata_slot(w, st, now)
                if done is not None:
                    return done
            refs = self.client.refs(w.repo)
            return self._observe(w, st, refs, now, complete, prefetched)
        except TokenRejected as e:  # about our token, never about this repo: no finding, no unknown streak
            return CheckResult(w.key, "token_rejected", st.with_(unknown_since=None, last_error=str(e)), (), str(e))
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
            info = self._info(w, ref or w.exact[0])
        except RevisionNotFound:
            return None, None  # the full check explains which pin or ref vanished
        if ref and info.sha != known:
            return None, info
        findings: list[Finding] = []
        if info.id.lower() != w.repo.id.lower():
            findings.append(rv.renamed(w.repo, self.base, info.id))
        self._identity(w, st, info, findings, now)
        manifests = {k: dict(v) for k, v in st.manifests.items()}
        if info.files_listed:
            manifests[info.sha] = rv.manifest(info)
        pc = self.content(w.key) if self.content is not None else None
        self._audit_content(w, pc, info, findings)
        state = st.with_(manifests=manifests, **_answered(now), **_metadata(info, now))
        return CheckResult(w.key, "ok", state, tuple(findings), content=pc.state_json() if pc else None), None

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
        if isinstance(e, Disabled):
            # 403 "Access to this resource is disabled.": the Hub's own word, as definitive as
            # `disabled: true` in a 200 answer, so alerted at once and only once (see _identity).
            if not st.disabled:
                findings.append(rv.disabled(w.repo, self.base, since))
            st = st.with_(disabled=True)
        elif streak >= self.settings.unavailable_after:
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
        caps = CheckCaps()
        branches, tags = dict(refs.branches), dict(refs.tags)
        heads = {t: refs.head(t) for t in w.tracked}
        if refs.canonical_id.lower() != w.repo.id.lower():
            findings.append(rv.renamed(w.repo, self.base, refs.canonical_id))
        for ref, sha in heads.items():
            # A tracked branch that vanished after the baseline is reported as a move below.
            if sha is None and not (st.baseline and (ref in st.branches or ref in st.tags)):
                findings.append(rv.missing_ref(w.repo, self.base, ref))
        moves = (rv.find_moves(st.branches, st.tags, branches, tags, set(w.tracked)) if st.baseline
                 else rv.anchored_moves(w.anchors, branches, tags))
        primary = w.exact[0] if w.exact else next((s for s in heads.values() if s), None) or branches.get("main")
        # A path that now answers for another repo must be checked by `_id` at once, not next hour.
        redirected = st.baseline and refs.canonical_id != st.canonical_id
        if prefetched is not None and prefetched.sha == primary:
            info = prefetched
        else:
            info = self._metadata(w, st, primary, heads, moves, now, complete or redirected, findings)
        recreated = self._identity(w, st, info, findings, now)
        authors = set(st.authors)
        if not st.baseline:
            # Anchored: the authors known are those up to the anchor, so a move's author is judged
            # against the history the pin was written on, not against the move itself.
            anchor = {mv.ref: mv.old for mv in moves}
            try:
                seeded = self._seed_authors(w, {r: anchor.get(r, h) for r, h in heads.items()}, branches, caps)
            except RevisionNotFound:
                # The anchor no longer resolves (history rewritten and collected, or a mistyped
                # revision: pin_unreachable says which): no history to judge authors by, so every
                # author of the move counts as new. Never a reason to leave the pin unchecked.
                seeded = set()
            if seeded is not None:
                authors |= seeded
            elif not (info is not None and info.disabled):  # a takedown is alerted on its own
                findings.append(rv.history_unreadable(w.repo, self.base, NO_ACCESS))
        manifests: dict[str, dict[str, str]] = {k: dict(v) for k, v in st.manifests.items()}
        if info is not None and info.files_listed:
            manifests[info.sha] = rv.manifest(info)
        fast_forward: dict[str, bool | None] = {}
        pc = self.content(w.key) if self.content is not None else None  # content inspection (issue 14)
        if not recreated:
            for mv in moves:
                finding, commits, ff = self._describe(w, mv, info, manifests, sorted(authors), caps, pc)
                findings.append(finding)
                fast_forward[mv.ref] = ff
                authors |= {a for c in commits for a in c.authors}
        self._audit_content(w, pc, info, findings, again=recreated)  # a re-created repo is a new one
        reachable = self._reachability(w, st, branches, tags, fast_forward, findings, caps)
        keep = {s for s in list(heads.values()) + list(w.exact) if s}
        if info is not None:
            keep.add(info.sha)
        changes = dict(baseline=True, canonical_id=refs.canonical_id, branches=branches, tags=tags,
                       authors=tuple(sorted(authors)),
                       manifests={k: v for k, v in manifests.items() if k in keep}, reachable=reachable,
                       **_answered(now))
        if info is not None:
            changes.update(_metadata(info, now))
        return CheckResult(w.key, "ok", st.with_(**changes), tuple(findings),
                           content=pc.state_json() if pc is not None else None)

    @staticmethod
    def _audit_content(w: RepoWatch, pc, info: RepoInfo | None, findings: list[Finding], again: bool = False) -> None:
        """Issue 14's baseline audit of the revision `info` describes, when this repo has none yet.
        `again` (a re-created repo): audited anew for status and the template baseline, without a
        second alert — the re-creation, critical, is the incident."""
        if (pc is not None and (again or pc.audit_due()) and info is not None and info.files_listed
                and not info.disabled):
            audit = pc.audit(w.repo, info.sha, info.files, content_check.flagged_paths(info, info.sha))
            findings += [audit] if audit is not None and not again else []

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
            return self._info(w, primary)
        except RevisionNotFound:
            if primary not in w.exact:
                raise
            findings.append(rv.pin_unreachable(w.repo, self.base, primary,
                                               "the Hub no longer resolves it (404 RevisionNotFound)",
                                               "unresolvable"))
        return self._info(w, fallback)

    def _info(self, w: RepoWatch, revision: str | None) -> RepoInfo:
        """Metadata at `revision`. A repo whose answer is too large to hold (its file list) is still
        watched for identity, takedown and access from a second, slim answer; `_identity` says the
        file list and the scan were not read."""
        try:
            return self.client.info(w.repo, revision)
        except AnswerTooLarge:
            return self.client.identity(w.repo, revision)

    def _identity(self, w: RepoWatch, st: RepoState, info: RepoInfo | None, findings: list[Finding],
                  now: datetime) -> bool:
        """Namespace reuse, takedown, newly gated or private: what a 200 answer can reveal."""
        if info is None:
            return False
        if not info.files_listed:
            findings.append(rv.files_unlisted(w.repo, self.base, _unlisted(info.sha)))
        if info.disabled and not st.disabled:  # definitive, even at the first observation
            findings.append(rv.disabled(w.repo, self.base, iso(now), info.sha))
        if info.scan_issues:
            findings.extend(rv.scan_findings(w.repo, self.base, info.sha, info.scan_issues, rv.manifest(info)))
        if not st.baseline:
            return False
        reason = identity.recreation(identity.Identity(st.object_id, st.created_at), st.last_modified,
                                     identity.Identity(info.object_id, info.created_at))
        if reason:
            findings.append(rv.recreated(w.repo, self.base, st.object_id, info.object_id, reason))
        # A disabled repo also answers gated: "auto"; the takedown is the news, not a gate.
        if info.gated and not st.gated and not info.disabled:
            findings.append(rv.access_changed(w.repo, self.base, f"newly gated ({info.gated})"))
        if info.private and not st.private:
            findings.append(rv.access_changed(w.repo, self.base, "newly private"))
        return reason is not None

    def _seed_authors(self, w: RepoWatch, heads: dict[str, str | None], branches: dict[str, str],
                      caps: CheckCaps) -> set[str] | None:
        """Authors of recent history, so a later commit can be flagged as a first-time author.
        None when the history is not readable to us (gated without access, disabled)."""
        head = next((s for s in heads.values() if s), None) or branches.get("main")
        if head is None or not caps.allows(1):
            return set()
        try:
            history = self.client.history(w.repo, head, max_pages=1)
        except (Gated, Disabled):
            return None
        return {a for c in history.commits for a in c.authors}

    def _manifest(self, w: RepoWatch, sha: str | None, info: RepoInfo | None,
                  manifests: dict[str, dict[str, str]], skipped: list[str],
                  sizes: dict[str, int | None] | None = None) -> dict[str, str] | None:
        """The file manifest at `sha`; `sizes` (when given) receives the file sizes the Hub listed,
        so a file too large to read is known before any download. A file list too large to hold is
        None, and said in `skipped`."""
        if sha is None:
            return None
        if sha not in manifests and info is not None and info.sha == sha and not info.files_listed:
            skipped.append(_unlisted(sha))
            return None
        # The sizes come from the listing the manifest came from: the check's own answer, or a fetch.
        listing = info if info is not None and info.sha == sha else None
        if sha not in manifests:
            try:
                listing = self.client.info(w.repo, sha, security=False)
            except RevisionNotFound:  # e.g. an old commit garbage-collected after a force-push
                return None
            except AnswerTooLarge:
                skipped.append(_unlisted(sha))
                return None
            manifests[sha] = rv.manifest(listing)
        if sizes is not None and listing is not None:
            sizes.update({f.path: f.size for f in listing.files})
        return manifests[sha]

    def _describe(self, w: RepoWatch, mv: rv.Move, info: RepoInfo | None, manifests: dict[str, dict[str, str]],
                  known_authors: list[str], caps: CheckCaps, pc=None,
                  ) -> tuple[Finding, tuple[Commit, ...], bool | None]:
        skipped: list[str] = []
        commits: tuple[Commit, ...] = ()
        ff: bool | None = None
        history_denied, configs_denied = False, []
        if mv.new is not None:
            pages = min(MAX_MOVE_PAGES if mv.ref_type == "branch" else 1, caps.left)
            if pages < 1:
                skipped.append("commit history (request cap of this check spent)")
            else:
                try:
                    history = self.client.history(w.repo, mv.new, stop_at=[mv.old], max_pages=pages)
                except (Gated, Disabled):  # refs and the file list are readable; the commits are not
                    history_denied = True
                else:
                    ff = True if history.reached else (False if history.complete else None)
                    commits = history.commits if history.reached else history.commits[:20]
                    if ff is None and mv.ref_type == "branch":  # tags are high whatever their history
                        skipped.append(f"history past {len(history.commits)} commits (fast-forward unverified)")
        sizes: dict[str, int | None] = {}
        files: rv.FileDiff | None = None
        unlisted = False
        if not caps.allows(len([s for s in (mv.old, mv.new) if s is not None and s not in manifests])):
            skipped.append("the file list (request cap of this check spent)")
        else:
            before = len(skipped)
            files = rv.diff_files(self._manifest(w, mv.old, info, manifests, skipped),
                                  self._manifest(w, mv.new, info, manifests, skipped, sizes))
            unlisted = len(skipped) > before
        hits: tuple = ()
        rules = content = None
        if files is not None and pc is not None and mv.new is not None and not history_denied:
            rules, content = pc.move(w.repo, mv.old, mv.new, files, manifests, sizes,
                                     content_check.flagged_paths(info, mv.new))
        if files is not None:
            configs = self._read_configs(w, mv, files, sizes, caps, skipped, configs_denied)
            hits = assess(files.added, files.removed, files.modified, configs, skipped, rules)
        elif unlisted and mv.new is not None:
            # Which files changed is unknown, but the config transformers always loads is read
            # anyway: remote code added to it stays critical however many files come with it.
            top = rv.FileDiff((), (), ("config.json",))
            configs = self._read_configs(w, mv, top, {}, caps, skipped, configs_denied)
            hits = assess((), (), (), configs, skipped)
        elif skipped:
            hits = assess((), (), (), None, skipped)
        not_read = None
        if history_denied or configs_denied:
            # Unlike a cap, a refusal says nothing about the content: the severity stays what was readable.
            reason = "disabled by the Hub" if info is not None and info.disabled else NO_ACCESS
            not_read = rv.NotRead(reason, history_denied, tuple(configs_denied))
        return (rv.describe_move(w.repo, self.base, mv, commits, ff, files, hits, known_authors, not_read, content),
                commits, ff)

    def _read_configs(self, w: RepoWatch, mv: rv.Move, files: rv.FileDiff, sizes: dict[str, int | None],
                      caps: CheckCaps, skipped: list[str],
                      denied: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """Read the changed config files, most telling first, within the check's caps; whatever is
        too large or past a cap is added to `skipped` (reported as not inspected), whatever the Hub
        refuses us (gated without access, disabled) to `denied`."""
        configs: dict[str, tuple[str | None, str | None]] = {}
        capped: list[str] = []
        paths = inspection_order(config_watch_paths(list(files.added) + list(files.modified)), files.added)
        for path in paths:
            modified = path in files.modified
            if caps.configs_left < 1 or not caps.allows(2 if modified else 1):
                capped.append(path)
                continue
            caps.configs_left -= 1
            try:
                new_text = self.client.file_text(w.repo, mv.new, path, sizes.get(path))
            except FileTooLarge as e:
                skipped.append(str(e))
                continue
            except (Gated, Disabled):
                denied.append(path)
                continue
            try:
                old_text = self.client.file_text(w.repo, mv.old, path) if modified else None
            except FileTooLarge:
                old_text = None  # unknown before: any remote-code entry now counts as added
            except (Gated, Disabled):
                denied.append(path)
                continue
            configs[path] = (old_text, new_text)
        if capped:
            skipped.append(f"{len(capped)} config file(s) not read (cap: {MAX_CONFIG_READS} per check): "
                           f"{', '.join(capped[:3])}{' and more' if len(capped) > 3 else ''}")
        return configs

    def _reachability(self, w: RepoWatch, st: RepoState, branches: dict[str, str], tags: dict[str, str],
                      fast_forward: dict[str, bool | None], findings: list[Finding],
                      caps: CheckCaps) -> dict[str, bool]:
        """Is every exact pin still in some branch's history? Walk history only when it may have changed."""
        reach = caps.share(MAX_REACH_REQUESTS)
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
            order = walk_order(branches, w.tracked, st.branches)
            try:
                verdict, walked = self._walk_for(w, sha, order, reach)
            except (Gated, Disabled):  # history not readable to us: unknown, and no cap to blame
                reachable[sha] = bool(st.reachable.get(sha, True))
                continue
            if verdict is True:
                reachable[sha] = True
            elif verdict is None:  # a cap or a long history stopped the walk: unknown, said out loud
                reachable[sha] = bool(st.reachable.get(sha, True))
                findings.append(rv.pin_unverified(
                    w.repo, self.base, sha, walked, len(order),
                    f"the walk stopped at its cap ({MAX_REACH_REQUESTS} history pages, "
                    f"{MAX_REACH_BRANCHES} branches per check)"))
            else:
                reachable[sha] = False
                findings.append(rv.pin_unreachable(
                    w.repo, self.base, sha, "it is in the history of no branch (history rewritten or reset)",
                    "orphaned"))
        return reachable

    def _walk_for(self, w: RepoWatch, sha: str, order: list[str], reach: CheckCaps) -> tuple[bool | None, int]:
        """Walk the branch heads in `order` until one holds `sha` -> (True | False | None, heads walked).
        False only when every head was walked to its root; None when a cap stopped the walk."""
        walked, complete = 0, True
        for name in order[:MAX_REACH_BRANCHES]:
            pages = min(MAX_REACH_PAGES_PER_BRANCH, reach.left)
            if pages < 1:
                break
            walked += 1
            verdict = self.client.contains(w.repo, name, sha, max_pages=pages)
            if verdict is True:
                return True, walked
            complete = complete and verdict is False
        return (False if complete and walked == len(order) else None), walked
