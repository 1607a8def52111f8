"""Find the files under PATHs and parse each with the right reader.

Directories are walked without following symlinks (no loops); a file symlink is read only when
it resolves inside the scanned tree, and special files (FIFOs, sockets, devices) are never opened:
both are listed as skipped. Tool and VCS directories (`SKIP_DIRS`) are not entered, so a
virtualenv's copy of transformers does not drown our own code. Extensionless `*_yaml` files
(lm-evaluation-harness templates) are read as YAML.
Each file is read once, up to a size bound; a file without any trigger word (`from_pretrained`,
`model`, `dataset` ...) cannot hold a reference and is not parsed, which keeps a 10,000-file tree
to a few seconds. What cannot be read or parsed becomes a Problem and the walk goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from monitor.refs import configs, notebook, python
from monitor.refs.model import NotRegular, Parsed, Problem, Reference, Unresolved, read_regular

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


PARALLEL_FROM = 500  # files; below this, starting worker processes costs more than it saves
CHUNK = 100


def scan(paths: Iterable[str], workers: int | None = None, parallel_from: int = PARALLEL_FROM) -> ScanResult:
    """Parse every readable file under `paths`; big trees are parsed by one process per CPU
    (parsing is CPU-bound and the GIL would serialise threads)."""
    problems: list[Problem] = []
    todo: list[tuple[str, str]] = []
    for path in paths:
        for file, explicit in _files(path, problems):
            suffix = suffix_of(file)
            if suffix in READERS:
                todo.append((file, suffix))
            elif explicit:
                problems.append(Problem(file, "not a Python, notebook, YAML or JSON file"))
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(8, cpus or 1)
    parsed = _parallel(todo, workers) if workers > 1 and len(todo) >= parallel_from else None
    if parsed is None:
        parsed = read_many(todo)
    refs = [r for p in parsed for r in p.references]
    unresolved = [u for p in parsed for u in p.unresolved]
    problems += [pr for p in parsed for pr in p.problems]
    return ScanResult(tuple(refs), tuple(unresolved), tuple(problems), len(todo))


def _parallel(todo: list[tuple[str, str]], workers: int) -> list[Parsed] | None:
    """None when worker processes cannot be had (a sandbox, no /dev/shm): the caller goes serial."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunks = [todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)]
    try:
        # spawn, not fork: the caller may hold threads (an HTTP pool, a test server).
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return [p for batch in pool.map(read_many, chunks) for p in batch]
    except (OSError, BrokenProcessPool):
        return None


def read_many(files: list[tuple[str, str]]) -> list[Parsed]:
    return [read(file, suffix) for file, suffix in files]


def suffix_of(file: str) -> str:
    suffix = os.path.splitext(file)[1].lower()
    if not suffix and file.endswith("_yaml"):
        return ".yaml"  # lm-evaluation-harness's include templates (_default_template_yaml)
    return suffix


def read(file: str, suffix: str) -> Parsed:
    limit, triggers, parser = READERS[suffix]
    try:
        raw = read_regular(file, limit)
    except NotRegular:
        return Parsed(problems=(Problem(file, "not a regular file: skipped", skipped=True),))
    except OSError as e:
        return Parsed(problems=(Problem(file, f"cannot read: {e.strerror or e}"),))
    if len(raw) > limit:
        return Parsed(problems=(Problem(file, f"larger than {limit // _MB} MB: not inspected"),))
    if not any(t in raw for t in triggers) and not _hidden_trigger(raw, suffix, triggers):
        return Parsed()
    try:
        return parser(raw, file)
    except Exception as e:  # noqa: BLE001 - a file our parsers choke on is reported; the scan goes on
        return Parsed(problems=(Problem(file, f"not inspected: parser error ({type(e).__name__})"),))


_ESCAPES = (b"\\u", b"\\x", b"\\U")  # JSON / YAML escapes that can spell a key or a notebook's code


def _hidden_trigger(raw: bytes, suffix: str, triggers: tuple[bytes, ...]) -> bool:
    """Could a trigger word be spelt so that the byte search misses it? An escape in a JSON string,
    a notebook cell or a quoted YAML key (`"\\u0066rom_pretrained"`), or in Python a compatibility
    character the parser folds into an ASCII identifier (NFKC: `ｆrom_pretrained` is `from_pretrained`)."""
    if suffix != ".py" and any(e in raw for e in _ESCAPES):
        return True
    if suffix not in (".py", ".ipynb") or raw.isascii():
        return False
    import unicodedata

    folded = unicodedata.normalize("NFKC", raw.decode("utf-8", errors="replace")).encode("utf-8", errors="replace")
    return any(t in folded for t in triggers)


def _files(path: str, problems: list[Problem]) -> Iterator[tuple[str, bool]]:
    if not os.path.isdir(path):
        yield path, True
        return
    root = os.path.realpath(path)
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
                elif entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if os.path.commonpath([root, target]) != root:
                        if suffix_of(entry.name) in READERS or os.path.isdir(target):  # a whole tree not read
                            problems.append(Problem(entry.path, "symlink out of the scanned tree: skipped", skipped=True))
                    elif os.path.isfile(target):
                        yield entry.path, False
                elif entry.is_file(follow_symlinks=False):
                    yield entry.path, False
                else:  # FIFO, socket, device (directories were taken above)
                    problems.append(Problem(entry.path, "not a regular file: skipped", skipped=True))
            except (OSError, ValueError):
                continue
        stack.extend(reversed(subdirs))
