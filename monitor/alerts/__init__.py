"""Alerts: render findings (pure), send them through sinks, deliver the outbox with backoff."""

from monitor.alerts.render import json_payload, slack_message, text_line

__all__ = ["json_payload", "slack_message", "text_line"]
