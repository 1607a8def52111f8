"""Requests and bytes content inspection costs, end to end (issue 14).

Run by hand:  .venv/bin/python benchmarks/content_reads.py [--case big|shards|vocab|gguf20|all]
The Hub emulator (with its CDN origin) runs in a child process; each `hubwatch once` runs in
another, started from scratch. Requests and bytes are counted by the emulator: resolves at the
Hub origin, ranges and body bytes at the CDN. Cases:

- big:    a 5 GB PyTorch ZIP64 archive (data.pkl ~0.7 MB, 6,000 tensors; the storage a hole of
          zeros served lazily, never held): the baseline audit's requests and bytes to a verdict.
          Target: ≤ 4 requests and ≤ 2 MB.
- shards: a 64-shard checkpoint (64 × 2 GB archives): the baseline audit.
- vocab:  a GGUF whose tokenizer holds 150,000 tokens before the chat template: bytes read to reach it.
- gguf20: a 20-file GGUF repo whose update changes every file's template: the move's check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER = r"""
import json, sys
from tests import content_corpus as cc
from tests.emulator import HubEmulator
from tests.emulator.cdn import Virtual
from tests.gguf_writer import gguf_bytes, llama_like

def virtual(segments, tag):
    return Virtual([(s, None) if isinstance(s, int) else (len(s), s) for s in segments], tag)

def state_dict(n, start=0):
    sd = cc.OrderedDict()
    for i in range(start, start + n):
        st = cc._Storage("Half", str(i), b"", 4096 * 1024)
        sd[f"model.layers.{i // 10}.mlp.block_{i % 10}.weight"] = cc._Tensor(st, (4096, 1024))
    return sd

def archive(n, hole, stem, start=0):
    with cc.stand_ins(cc._torch_modules()):
        pkl, _ = cc.torch_pickle(state_dict(n, start))
    segs = cc.zip_segments([(f"{stem}/data.pkl", pkl), (f"{stem}/data/0", hole), (f"{stem}/version", b"3\n")],
                           zip64=True)
    return virtual(segs, stem + str(start)), len(pkl)

TEMPLATE = open("tests/data/templates/trl--llama3.jinja").read()
def gguf(template, n_vocab):
    return gguf_bytes(llama_like({"default": template}, n_vocab=n_vocab), tensor_data=1 << 20)

case = sys.argv[1]
emu = HubEmulator().start()
emu.rate_limit(1_000_000)
info = {}
if case == "big":
    f, n = archive(6000, 5 * 1024**3, "pytorch_model")
    emu.add_repo("bench/big", files={"config.json": "{}", "pytorch_model.bin": f})
    info = {"data_pkl_bytes": n, "file_bytes": f.size}
elif case == "shards":
    files = {}
    for i in range(64):
        name = f"pytorch_model-{i + 1:05d}-of-00064.bin"
        files[name], n = archive(100, 2 * 1024**3, name[:-4], start=i * 100)
    emu.add_repo("bench/shards", files={"config.json": "{}", **files})
    info = {"data_pkl_bytes_each": n, "files": 64}
elif case == "vocab":
    data = gguf(TEMPLATE, 150_000)
    emu.add_repo("bench/vocab", files={"model-Q4_K_M.gguf": data})
    info = {"file_bytes": len(data)}
elif case == "gguf20":
    emu.add_repo("bench/gguf20", files={f"model-{i:02d}.gguf": gguf(TEMPLATE, 32_000) for i in range(20)})
print(emu.url, flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "commit":
        emu.commit("bench/gguf20", {f"model-{i:02d}.gguf": gguf(TEMPLATE + " ", 32_000) for i in range(20)})
    elif cmd == "clear":
        emu.clear_log(); emu.cdn.reset(); emu.bytes_served = 0
    elif cmd == "count":
        info.update(resolves=emu.count(r"/resolve/"), api=emu.count(r"^GET /api/|^POST /api/"),
                    cdn_requests=emu.cdn.requests, cdn_bytes=emu.cdn.bytes_served, hub_bytes=emu.bytes_served,
                    auth_at_cdn=len(emu.cdn.auth_seen))
        print(json.dumps(info), flush=True)
    print("ok", flush=True)
"""


def run_once(config: Path, home: Path) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_ENDPOINT", None)
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "monitor", "once", "-c", str(config)], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p.returncode, time.monotonic() - started, p.stderr.decode(errors="replace")


def findings(config: Path, home: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "monitor", "findings", "--json", "-c", str(config)], cwd=ROOT,
                         env=env, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def measure(case: str) -> dict:
    server = subprocess.Popen([sys.executable, "-c", SERVER, case], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def ask(cmd: str) -> str | None:
        server.stdin.write(cmd + "\n")
        server.stdin.flush()
        out = None
        while (line := server.stdout.readline().strip()) != "ok":
            out = line
        return out

    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            config = tmp / "config.toml"
            repo = {"big": "bench/big", "shards": "bench/shards", "vocab": "bench/vocab",
                    "gguf20": "bench/gguf20"}[case]
            config.write_text(f'[hub]\nendpoint = "{url}"\n[state]\npath = "{tmp / "state.db"}"\n'
                              f'[limits]\nhub_requests_per_5min = 1000000\n[[pin]]\nrepo = "{repo}"\ntrack = "main"\n')
            ask("clear")
            code, seconds, err = run_once(config, tmp)
            if case == "gguf20":
                ask("commit")
                ask("clear")
                code, seconds, err = run_once(config, tmp)
            counts = json.loads(ask("count"))
            kinds = [(f["kind"], f["severity"]) for f in findings(config, tmp)]
            return {"case": case, "exit": code, "seconds": round(seconds, 2), **counts, "findings": kinds,
                    "stderr": err[-300:]}
    finally:
        server.stdin.close()
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", default="all", choices=["big", "shards", "vocab", "gguf20", "all"])
    args = ap.parse_args()
    for case in (["big", "shards", "vocab", "gguf20"] if args.case == "all" else [args.case]):
        print(json.dumps(measure(case)), flush=True)


if __name__ == "__main__":
    main()
