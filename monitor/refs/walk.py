"""Find the files under PATHs and parse each with the right reader.

Directories are walked without following symlinks (no loops); tool and VCS directories
(`SKIP_DIRS`) are not entered, so a virtualenv's copy of transformers does not drown our own code.
Each file is read once, up to a size bound; a file without any trigger word (`from_pretrained`,
`model`, `dataset` ...) cannot hold a reference and is not parsed, which keeps a 10,000-file tree
to a few seconds. What cannot be read or parsed becomes a Problem and the walk goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from monitor.refs import configs, notebook, python
from monitor.refs.model import Parsed, Problem, Reference, Unresolved

SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__",
                       "site-packages", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"})
_MB = 1_000_000
# suffix -> (size bound, trigger words, parser); notebooks carry outputs (images), so a larger bound.
READERS: dict[str, tuple[int, tuple[bytes, ...], Callable[[bytes, str], Parsed]]] = {
    ".py": (5 * _MB, python.TRIGGERS, python.parse),
    ".ipynb": (50 * _MB, python.TRIGGERS, notebook.parse),
    ".yaml": (2 * _MB, configs.TRIGGERS, configs.parse_yaml),
    ".yml": (2 * _MB, configs.TRIGGERS, configs.parse_yaml),
    ".json": (5 * _MB, configs.TRIGGERS, configs.parse_json),
}


@dataclass(frozen=True)
class ScanResult:
    references: tuple[Reference, ...]
    unresolved: tuple[Unresolved, ...]
    problems: tuple[Problem, ...]
    files: int  # files read


def scan(paths: Iterable[str]) -> ScanResult:
    refs: list[Reference] = []
    unresolved: list[Unresolved] = []
    problems: list[Problem] = []
    files = 0
    for path in paths:
        for file, explicit in _files(path, problems):
            suffix = os.path.splitext(file)[1].lower()
            if suffix not in READERS:
                if explicit:
                    problems.append(Problem(file, "not a Python, notebook, YAML or JSON file"))
                continue
            files += 1
            parsed = read(file, suffix)
            refs += parsed.references
            unresolved += parsed.unresolved
            problems += parsed.problems
    return ScanResult(tuple(refs), tuple(unresolved), tuple(problems), files)


def read(file: str, suffix: str) -> Parsed:
    limit, triggers, parser = READERS[suffix]
    try:
        with open(file, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as e:
        return Parsed(problems=(Problem(file, f"cannot read: {e.strerror or e}"),))
    if len(raw) > limit:
        return Parsed(problems=(Problem(file, f"larger than {limit // _MB} MB: not inspected"),))
    if not any(t in raw for t in triggers):
        return Parsed()
    return parser(raw, file)


def _files(path: str, problems: list[Problem]) -> Iterator[tuple[str, bool]]:
    if not os.path.isdir(path):
        yield path, True
        return
    stack = [path]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            problems.append(Problem(top, f"cannot list: {e.strerror or e}"))
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIP_DIRS:
                        subdirs.append(entry.path)
                elif entry.is_file():
                    yield entry.path, False
            except OSError:
                continue
        stack.extend(reversed(subdirs))
