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
from monitor.detect.names import plain_block, validate_name

BATCH = 65536
BLOCK_CHARS = 1 << 20
_SHOWN = 60  # characters of an invalid line echoed back


def screen_stream(lines: Iterable[str], screener: Screener, out: TextIO, err: TextIO, *,
                  as_json: bool) -> int:
    """Screen every name in `lines`; write matches to `out`, bad lines to `err`.  Returns the
    number of matches written."""
    matches = 0
    for batch in _batches(lines, err):
        for match in screener.screen_many(batch):
            out.write(_render(match, as_json) + "\n")
            matches += 1
        out.flush()
    return matches


def _batches(lines: Iterable[str], err: TextIO) -> Iterator[list[str]]:
    """Lists of valid names.  A block of lines that holds only names (the usual case: no blank
    line, comment, padding or bad character) is split with one C-level call; any other block
    goes line by line, so the reports keep their line numbers."""
    lineno = 0
    for text in _blocks(lines):
        names = text.split("\n")
        if names[-1] == "":
            names.pop()
        if plain_block(text.removesuffix("\n")):
            yield names
        else:
            yield list(_names(names, err, lineno))
        lineno += len(names)


def _blocks(lines: Iterable[str]) -> Iterator[str]:
    """The input as blocks of whole lines (a file is read a megabyte at a time).  Memory stays
    bounded on hostile input: of a line longer than a block only the start is kept, enough for
    it to be reported as too long on its own line number."""
    read = getattr(lines, "read", None)
    readline = getattr(lines, "readline", None)
    if read is not None and readline is not None:
        while text := read(BLOCK_CHARS):
            if not text.endswith("\n"):
                text += readline(BLOCK_CHARS)
                while not text.endswith("\n"):  # still inside one enormous line: skip the rest
                    rest = readline(BLOCK_CHARS)
                    if not rest:
                        break
                    if rest.endswith("\n"):
                        text += "\n"
            yield text
        return
    it = iter(lines)
    while block := list(islice(it, BATCH)):
        # lines from an iterable may lack their newline: join what is one line per item
        yield "".join(line if line.endswith("\n") else line + "\n" for line in block)


def _names(lines: Iterable[str], err: TextIO, offset: int = 0) -> Iterator[str]:
    for lineno, line in enumerate(lines, offset + 1):
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
