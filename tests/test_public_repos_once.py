"""Two consecutive `hubwatch once` runs on public repos raise nothing but what shared/HUB_API.md's
table predicts — against the emulator's mirrors, and under `pytest -m online` against huggingface.co.

Predicted: nothing for the legacy repos (gpt2, bert-base-uncased: their `createdAt` placeholder is
later than their commits, which proves nothing); one low `monitoring_degraded` for the gated repo we
were not granted; one critical `repo_unavailable` ("disabled by the Hub") for the taken-down repo;
one `repo_renamed` for the path that now 307s to another repo. The second run adds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.emulator import public_hub as pub

ROOT = Path(__file__).resolve().parent.parent
PINS = [pub.GPT2, pub.BERT, pub.LLAMA, pub.GPT4CHAN, pub.RUNWAY]
PREDICTED = {
    (pub.LLAMA, "monitoring_degraded", "low"),
    (pub.GPT4CHAN, "repo_unavailable", "critical"),
    (pub.RUNWAY, "repo_renamed", "high"),
}


@pytest.fixture(params=["emulator", pytest.param("hub", marks=pytest.mark.online)])
def endpoint(request) -> str:
    if request.param == "hub":
        return "https://huggingface.co"
    hub = request.getfixturevalue("hub")
    pub.seed(hub)
    return hub.url


def hubwatch(args: list[str], endpoint: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=endpoint, HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run([sys.executable, "-m", "monitor", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_two_once_runs_raise_only_what_the_table_predicts(endpoint, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[hub]\nendpoint = "{endpoint}"\n[state]\npath = "state.db"\n'
                   + "".join(f'[[pin]]\nrepo = "{repo}"\ntrack = "main"\n' for repo in PINS))
    seen = []
    for _ in range(2):
        run = hubwatch(["once", "-c", str(cfg), "--dry-run"], endpoint)
        assert run.returncode == 0, run.stderr
        listed = hubwatch(["findings", "-c", str(cfg), "--json"], endpoint)
        assert listed.returncode == 0, listed.stderr
        seen.append([json.loads(line) for line in listed.stdout.splitlines() if line.strip()])
    first, second = seen
    assert {(f["subject"], f["kind"], f["severity"]) for f in first} == PREDICTED, [f["summary"] for f in first]
    assert len(first) == len(PREDICTED), "one alert each"
    assert [f["fingerprint"] for f in second] == [f["fingerprint"] for f in first], "the second run adds nothing"
    disabled = next(f for f in first if f["subject"] == pub.GPT4CHAN)
    assert disabled["summary"].startswith("disabled by the Hub")
    gated = next(f for f in first if f["subject"] == pub.LLAMA)
    assert "history not readable: gated, no access for this token" in gated["summary"]
