"""How long a user waits for the short commands, end to end (process start to exit).

Run by hand:  .venv/bin/python benchmarks/cli_latency.py [--runs 5]

Times `hubwatch --help`, `hubwatch check-config` and a cold `hubwatch lookup NAME` (a new process
each time, so imports and the look-alike index are paid every run; no cache on disk) against the
Hub emulator on loopback, running in a child process so it does not share this process's CPU
time.  Prints the median and best of --runs for each.
Targets: lookup <= 0.5 s (median of 5); --help and check-config <= 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER = r"""
import sys
from tests.emulator import HubEmulator
emu = HubEmulator().start()
# The PoisonGPT impostor: a young, unverified org one letter off a protected name, with the
# protected org's repo names.
emu.add_org("EleutherAI", verified=True, followers=5000)
emu.add_repo("EleutherAI/gpt-j-6b", files={"config.json": "{}"})
emu.add_org("EleuterAI", followers=1)
emu.add_repo("EleuterAI/gpt-j-6b", files={"config.json": "{}", "pytorch_model.bin": b"x"})
print(emu.url, flush=True)
sys.stdin.read()
"""

PROTECTED = ["EleutherAI", "meta-llama", "mistralai", "google", "openai"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str], runs: int) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds) of each run; CPU (user + sys of the waited-for child) is
    steadier than wall time on a shared machine."""
    out = []
    for _ in range(runs):
        cpu0, t0 = _children_cpu(), time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out.append((time.perf_counter() - t0, _children_cpu() - cpu0))
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return out


def report(what: str, runs: list[tuple[float, float]], target: float) -> None:
    walls = [w for w, _ in runs]
    cpus = [c for _, c in runs]
    print(f"{what:<28} median {statistics.median(walls):5.3f} s  best {min(walls):5.3f} s  "
          f"CPU median {statistics.median(cpus):5.3f} s  (target <= {target} s)  "
          f"runs: {', '.join(f'{r:.3f}' for r in walls)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--source", metavar="DIR",
                    help="run the hubwatch package found in DIR (e.g. an extracted older "
                         "commit: `git archive main | tar -x -C DIR`) instead of the installed "
                         "one, to compare before and after in the same conditions")
    args = ap.parse_args()
    hubwatch = [shutil.which("hubwatch", path=str(Path(sys.executable).parent)) or "hubwatch"]
    if args.source:
        # -S: no site hooks, so the installed (editable) package cannot shadow DIR
        site = [p for p in sys.path if p.endswith("site-packages")]
        hubwatch = [sys.executable, "-S", "-c",
                    f"import sys; sys.path[:0] = {[str(Path(args.source).resolve()), *site]!r}; "
                    "sys.argv[0] = 'hubwatch'; from monitor.cli import main; sys.exit(main())"]

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = server.stdout.readline().strip()
    try:
        tmp = Path(tempfile.mkdtemp(prefix="hubwatch-bench-"))
        config = tmp / "config.toml"
        config.write_text(f'[hub]\nendpoint = "{url}"\n[state]\npath = "{tmp / "state.db"}"\n'
                          f'[lookalike]\nprotected = {PROTECTED!r}\n'.replace("'", '"'))
        env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(tmp / "hf")}
        print(f"{os.cpu_count()} CPUs, emulator at {url}")
        report("hubwatch --help", timed([*hubwatch, "--help"], env, args.runs), 0.3)
        report("hubwatch check-config", timed([*hubwatch, "check-config", "-c", str(config)], env,
                                              args.runs), 0.3)
        report("hubwatch lookup (cold)", timed([*hubwatch, "lookup", "EleuterAI", "-c", str(config)],
                                               env, args.runs), 0.5)
    finally:
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
