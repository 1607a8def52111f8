"""Benchmark: `hubwatch screen` of 1,000,000 synthetic Hub names against 1,000 protected names,
end to end (process start to exit), the way a user meets it.

Not a test.  Run by hand:  .venv/bin/python benchmarks/screen.py [--names N] [--protected P]

Writes the names (about 1% planted permutations of the protected names) to a file and a config
listing the protected names, then runs `hubwatch screen FILE -c CONFIG --json` as a subprocess
--repeat times (cold every time: nothing is cached on disk) and reports:

- the end-to-end wall time and the child's peak RSS (best and median of the runs: the machine is
  shared and noisy), and its parts: the imports alone, and imports + config + index build
  (`hubwatch screen` of an empty file) -- what remains is reading, screening and printing;
- a straightforward per-pair `rapidfuzz.distance.Levenshtein.distance` loop timed in this same
  run over a sample, extrapolated to every pair, and the end-to-end speed-up over it;
- the recall on the planted look-alikes, read back from the JSON output.

Targets: <= 2 s end to end, >= 50x the per-pair loop, recall 1.0, peak RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz.distance import Levenshtein  # noqa: E402

from monitor.detect.permutations import permutations  # noqa: E402

ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
          "br", "ch", "cl", "dr", "gr", "kr", "pl", "sh", "st", "th", "tr", ""]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
CODAS = ["", "", "n", "r", "s", "t", "l", "x", "ng", "rk", "st"]
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
IMPORTS = ("import monitor.cli, monitor.config, monitor.screen, "
           "monitor.detect.lookalike")


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


# Runs each measured command from a small process started before the names are generated: a
# child forked from this (by then large) process would count this process's pages in its own
# peak RSS (Linux keeps the pre-exec high-water mark in ru_maxrss).
RUNNER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    cmd, out_path = json.loads(line)
    t0 = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps({"wall": time.perf_counter() - t0, "rss": usage.ru_maxrss / 1024,
                      "cpu": usage.ru_utime + usage.ru_stime,
                      "code": os.waitstatus_to_exitcode(status), "err": err.decode()[-500:]}),
          flush=True)
"""


class Runner:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", RUNNER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, cmd: list[str], out_path: Path) -> tuple[float, float, float]:
        """(wall seconds, peak RSS in MB, CPU seconds) of one child, start to exit."""
        self.proc.stdin.write(json.dumps([cmd, str(out_path)]) + "\n")
        self.proc.stdin.flush()
        result = json.loads(self.proc.stdout.readline())
        if result["code"] != 0:
            sys.exit(f"{' '.join(cmd)} exited {result['code']}: {result['err']}")
        return result["wall"], result["rss"], result["cpu"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--protected", type=int, default=1_000)
    ap.add_argument("--planted", type=float, default=0.01, help="share of permutations")
    ap.add_argument("--sample", type=int, default=1_000, help="names for the per-pair loop")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="end-to-end runs; best and median shown")
    args = ap.parse_args()
    runner = Runner()
    rng = random.Random(args.seed)
    hubwatch = shutil.which("hubwatch", path=str(Path(sys.executable).parent)) or "hubwatch"

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

    tmp = Path(tempfile.mkdtemp(prefix="hubwatch-screen-"))
    names_file, empty, config = tmp / "names.txt", tmp / "empty.txt", tmp / "config.toml"
    names_file.write_text("\n".join(names) + "\n")
    empty.write_text("")
    config.write_text("[lookalike]\nprotected = [" + ", ".join(f'"{p}"' for p in protected) + "]\n")

    imports, builds, runs, rss, cpu = [], [], [], [], []
    out_file = tmp / "out.jsonl"
    for _ in range(args.repeat):
        imports.append(runner.run([sys.executable, "-c", IMPORTS], out_file)[0])
        builds.append(runner.run([hubwatch, "screen", str(empty), "-c", str(config)], out_file)[0])
        wall, peak, used = runner.run([hubwatch, "screen", str(names_file), "-c", str(config),
                                       "--json"], out_file)
        runs.append(wall)
        rss.append(peak)
        cpu.append(used)
    runner.close()
    out = out_file.read_bytes()
    best, med = min(runs), statistics.median(runs)
    print(f"hubwatch screen  {best:6.2f} s best, {med:.2f} s median of {len(runs)} "
          f"({', '.join(f'{r:.2f}' for r in runs)} s), end to end, cold")
    print(f"  CPU time       {min(cpu):6.2f} s best, {statistics.median(cpu):.2f} s median "
          "(user + sys: what the wall time is on an idle machine)")
    print(f"  imports        {min(imports):6.2f} s best, {statistics.median(imports):.2f} s median")
    print(f"  + config and index build (screen of an empty file) "
          f"{min(builds):.2f} s best, {statistics.median(builds):.2f} s median")
    print(f"  peak RSS       {min(rss):6.0f} MB best, {statistics.median(rss):.0f} MB median")

    sample = names[:args.sample]
    lowered = [p.lower() for p in protected]
    hits = 0
    t0 = time.perf_counter()
    for name in sample:
        low = name.lower()
        for p in lowered:
            if Levenshtein.distance(low, p) <= 2:
                hits += 1
    slow = (time.perf_counter() - t0) * len(names) / len(sample)
    print(f"per-pair loop    {slow:6.0f} s extrapolated from {len(sample):,} names "
          f"({len(sample) * len(lowered):,} pairs)")
    print(f"speed-up         {slow / best:6.0f}x best, {slow / med:.0f}x median (end to end)")

    matched = set()
    for line in out.splitlines():
        row = json.loads(line)
        matched.add((row["name"], row["target"].lower()))
    caught = sum((names[i], t.lower()) in matched for i, t in planted.items())
    print(f"planted recall   {caught:,}/{len(planted):,}   ({len(out.splitlines()):,} matches printed)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
