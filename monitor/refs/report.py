"""What a scan reports, entry by entry, with the conditions each meets (`--fail-if`), its JSON and
text forms, and the waivers a team gives it (inline `# hubwatch: ignore[...]`, `--baseline`).

Three kinds of entries, all in the output (fail closed: what could not be read is never silent):
- `Checked`: a reference, with what we judged about it (look-alike, Hub state);
- `Open` unresolved: a loading call whose repo we could not read (it may load anything: it also
  meets `unpinned`); `Open` uninspected: a file or notebook cell we could not parse or read;
- `Open` skipped: a special file or a symlink out of the tree met in a walk (listed, never read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from monitor.refs.hub_state import HubState
from monitor.refs.model import Problem, Reference, Unresolved

FAIL_CONDITIONS = ("unpinned", "missing", "lookalike", "renamed", "unknown", "unresolved", "uninspected",
                   "remote-code")
ONLINE_CONDITIONS = ("missing", "renamed", "unknown")


def _waived(condition: str, suppressed: Sequence[str], baselined: Sequence[str]) -> bool:
    return condition in suppressed or "*" in suppressed or condition in baselined


@dataclass(frozen=True)
class Checked:
    ref: Reference
    lookalike_of: str | None
    hub: HubState | None  # None with --offline (and for kernels: the Hub's refs API does not serve them)
    baselined: tuple[str, ...] = ()

    @property
    def file(self) -> str:
        return self.ref.file

    def conditions(self) -> list[str]:
        """Every condition this reference meets, waived or not."""
        r, out = self.ref, []
        if not r.pinned:
            out.append("unpinned")
        if self.lookalike_of is not None:
            out.append("lookalike")
        if self.hub is not None and self.hub.state in ONLINE_CONDITIONS and not (
                r.ambiguous and self.hub.state == "missing"):
            # an ambiguous single name the Hub does not have is a local directory: nobody can
            # register a namespace-less repo, so there is nothing to squat
            out.append(self.hub.state)
        if r.remote_code and not r.pinned:
            out.append("remote-code")
        return out

    def meets(self, condition: str) -> bool:
        return condition in self.conditions() and not _waived(condition, self.ref.suppressed, self.baselined)

    def baseline_key(self) -> str:
        return f"{self.ref.type}:{self.ref.repo}"

    def to_json(self) -> dict[str, Any]:
        """The `hubwatch refs scan --json` contract (one object per reference)."""
        r = self.ref
        revision: Any = {"unresolved": r.revision_expr} if r.revision_expr is not None else r.revision
        out: dict[str, Any] = {"repo": r.repo, "type": r.type, "file": r.file, "line": r.line,
                               "revision": revision, "pinned": r.pinned, "lookalike_of": self.lookalike_of,
                               "via": r.via}
        if r.cell is not None:
            out["cell"] = r.cell
        if r.via == "cache":
            out["cache_refs"] = list(r.cache_refs)
        for name in ("source", "subset"):
            if getattr(r, name) is not None:
                out[name] = getattr(r, name)
        if r.ambiguous:
            out["ambiguous"] = True
        if r.candidates > 1:
            out["candidates"] = r.candidates
        if r.remote_code:
            out["remote_code"] = True
        _waivers(out, r.suppressed, self.baselined)
        if self.hub is not None:
            out["hub_state"] = self.hub.state
            out["renamed_to"] = self.hub.renamed_to
            if self.hub.state == "unknown":
                out["hub_error"] = self.hub.reason
        return out

    def to_text(self) -> str:
        r = self.ref
        where = f"{r.file}:{r.line}" if r.line is not None else r.file
        if r.cell is not None:
            where = f"{r.file} cell {r.cell}:{r.line}"
        rev = (f"@(unresolved: {r.revision_expr})" if r.revision_expr is not None else
               f"@{r.revision}" if r.revision else "@(default branch)")
        notes = [rev, "pinned" if r.pinned else "UNPINNED"]
        if r.subset:
            notes.append(f"subset {r.subset}")
        if r.ambiguous:
            notes.append("AMBIGUOUS (a local directory or a Hub repo)")
        if r.source:
            notes.append(f"(a {r.source})")
        if r.candidates > 1:
            notes.append(f"(one of {r.candidates} values the branches bind)")
        if r.remote_code:
            notes.append("REMOTE CODE")
        if self.lookalike_of:
            notes.append(f"LOOK-ALIKE of {self.lookalike_of}")
        if self.hub is not None:
            notes.append(f"hub: {self.hub.state}" + (f" -> {self.hub.renamed_to}" if self.hub.renamed_to else "")
                         + (f" ({self.hub.reason})" if self.hub.state == "unknown" and self.hub.reason else ""))
        notes += _waiver_text(r.suppressed, self.baselined)
        return terminal_line(f"{where}: {r.type} {r.repo} " + " ".join(notes))


@dataclass(frozen=True)
class Open:
    """An unresolved call, an uninspected file (or cell), or a skipped special file."""

    kind: str                      # unresolved | uninspected | skipped
    file: str
    reason: str
    line: int | None = None
    cell: int | None = None
    call: str | None = None
    file_line: int | None = None
    suppressed: tuple[str, ...] = ()
    baselined: tuple[str, ...] = field(default=())
    remote_code: bool = False

    @classmethod
    def unresolved(cls, u: Unresolved) -> "Open":
        return cls("unresolved", u.file, u.why, u.line, u.cell, u.via, u.file_line, u.suppressed,
                   remote_code=u.remote_code)

    @classmethod
    def problem(cls, p: Problem) -> "Open":
        return cls("skipped" if p.skipped else "uninspected", p.file, p.message)

    def conditions(self) -> list[str]:
        # fail closed: an unresolved load may load anything, unpinned; an uninspected file (it held a
        # loader's name, or could not even be read) may hold unpinned loads
        # an unresolved load with trust_remote_code (not pinned to a sha) runs code from whatever it loads
        return {"unresolved": ["unresolved", "unpinned"] + (["remote-code"] if self.remote_code else []),
                "uninspected": ["uninspected", "unpinned"]}.get(self.kind, [])

    def meets(self, condition: str) -> bool:
        return condition in self.conditions() and not _waived(condition, self.suppressed, self.baselined)

    def baseline_key(self) -> str:
        return f"{self.kind}:{self.call or ''}:{self.reason}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.kind: True, "file": self.file}
        if self.kind == "unresolved":
            out.update({"line": self.line, "call": self.call})
            if self.cell is not None:
                out["cell"] = self.cell
            if self.remote_code:
                out["remote_code"] = True
        out["reason"] = self.reason
        _waivers(out, self.suppressed, self.baselined)
        return out

    def to_text(self) -> str:
        if self.kind == "unresolved":
            where = self.file + (f" cell {self.cell}" if self.cell else "") + f":{self.line}"
            text = f"{where}: UNRESOLVED {self.call}: {self.reason}" + (" REMOTE CODE" if self.remote_code else "")
        else:
            text = f"{self.file}: {self.kind.upper()}: {self.reason}"
        return terminal_line(" ".join([text] + _waiver_text(self.suppressed, self.baselined)))


Entry = Checked | Open


def _waivers(out: dict[str, Any], suppressed: Sequence[str], baselined: Sequence[str]) -> None:
    if suppressed:
        out["suppressed"] = list(suppressed)
    if baselined:
        out["baselined"] = list(baselined)


def _waiver_text(suppressed: Sequence[str], baselined: Sequence[str]) -> list[str]:
    return ([f"(suppressed inline: {', '.join(suppressed)})"] if suppressed else []) + (
        [f"(in baseline: {', '.join(baselined)})"] if baselined else [])


# -- baseline -------------------------------------------------------------------------------------
def write_baseline(entries: Iterable[Entry]) -> str:
    """The conditions met today, one row per (file, what, condition), lines left out (they move)."""
    rows = sorted({(_path_key(e.file), e.baseline_key(), c) for e in entries for c in e.conditions()})
    return json.dumps({"hubwatch_refs_baseline": 1,
                       "entries": [{"file": f, "key": k, "condition": c} for f, k, c in rows]}, indent=1) + "\n"


def read_baseline(text: str) -> set[tuple[str, str, str]]:
    """ValueError (one line) when the file is not a baseline."""
    try:
        doc = json.loads(text)
        rows = doc["entries"] if isinstance(doc, dict) and doc.get("hubwatch_refs_baseline") == 1 else None
        if not isinstance(rows, list):
            raise ValueError
        return {(_path_key(str(r["file"])), str(r["key"]), str(r["condition"])) for r in rows}
    except (ValueError, KeyError, TypeError):
        raise ValueError("not a hubwatch refs baseline (write one with --write-baseline)") from None


def _path_key(file: str) -> str:
    """`refs scan .` says ./a.py, pre-commit says a.py: one baseline serves both."""
    import os

    return os.path.normpath(file)


def apply_baseline(entries: list[Entry], known: set[tuple[str, str, str]]) -> list[Entry]:
    from dataclasses import replace

    out = []
    for e in entries:
        hits = tuple(c for c in e.conditions() if (_path_key(e.file), e.baseline_key(), c) in known)
        out.append(replace(e, baselined=hits) if hits else e)
    return out


# -- lines --------------------------------------------------------------------------------------
def parse_conditions(text: str) -> tuple[str, ...]:
    """'unpinned,missing' -> ('unpinned', 'missing'); ValueError naming a bad one."""
    items = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [c for c in items if c not in FAIL_CONDITIONS]
    if bad or not items:
        raise ValueError(f"--fail-if takes a comma-separated list of {', '.join(FAIL_CONDITIONS)}, "
                         f"not {text[:80]!r}")
    return items


def one_line(text: str) -> str:
    """File names and parser messages come from the scanned tree: keep each report on one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def terminal_line(text: str) -> str:
    """File names, revisions and repo ids come from the scanned tree or the Hub: terminal escapes
    are removed and invisible characters shown, as `findings` does, on one line."""
    from monitor.alerts.render import terminal

    return one_line(terminal(text))


def problem_lines(problems: Iterable[Problem], unresolved: Iterable[Unresolved] = ()) -> Iterable[str]:
    for p in problems:
        yield terminal_line(f"hubwatch: refs: {p.file}: {p.message}")
    for u in unresolved:
        where = u.file + (f" cell {u.cell}" if u.cell else "") + f":{u.line}"
        yield terminal_line(f"hubwatch: refs: {where}: {u.via}: not resolved ({u.why})")


def summary(files: int, checked: Sequence[Checked], problems: int, unresolved: int, listed: bool,
            skipped: int = 0, waived: int = 0) -> str:
    """The last stderr line: what was read, found and could not be inspected."""
    states = [c.hub.state for c in checked if c.hub is not None]
    online = any(c.hub is not None for c in checked)
    return (f"hubwatch: refs: {files} file(s), {len(checked)} reference(s): "
            f"{sum(not c.ref.pinned for c in checked)} unpinned, "
            f"{sum(c.lookalike_of is not None for c in checked)} look-alike"
            + (f", {states.count('missing')} missing, {states.count('renamed')} renamed, "
               f"{states.count('unknown')} unknown" if online else "")
            + f"; {problems} not inspected, {unresolved} unresolved call(s)"
            + (f", {skipped} skipped" if skipped else "")
            + (f", {waived} waived (inline or baseline)" if waived else "")
            + (" (-v lists them)" if unresolved and not listed else ""))
