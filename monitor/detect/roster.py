"""Our people in orgs that pass for someone else's. Pure: names, facts and what we saw before in.

Organization Confusion (the ATLAS case study): unverified orgs named after companies collect
members who think they joined the real one, and those members upload private models there.
The harm goes through our people, so we watch their memberships:

- critical: a member in an unverified org whose name imitates a protected name (the name engine);
- high: a member newly in an unverified org whose name contains a protected name's distinctive
  token (``eleuther-research-lab`` for EleutherAI), which no spelling rule would call a look-alike.

One alert per (member, org), and a new one when the org has gained repos since the last alert.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from monitor.detect.findings import Finding, Link
from monitor.detect.lookalike import Match
from monitor.detect.names import compact, normalise
from monitor.detect.permutations import AFFIXES, MIN_TYPO_LEN, strip_affix

MAX_REPOS_LISTED = 10


def distinctive_tokens(protected: Iterable[str]) -> dict[str, str]:
    """token -> protected name: the words of a name that identify it (``llama`` for meta-llama,
    ``eleuther`` for EleutherAI), or the whole compact name when no word is long enough to be
    distinctive on its own (``openai``: ``open`` is everywhere)."""
    out: dict[str, str] = {}
    for name in protected:
        norm = normalise(name)
        stripped = strip_affix(norm)
        words = [w for w in (stripped[0] if stripped else norm).split("-")
                 if len(w) >= MIN_TYPO_LEN and w not in AFFIXES]
        for token in words or [compact(name)]:
            out.setdefault(token, name)
    return out


def token_in(org: str, tokens: dict[str, str]) -> str | None:
    """The protected name whose distinctive token `org` contains, if any."""
    flat = compact(org)
    return next((target for token, target in tokens.items() if token in flat), None)


def what_to_do(member: str, org: str, target: str) -> str:
    return (f"Ask {member} whether they joined {org} on purpose and what they uploaded there; "
            f"{org} is not {target}. If it was a mistake: leave the org, move or delete anything "
            f"uploaded, rotate any token used there, and report {org} to the Hub from its page.")


def finding(member: str, org: str, target: str, match: Match | None, verified: bool | None,
            created_at: str | None, repos: Sequence[str], repo_count: int | None, base: str) -> Finding:
    """critical when the org imitates a protected name; high when it only contains its token."""
    severity = "critical" if match else "high"
    how = (f"imitates {target} ({', '.join(match.techniques)})" if match
           else f"uses {target}'s name")
    count = "unknown" if repo_count is None else str(repo_count)
    base = base.rstrip("/")
    return Finding.make(
        "roster_membership", severity, org,
        f"our member {member} is in {org}, an unverified org that {how}; it has {count} repo(s)",
        key=[member.lower(), org.lower(), repo_count],
        evidence={"member": member, "org": org, "target": target,
                  "techniques": list(match.techniques) if match else [], "verified": verified,
                  "created_at": created_at, "repo_count": repo_count, "repos": list(repos[:MAX_REPOS_LISTED]),
                  "what_to_do": what_to_do(member, org, target)},
        links=(Link("Org", f"{base}/{org}"), Link("Member", f"{base}/{member}")))
