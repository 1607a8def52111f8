"""Peak memory of `hubwatch once` when a pinned repo's config.json becomes 160 MB.

Run by hand:  .venv/bin/python benchmarks/big_config.py [--mb 160] [--root PATH]
End to end: the Hub emulator runs in one child process, and each `hubwatch once` (the baseline,
then the check that sees the change) in another, started from scratch; the peak RSS of those
hubwatch processes is read from the kernel (wait4 rusage). Target: < 200 MB.

Two cases: the new config.json is huge (the manifest size stops the read before any download),
and the old one is huge while the new one is small (no manifest size for the old side: the
answer's size header, or the streamed cap, stops it). A third, `--case files`, makes the change
add `--files` files (200,000: a file list past the 16 MB JSON cap) next to an auto_map config. `--root` runs another checkout's hubwatch,
e.g. main's, for a before/after figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER = r"""
import json, sys
from tests.emulator import HubEmulator
mb, case, nfiles = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
big = json.dumps({"model_type": "gptj", "pad": "x" * (mb * 1024 * 1024)})
emu = HubEmulator().start()
first = big if case == "old" else '{"model_type": "gptj"}'
emu.add_repo("EleutherAI/gpt-j-6b", files={"config.json": first, "model.safetensors": b"w" * 64})
print(emu.url, flush=True)
sys.stdin.readline()  # the baseline is done: make the change
if case == "files":
    emu.commit("EleutherAI/gpt-j-6b", {**{f"shards/part-{i:06d}.bin": str(i) for i in range(nfiles)},
                                       "config.json": '{"model_type": "gptj", "auto_map": {"AutoModel": "m.M"}}'})
else:
    emu.commit("EleutherAI/gpt-j-6b", {"config.json": big if case == "new" else '{"model_type": "gptj2"}'})
print("committed", flush=True)
sys.stdin.read()
"""


def once(root: Path, config: Path, home: Path) -> tuple[int, int, str]:
    """Run `hubwatch once` in a fresh process -> (exit code, peak RSS in MB, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_ENDPOINT", None)
    p = subprocess.Popen([sys.executable, "-m", "monitor", "once", "-c", str(config)], cwd=root, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, usage.ru_maxrss // 1024, err


def findings(root: Path, config: Path, home: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "monitor", "findings", "--json", "-c", str(config)], cwd=root,
                         env=env, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_case(case: str, args: argparse.Namespace) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.mb), case, str(args.files)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = server.stdout.readline().strip()
        tmp = Path(tempfile.mkdtemp(prefix="hubwatch-bench-"))
        config = tmp / "config.toml"
        config.write_text(f'[hub]\nendpoint = "{url}"\n[state]\npath = "state.db"\n[pins]\nevery = "10m"\n'
                          '[[pin]]\nrepo = "EleutherAI/gpt-j-6b"\ntrack = "main"\n')
        code1, rss1, err1 = once(args.root, config, tmp)
        server.stdin.write("go\n")
        server.stdin.flush()
        server.stdout.readline()
        code2, rss2, err2 = once(args.root, config, tmp)
        got = [(f["kind"], f["severity"], f["summary"][:140]) for f in findings(args.root, config, tmp)]
        what = f"{args.files} files added" if case == "files" else f"{case} config.json {args.mb} MiB"
        print(f"{what}: baseline exit {code1}, peak RSS {rss1} MB; "
              f"change exit {code2}, peak RSS {rss2} MB (target < 200 MB)")
        print(f"  findings: {got}")
        if code2 != 0:
            print("  stderr:", err2[-500:])
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=160)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose hubwatch runs")
    ap.add_argument("--case", choices=("new", "old", "both", "files"), default="both")
    ap.add_argument("--files", type=int, default=200_000, help="files the change adds (--case files)")
    args = ap.parse_args()
    for case in (("new", "old") if args.case == "both" else (args.case,)):
        run_case(case, args)


if __name__ == "__main__":
    main()
