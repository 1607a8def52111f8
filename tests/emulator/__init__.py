"""Real HTTP servers on 127.0.0.1 for the hubwatch test suite: a Hugging Face Hub emulator and a Slack
webhook receiver. Neither imports huggingface_hub."""

from .hub import Fault, HubEmulator, RequestRecord
from .slack import SlackReceiver

__all__ = ["Fault", "HubEmulator", "RequestRecord", "SlackReceiver"]
