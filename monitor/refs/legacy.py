"""The Hub's legacy single-name repos (`gpt2`, `bert-base-uncased`, `squad`): the only single-segment
names that are Hub references for sure. Any other single segment (`my_awesome_qa_model`) may as
well be a local directory: it is reported with `ambiguous: true`.

The lists ship with the package (monitor/refs/data/legacy_*.txt; their headers name the public
source each was derived from). Names compare case-insensitively, as the Hub's ids do.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).with_name("data")


@lru_cache(maxsize=None)
def names(rtype: str) -> frozenset[str]:
    path = _DATA / f"legacy_{rtype}s.txt"
    if not path.is_file():
        return frozenset()
    with path.open(encoding="utf-8") as fh:
        return frozenset(line.strip().lower() for line in fh if line.strip() and not line.startswith("#"))


def is_legacy(name: str, rtype: str) -> bool:
    return "/" not in name and name.lower() in names(rtype)
