"""The route table and its handlers: (Context, Request, path params) -> Response. No sockets here.

Status codes:
  GET  /healthz            200 {"status": "ok"}
  GET  /readyz             200 / 503 {"ready": bool, "checks": {...}}
  GET  /metrics            200 Prometheus text; 401 without the Bearer token when one is configured
  GET  /v1/lookup/{name}   200 LookupResult.to_json(); 400 invalid name; 401 without the Bearer token
                           when one is configured; 429 + Retry-After past the lookup rate; 503 +
                           Retry-After when the Hub is unreachable or the lookups' budget share is
                           spent (Transient); 502 on any other Hub error
  POST /hooks/hub          200 {"status": ...}; 401 wrong/missing X-Webhook-Secret or none configured;
                           400 unusable payload
  POST /slack/commands     200 ephemeral Slack message; 401 bad/missing/stale/replayed signature or
                           none configured; 400 unreadable form
  anything else            404; known path, other method: 405 with Allow
  any handler crash        500 {"error": "internal error"} (the traceback goes to the log only)
Error bodies are always {"error": "<one line>"}, without exception texts (they can hold URLs).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import unquote

from monitor.detect.names import validate_hub_name
from monitor.errors import HubError, Transient
from monitor.http.hub_events import HubEventError, parse_hub_event, secret_matches
from monitor.http.lookups import OnDemandLookups, RateLimited, retry_after_header
from monitor.http.slack_command import (CommandError, ReplayCache, SlackCommands, parse_command,
                                        verify_signature)

if TYPE_CHECKING:
    from monitor.http.server import Backend

logger = logging.getLogger("hubwatch.http")

JSON = "application/json"
DEFAULT_RETRY_AFTER = 30


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # raw (still percent-encoded) path, without query string or fragment
    headers: Mapping[str, str]  # case-insensitive (email.message.Message from http.server)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Context:
    backend: "Backend"
    slack: SlackCommands
    clock: Callable[[], float]  # unix time, for the Slack timestamp window
    lookups: OnDemandLookups  # rate-limited, cached backend.lookup (HTTP and Slack share it)
    replays: ReplayCache  # Slack signatures already accepted


def json_response(status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), JSON, headers)


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(status, {"error": message}, headers)


def bearer_refusal(ctx: Context, req: Request) -> Response | None:
    """None when no [http] token is configured or the request carries it, else the 401."""
    token = ctx.backend.http_token
    if token is None:
        return None
    scheme, _, given = (req.header("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and secret_matches(token.reveal(), given.strip()):
        return None
    return error(401, "missing or wrong Authorization: Bearer token",
                 (("WWW-Authenticate", 'Bearer realm="hubwatch"'),))


# --- handlers --------------------------------------------------------------------------------

def healthz(ctx: Context, req: Request, params: dict[str, str]) -> Response:
    return json_response(200, {"status": "ok"})


def readyz(ctx: Context, req: Request, params: dict[str, str]) -> Response:
    try:
        ready, checks = ctx.backend.readiness()
    except Exception as e:  # noqa: BLE001 - a broken check means "not ready", not a 500
        logger.error("readiness check failed: %s", type(e).__name__, exc_info=True)
        ready, checks = False, {"readiness": "check failed"}
    body = {"ready": bool(ready), "checks": {str(k): str(v) for k, v in dict(checks).items()}}
    return json_response(200 if ready else 503, body)


def metrics(ctx: Context, req: Request, params: dict[str, str]) -> Response:
    refused = bearer_refusal(ctx, req)
    if refused:
        return refused
    body, content_type = ctx.backend.metrics()
    return Response(200, body, content_type)


def lookup(ctx: Context, req: Request, params: dict[str, str]) -> Response:
    refused = bearer_refusal(ctx, req)
    if refused:
        return refused
    name = unquote(params["name"], errors="replace")
    problem = validate_hub_name(name)
    if problem:
        return error(400, f"invalid name: {problem}")
    try:
        result = ctx.lookups.lookup(name)
    except RateLimited as e:
        return error(429, "too many lookups; retry later", (("Retry-After", e.retry_after_header),))
    except Transient as e:
        wait = e.retry_after if e.retry_after and e.retry_after > 0 else DEFAULT_RETRY_AFTER
        return error(503, "the Hub is not answering; the result is unknown, retry later",
                     (("Retry-After", retry_after_header(wait)),))
    except HubError as e:
        return error(502, f"unexpected answer from the Hub ({type(e).__name__})")
    return json_response(200, result.to_json())


def hub_hook(ctx: Context, req: Request, params: dict[str, str]) -> Response:
    secret = ctx.backend.hub_webhook_secret
    if secret is None:
        return error(401, "Hub webhook endpoint disabled: no hub_webhook secret is configured")
    if not secret_matches(secret.reveal(), req.header("X-Webhook-Secret")):
        return error(401, "missing or wrong X-Webhook-Secret")
    try:
        event = parse_hub_event(req.body)
    except HubEventError as e:
        return error(400, f"bad webhook payload: {e}")
    return json_response(200, {"status": str(ctx.backend.hub_event(event))})


def slack_commands(ctx: Context, req: Request, params: dict[str, str]) -> Response:
    secret = ctx.backend.slack_signing_secret
    if secret is None:
        return error(401, "Slack commands disabled: no Slack signing secret is configured")
    timestamp, signature = req.header("X-Slack-Request-Timestamp"), req.header("X-Slack-Signature")
    now = ctx.clock()
    problem = verify_signature(secret.reveal(), timestamp, signature, req.body, now)
    if problem:
        return error(401, f"request not verified: {problem}")
    if not ctx.replays.first_time(signature or "", timestamp or "", now):
        return error(401, "request not verified: already received (replay)")
    try:
        command = parse_command(req.body)
    except CommandError as e:
        return error(400, str(e))
    return json_response(200, ctx.slack.answer(command))


# --- table -----------------------------------------------------------------------------------

Handler = Callable[[Context, Request, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Handler


ROUTES: tuple[Route, ...] = (
    Route("GET", re.compile(r"/healthz"), healthz),
    Route("GET", re.compile(r"/readyz"), readyz),
    Route("GET", re.compile(r"/metrics"), metrics),
    # everything after the prefix, so "a/b" gets validate_name's explanation rather than a 404
    Route("GET", re.compile(r"/v1/lookup/(?P<name>.*)"), lookup),
    Route("POST", re.compile(r"/hooks/hub"), hub_hook),
    Route("POST", re.compile(r"/slack/commands"), slack_commands),
)


def dispatch(ctx: Context, req: Request, routes: tuple[Route, ...] = ROUTES) -> Response:
    allowed: list[str] = []
    for route in routes:
        m = route.pattern.fullmatch(req.path)
        if m is None:
            continue
        if req.method == route.method or (req.method == "HEAD" and route.method == "GET"):
            return route.handler(ctx, req, m.groupdict())
        allowed += [route.method, "HEAD"] if route.method == "GET" else [route.method]
    if allowed:
        return error(405, "method not allowed", (("Allow", ", ".join(sorted(set(allowed)))),))
    return error(404, "not found")

