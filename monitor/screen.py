"""`hubwatch screen`: read Hub names, print the ones that imitate a protected namespace.

Input: one name per line; surrounding whitespace is ignored, as are blank lines and lines whose
first non-blank character is ``#``.  A name outside ``[A-Za-z0-9._-]`` or longer than 96
characters is reported on `err` (one line, with its line number) and skipped: never fatal.

Output: one line per (name, protected target) match, in input order, best target first -- as a
JSON object ``{"name", "target", "techniques", "score"}`` with `as_json`, else a readable line.
"""

from __future__ import annotations

import json
from itertools import islice
from typing import Iterable, Iterator, TextIO

from monitor.detect.lookalike import Match, Screener
from monitor.detect.names import validate_name

BATCH = 65536
_SHOWN = 60  # characters of an invalid line echoed back


def screen_stream(lines: Iterable[str], screener: Screener, out: TextIO, err: TextIO, *,
                  as_json: bool) -> int:
    """Screen every name in `lines`; write matches to `out`, bad lines to `err`.  Returns the
    number of matches written."""
    matches = 0
    names = _names(lines, err)
    while batch := list(islice(names, BATCH)):
        for match in screener.screen_many(batch):
            out.write(_render(match, as_json) + "\n")
            matches += 1
        out.flush()
    return matches


def _names(lines: Iterable[str], err: TextIO) -> Iterator[str]:
    for lineno, line in enumerate(lines, 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        reason = validate_name(name)
        if reason:
            shown = name if len(name) <= _SHOWN else name[:_SHOWN] + "..."
            err.write(f"line {lineno}: skipped {shown!r}: {reason}\n")
            continue
        yield name


def _render(match: Match, as_json: bool) -> str:
    if as_json:
        return json.dumps(match.to_dict(), separators=(",", ":"))
    return (f"{match.name} looks like {match.target} "
            f"({', '.join(match.techniques)}; score {match.score:.2f})")
