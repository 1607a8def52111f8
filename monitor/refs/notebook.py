"""Hub references in a Jupyter notebook's code cells.

Only code cells are read; markdown and raw cells are prose. IPython syntax is not Python, so
before parsing each line magic (`%pip ...`), shell escape (`!ls`, `x = !ls`) and help query
(`obj?`) becomes `pass` at the same indentation (line numbers stay true), and a cell magic other
than the timing ones (`%%bash`, `%%html` ...) skips its cell, except `%%writefile x.py`, a script
the notebook runs, read as Python. A cell that still does not parse is
reported and the others are read. Cells are walked in order with one environment, as a kernel
runs them: a constant bound in cell 3 serves cell 9, and a re-bound one serves what follows it.
Each reference carries `cell` and `line` (within the cell) and, for SARIF, `file_line`: its line
in the .ipynb JSON (each element of a cell's `source` list is one JSON line in nbformat's layout).
"""

from __future__ import annotations

import json
import re

from monitor.refs import python
from monitor.refs.model import Parsed, Problem

# Magics that run the rest of their line/cell as Python: keep that code.
_PYTHON_MAGICS = ("time", "timeit", "prun", "capture", "debug")
_LINE_MAGIC = re.compile(r"^(\s*)%(?:" + "|".join(_PYTHON_MAGICS) + r")\b(?:\s+-\S+(?:\s+\S+)?)*\s+(.*)$")
_SHELL_ASSIGN = re.compile(r"^\s*[A-Za-z_][\w\s,.\[\]]*=\s*[!%]")
_HELP = re.compile(r"^\s*(\?{1,2}[A-Za-z_][\w.]*|[A-Za-z_][\w.]*\?{1,2})\s*$")


def parse(raw: bytes | str, file: str) -> Parsed:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        return Parsed(problems=(Problem(file, f"not a notebook (invalid JSON: {str(e)[:80]})"),))
    cells = doc.get("cells") if isinstance(doc, dict) else None
    if not isinstance(cells, list):
        return Parsed(problems=(Problem(file, "not a notebook (no 'cells' list)"),))
    trees, problems = [], []
    starts = _source_lines(raw)
    for index, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = _source(cell.get("source"))
        if source is None:
            continue
        tree, problem = python.parse_readable(source, file, where=f"cell {index}: ")
        if problem is not None:
            problems.append(problem)
        if tree is not None:
            start = starts[index - 1] if starts is not None and index - 1 < len(starts) else None
            trees.append((index, tree, source, start, isinstance(cell.get("source"), list)))
    scanner = python.Scanner(file)  # one environment and one import table for every cell, in order
    for index, tree, source, start, per_line in trees:
        scanner.module(tree, source, cell=index, file_line=start, per_line=per_line)
    found = scanner.finish()
    return Parsed(found.references, found.unresolved, tuple(problems))


_SOURCE_KEY = re.compile(r'"source"\s*:\s*(\[)?')
_CELL_KEY = re.compile(r'"cell_type"\s*:')


def _source_lines(raw: bytes | str) -> list[int] | None:
    """The .ipynb line of each cell's first source line (in cell order), or None when the file's
    layout does not let us tell (a "source" key count that differs from the cell count)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    keys = list(_SOURCE_KEY.finditer(text))
    if len(keys) != len(_CELL_KEY.findall(text)):
        return None
    out, line, last = [], 1, 0
    for m in keys:
        line += text.count("\n", last, m.start())
        last = m.start()
        # a list's first element sits on the next line in nbformat's indented layout
        nxt = text[m.end():m.end() + 200].lstrip(" \t\r")
        out.append(line + (1 if m.group(1) and nxt.startswith("\n") else 0))
    return out


def _source(value: object) -> str | None:
    """The cell's code as Python, or None for a cell that is not Python at all."""
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return None
    lines = value.split("\n")
    first = lines[0].lstrip()
    if first.startswith("%%"):
        # `%%writefile train.py`: the cell is a script the notebook then runs (`!python train.py`)
        script = first.startswith("%%writefile") and first.split()[-1].lower().endswith(".py")
        if not first[2:].startswith(_PYTHON_MAGICS) and not script:
            return None
        lines[0] = "pass"
        if script:
            return "\n".join(lines)  # its `!`/`%` lines are the script's own text
    out, continued, indent = [], False, ""
    for line in lines:
        stripped = line.lstrip()
        if continued:  # the rest of a `!pip install a \` shell line
            out.append(indent + "pass")
            continued = line.endswith("\\")
            continue
        indent = line[:len(line) - len(stripped)]
        m = _LINE_MAGIC.match(line)
        if m:
            out.append(m.group(1) + m.group(2))
        elif stripped.startswith(("%", "!")) or _SHELL_ASSIGN.match(line) or _HELP.match(line):
            out.append(indent + "pass")
            continued = line.endswith("\\")
        else:
            out.append(line)
    return "\n".join(out)
