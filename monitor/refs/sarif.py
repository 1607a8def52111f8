"""`refs scan --format sarif`: SARIF 2.1.0 for code scanning (GitHub, GitLab ...).

One rule per condition, each with a `security-severity` (GitHub's 0-10 scale) and a help text; one
result per (entry, condition met), located at its file and line (for a notebook: the line in the
.ipynb JSON, the cell and in-cell line in the message), with the fix in the message (the pin to
write: the commit the Hub serves now when we asked it). Waived results stay in the log with a
`suppressions` entry (inSource for `# hubwatch: ignore[...]`, external for --baseline): listed,
never silent.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from monitor.refs.report import Checked, Entry, Open

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# condition -> (level, security-severity, short description, help)
RULES: dict[str, tuple[str, str, str, str]] = {
    "lookalike": ("error", "9.0", "Hub repo in a namespace that imitates a protected one",
                  "The repo's namespace is a look-alike of a protected organisation: a typosquat would load "
                  "an attacker's weights or code. Use the real organisation's repo."),
    "remote-code": ("error", "8.5", "trust_remote_code load not pinned to a commit",
                    "The repo's Python code runs on load; whoever can push to its branch runs code here. "
                    "Pin revision= to a 40-hex commit sha."),
    "missing": ("error", "7.5", "Hub repo does not exist",
                "The referenced repo is gone: anyone who registers the name serves what this code loads."),
    "renamed": ("warning", "6.0", "Hub repo was renamed or transferred",
                "The Hub redirects this name; if the old name is registered again it serves someone else's repo. "
                "Load the new name."),
    "unpinned": ("warning", "5.0", "Hub repo loaded without a commit pin",
                 "A branch or tag can be moved under us; pin revision= to a 40-hex commit sha."),
    "unresolved": ("warning", "5.0", "Hub load whose repo could not be read",
                   "The repo argument is not a constant the scanner can read: it may load anything. "
                   "Use a constant, or review and suppress with # hubwatch: ignore[unresolved,unpinned]."),
    "uninspected": ("warning", "4.0", "File that could not be inspected",
                    "The file (or a notebook cell) could not be parsed or read: what it loads is unknown."),
    "unknown": ("note", "3.0", "Hub state unknown",
                "The Hub could not answer for this repo (error, timeout, budget): its state was not checked."),
}


def _uri(path: str) -> str:
    rel = os.path.relpath(path) if os.path.isabs(path) else os.path.normpath(path)  # "./a.py" -> "a.py"
    if rel.startswith(".." + os.sep) or rel == "..":
        rel = path
    return rel.replace(os.sep, "/")


def _hint(entry: Entry, condition: str) -> str:
    if isinstance(entry, Checked):
        r, hub = entry.ref, entry.hub
        if condition in ("unpinned", "remote-code"):
            head = hub.refs.head(r.revision or "main") if hub is not None and hub.refs is not None else None
            return (f'Pin it: revision="{head}" (the commit {r.revision or "main"} points at now).' if head else
                    "Pin it: revision=\"<40-hex commit sha>\" (hubwatch refs scan --write-pins prints them).")
        if condition == "renamed" and hub is not None and hub.renamed_to:
            return f"Load {hub.renamed_to} instead."
        if condition == "lookalike":
            return f"Check the name: did you mean a repo of {entry.lookalike_of}?"
        return ""
    if condition in ("unresolved", "unpinned"):
        return "Make the repo a constant the scanner can read, pinned with revision=\"<sha>\"."
    return ""


def _message(entry: Entry, condition: str) -> str:
    if isinstance(entry, Checked):
        r = entry.ref
        where = f" (cell {r.cell}, line {r.line})" if r.cell is not None else ""
        rev = f"@{r.revision}" if r.revision else ("@(unresolved revision)" if r.revision_expr else "@(default branch)")
        text = f"{r.type} {r.repo} {rev}{where}: {RULES[condition][2].lower()}."
    elif entry.kind == "unresolved":
        where = f" (cell {entry.cell}, line {entry.line})" if entry.cell is not None else ""
        text = f"{entry.call}(){where}: repo not resolved ({entry.reason})."
    else:
        text = f"{entry.reason}."
    hint = _hint(entry, condition)
    return f"{text} {hint}".strip()


def _location(entry: Entry) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(entry.file)}}
    line = None
    if isinstance(entry, Checked):
        line = entry.ref.file_line or (entry.ref.line if entry.ref.cell is None else None)
    elif isinstance(entry, Open) and entry.kind == "unresolved":
        line = entry.file_line or (entry.line if entry.cell is None else None)
    if line is not None and line >= 1:
        physical["region"] = {"startLine": line}
    return {"physicalLocation": physical}


def log(entries: Sequence[Entry], version: str) -> dict[str, Any]:
    rules = [{"id": cid, "name": cid.replace("-", " ").title().replace(" ", ""),
              "shortDescription": {"text": desc}, "fullDescription": {"text": help_},
              "help": {"text": help_},
              "defaultConfiguration": {"level": level},
              "properties": {"security-severity": sev, "tags": ["security", "supply-chain"]}}
             for cid, (level, sev, desc, help_) in RULES.items()]
    index = {cid: i for i, cid in enumerate(RULES)}
    results = []
    for entry in entries:
        suppressed = entry.ref.suppressed if isinstance(entry, Checked) else entry.suppressed
        for condition in entry.conditions():
            result: dict[str, Any] = {
                "ruleId": condition, "ruleIndex": index[condition], "level": RULES[condition][0],
                "message": {"text": _message(entry, condition)}, "locations": [_location(entry)],
                "partialFingerprints": {"hubwatchRefs/v1": f"{_uri(entry.file)}|{entry.baseline_key()}|{condition}"},
            }
            waivers = []
            if condition in suppressed or "*" in suppressed:
                waivers.append({"kind": "inSource", "justification": "# hubwatch: ignore[...]"})
            if condition in entry.baselined:
                waivers.append({"kind": "external", "justification": "in the --baseline file"})
            if waivers:
                result["suppressions"] = waivers
            results.append(result)
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "hubwatch", "version": version, "semanticVersion": version,
                            "rules": rules}},
        "results": results, "columnKind": "unicodeCodePoints"}]}
