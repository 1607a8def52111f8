"""A scanned reference with what we judged about it, its JSON/text forms, and `--fail-if`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from monitor.refs.hub_state import HubState
from monitor.refs.model import Problem, Reference, Unresolved

FAIL_CONDITIONS = ("unpinned", "missing", "lookalike", "renamed", "unknown")
ONLINE_CONDITIONS = ("missing", "renamed", "unknown")


@dataclass(frozen=True)
class Checked:
    ref: Reference
    lookalike_of: str | None
    hub: HubState | None  # None with --offline

    def to_json(self) -> dict[str, Any]:
        """The `hubwatch refs scan --json` contract (one object per reference)."""
        r = self.ref
        out: dict[str, Any] = {"repo": r.repo, "type": r.type, "file": r.file, "line": r.line,
                               "revision": r.revision, "pinned": r.pinned, "lookalike_of": self.lookalike_of,
                               "via": r.via}
        if r.cell is not None:
            out["cell"] = r.cell
        if r.via == "cache":
            out["cache_refs"] = list(r.cache_refs)
        if self.hub is not None:
            out["hub_state"] = self.hub.state
            out["renamed_to"] = self.hub.renamed_to
            if self.hub.state == "unknown":
                out["hub_error"] = self.hub.reason
        return out

    def meets(self, condition: str) -> bool:
        if condition == "unpinned":
            return not self.ref.pinned
        if condition == "lookalike":
            return self.lookalike_of is not None
        return self.hub is not None and self.hub.state == condition

    def to_text(self) -> str:
        r = self.ref
        where = f"{r.file}:{r.line}" if r.line is not None else r.file
        if r.cell is not None:
            where = f"{r.file} cell {r.cell}:{r.line}"
        notes = [f"@{r.revision}" if r.revision else "@(default branch)",
                 "pinned" if r.pinned else "UNPINNED"]
        if self.lookalike_of:
            notes.append(f"LOOK-ALIKE of {self.lookalike_of}")
        if self.hub is not None:
            notes.append(f"hub: {self.hub.state}" + (f" -> {self.hub.renamed_to}" if self.hub.renamed_to else "")
                         + (f" ({self.hub.reason})" if self.hub.state == "unknown" and self.hub.reason else ""))
        return f"{where}: {r.type} {r.repo} " + " ".join(notes)


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


def problem_lines(problems: Iterable[Problem], unresolved: Iterable[Unresolved] = ()) -> Iterable[str]:
    for p in problems:
        yield one_line(f"hubwatch: refs: {p.file}: {p.message}")
    for u in unresolved:
        where = u.file + (f" cell {u.cell}" if u.cell else "") + f":{u.line}"
        yield one_line(f"hubwatch: refs: {where}: {u.via}: not resolved ({u.why})")


def summary(files: int, checked: Sequence[Checked], problems: int, unresolved: int, listed: bool) -> str:
    """The last stderr line: what was read, found and could not be inspected."""
    states = [c.hub.state for c in checked if c.hub is not None]
    online = any(c.hub is not None for c in checked)
    return (f"hubwatch: refs: {files} file(s), {len(checked)} reference(s): "
            f"{sum(not c.ref.pinned for c in checked)} unpinned, "
            f"{sum(c.lookalike_of is not None for c in checked)} look-alike"
            + (f", {states.count('missing')} missing, {states.count('renamed')} renamed, "
               f"{states.count('unknown')} unknown" if online else "")
            + f"; {problems} not inspected, {unresolved} unresolved call(s)"
            + (" (-v lists them)" if unresolved and not listed else ""))
