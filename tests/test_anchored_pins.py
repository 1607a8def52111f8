"""Pins anchored where they were written (issue 19, point 1), through the real CLI against the Hub
emulator and the Slack receiver: `refs scan --write-pins` writes revision + track with the scan
time and refuses look-alikes; a move made between the scan and the first check is reported from
the anchor with the usual rules instead of being taken as a silent baseline."""

from __future__ import annotations

import json

import pytest

from tests.pins_env import PinsEnv

REPO = "EleutherAI/gpt-j-6b"
IMPOSTOR = "EleuterAI/gpt-j-6b"
FILES = {"config.json": '{"model_type": "gptj"}', "model.safetensors": b"\x00weights-v1", "README.md": "# GPT-J"}
POISON = {"pytorch_model.bin": b"\x80\x02cos\nsystem\n.", "config.json":
          '{"model_type": "gptj", "auto_map": {"AutoModel": "modeling.M"}}', "modeling.py": "import os\n"}


@pytest.fixture
def env(hub, slack, tmp_path):
    e = PinsEnv(tmp_path, hub, slack)
    e.extra = ('[lookalike]\nprotected = ["EleutherAI"]\nprobe_budget = 0\nclone_watch = 0\nclone_budget = 0\n')
    return e


def scan_and_write_pins(env, hub, tmp_path, *extra: str):
    src = tmp_path / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "train.py").write_text(
        f'AutoModel.from_pretrained("{REPO}")\n'
        f'AutoModel.from_pretrained("{REPO}", revision="v1.0")\n'
        f'AutoModel.from_pretrained("{IMPOSTOR}")\n')
    pins = tmp_path / "pins.toml"
    r = env.run("refs", "scan", str(src), "--write-pins", str(pins), *extra)
    return r, pins


def include(env, name: str = "pins.toml") -> None:
    """[pins] include = [name] in the config PinsEnv writes before every run."""
    write = env.write

    def with_include():
        path = write()
        path.write_text(path.read_text().replace("[pins]\n", f'[pins]\ninclude = ["{name}"]\n', 1))
        return path

    env.write = with_include


def test_write_pins_refuses_a_lookalike_and_notes_the_scan_time(env, hub, tmp_path):
    hub.add_repo(REPO, files=FILES, author="EleutherAI")
    hub.add_repo(IMPOSTOR, files=FILES, author="EleuterAI")
    r, pins = scan_and_write_pins(env, hub, tmp_path)
    assert r.code == 0, r
    text = pins.read_text()
    assert IMPOSTOR not in text.split("\n", 1)[1], "no pin for the impostor"
    assert f"{IMPOSTOR}: not pinned: look-alike of EleutherAI (--allow-lookalike to pin it anyway)" in r.err
    first = text.splitlines()[0]
    assert first.startswith("# written by hubwatch refs scan at 20") and "anchor" in first
    r, pins = scan_and_write_pins(env, hub, tmp_path / "again", "--allow-lookalike")
    assert r.code == 0 and f'repo = "{IMPOSTOR}"' in pins.read_text()


def test_a_move_before_the_first_check_is_reported_from_the_anchor(env, hub, slack, tmp_path):
    hub.add_repo(REPO, files=FILES, author="EleutherAI")
    v1 = hub.create_tag(REPO, "v1.0")
    r, pins = scan_and_write_pins(env, hub, tmp_path)
    assert r.code == 0, r
    # between the scan and the first check: main gains a pickle and remote code, v1.0 is re-pointed
    poisoned = hub.commit(REPO, POISON, author="mallory", title="perf")
    hub.move_tag(REPO, "v1.0", poisoned)
    include(env)
    r = env.run("once")
    assert r.code == 0, r
    found = {f["kind"]: f for f in env.findings()}
    assert set(found) == {"risky_change", "tag_moved"}, found
    move = found["risky_change"]
    assert move["severity"] == "critical" and move["evidence"]["old_sha"] != poisoned
    assert move["evidence"]["new_sha"] == poisoned and move["evidence"]["ref"] == "main"
    assert "pytorch_model.bin" in move["evidence"]["files_added"]
    assert {h["rule"] for h in move["evidence"]["rules"]} >= {"remote_code_config"}
    assert move["evidence"]["new_authors"] == ["mallory"], "authors are judged up to the anchor"
    tag = found["tag_moved"]
    assert (tag["evidence"]["old_sha"], tag["evidence"]["new_sha"]) == (v1, poisoned)
    assert len(slack.messages) == 2
    # the next check has its baseline: nothing new
    assert env.run("once").code == 0 and len(env.findings()) == 2


def test_an_unmoved_anchor_and_a_track_only_pin_baseline_silently(env, hub, slack, tmp_path):
    hub.add_repo(REPO, files=FILES, author="EleutherAI")
    head = hub.repo_head(REPO)
    env.pins = [{"repo": REPO, "revision": head, "track": "main"}, {"repo": "org/other", "track": "main"}]
    hub.add_repo("org/other", files=FILES)
    hub.commit("org/other", POISON)  # no anchor: nothing to compare with, the head is the baseline
    assert env.run("once").code == 0
    # no move is judged; only the baseline audit of its content (issue 14) speaks, of the payload
    (audit,) = env.findings()
    assert (audit["kind"], audit["subject"], audit["severity"]) == ("content_flagged", "org/other", "critical")
    assert len(slack.messages) == 1 and "os.system" in slack.messages[0]["text"]
    hub.commit(REPO, {"README.md": "v2"})
    assert env.run("once").code == 0
    assert [f["kind"] for f in env.findings()] == ["content_flagged", "ref_moved"]


def test_status_and_findings_show_the_anchored_move(env, hub, slack, tmp_path):
    hub.add_repo(REPO, files=FILES, author="EleutherAI")
    anchor = hub.repo_head(REPO)
    env.pins = [{"repo": REPO, "revision": anchor, "track": "main"}]
    hub.commit(REPO, {"README.md": "v2"}, author="EleutherAI")
    assert env.run("once").code == 0
    (row,) = [json.loads(line) for line in env.run("status", "--json").out.splitlines()
              if json.loads(line)["kind"] == "pin"]
    assert row["open_findings"] == 1
