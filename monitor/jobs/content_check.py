"""Which files of a move, a baseline or a copy to inspect, in what order, under which caps.

The pure inspectors (monitor/content/) judge bytes; this module picks the files, opens one
ranged reader per file (hub/files.py: one resolve each, shared by the pickle sniff and the GGUF
header read), and hands the verdicts to detect/content.py as data. Caps, apart from the
request cap of a pin check: 200 files and 512 MB per check, 16 MB per file, 1 MB of pickle held
(the inspectors' own cap). Order: pickle-extension files first (they run code on load), then
weight-named files whose bytes must be sniffed, shallowest and smallest first; then templates.
A pickle-family file left unread is `not_inspected` (high); an unread template source is
evidence only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from monitor.content.reader import ContentCaps, ContentReadError
from monitor.detect import content as dc
from monitor.detect.risk import PICKLE_EXTS
from monitor.hub.files import ContentLimits, ContentMissing, ContentSession, HubFileReader
from monitor.hub.models import RepoId

log = logging.getLogger("hubwatch.content")

CHAT_TEMPLATES = "chat templates"  # the source name of tokenizer_config.json + chat_template.{jinja,json}
KERAS_EXTS = (".h5", ".keras")
REFUSED = "the Hub refused the downloads (gated without access, or disabled): content not inspected"
GGUF_EXT = ".gguf"


def _lower(path: str) -> str:
    return path.lower()


def template_files() -> tuple[str, ...]:
    from monitor.content.templates import TEMPLATE_FILES

    return tuple(TEMPLATE_FILES)


def is_template_source(path: str) -> bool:
    """A file transformers reads chat templates from (content/templates.is_template_file)."""
    from monitor.content.templates import is_template_file

    return is_template_file(path)


def pickle_order(paths: Sequence[str], sizes: Mapping[str, int | None]) -> list[str]:
    """Files the pickle inspector must see, most telling first: pickle extensions before sniffed
    weight names, shallow before deep, small before large (a cap then leaves the big shards)."""
    from monitor.content.pickles import wants_inspection

    def rank(p: str) -> tuple:
        return (not _lower(p).endswith(PICKLE_EXTS), p.count("/"), sizes.get(p) or 0, p)

    return sorted((p for p in paths if wants_inspection(p)), key=rank)


@dataclass
class _Reads:
    """One check's readers, one per (revision, path): the pickle sniff and the GGUF header read of
    a file share its resolve."""

    session: ContentSession
    repo: RepoId
    readers: dict[tuple[str, str], HubFileReader] = field(default_factory=dict)
    broken: list[tuple[str, str]] = field(default_factory=list)  # template sources that do not parse
    sniff_unread: list[tuple[str, str]] = field(default_factory=list)  # weight-named files not read: evidence

    def reader(self, rev: str, path: str, size: int | None) -> HubFileReader:
        key = (rev, path)
        if key not in self.readers:
            self.readers[key] = self.session.open(self.repo, rev, path, size)
        return self.readers[key]

    def text(self, rev: str, path: str, size: int | None) -> str:
        r = self.reader(rev, path, size)
        limit = r.size if r.size is not None else self.session.limits.file_bytes
        if limit > self.session.limits.file_bytes:
            raise ContentReadError(f"{path} is larger than {self.session.limits.file_bytes} bytes", permanent=True)
        return r.read(0, limit).decode("utf-8", errors="replace")


class ContentChecker:
    """Reads and judges content for pin checks and the copy watch. Thread-safe (no shared state
    but the client); one `_Reads` per inspection."""

    def __init__(self, client: Any, limits: ContentLimits | None = None, caps: ContentCaps | None = None):
        self.client, self.limits, self.caps = client, limits or ContentLimits(), caps or ContentCaps()
        self._originals: dict[tuple[RepoId, str], dict[str, str] | None] = {}  # copies of one original share it

    def session(self) -> ContentSession:
        """The caps of one check (files, bytes): a check's moves and audit share one."""
        return ContentSession.for_client(self.client, replace(self.limits))

    def reads(self, repo: RepoId, session: ContentSession | None = None) -> _Reads:
        return _Reads(session or self.session(), repo)

    # --- pickles --------------------------------------------------------------------------------
    def pickles(self, rd: _Reads, rev: str, paths: Sequence[str], sizes: Mapping[str, int | None]
                ) -> tuple[list[Any], list[tuple[str, str]], list[str]]:
        """(verdicts, unread pickle-family files with why, Keras files)."""
        from monitor.content.pickles import inspect_file

        verdicts, unread, keras = [], [], []
        for path in pickle_order(paths, sizes):
            by_name = _lower(path).endswith(PICKLE_EXTS)  # pickle-family by its name, not only its bytes
            try:
                reader = rd.reader(rev, path, sizes.get(path))
            except ContentReadError as e:
                (unread if by_name else rd.sniff_unread).append((path, str(e)))
                continue
            v = inspect_file(reader, self.caps)
            if _lower(path).endswith(KERAS_EXTS) and not v.is_pickle:
                keras.append(path)  # HDF5/Keras: listed as not inspected, not judged
                continue
            if not by_name and v.severity == "none":
                if v.not_inspected:  # a weight-named file whose first bytes could not be read: evidence only
                    rd.sniff_unread.append((path, v.not_inspected))
                continue  # a real safetensors / gguf file: nothing to judge
            verdicts.append(v)
        return verdicts, unread, keras

    # --- templates ------------------------------------------------------------------------------
    def chat_templates(self, rd: _Reads, rev: str, paths: Sequence[str], sizes: Mapping[str, int | None],
                       unread: list[tuple[str, str]]) -> dict[str, str] | None:
        """The templates transformers would use at `rev` (tokenizer_config.json, overridden by
        chat_template.json, overridden by chat_template.jinja); None when a source could not be
        read or parsed (said in `unread`)."""
        from monitor.content import templates as tp

        order = {"tokenizer_config.json": 0, "chat_template.json": 1, "chat_template.jinja": 2}
        merged: dict[str, str] = {}
        for name in sorted((p for p in paths if tp.is_template_file(p)), key=lambda p: (order.get(p, 3), p)):
            try:
                merged.update(tp.templates_from_file(name, rd.text(rev, name, sizes.get(name))))
            except ContentMissing:
                continue  # listed but gone (or, for an original, only guessed): no template there
            except ContentReadError as e:
                unread.append((f"{name}@{rev[:7]}", str(e)))
                return None
            except ValueError as e:  # TemplateSourceError: not JSON, wrong shape — what a loader would choke on
                rd.broken.append((name, f"does not parse: {e}"[:300]))
                return None
        return merged

    def gguf_templates(self, rd: _Reads, rev: str, path: str, size: int | None,
                       unread: list[tuple[str, str]]) -> dict[str, str] | None:
        from monitor.content.gguf import read_gguf_header

        try:
            header = read_gguf_header(rd.reader(rev, path, size), self.caps)
        except ContentReadError as e:
            unread.append((f"{path}@{rev[:7]}", str(e)))
            return None
        if header.not_inspected:
            if header.read_error_permanent is None:  # the header itself is hostile or broken: fail closed
                rd.broken.append((path, header.not_inspected))
            else:  # a read that failed: says nothing of the content
                unread.append((f"{path}@{rev[:7]}", header.not_inspected))
            return None
        return dict(header.templates)

    # --- the three callers ------------------------------------------------------------------------
    def move(self, repo: RepoId, old: str, new: str, added: Sequence[str], removed: Sequence[str],
             modified: Sequence[str], old_paths: Sequence[str], new_paths: Sequence[str],
             sizes: Mapping[str, int | None], stored: dc.ContentState | None,
             session: ContentSession | None = None) -> tuple[dc.ContentReport, dict[str, dict[str, str]]]:
        """Inspect what a move added or modified: pickles on the new side, templates on both
        sides (the old side from the stored baseline when it was read at `old`). Returns the
        report and the new side's templates (the next baseline)."""
        from monitor.content.templates import compare_templates

        rd = self.reads(repo, session)
        changed = list(added) + list(modified)
        verdicts, unread, keras = self.pickles(rd, new, changed, sizes)
        results: list[dc.TemplateResult] = []
        other: list[tuple[str, str]] = []
        new_templates: dict[str, dict[str, str]] = {}
        if any(is_template_source(p) for p in [*changed, *removed]):
            before = (dict(stored.templates[CHAT_TEMPLATES]) if stored is not None and stored.sha == old
                      and CHAT_TEMPLATES in stored.templates else
                      self.chat_templates(rd, old, old_paths, {}, other))
            after = self.chat_templates(rd, new, new_paths, sizes, other)
            if after is not None:
                new_templates[CHAT_TEMPLATES] = after
                if before is not None and before != after:
                    results.append(dc.TemplateResult(CHAT_TEMPLATES, compare_templates(before, after)))
        for path in sorted(p for p in changed if _lower(p).endswith(GGUF_EXT)):
            after = self.gguf_templates(rd, new, path, sizes.get(path), other)
            if after is None:
                continue
            new_templates[path] = after
            before: dict[str, str] | None = None
            if path in modified:
                known = stored.templates.get(path) if stored is not None and stored.sha == old else None
                before = dict(known) if known is not None else self.gguf_templates(rd, old, path, None, other)
                if before is None or before == after:
                    continue
            verdict = compare_templates(before, after)
            if verdict.hits or verdict.not_inspected or before is not None:
                results.append(dc.TemplateResult(path, verdict))
        return self._report(rd, verdicts, results, unread, other, keras), new_templates

    def baseline(self, repo: RepoId, sha: str, paths: Sequence[str], sizes: Mapping[str, int | None],
                 session: ContentSession | None = None) -> tuple[dc.ContentReport, dict[str, dict[str, str]], bool]:
        """The audit of a pinned revision: every pickle-family file and every template, each
        analysed alone. Returns (report, templates read, whether a transient failure cut it short)."""
        from monitor.content.templates import compare_templates

        rd = self.reads(repo, session)
        transient_before = rd.session.transient
        verdicts, unread, keras = self.pickles(rd, sha, paths, sizes)
        results: list[dc.TemplateResult] = []
        other: list[tuple[str, str]] = []
        templates: dict[str, dict[str, str]] = {}
        found = self.chat_templates(rd, sha, paths, sizes, other)
        if found is not None:
            templates[CHAT_TEMPLATES] = found
            if found:
                results.append(dc.TemplateResult(CHAT_TEMPLATES, compare_templates(None, found)))
        for path in sorted(p for p in paths if _lower(p).endswith(GGUF_EXT)):
            got = self.gguf_templates(rd, sha, path, sizes.get(path), other)
            if got is not None:
                templates[path] = got
                if got:
                    results.append(dc.TemplateResult(path, compare_templates(None, got)))
        transient = rd.session.transient > transient_before
        return self._report(rd, verdicts, results, unread, other, keras), templates, transient

    def copy(self, repo: RepoId, rev: str, paths: Sequence[str], sizes: Mapping[str, int | None],
             original: RepoId, original_rev: str, original_paths: Sequence[str]) -> dc.ContentReport:
        """A republished copy: its pickles judged, its templates compared with the original's (a
        GGUF derivative's header template with the original's tokenizer_config.json)."""
        from monitor.content.templates import compare_templates

        rd = self.reads(repo)
        verdicts, unread, keras = self.pickles(rd, rev, paths, sizes)
        other: list[tuple[str, str]] = []
        results: list[dc.TemplateResult] = []
        ours: list[tuple[str, dict[str, str] | None]] = [(CHAT_TEMPLATES, self.chat_templates(rd, rev, paths, sizes,
                                                                                             other))]
        ggufs = sorted(p for p in paths if _lower(p).endswith(GGUF_EXT))
        if ggufs:  # quantised copies share one template: the first file speaks for them
            ours.append((ggufs[0], self.gguf_templates(rd, rev, ggufs[0], sizes.get(ggufs[0]), other)))
        base = self.original_templates(rd, original, original_rev, original_paths, other)
        for source, templates in ours:
            if templates and base is not None and templates != base:
                results.append(dc.TemplateResult(source, compare_templates(base, templates)))
            elif templates and base is None:
                results.append(dc.TemplateResult(source, compare_templates(None, templates)))
        return self._report(rd, verdicts, results, unread, other, keras)

    def original_templates(self, rd: _Reads, original: RepoId, rev: str, paths: Sequence[str] | None,
                           other: list[tuple[str, str]]) -> dict[str, str] | None:
        """The protected original's templates (its file list unknown: every source is tried), read
        once per checker (one clone-watch cycle) however many copies it has."""
        if (original, rev) not in self._originals:
            self._originals[(original, rev)] = self.chat_templates(_Reads(rd.session, original), rev,
                                                                   paths or template_files(), {}, other)
        return self._originals[(original, rev)]

    @staticmethod
    def _report(rd: _Reads, verdicts, results, unread, other, keras) -> dc.ContentReport:
        # (with a session shared by a check's inspections, the counts are the check's so far)
        from monitor.content.templates import TemplateVerdict

        results = list(results) + [dc.TemplateResult(src, TemplateVerdict((), "", why))
                                   for src, why in dict.fromkeys(rd.broken)]
        if rd.session.refused:  # a refusal says nothing of the content: nothing judged, said in evidence
            return dc.ContentReport(unread_other=((rd.repo.id, REFUSED),), bytes_read=rd.session.fetched,
                                    requests=rd.session.requests)
        return dc.ContentReport(tuple(verdicts), tuple(results), tuple(unread), tuple(other) + tuple(rd.sniff_unread),
                                tuple(keras),
                                rd.session.fetched, rd.session.requests)


class PinContent:
    """The content part of one pin check: the moves' inspections, the baseline audit, and the
    content state to store with the check (one transaction)."""

    def __init__(self, checker: ContentChecker, base: str, stored: dc.ContentState | None):
        self.checker, self.base, self.stored = checker, base, stored
        self.state: dc.ContentState | None = None  # set when this check learned something
        self.session = checker.session()  # one check, one set of caps (200 files, 512 MB)

    def move(self, repo: RepoId, old: str, new: str, files: Any, manifests: Mapping[str, Mapping[str, str]],
             sizes: Mapping[str, int | None], flagged: Mapping[str, str] | None
             ) -> tuple[Any, dict[str, Any]]:
        """(risk.ContentRules, evidence) of a move; the new side's templates become the baseline. A
        bug in inspection never sinks the check: the move is judged as without inspection (a pickle
        change stays high) and the evidence says so."""
        try:
            return self._move(repo, old, new, files, manifests, sizes, flagged)
        except Exception:
            log.exception("content inspection of %s at %s failed unexpectedly", repo.id, new[:7])
            return None, {"error": "content inspection failed (internal error, see the log)"}

    def _move(self, repo, old, new, files, manifests, sizes, flagged):
        report, templates = self.checker.move(repo, old, new, files.added, files.removed, files.modified,
                                              list(manifests.get(old, {})), list(manifests.get(new, {})), sizes,
                                              self.state or self.stored, self.session)
        prior = self.state or self.stored or dc.ContentState()
        status, reason = dc.audit_status(report, flagged)
        if status == "clean" or (prior.status == "flagged" and status == "not_inspected"):
            status, reason = prior.status, prior.reason
        kept = {k: v for k, v in prior.templates.items() if k not in set(files.removed)}
        if prior.sha != old:  # templates known at another revision say nothing of this one
            kept = {}
        self.state = dc.ContentState(new, status, reason, {**kept, **templates}, prior.retry)
        return dc.rules(report, flagged), dc.evidence(report, flagged)

    def audit_due(self) -> bool:
        return self.state is None and (self.stored is None or self.stored.retry)

    def audit(self, repo: RepoId, sha: str, files: Sequence[Any], flagged: Mapping[str, str] | None
              ) -> Any:
        """The baseline audit of the pinned revision: a `content_flagged` finding or None (also when
        inspection failed unexpectedly: then it is tried again at the next check)."""
        try:
            return self._audit(repo, sha, files, flagged)
        except Exception:
            log.exception("content audit of %s at %s failed unexpectedly", repo.id, sha[:7])
            self.state = dc.ContentState(sha, "not_inspected", "internal error (see the log)", {}, True)
            return None

    def _audit(self, repo, sha, files, flagged):
        sizes = {f.path: f.size for f in files}
        report, templates, transient = self.checker.baseline(repo, sha, [f.path for f in files], sizes,
                                                             self.session)
        status, reason = dc.audit_status(report, flagged)
        refused = any(why == REFUSED for _, why in report.unread_other)
        if refused:
            status, reason = "not_inspected", REFUSED
        self.state = dc.ContentState(sha, status, reason, templates, transient and status != "flagged")
        if refused or self.state.retry:  # nothing judged: no alert (a later check audits again on retry)
            return None
        log.info("content audit of %s at %s: %s (%d bytes, %d requests)", repo.id, sha[:7], status,
                 report.bytes_read, report.requests)
        return dc.content_flagged(repo, self.base, sha, report, flagged)

    def state_json(self) -> str | None:
        return self.state.to_json() if self.state is not None else None


def flagged_paths(info: Any, sha: str) -> dict[str, str] | None:
    """What the Hub's scan says of the files at `sha`: path -> level, {} when it flags none, None
    when it has not scanned (or the metadata read was at another revision)."""
    if info is None or info.sha != sha or info.scan_issues is None:
        return None
    return {i.path: i.level for i in info.scan_issues}
