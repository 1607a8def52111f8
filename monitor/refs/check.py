"""Judge scanned references: look-alike namespaces (offline, the name engine) and, when asked,
their state on the Hub (one request per distinct repo, through monitor/hub/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from monitor.refs import hub_state
from monitor.refs.report import Checked
from monitor.refs.model import Reference

if TYPE_CHECKING:
    from monitor.config import LookalikeSettings
    from monitor.detect.lookalike import Screener
    from monitor.hub.client import HubClient


def screener(lookalike: "LookalikeSettings") -> "Screener | None":
    """The configured name engine, or None without protected names (no look-alike possible)."""
    if not lookalike.protected:
        return None
    from monitor.jobs.lookup import screener_for

    return screener_for(lookalike.protected, lookalike.allow)


def lookalikes(refs: Sequence[Reference], screener: "Screener | None") -> dict[str, str]:
    """namespace -> the protected name it imitates (best match), for the namespaces that do."""
    if screener is None:
        return {}
    names = sorted({r.namespace for r in refs if r.namespace})
    found: dict[str, str] = {}
    for match in screener.screen_many(names):
        found.setdefault(match.name, match.target)
    return found


def check(refs: Sequence[Reference], screener: "Screener | None", client: "HubClient | None",
          workers: int = 8) -> list[Checked]:
    imitated = lookalikes(refs, screener)
    # kernels are not served by the Hub's refs API that hub_state asks: no state, never "missing"
    states = hub_state.look_up(client, ((r.type, r.repo) for r in refs if r.type != "kernel"), workers) if client else {}
    ordered = sorted(refs, key=lambda r: (r.file, r.cell or 0, r.line or 0, r.repo))
    return [Checked(r, imitated.get(r.namespace) if r.namespace else None,
                    states.get(hub_state.key(r.type, r.repo)) if client else None)
            for r in ordered]
