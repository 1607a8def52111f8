"""Does each referenced repo still exist on the Hub, under that name? One `refs` request per repo.

The client follows the Hub's 307s; after one, `Refs.canonical_id` is the `id` the Hub's own answer
gives for the repo it landed on (never a path cut out of a URL), which tells a rename or transfer
from a plain hit (a mere casing difference is the same repo: ids are case-insensitive). A legacy
alias the Hub answers with 200 in place (`gpt2`, recorded 2025-03: tests/emulator/NOTES.md) is a
plain hit: it `exists` under the name the code uses, and `--write-pins` writes no pin for it (a
pin needs `namespace/name`).
Only a definitive answer says `missing`; a 5xx, a timeout, a spent budget or a rejected token say
`unknown` with the reason, never `missing`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from monitor.errors import Disabled, Gated, HubError, NotFound, TokenRejected
from monitor.hub.models import Refs, RepoId

if TYPE_CHECKING:
    from monitor.hub.client import HubClient


@dataclass(frozen=True)
class HubState:
    state: str                      # exists | renamed | missing | unknown
    renamed_to: str | None = None
    refs: Refs | None = None        # branch and tag heads, when the Hub showed them
    reason: str | None = None       # why unknown (or why refs are absent)
    token_rejected: bool = False    # unknown because the Hub refused our token: a config problem


def key(rtype: str, repo: str) -> tuple[str, str]:
    return rtype, repo.lower()


def look_up(client: "HubClient", repos: Iterable[tuple[str, str]], workers: int = 8
            ) -> dict[tuple[str, str], HubState]:
    """(type, repo) pairs -> their state, keyed by `key()`; each distinct repo asked once."""
    unique: dict[tuple[str, str], tuple[str, str]] = {}
    for t, r in repos:
        unique.setdefault(key(t, r), (t, r))  # the first spelling seen is the one asked
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique) or 1))) as pool:
        states = pool.map(lambda tr: state_of(client, *tr), unique.values())
        return dict(zip(unique, states))


def state_of(client: "HubClient", rtype: str, repo: str) -> HubState:
    try:
        refs = client.refs(RepoId(rtype, repo))
    except (Gated, Disabled) as e:  # the repo is there; we just may not read it
        return HubState("exists", reason=str(e))
    except NotFound:
        return HubState("missing")
    except TokenRejected as e:  # about our token, never about this repo
        return HubState("unknown", reason=str(e), token_rejected=True)
    except HubError as e:  # transient, or about our token: never about the repo
        return HubState("unknown", reason=str(e))
    except Exception as e:  # noqa: BLE001 - one odd answer must not sink the whole scan's report
        return HubState("unknown", reason=f"unexpected error ({type(e).__name__})")
    if refs.canonical_id.lower() != repo.lower():
        return HubState("renamed", renamed_to=refs.canonical_id, refs=refs)
    return HubState("exists", refs=refs)
