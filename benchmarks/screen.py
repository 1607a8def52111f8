"""Benchmark: screen 1,000,000 synthetic Hub names against 1,000 synthetic protected names.

Not a test.  Run by hand:  python benchmarks/screen.py [--names N] [--protected P] [--seed S]

Prints names/s for `Screener.screen_many` end to end (batch folding, both index look-ups, the
cdist near-miss pass, building every Match; best of --repeat runs, all shown, since a shared
machine is noisy), the same for a straightforward per-pair
`rapidfuzz.distance.Levenshtein.distance` loop over a sample (extrapolated), their ratio, the
index build time and size, and the recall on the planted look-alikes.
Targets: the full million in <= 2 s on 2 cores, >= 50x the per-pair loop.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rapidfuzz.distance import Levenshtein  # noqa: E402

from monitor.detect.lookalike import Screener  # noqa: E402
from monitor.detect.permutations import permutations  # noqa: E402

ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
          "br", "ch", "cl", "dr", "gr", "kr", "pl", "sh", "st", "th", "tr", ""]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
CODAS = ["", "", "n", "r", "s", "t", "l", "x", "ng", "rk", "st"]
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                   for _ in range(syllables))


def protected_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.25:
        name = word(rng, rng.randint(1, 2)) + "-" + word(rng, rng.randint(1, 2))
    elif roll < 0.35:
        name = word(rng, rng.randint(2, 3)) + rng.choice(["ai", "-ai", "labs", "-research"])
    else:
        name = word(rng, rng.randint(2, 4))
    name = name[:20]
    return name.capitalize() if rng.random() < 0.3 else name


def random_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        name = word(rng, rng.randint(1, 4))
    elif roll < 0.8:
        name = word(rng, rng.randint(1, 2)) + rng.choice("-_.") + word(rng, rng.randint(1, 3))
    else:
        name = "".join(rng.choice(ALNUM) for _ in range(rng.randint(3, 20)))
    if rng.random() < 0.1:
        name += str(rng.randint(0, 999))
    name = name[:96] or "x"
    return name.upper() if rng.random() < 0.02 else name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--protected", type=int, default=1_000)
    ap.add_argument("--planted", type=float, default=0.01, help="share of permutations")
    ap.add_argument("--sample", type=int, default=1_000, help="names for the per-pair loop")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="screen_many runs; the best is kept")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    protected = list(dict.fromkeys(protected_name(rng) for _ in range(args.protected * 2)))
    protected = list({p.lower(): p for p in protected}.values())[:args.protected]
    names: list[str] = []
    planted: dict[int, str] = {}
    perm_cache: dict[str, list[str]] = {}
    for i in range(args.names):
        if rng.random() < args.planted:
            target = rng.choice(protected)
            perms = perm_cache.setdefault(target, sorted(permutations(target)))
            if perms:
                names.append(rng.choice(perms))
                planted[i] = target
                continue
        names.append(random_name(rng))
    print(f"{len(names):,} names ({len(planted):,} planted look-alikes), "
          f"{len(protected):,} protected names, {os.cpu_count()} CPUs")

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    screener = Screener(protected)
    build = time.perf_counter() - t0
    print(f"index build      {build:6.2f} s   {len(screener._perm):,} normal forms, "
          f"{len(screener._skel):,} skeletons, +{_rss_mb() - rss0:.0f} MB RSS")

    runs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        matches = list(screener.screen_many(names))
        runs.append(time.perf_counter() - t0)
    fast = min(runs)
    fast_rate = len(names) / fast
    print(f"screen_many      {fast:6.2f} s   {fast_rate:12,.0f} names/s   {len(matches):,} matches"
          f"   (best of {len(runs)}: {', '.join(f'{r:.2f}' for r in runs)} s)")

    sample = names[:args.sample]
    lowered = [p.lower() for p in protected]
    t0 = time.perf_counter()
    slow_hits = 0
    for name in sample:
        low = name.lower()
        for p in lowered:
            if Levenshtein.distance(low, p) <= 2:
                slow_hits += 1
    slow = time.perf_counter() - t0
    slow_rate = len(sample) / slow
    print(f"per-pair loop    {slow:6.2f} s   {slow_rate:12,.0f} names/s   on {len(sample):,} names "
          f"(extrapolated: {len(names) / slow_rate:,.0f} s for all)")
    print(f"speed-up         {fast_rate / slow_rate:6.0f}x")

    matched = {(m.name, m.target.lower()) for m in matches}
    caught = sum((names[i], t.lower()) in matched for i, t in planted.items())
    print(f"planted recall   {caught:,}/{len(planted):,}")


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


if __name__ == "__main__":
    main()
