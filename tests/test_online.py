"""Contract test against the real huggingface.co (skipped by default: `pytest -m online`).

It runs in a subprocess because this test session points huggingface_hub at the emulator
(HF_ENDPOINT is read once at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json
from monitor.config import HubSettings
from monitor.hub.client import HubClient
from monitor.hub.models import RepoId
c = HubClient(HubSettings(endpoint="https://huggingface.co"))
repo = RepoId("model", "openai-community/gpt2")
refs = c.refs(repo)
info = c.info(repo, refs.branch("main"))
hist = c.history(repo, refs.branch("main"), max_pages=1)
print(json.dumps({"canonical": refs.canonical_id, "main": refs.branch("main"), "sha": info.sha,
                  "object_id": info.object_id, "files": len(info.files), "commits": len(hist.commits),
                  "scan": info.scan_issues is not None}))
"""


@pytest.mark.online
def test_real_hub_contract(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_HUB_OFFLINE")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["canonical"] == "openai-community/gpt2"
    assert got["sha"] == got["main"] and len(got["object_id"]) == 24
    assert got["files"] > 5 and got["commits"] > 0 and got["scan"]
    cfg = tmp_path / "config.toml"
    cfg.write_text('[hub]\nendpoint = "https://huggingface.co"\n[state]\npath = "s.db"\n'
                   '[[pin]]\nrepo = "openai-community/gpt2"\ntrack = "main"\n')
    run = subprocess.run([sys.executable, "-m", "monitor", "once", "-c", str(cfg), "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
