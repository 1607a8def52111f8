"""Benchmark: precision and recall of `hubwatch refs scan` on the labelled set of real files.

Not a test.  Run by hand:  python benchmarks/refs_labelled.py [--misses] [TREE...]

tests/data/refs_labelled/<tree>/ holds files copied from public repositories (SOURCES.md) and
LABELS.json, written by hand: every Hub reference a reader sees in those files (file, cell, line,
repo, type, revision), plus names that look like Hub ids but are local (`"local": true`: what
the same code saves to). Each tree is scanned end to end
(`python -m monitor refs scan TREE --offline --json`) and its references compared:

- a reported reference is right when a label has the same file, cell, line, repo, type and
  revision (a label marked local matches nothing: reporting it is a false positive, unless the
  scan itself calls it ambiguous);
- precision = right / reported, recall = right / labelled (local labels excluded).

Unresolved and uninspected entries are not references and are not scored (they are listed with
--misses, as every false positive and every missed label).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "tests", "data", "refs_labelled")


def key(file: str, cell: int | None, line: int | None, repo: str, rtype: str, revision) -> tuple:
    return (file, cell, line, repo, rtype, json.dumps(revision, sort_keys=True))


def scan(tree: str) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "monitor", "refs", "scan", tree, "--offline", "--json"],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"refs scan {tree} exited {proc.returncode}: {proc.stderr[-500:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def score(tree: str) -> tuple[int, int, int, list[str]]:
    """-> (right, reported, labelled, notes on every miss and false positive)."""
    path = os.path.join(DATA, tree)
    labels = json.load(open(os.path.join(path, "LABELS.json"), encoding="utf-8"))["references"]
    wanted = {}
    local = set()
    for lab in labels:
        k = key(lab["file"], lab.get("cell"), lab["line"], lab["repo"], lab["type"], lab.get("revision"))
        (local.add(k) if lab.get("local") else wanted.setdefault(k, lab))
    right, reported, notes, matched = 0, 0, [], set()
    for ref in scan(path):
        if "repo" not in ref:  # an unresolved / uninspected entry
            if "unresolved" in ref:
                notes.append(f"  (unresolved) {os.path.relpath(ref['file'], path)}:{ref.get('line')}: "
                             f"{ref.get('call')}: {ref.get('reason')}")
            continue
        rel = os.path.relpath(ref["file"], path)
        k = key(rel, ref.get("cell"), ref.get("line"), ref["repo"], ref["type"], ref.get("revision"))
        if k in wanted and k not in matched:
            right += 1
            reported += 1
            matched.add(k)
        elif k in local and ref.get("ambiguous"):
            continue  # a local name the scan itself did not claim for the Hub
        else:
            reported += 1
            notes.append(f"  false positive: {rel}" + (f" cell {ref['cell']}" if ref.get("cell") else "")
                         + f":{ref.get('line')}: {ref['type']} {ref['repo']} @{ref.get('revision')}"
                         + (" (labelled local)" if k in local else ""))
    for k, lab in wanted.items():
        if k not in matched:
            notes.append(f"  missed: {lab['file']}" + (f" cell {lab['cell']}" if lab.get("cell") else "")
                         + f":{lab['line']}: {lab['type']} {lab['repo']} @{lab.get('revision')}")
    return right, reported, len(wanted), notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="*", help="tree names (default: all)")
    ap.add_argument("--misses", action="store_true", help="list every miss and false positive")
    args = ap.parse_args()
    trees = args.trees or sorted(d for d in os.listdir(DATA) if os.path.isdir(os.path.join(DATA, d)))
    total = [0, 0, 0]
    print(f"{'tree':<24}{'labelled':>9}{'reported':>9}{'right':>7}{'precision':>11}{'recall':>8}")
    for tree in trees:
        right, reported, labelled, notes = score(tree)
        total = [total[0] + right, total[1] + reported, total[2] + labelled]
        print(f"{tree:<24}{labelled:>9}{reported:>9}{right:>7}{right / max(reported, 1):>11.3f}"
              f"{right / max(labelled, 1):>8.3f}")
        if args.misses:
            for note in notes:
                print(note)
    right, reported, labelled = total
    print(f"{'overall':<24}{labelled:>9}{reported:>9}{right:>7}{right / max(reported, 1):>11.3f}"
          f"{right / max(labelled, 1):>8.3f}")


if __name__ == "__main__":
    main()
