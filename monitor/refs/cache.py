"""The revisions this host really uses: the local Hugging Face cache (HF_HUB_CACHE layout).

    <cache>/models--org--name/refs/main          -> a commit sha (what `main` resolved to here)
    <cache>/models--org--name/snapshots/<sha>/   -> the files of that commit, as loaded
    (datasets--..., spaces--... alike)

We read the layout ourselves rather than `huggingface_hub.scan_cache_dir()`: that call stats every
blob and drops a whole repo as "corrupted" when one ref points to a snapshot that is gone, which
would hide exactly the repos we must report. Each distinct commit is one Reference (revision = the
sha, `cache_refs` = the ref names pointing at it); odd entries are Problems, never fatal.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.refs.model import SHA, Parsed, Problem, Reference, is_hub_id

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
MAX_REFS = 1000  # per repo: a bound on a hostile cache


def default_dir(env: dict[str, str] | None = None) -> Path:
    """Where huggingface_hub puts its cache: HF_HUB_CACHE, else $HF_HOME/hub, else the XDG default."""
    env = dict(os.environ if env is None else env)
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def scan(cache_dir: Path) -> Parsed:
    if not cache_dir.is_dir():
        return Parsed(problems=(Problem(str(cache_dir), "no Hugging Face cache here (not a directory)", skipped=True),))
    refs: list[Reference] = []
    problems: list[Problem] = []
    for entry in sorted(cache_dir.iterdir()):
        prefix, sep, rest = entry.name.partition("--")
        if not sep or prefix not in _TYPES or not entry.is_dir():
            continue  # .locks, version.txt, xet/ ...: not repos
        repo = rest.replace("--", "/")
        if not is_hub_id(repo):  # it becomes part of a Hub URL: never let "..", "/" or "?" through
            problems.append(Problem(str(entry), "not a Hub repo id"))
            continue
        found, problem = _revisions(entry)
        if problem:
            problems.append(Problem(str(entry), problem))
        for sha, (path, names) in sorted(found.items()):
            refs.append(Reference(repo, _TYPES[prefix], str(path), None, sha, "cache",
                                  cache_refs=tuple(sorted(names))))
    return Parsed(tuple(refs), problems=tuple(problems))


def _revisions(repo_dir: Path) -> tuple[dict[str, tuple[Path, set[str]]], str | None]:
    """sha -> (snapshot dir, or the ref file when the snapshot is gone; ref names)."""
    found: dict[str, tuple[Path, set[str]]] = {}
    bad: list[str] = []
    snapshots = repo_dir / "snapshots"
    if snapshots.is_dir():
        for snap in snapshots.iterdir():
            if SHA.match(snap.name):
                found[snap.name.lower()] = (snap, set())
            elif not snap.name.startswith("."):
                bad.append(f"snapshot {snap.name[:60]!r} is not a commit sha")
    refs_dir = repo_dir / "refs"
    if refs_dir.is_dir():
        for count, ref in enumerate(p for p in refs_dir.rglob("*") if p.is_file()):
            if count >= MAX_REFS:
                bad.append(f"more than {MAX_REFS} refs: not all read")
                break
            try:
                with ref.open("rb") as fh:
                    sha = fh.read(100).decode("ascii", errors="replace").strip().lower()
            except OSError as e:
                bad.append(f"ref {ref.name}: {e.strerror or e}")
                continue
            if not SHA.match(sha):
                bad.append(f"ref {ref.relative_to(refs_dir).as_posix()[:60]} does not hold a commit sha")
                continue
            found.setdefault(sha, (ref, set()))[1].add(ref.relative_to(refs_dir).as_posix())
    return found, "; ".join(bad) or None
