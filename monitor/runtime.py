"""Runtime: the wired-up objects a job needs (settings, store, Hub client, sinks, clock)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from monitor.alerts.sinks import SlackSink, StdoutSink, WebhookSink
from monitor.config import Settings
from monitor.hub.client import HubClient
from monitor.store import Store


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def build_sinks(settings: Settings, stdout: TextIO | None = None) -> dict:
    """Configured sinks by name (`Settings.sink_names`); stdout when nothing is configured, so no
    alert goes nowhere."""
    sinks: dict = {}
    for name in settings.sink_names():
        if name == "slack":
            sinks["slack"] = SlackSink(settings.slack_webhook_url.reveal(), timeout=settings.alerts.timeout)
        elif name == "webhook":
            sinks["webhook"] = WebhookSink(settings.webhook_url.reveal(), timeout=settings.alerts.timeout)
        else:
            sinks["stdout"] = StdoutSink(stdout or sys.stdout)
    return sinks


@dataclass
class Runtime:
    settings: Settings
    store: Store
    client: HubClient
    sinks: dict
    clock: Callable[[], datetime] = field(default=utcnow)
    stop: threading.Event = field(default_factory=threading.Event)  # set on SIGTERM: jobs wind down
    delivery: Any = None  # the last DeliveryReport of a one-shot command (`once`'s exit decision)

    @classmethod
    def build(cls, settings: Settings, *, stdout: TextIO | None = None,
              clock: Callable[[], datetime] = utcnow) -> "Runtime":
        store = Store.open(settings.state_path)
        client = HubClient(settings.hub)
        client.budget.configure(settings.hub_requests_per_5min, token=settings.hub.token is not None)
        return cls(settings, store, client, build_sinks(settings, stdout), clock)

    def close(self) -> None:
        self.store.close()
