"""What one pin check may spend on data the repo's owner controls, and the order it spends it in.

An owner decides how many files a commit touches, how large they are, how many branches and
how much history a repo has. These caps fix the cost of every check whatever they decide; what a
cap leaves unread is reported as not inspected (the change is high at least), never assumed safe.
Cheapest evidence and the files transformers loads come first, so a remote-code change is read
within the cap however many other files come with it (see detect/risk.inspection_order).
"""

from __future__ import annotations

from monitor.hub import session

# Hub requests one check may send, retries and redirect hops included. With the one or two
# requests a check makes before its refs answer, a check stays under 150.
MAX_CHECK_REQUESTS = 120
# Config files read per check (a modified one costs two reads: before and after).
MAX_CONFIG_READS = 12
# History pages (50 commits each) spent proving exact pins are still on a branch, and the
# branches walked for it: a 1,200-branch repo costs the same as a 25-branch one.
MAX_REACH_REQUESTS = 60
MAX_REACH_BRANCHES = 25
MAX_REACH_PAGES_PER_BRANCH = 20


class CheckCaps:
    """The spending meter of one check. It reads the calling thread's request counter, so it
    counts what was really sent (a renamed repo's extra redirect hop, a retry) and is exact even
    with checks of other repos running in parallel threads."""

    def __init__(self, requests: int = MAX_CHECK_REQUESTS, configs: int = MAX_CONFIG_READS):
        self._start = session.thread_requests()
        self.requests = requests
        self.configs_left = configs

    @property
    def spent(self) -> int:
        return session.thread_requests() - self._start

    @property
    def left(self) -> int:
        return max(0, self.requests - self.spent)

    def allows(self, n: int = 1) -> bool:
        return self.left >= n

    def share(self, requests: int) -> "CheckCaps":
        """A sub-meter for one part of the check: at most `requests`, and never more than is left."""
        return CheckCaps(min(requests, self.left), 0)


def walk_order(branches: dict[str, str], tracked: tuple[str, ...], previous: dict[str, str]) -> list[str]:
    """Branches in the order a reachability walk tries them, stopping at the first that holds the
    pin: main (where most pins come from), tracked branches, branches new or moved since the last
    check (the newest activity), then the rest by name. Branches sharing a head are walked once."""
    def rank(name: str) -> tuple:
        return (name != "main", name not in tracked, previous.get(name) == branches[name], name)

    heads: set[str] = set()
    order = []
    for name in sorted(branches, key=rank):
        if branches[name] not in heads:
            heads.add(branches[name])
            order.append(name)
    return order
