"""Test session set-up: one Hub emulator and one Slack receiver on 127.0.0.1 for the whole run.

huggingface_hub reads HF_ENDPOINT once at import, so the emulator's socket is bound (port 0)
here, at conftest import, before any test module imports huggingface_hub.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from tests.emulator import HubEmulator, SlackReceiver

_HOME = tempfile.mkdtemp(prefix="hubwatch-test-home-")
EMULATOR = HubEmulator()
os.environ["HF_ENDPOINT"] = EMULATOR.url
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = os.path.join(_HOME, "hf")
# The online contract suite may use a real read token; nothing else in the tests sees it.
ONLINE_TOKEN = os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_HUB_OFFLINE", None)
EMULATOR.start()
SLACK = SlackReceiver()


@pytest.fixture
def hub():
    """The shared Hub emulator, emptied for this test (and the process-wide Hub accounting)."""
    from monitor.hub import session

    session.STATS.reset()
    session.BUDGET.reset()
    EMULATOR.reset()
    yield EMULATOR
    EMULATOR.reset()


@pytest.fixture
def slack():
    """The shared Slack webhook receiver, emptied for this test."""
    SLACK.reset()
    yield SLACK
    SLACK.reset()


def pytest_sessionfinish(session, exitstatus):
    for server in (EMULATOR, SLACK):
        try:
            server.stop()
        except Exception:
            pass
