"""`--write-pins FILE`: the scanned references as `[[pin]]` entries a config can include.

Each pin holds `revision` = the commit the Hub serves now for the referenced branch or tag and
`track` = that branch or tag (`main` when the code names none), so hubwatch alerts when it moves.
A reference pinned to a sha keeps that sha (tracking the cache's ref name when it came from the
cache). A reference we cannot pin truthfully (missing, unknown, revision not on the Hub) is
skipped with its reason: never written from a guess.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from monitor.config import valid_repo_id, valid_track
from monitor.refs.report import Checked, one_line


def render(checked: list[Checked], header: str, allow_lookalike: bool = False) -> tuple[str, list[str], int]:
    """-> (TOML text, one line per skipped reference, how many were skipped as unknown). A
    reference to a look-alike namespace is never pinned unless `allow_lookalike`: pinning an
    impostor would make hubwatch guard it."""
    # A comment in TOML must not hold control characters: file names come from the scanned tree.
    lines, skipped, unknown, seen = [one_line(f"# {header}"), ""], [], 0, set()
    for c in checked:
        r = c.ref
        where = f"{r.file}" + (f" cell {r.cell}" if r.cell is not None else "") + (f":{r.line}" if r.line is not None else "")
        pin, why = _pin(c)
        if pin is not None and c.lookalike_of and not allow_lookalike:
            pin, why = None, f"look-alike of {c.lookalike_of} (--allow-lookalike to pin it anyway)"
        if pin is None:
            skipped.append(f"{where}: {r.type} {r.repo}: not pinned: {why}")
            unknown += c.hub is not None and c.hub.state == "unknown"
            continue
        ident = (pin["type"], pin["repo"].lower(), pin["revision"], pin.get("track"))
        if ident in seen:
            continue
        seen.add(ident)
        lines.append(one_line(f"[[pin]]  # {where}"[:300]))
        lines += [f"{k} = {json.dumps(v)}" for k, v in pin.items()] + [""]
    return "\n".join(lines), skipped, unknown


def _pin(c: Checked) -> tuple[dict | None, str]:
    r, hub = c.ref, c.hub
    if hub is None or hub.state in ("missing", "unknown"):
        return None, f"Hub state {hub.state if hub else 'not looked up'}" + (
            f" ({hub.reason})" if hub and hub.reason else "")
    repo = r.repo if valid_repo_id(r.repo) is None else hub.renamed_to
    if repo is None or valid_repo_id(repo) is not None:
        return None, "not an 'org/name' id (a legacy name the Hub did not redirect)"
    if r.pinned:
        track = next((n for n in r.cache_refs if not n.startswith("refs/pr/") and valid_track(n) is None), None)
        return {"repo": repo, "type": r.type, "revision": r.revision.lower(),
                **({"track": track} if track else {})}, ""
    track = r.revision or "main"
    if valid_track(track) is not None:
        return None, f"revision {track[:60]!r} is not a branch or tag name"
    if hub.refs is None:
        return None, f"its branches could not be read ({hub.reason or 'no refs'})"
    sha = hub.refs.head(track)
    if sha is None:
        return None, f"no branch or tag {track!r} on the Hub"
    return {"repo": repo, "type": r.type, "revision": sha, "track": track}, ""


def write(path: Path, text: str) -> None:
    """Atomically: a reader (the daemon's SIGHUP reload) never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent or "."))
    try:
        os.fchmod(fd, 0o644)  # a list of public repo ids, read by the daemon's user: not a secret
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
