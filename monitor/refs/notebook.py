"""Hub references in a Jupyter notebook's code cells.

Only code cells are read; markdown and raw cells are prose. IPython syntax is not Python, so
before parsing each line magic (`%pip ...`), shell escape (`!ls`, `x = !ls`) and help query
(`obj?`) becomes `pass` at the same indentation (line numbers stay true), and a cell magic other
than the timing ones (`%%bash`, `%%html` ...) skips its cell. A cell that still does not parse is
reported and the others are read. Module-level constants and import aliases are shared across
cells, as in a kernel.
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
    for index, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = _source(cell.get("source"))
        if source is None:
            continue
        tree = python.parse_tree(source, file, where=f"cell {index}: ")
        if isinstance(tree, Problem):
            problems.append(tree)
        else:
            trees.append((index, tree, source))
    constants = python.module_constants(t for _, t, _ in trees)
    aliases = python.import_aliases(t for _, t, _ in trees)  # an import in one cell serves the next
    refs, unresolved = [], []
    for index, tree, source in trees:
        r, u = python.references(tree, file, constants, cell=index, source=source, aliases=aliases)
        refs += r
        unresolved += u
    return Parsed(tuple(refs), tuple(unresolved), tuple(problems))


def _source(value: object) -> str | None:
    """The cell's code as Python, or None for a cell that is not Python at all."""
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return None
    lines = value.split("\n")
    first = lines[0].lstrip()
    if first.startswith("%%"):
        if not first[2:].startswith(_PYTHON_MAGICS):
            return None
        lines[0] = "pass"
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
