"""The daemon's HTTP endpoints: health, readiness, metrics, lookups, Hub webhooks and Slack commands."""

from monitor.http.hub_events import HubEvent, HubEventError, RefUpdate, parse_hub_event
from monitor.http.server import Backend, HttpServer
from monitor.http.slack_command import SlashCommand, sign, verify_signature

__all__ = ["Backend", "HttpServer", "HubEvent", "HubEventError", "RefUpdate", "SlashCommand",
           "parse_hub_event", "sign", "verify_signature"]
