"""Benchmark: reaching the chat template of a GGUF file with a 150,000-token vocabulary.

Not a test.  Run by hand:  python benchmarks/gguf_header.py [--vocab N] [--merges N] [--size-gb G]
                           python benchmarks/gguf_header.py --corpus   (CPU per real template)

Writes a GGUF file the way llama.cpp's converter orders it (general.*, model numbers,
tokenizer.ggml.tokens / scores / token_type / merges, then tokenizer.chat_template and a named
tool_use template; a real Llama 3.1 template from tests/data/templates), then extends it sparsely
to --size-gb so the tensor data is "there" without using disk. Reads its header through a
counting file RangeReader (each read() = one HTTP Range request in production) and reports the
requests, the bytes read against the key-value section's size and the file's, peak Python memory
held while reading (tracemalloc) and the CPU time of the header read and of the template
analysis (untraced; memory is measured on a second, traced read). Each run is its own process (`--child`), timed from process start to exit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


class FileReader:
    """A RangeReader over a local file that counts requests and bytes."""

    def __init__(self, path: str):
        self.path = path
        self._size = os.path.getsize(path)
        self._read = 0
        self.requests = 0
        self._f = open(path, "rb")

    @property
    def size(self) -> int:
        return self._size

    @property
    def bytes_read(self) -> int:
        return self._read

    def read(self, offset: int, length: int) -> bytes:
        self.requests += 1
        self._f.seek(offset)
        data = self._f.read(length)
        self._read += len(data)
        return data


def write(path: str, vocab: int, merges: int, size_gb: float) -> int:
    from tests.gguf_writer import gguf_bytes, llama_like

    template = open(os.path.join(ROOT, "tests", "data", "templates", "trl--llama3_1.jinja")).read()
    tool = open(os.path.join(ROOT, "tests", "data", "templates",
                             "llama.cpp--NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"), newline="").read()
    data = gguf_bytes(llama_like({"default": template, "tool_use": tool}, n_vocab=vocab, merges=merges),
                      tensors=291, tensor_data=0)
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(max(len(data), int(size_gb * 1024 ** 3)))
    end = data.index(tool.encode()) + len(tool)
    return end


def child(path: str) -> None:
    import tracemalloc

    cpu0 = time.process_time()
    from monitor.content.gguf import read_gguf_header
    from monitor.content.templates import analyse_template

    reader = FileReader(path)
    cpu1 = time.process_time()
    header = read_gguf_header(reader)
    cpu2 = time.process_time()
    verdicts = {name: analyse_template(text).severity for name, text in header.templates.items()}
    cpu3 = time.process_time()
    tracemalloc.start()          # a second read, traced (tracemalloc slows it: not in the CPU figures)
    read_gguf_header(FileReader(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({
        "not_inspected": header.not_inspected, "templates": sorted(header.templates), "verdicts": verdicts,
        "keys": header.metadata_keys, "requests": reader.requests, "bytes_read": reader.bytes_read,
        "peak_bytes": peak, "cpu_import": cpu1 - cpu0, "cpu_header": cpu2 - cpu1, "cpu_analyse": cpu3 - cpu2,
    }))


def corpus() -> None:
    """CPU per template: every real template of tests/data/templates analysed alone, and each
    compared with a poisoned copy of itself (parsed twice: old and new)."""
    import glob
    import statistics

    from monitor.content.templates import analyse_template, compare_templates

    times, compares = [], []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "templates", "*.jinja"))):
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        t0 = time.process_time()
        analyse_template(text)
        times.append(time.process_time() - t0)
        t0 = time.process_time()
        compare_templates({"default": text}, {"default": text + "{{ cycler.__init__.__globals__ }}"})
        compares.append(time.process_time() - t0)
    print(f"{len(times)} real templates: analysis CPU median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms, total {sum(times):.2f} s; old/new comparison median "
          f"{statistics.median(compares) * 1000:.1f} ms, max {max(compares) * 1000:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=150_000)
    ap.add_argument("--merges", type=int, default=150_000)
    ap.add_argument("--size-gb", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child")
    ap.add_argument("--corpus", action="store_true", help="CPU per real template analysed instead")
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    if args.corpus:
        corpus()
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model-Q4_K_M.gguf")
        kv_end = write(path, args.vocab, args.merges, args.size_gb)
        print(f"file {os.path.getsize(path) / 1024 ** 3:.1f} GiB (sparse), vocabulary {args.vocab:,}, "
              f"merges {args.merges:,}; key-value section ends at byte {kv_end:,}")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", path], capture_output=True, text=True,
                                 check=True, cwd=ROOT).stdout
            wall = time.perf_counter() - t0
            r = json.loads(out)
            print(f"requests {r['requests']}, bytes read {r['bytes_read']:,} "
                  f"({r['bytes_read'] / kv_end:.2f}x the key-value section), peak Python memory "
                  f"{r['peak_bytes'] / 1024 ** 2:.1f} MiB, CPU header {r['cpu_header'] * 1000:.0f} ms, "
                  f"analysis {r['cpu_analyse'] * 1000:.0f} ms, process {wall:.2f} s; templates {r['templates']} "
                  f"{r['verdicts']}, not_inspected {r['not_inspected']}")


if __name__ == "__main__":
    main()
