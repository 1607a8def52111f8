"""`/hubwatch` Slack slash command: request signing, parsing, and answering within Slack's 3 seconds.

Slack (docs "Verifying requests from Slack", "Implementing slash commands"):
- every request carries `X-Slack-Request-Timestamp` and `X-Slack-Signature` =
  `v0=` + hex HMAC-SHA256(signing secret, `v0:{timestamp}:{raw body}`); requests more than five
  minutes from our clock are refused, so a captured request can't be replayed later, and a
  signature already accepted is refused within that window (`ReplayCache`), so it can't be
  replayed sooner either;
- the body is form-encoded (`command`, `text`, `response_url`, `user_id`, `team_id`, ...);
- the answer must arrive within 3 s; a later answer is POSTed as JSON to `response_url`
  (up to 5 times in 30 minutes).
Lookups hit the Hub, which can be slow, so a lookup runs in its own thread: if it ends within the
deadline we answer directly, otherwise we answer "Looking up…" and POST the result later.

`response_url` comes from the request body. It is only trusted after the signature check, and
even then only if it points at Slack (or a prefix the operator/test configured): otherwise a
leaked signing secret would turn us into a request cannon aimed at internal addresses (SSRF).
Everything in a reply that came from the Hub is escaped for mrkdwn and never made into `<…|…>`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

import requests

from monitor.alerts.render import code, fallback_text, fit, plain, rich, t, u16len
from monitor.alerts.render import line as line_of
from monitor.detect.names import validate_hub_name
from monitor.errors import HubError, Transient
from monitor.http.lookups import RateLimited
from monitor.jobs.lookup import LookupResult, render_text
from monitor.triage import parse_fingerprint

logger = logging.getLogger("hubwatch.http")

MAX_SKEW = 300  # seconds, either direction
SLACK_HOOKS = "https://hooks.slack.com/"
SECTION_TEXT = 3000
FALLBACK_TEXT = 3000
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")


class CommandError(ValueError):
    """The (correctly signed) body is not a slash-command form we can read."""


@dataclass(frozen=True)
class SlashCommand:
    command: str  # "/hubwatch" (or whatever the workspace named it)
    text: str
    response_url: str
    user_id: str = ""
    team_id: str = ""
    channel_id: str = ""
    enterprise_id: str = ""  # set on Enterprise Grid


# --- signing ---------------------------------------------------------------------------------

def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature of `body` sent at `timestamp` (also what tests use to sign requests)."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify_signature(secret: str, timestamp: str | None, signature: str | None, body: bytes,
                     now: float) -> str | None:
    """None if the request is Slack's and fresh, else a short reason (safe to return to the caller)."""
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not _TIMESTAMP.fullmatch(timestamp.strip()):
        return "malformed X-Slack-Request-Timestamp"
    if abs(now - int(timestamp.strip())) > MAX_SKEW:
        return "X-Slack-Request-Timestamp is more than 5 minutes from our clock"
    expected = sign(secret, timestamp.strip(), body).encode("ascii")
    if not hmac.compare_digest(expected, signature.strip().encode("latin-1", "replace")):
        return "signature mismatch"
    return None


class ReplayCache:
    """Signatures accepted in the last 2 x MAX_SKEW seconds: each signed request is accepted once.
    Bounded: when full of live entries, new requests are refused (fail closed) until some expire.
    `persist(signature, forget_at, now) -> first time?` (the daemon's database) also refuses what
    was accepted before a restart; if it fails, the request is refused (fail closed)."""

    def __init__(self, max_entries: int = 10_000,
                 persist: Callable[[str, float, float], bool] | None = None):
        self.max_entries = max_entries
        self.persist = persist
        self._seen: dict[str, float] = {}  # signature -> when it may be forgotten (unix time)
        self._lock = threading.Lock()

    def first_time(self, signature: str, timestamp: str, now: float) -> bool:
        """True (and remembered) the first time; False for a replay or when the cache is full."""
        forget_at = int(timestamp.strip()) + MAX_SKEW + 1  # beyond it verify_signature refuses it anyway
        key = signature.strip()
        with self._lock:
            if key in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                if len(self._seen) >= self.max_entries:
                    return False
            self._seen[key] = forget_at
        if self.persist is None:
            return True
        try:
            return self.persist(key, forget_at, now)
        except Exception:  # noqa: BLE001 - the database is unusable: refuse rather than risk a replay
            logger.exception("Slack replay check failed; request refused")
            return False


# --- parsing ---------------------------------------------------------------------------------

def parse_command(body: bytes) -> SlashCommand:
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise CommandError("body is not a UTF-8 form with at most 64 fields") from None
    first = lambda key: form.get(key, [""])[0]  # noqa: E731
    return SlashCommand(first("command"), first("text"), first("response_url"), first("user_id"),
                        first("team_id"), first("channel_id"), first("enterprise_id"))


def intent(text: str) -> tuple[str, str | None]:
    """("help", None) | ("lookup", NAME) | ("ack", FINGERPRINT) | ("usage", None) from the text
    after the command. Only `ack` followed by exactly one 32-hex fingerprint acknowledges;
    anything else is read as before (a lookup, or usage)."""
    words = text.split()
    if len(words) == 2 and words[0].lower() == "ack" and (fingerprint := parse_fingerprint(words[1])):
        return "ack", fingerprint
    if not words or (len(words) == 1 and words[0].lower() == "help"):
        return "help", None
    if words[0].lower() == "lookup":
        return ("lookup", words[1]) if len(words) == 2 else ("usage", None)
    return ("lookup", words[0]) if len(words) == 1 else ("usage", None)


# --- replies ---------------------------------------------------------------------------------

def ephemeral(text: str, blocks: list[dict] | None = None) -> dict[str, Any]:
    """`text` must already be safe mrkdwn (escape Hub data with `fit`)."""
    msg: dict[str, Any] = {"response_type": "ephemeral", "text": text[:FALLBACK_TEXT],
                           "unfurl_links": False, "unfurl_media": False}
    if blocks:
        msg["blocks"] = blocks
    return msg


def _section(text: str) -> dict[str, Any]:
    # verbatim: Slack must not auto-link URLs, #channels or @names that came from the Hub
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def help_message(command: str) -> dict[str, Any]:
    cmd = fit(command or "/hubwatch", 40)
    text = (f"*{cmd}* — is this Hugging Face org or user legit?\n"
            f"• `{cmd} lookup NAME` (or just `{cmd} NAME`): look NAME up on the Hub and judge it "
            f"against our protected orgs\n"
            f"• `{cmd} ack FINGERPRINT`: acknowledge a finding (for the users in [slack] ack_users)\n"
            f"• `{cmd} help`: this text")
    return ephemeral(text, [_section(text)])


def usage_message(command: str) -> dict[str, Any]:
    cmd = fit(command or "/hubwatch", 40)
    return ephemeral(f"Usage: `{cmd} lookup NAME`, `{cmd} NAME` or `{cmd} help`")


def result_message(r: LookupResult) -> dict[str, Any]:
    """The lookup report. Every line is Hub-derived, so it goes in rich_text (literal by construction:
    no markup, mention or link can come out of it); the fallback is sent with `mrkdwn: false`."""
    first, *rest = render_text(r).split("\n")
    # line by line: `plain` makes control characters (newlines too) visible
    details = _join_capped([plain(line, 500) for line in rest], SECTION_TEXT - 6)
    blocks = [rich(line_of(t(plain(first, 500), bold=True)))]
    if details:
        blocks.append(rich({"type": "rich_text_preformatted", "elements": [t(details)]}))
    msg = ephemeral(fallback_text(f"{r.name[:200]}: risk {r.risk.upper()[:20]}"), blocks)
    msg["mrkdwn"] = False
    return msg


def _join_capped(lines: list[str], limit: int) -> str:
    out, used = [], 0
    for line in lines:
        if used + u16len(line) + 1 > limit - 2:
            out.append("…")
            break
        out.append(line)
        used += u16len(line) + 1
    return "\n".join(out)


def error_message(name: str, exc: BaseException) -> dict[str, Any]:
    who = code(name, 100)
    if isinstance(exc, RateLimited):
        return ephemeral(f":snail: Too many lookups right now: slow down and try {who} again in "
                         f"{exc.retry_after_header} s.")
    if isinstance(exc, Transient):
        return ephemeral(f":hourglass: The Hub is not answering right now, so {who} is unknown; "
                         "try again in a minute.")
    if isinstance(exc, HubError):
        return ephemeral(f":warning: The Hub gave an unexpected answer about {who}; try again later.")
    return ephemeral(f":warning: Looking up {who} failed (internal error; see the hubwatch log).")


# --- answering -------------------------------------------------------------------------------

class _Job:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None
        self.deferred = False  # the HTTP answer has gone out: the result must go to response_url


class SlackCommands:
    """Answers slash commands; `answer()` returns within ~`deadline` seconds whatever the Hub does."""

    def __init__(self, lookup: Callable[[str], LookupResult], *, deadline: float = 2.5,
                 allowed_prefixes: Iterable[str] = (), max_jobs: int = 4, post_timeout: float = 10.0,
                 ack: Callable[[str, SlashCommand], str] | None = None):
        """`ack(fingerprint, command)` acknowledges a finding when the command's user, channel and
        team may (a local database write, fast) and returns a plain-text reply, a refusal
        included; without it `/hubwatch ack` says it is unavailable."""
        self.lookup, self.deadline, self.post_timeout = lookup, deadline, post_timeout
        self.ack = ack
        self.prefixes = (SLACK_HOOKS, *allowed_prefixes)
        self._slots = threading.BoundedSemaphore(max_jobs)  # lookups in flight (a slow Hub holds them)

    def may_post(self, url: str) -> bool:
        """True if `url` is under Slack's hooks host or a configured prefix (same scheme and host)."""
        if not url or len(url) > 2048 or _UNSAFE_URL.search(url):
            return False
        try:
            parts = urlsplit(url)
            return any(url.startswith(p) and (parts.scheme, parts.netloc) == _origin(p) for p in self.prefixes)
        except ValueError:
            return False

    def answer(self, cmd: SlashCommand) -> dict[str, Any]:
        kind, name = intent(cmd.text)
        if kind == "help":
            return help_message(cmd.command)
        if kind == "usage" or name is None:
            return usage_message(cmd.command)
        if kind == "ack":
            return self._ack(name, cmd)
        problem = validate_hub_name(name)
        if problem:
            return ephemeral(f"{code(name, 100)} is not a Hub name: {fit(problem, 300)}")
        if not self._slots.acquire(blocking=False):
            return ephemeral(":hourglass: hubwatch is busy with other lookups; try again in a moment.")
        job = _Job()
        threading.Thread(target=self._run, args=(job, name, cmd.response_url), name="hubwatch-slack-lookup",
                         daemon=True).start()
        job.done.wait(self.deadline)
        with job.lock:
            if job.reply is not None:
                return job.reply
            job.deferred = True
        if self.may_post(cmd.response_url):
            return ephemeral(f":mag: Looking up {code(name, 100)}…")
        return ephemeral(f":hourglass: Looking up {code(name, 100)} is taking long; try again in a minute.")

    def _ack(self, fingerprint: str, cmd: SlashCommand) -> dict[str, Any]:
        if self.ack is None:
            return ephemeral(":warning: Acknowledging is not available on this hubwatch.")
        try:
            text = self.ack(fingerprint, cmd)
        except Exception as e:  # noqa: BLE001 - a refusal, an unknown fingerprint or a busy database is an answer
            if getattr(e, "slack_safe", False):  # our own words (no Hub text): shown as written
                text = str(e)
            else:
                logger.warning("Slack ack of %s failed: %s", fingerprint, type(e).__name__)
                text = f"acknowledging {fingerprint} failed; see the hubwatch log"
        msg = ephemeral(fallback_text(text, limit=1000), [rich(line_of(t(plain(text, 1000) or "(empty)")))])
        msg["mrkdwn"] = False  # the text may quote a finding: shown literally, never as markup
        return msg

    def _run(self, job: _Job, name: str, response_url: str) -> None:
        try:
            try:
                reply = result_message(self.lookup(name))
            except Exception as e:  # noqa: BLE001 - a failed lookup is an answer, not a crash
                if not isinstance(e, (HubError, RateLimited)):
                    logger.error("Slack lookup failed: %s", type(e).__name__, exc_info=True)
                reply = error_message(name, e)
        finally:
            self._slots.release()
        with job.lock:
            job.reply = reply
            deferred = job.deferred
        job.done.set()
        if deferred and self.may_post(response_url):
            self._post(response_url, reply)

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        # Never log the URL or the exception text (which contains it): response_url is a capability.
        try:
            resp = requests.post(url, json=payload, timeout=self.post_timeout, allow_redirects=False)
        except requests.RequestException as e:
            logger.warning("delayed Slack reply failed: %s", type(e).__name__)
            return
        if resp.status_code >= 300:
            logger.warning("delayed Slack reply refused: HTTP %d", resp.status_code)


def _origin(prefix: str) -> tuple[str, str]:
    parts = urlsplit(prefix)
    return parts.scheme, parts.netloc
