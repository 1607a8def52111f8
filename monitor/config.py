"""TOML configuration -> frozen, validated Settings.

Every problem becomes one `ConfigError` line naming the file, the key and what is wrong, so
`hubwatch check-config` (and `hubwatch run` before it starts) can tell an operator exactly what to fix.
Secrets are read from files or the environment and wrapped in `Secret`, whose repr never shows
the value.
"""

from __future__ import annotations

import contextvars
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Callable

from monitor.errors import ConfigError
from monitor.urls import url_problem

DEFAULT_CONFIG = "/etc/hubwatch/config.toml"
DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_TYPES = ("model", "dataset", "space")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 366 * 86400.0  # longer is a typo; inf or 1e300 would crash the scheduler and sleeps
_SHA = re.compile(r"^[0-9a-fA-F]{40}\Z")
_NAME_PART = re.compile(r"^[A-Za-z0-9_.-]{1,96}\Z")
_REF = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}\Z")


@dataclass(frozen=True)
class Secret:
    """A credential. Its repr/str never reveal the value; call `.reveal()` where it is needed."""

    value: str = field(repr=False)

    def reveal(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class HubSettings:
    endpoint: str = DEFAULT_ENDPOINT
    token: Secret | None = None
    token_source: str | None = None  # where the token came from ("hub.token_file", "$HF_TOKEN"), for messages
    timeout: float = 15.0
    concurrency: int = 32
    retries: int = 2
    retry_wait: float = 1.0


@dataclass(frozen=True)
class Pin:
    repo: str
    type: str = "model"
    revision: str | None = None
    track: str | None = None

    @property
    def key(self) -> str:
        """State key of the repo this pin watches (several pins may share one repo)."""
        return repo_key(self.type, self.repo)


def repo_key(repo_type: str, repo_id: str) -> str:
    return f"{repo_type}:{repo_id.lower()}"


@dataclass(frozen=True)
class PinsSettings:
    every: float = 600.0
    metadata_every: float = 3600.0
    degraded_after: float = 3600.0
    unavailable_after: int = 2
    jitter: float = 30.0
    refs_every: float = 3600.0  # heads in bulk: every other pinned repo's refs (tag and branch sweep)
    scan_every: float = 21600.0  # heads in bulk: the security-scan status, one read per repo
    include: tuple[Path, ...] = ()  # pin files (`hubwatch refs scan --write-pins`), resolved


@dataclass(frozen=True)
class AlertSettings:
    every: float = 30.0
    min_interval: float = 1.0
    timeout: float = 10.0
    digest: tuple[int, int] | None = None  # (hour, minute), local time; None = no daily digest


@dataclass(frozen=True)
class LookalikeSettings:
    protected: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    every: float = 3600.0
    probe_budget: int = 50
    reprobe_after: float = 86400.0
    clone_watch: int = 50  # most downloaded repos per protected namespace searched for copies
    clone_budget: int = 50  # Hub requests per cycle for that search


@dataclass(frozen=True)
class RosterSettings:
    """Our people: members of `orgs` plus `users`, whose own org memberships are watched."""

    orgs: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    every: float = 21600.0
    budget: int = 200  # Hub requests per roster cycle


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body: int = 1_000_000
    token: Secret | None = None  # Bearer token for /v1/lookup and /metrics ([http] token_file)
    lookups_per_minute: int = 30  # HTTP + Slack lookups that reach the Hub (cached answers are free)


@dataclass(frozen=True)
class SlackAcks:
    """Who may acknowledge findings with `/hubwatch ack` ([slack] ack_users, ack_channels, team_id).
    No users: acks from Slack are refused."""

    users: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()  # empty: any channel
    team_id: str | None = None  # the workspace (or Enterprise Grid org) the command must come from


@dataclass(frozen=True)
class Settings:
    path: Path
    hub: HubSettings
    state_path: Path
    pins: PinsSettings
    pin: tuple[Pin, ...]
    alerts: AlertSettings
    slack_webhook_url: Secret | None = None
    webhook_url: Secret | None = None
    lookalike: LookalikeSettings = LookalikeSettings()
    http: HttpSettings = HttpSettings()
    hub_webhook_secret: Secret | None = None
    slack_signing_secret: Secret | None = None
    hub_requests_per_5min: int | None = None  # None: the quota the Hub advertises (RateLimit-Policy)
    roster: RosterSettings = RosterSettings()
    slack_acks: SlackAcks = SlackAcks()
    # (key, file) of every secret read from a file, for secrets_check's permission warnings
    secret_files: tuple[tuple[str, Path], ...] = ()
    event_min_interval: float = 60.0  # [hub_webhook] min_interval: one event check per repo per this
    state_keep: float = 90 * 86400.0  # [state] keep: sent outbox rows older than this are pruned
    bare_durations: tuple[str, ...] = ()  # duration keys written as a bare number (seconds)

    def sink_names(self) -> tuple[str, ...]:
        """The sinks alerts go to, by outbox name: stdout when none is configured."""
        names = tuple(n for n, v in (("slack", self.slack_webhook_url), ("webhook", self.webhook_url)) if v is not None)
        return names or ("stdout",)

    def secrets(self) -> list[str]:
        """Every secret value, for tests and log scrubbing."""
        found = [self.hub.token, self.slack_webhook_url, self.webhook_url, self.hub_webhook_secret,
                 self.slack_signing_secret, self.http.token]
        return [s.reveal() for s in found if s is not None]


def config_path(cli_value: str | None) -> Path:
    """`-c` wins, then $HUBWATCH_CONFIG, then /etc/hubwatch/config.toml."""
    return Path(cli_value or os.environ.get("HUBWATCH_CONFIG") or DEFAULT_CONFIG)


# While `load` reads a file: the key being read, and the duration keys written as bare numbers
# (valid, as seconds, but `every = 10` meant 10 minutes as often as 10 seconds: check-config warns).
_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("config_key", default="")
_BARE: contextvars.ContextVar[list] = contextvars.ContextVar("config_bare_durations")


def parse_duration(text: Any) -> float:
    """'30s' / '10m' / '1h' / '1d' -> seconds (a bare number is seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and 0 < text <= MAX_DURATION:
        bare = _BARE.get(None)
        if bare is not None and _KEY.get():
            bare.append(_KEY.get())
        return float(text)
    m = _DURATION.match(text) if isinstance(text, str) else None
    if not m or not 0 < float(m.group(1)) * _UNITS[m.group(2)] <= MAX_DURATION:
        raise ValueError(f"bad duration {text!r} (use e.g. 30s, 10m, 1h, 1d; at most 366d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def valid_repo_id(repo: Any) -> str | None:
    """None when `repo` is a usable 'namespace/name', else the reason."""
    if not isinstance(repo, str):
        return "must be a string like 'namespace/name'"
    parts = repo.split("/")
    if len(parts) != 2:
        return f"bad repo id {repo!r} (expected 'namespace/name')"
    if _dot_segment(repo):
        return f"bad repo id {repo!r} ('.' and '..' are path segments, not names)"
    for part in parts:
        if (not _NAME_PART.match(part) or part[0] in "-." or part[-1] in "-."
                or "--" in part or ".." in part or part.endswith(".git")):
            return f"bad repo id {repo!r} (names use A-Z a-z 0-9 _ . - and no leading/trailing - or .)"
    return None


def valid_track(track: Any) -> str | None:
    """None when `track` is a usable branch or tag name, else the reason."""
    if not (isinstance(track, str) and _REF.match(track) and not _dot_segment(track)
            and ".." not in track and not track.startswith(("/", "-"))):
        return f"must be a branch or tag name, not {track!r}"
    return None


def _dot_segment(path: str) -> bool:
    """True when a `/`-separated part is `.` or `..`: URL clients resolve those, so the request
    would reach another Hub path than the one named."""
    return any(part in (".", "..") for part in path.split("/"))


class _Problems:
    """Problems found while reading, reported once the whole file has been read: an unknown key
    (most likely a typo) first, because it explains the others ("give revision or track" after
    `trakc = "main"`); then the first other problem."""

    def __init__(self) -> None:
        self.unknown: list[ConfigError] = []
        self.other: list[ConfigError] = []

    def raise_first(self) -> None:
        for e in self.unknown + self.other:
            raise e


# Set while `load` reads a file (and while `included_pins` reads an included one): every _Reader
# is made then, and records its problems there. No default: a _Reader made outside fails at once.
_PROBLEMS: contextvars.ContextVar[_Problems] = contextvars.ContextVar("config_problems")


class _Reader:
    """Walks one TOML table, consuming keys so leftovers can be reported as unknown.

    Bad values are recorded in the current _PROBLEMS (the default is used meanwhile) so the whole
    file is read and an unknown key anywhere is reported before them."""

    def __init__(self, path: Path, prefix: str, table: Any):
        self.path, self.prefix = path, prefix
        self.problems = _PROBLEMS.get()
        if not isinstance(table, dict):
            self.table: dict = {}
            self.fail("", "must be a table")
            return
        self.table = dict(table)

    def fail(self, name: str, problem: str) -> None:
        """Record a problem with key `name` ('' for the table itself)."""
        e = self.error(name, problem) if name else ConfigError(str(self.path), self.prefix, problem)
        self.problems.other.append(e)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(str(self.path), self.key(name), problem)

    def get(self, name: str, default: Any = None, conv: Callable[[Any], Any] | None = None) -> Any:
        if name not in self.table:
            return default
        value = self.table.pop(name)
        if conv is None:
            return value
        token = _KEY.set(self.key(name))
        try:
            return conv(value)
        except (ValueError, TypeError) as e:
            self.fail(name, str(e))
            return default
        finally:
            _KEY.reset(token)

    def done(self) -> None:
        if self.table:
            self.problems.unknown.append(self.error(sorted(self.table)[0], "unknown key"))
            self.table.clear()


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def conv(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be a whole number from {lo} to {hi}")
        return value
    return conv


def _clone_budget(value: Any) -> int:
    # A copy is judged after one search and its namespace's overview (up to two requests): a
    # smaller budget would search for ever and never judge what it finds.
    if _int(0, 100000)(value) in (1, 2):
        raise ValueError("must be 0 (off) or a whole number from 3 to 100000: a search and the "
                         "overview of a copy's namespace take up to 3 requests")
    return value


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _NAME_PART.match(v) for v in value):
        raise ValueError("must be a list of Hub names (A-Z a-z 0-9 _ . -)")
    return tuple(value)


_SLACK_ID = re.compile(r"[A-Z0-9]{2,32}")


def _slack_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _SLACK_ID.fullmatch(v) for v in value):
        raise ValueError('must be a list of Slack ids (upper-case letters and digits, e.g. ["U024BE7LH"])')
    return tuple(value)


def _slack_id(value: Any) -> str:
    if not isinstance(value, str) or not _SLACK_ID.fullmatch(value):
        raise ValueError('must be a Slack team or enterprise id (upper-case letters and digits, e.g. "T0001")')
    return value


def _time_of_day(value: Any) -> tuple[int, int]:
    """'09:00' -> (9, 0): a local time of day, 24-hour clock (a TOML time, 09:00:00, works too)."""
    if isinstance(value, dt_time):
        return value.hour, value.minute
    m = re.match(r"^\s*(\d{1,2}):(\d{2})\s*$", value) if isinstance(value, str) else None
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"must be a local time of day HH:MM (00:00 to 23:59), not {value!r}")
    return int(m.group(1)), int(m.group(2))


def _listen(value: Any) -> tuple[str, int]:
    """'127.0.0.1:8787', '[::1]:8787', 'localhost:0' (0 = any free port, for tests)."""
    m = re.match(r"^\s*(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\s*$", value) if isinstance(value, str) else None
    if not m or int(m.group(2)) > 65535:
        raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:8787, not {value!r}")
    return m.group(1).strip("[]"), int(m.group(2))


def _url(value: Any) -> str:
    value = _str(value)
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value.rstrip("/")


def _env_url(r: "_Reader", env: dict[str, str], name: str, key: str) -> str | None:
    """A URL from the environment, held to the same rules as the config key `key` it stands in for."""
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        return _url(value)
    except ValueError as e:
        r.fail(f"{key} (${name})", str(e))
        return None


class _Loader:
    def __init__(self, path: Path, env: dict[str, str]):
        self.path, self.env = path, env
        self.secret_files: list[tuple[str, Path]] = []

    def resolve(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (self.path.parent / p)

    def state_path(self, value: str) -> Path:
        """A relative `state.path` lives in systemd's $STATE_DIRECTORY when set (the first one of a
        colon-separated list), else beside the config; always returned absolute."""
        p = Path(value)
        if p.is_absolute():
            return p
        state_dir = (self.env.get("STATE_DIRECTORY") or "").split(":")[0].strip()
        base = Path(state_dir) if state_dir and Path(state_dir).is_absolute() else self.path.parent
        return Path(os.path.abspath(base / p))

    def secret_path(self, value: str) -> Path:
        """A relative secret path is a credential name under systemd's $CREDENTIALS_DIRECTORY when
        set (`token_file = "hubwatch_hf_token"`), else a file beside the config."""
        p = Path(value)
        creds = (self.env.get("CREDENTIALS_DIRECTORY") or "").strip()
        if not p.is_absolute() and creds and Path(creds).is_absolute():
            return Path(creds) / p
        return self.resolve(value)

    def secret_file(self, r: _Reader, name: str) -> Secret | None:
        value = r.get(name, None, _str)
        if value is None:
            return None
        p = self.secret_path(value)
        self.secret_files.append((r.key(name), p))
        try:
            text = p.read_text().strip()
        except OSError as e:
            r.fail(name, f"cannot read {p}: {e.strerror or e}")
            return None
        except ValueError as e:  # not UTF-8 (never quote the bytes: it is a secret), or a NUL in the path
            r.fail(name, f"cannot read {p}: {'not UTF-8 text' if isinstance(e, UnicodeDecodeError) else e}")
            return None
        if not text:
            r.fail(name, f"{p} is empty")
            return None
        return Secret(text)

    def load(self, data: dict[str, Any]) -> Settings:
        top = _Reader(self.path, "", data)
        hub = self.hub(_Reader(self.path, "hub", top.get("hub", {})))
        state = _Reader(self.path, "state", top.get("state", {}))
        state_path = self.state_path(state.get("path", "state.db", _str))
        keep = state.get("keep", 90 * 86400.0, parse_duration)
        state.done()
        pins = self.pins_settings(_Reader(self.path, "pins", top.get("pins", {})))
        pin = self.included_pins(self.pins(top.get("pin", [])), pins.include)
        alerts_r = _Reader(self.path, "alerts", top.get("alerts", {}))
        alerts = AlertSettings(
            every=alerts_r.get("every", 30.0, parse_duration),
            min_interval=alerts_r.get("min_interval", 1.0, lambda v: parse_duration(v) if v else 0.0),
            timeout=alerts_r.get("timeout", 10.0, parse_duration),
            digest=alerts_r.get("digest", None, _time_of_day),
        )
        alerts_r.done()
        slack_r = _Reader(self.path, "slack", top.get("slack", {}))
        slack = self.webhook_url(slack_r, "webhook_url", "HUBWATCH_SLACK_WEBHOOK_URL")
        signing = self.secret_file(slack_r, "signing_secret_file")
        acks = SlackAcks(slack_r.get("ack_users", (), _slack_ids), slack_r.get("ack_channels", (), _slack_ids),
                         slack_r.get("team_id", None, _slack_id))
        slack_r.done()
        webhook_r = _Reader(self.path, "webhook", top.get("webhook", {}))
        webhook = self.webhook_url(webhook_r, "url", "HUBWATCH_WEBHOOK_URL")
        webhook_r.done()
        lookalike = self.lookalike(_Reader(self.path, "lookalike", top.get("lookalike", {})))
        http = self.http(_Reader(self.path, "http", top.get("http", {})))
        hook_r = _Reader(self.path, "hub_webhook", top.get("hub_webhook", {}))
        hook_secret = self.secret_file(hook_r, "secret_file")
        event_interval = hook_r.get("min_interval", 60.0, parse_duration)
        hook_r.done()
        roster = self.roster(_Reader(self.path, "roster", top.get("roster", {})))
        limits = _Reader(self.path, "limits", top.get("limits", {}))
        quota = limits.get("hub_requests_per_5min", None, _int(10, 1_000_000))
        limits.done()
        top.done()
        return Settings(self.path, hub, state_path, pins, pin, alerts, slack, webhook, lookalike, http,
                        hook_secret, signing, quota, roster=roster, slack_acks=acks,
                        secret_files=tuple(self.secret_files), event_min_interval=event_interval,
                        state_keep=keep)

    def http(self, r: _Reader) -> HttpSettings:
        listen = r.get("listen", ("127.0.0.1", 8787), _listen)
        s = HttpSettings(listen[0], listen[1], r.get("max_body", 1_000_000, _int(1024, 100_000_000)),
                         self.secret_file(r, "token_file"), r.get("lookups_per_minute", 30, _int(1, 10_000)))
        r.done()
        return s

    def hub(self, r: _Reader) -> HubSettings:
        endpoint = (r.get("endpoint", None, _url) or _env_url(r, self.env, "HF_ENDPOINT", "endpoint")
                    or DEFAULT_ENDPOINT)
        token = self.secret_file(r, "token_file")
        source = "hub.token_file" if token is not None else None
        if token is None and self.env.get("HF_TOKEN"):
            token, source = Secret(self.env["HF_TOKEN"].strip()), "$HF_TOKEN"
        s = HubSettings(
            endpoint=endpoint.rstrip("/"),
            token=token,
            token_source=source,
            timeout=r.get("timeout", 15.0, parse_duration),
            concurrency=r.get("concurrency", 32, _int(1, 256)),
            retries=r.get("retries", 2, _int(0, 10)),
            retry_wait=r.get("retry_wait", 1.0, parse_duration),
        )
        r.done()
        return s

    def pins_settings(self, r: _Reader) -> PinsSettings:
        s = PinsSettings(
            every=r.get("every", 600.0, parse_duration),
            metadata_every=r.get("metadata_every", 3600.0, parse_duration),
            degraded_after=r.get("degraded_after", 3600.0, parse_duration),
            unavailable_after=r.get("unavailable_after", 2, _int(1, 100)),
            jitter=r.get("jitter", 30.0, lambda v: 0.0 if v in (0, "0") else parse_duration(v)),
            include=r.get("include", (), self.includes),
            refs_every=r.get("refs_every", 3600.0, parse_duration),
            scan_every=r.get("scan_every", 21600.0, parse_duration),
        )
        r.done()
        return s

    def includes(self, value: Any) -> tuple[Path, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError('must be a list of file names, e.g. ["pins.toml"]')
        return tuple(self.resolve(v.strip()) for v in value)

    def included_pins(self, own: tuple[Pin, ...], files: tuple[Path, ...]) -> tuple[Pin, ...]:
        """[pins] include: each file holds only [[pin]] tables, checked like the config's own. A pin
        the config already lists is not an error here: a generated file overlaps hand-written pins."""
        pins, seen = list(own), {(p.key, p.revision, p.track) for p in own}
        outer = _PROBLEMS.get()
        for i, path in enumerate(files):
            key = f"pins.include[{i}]"
            inner = _Problems()  # the included file's own problems, reported under pins.include[i]
            token = _PROBLEMS.set(inner)
            try:
                data = tomllib.loads(path.read_bytes().decode("utf-8"))
                r = _Reader(path, "", data)
                tables = r.get("pin", [])
                r.done()
                included = _Loader(path, self.env).pins(tables)
                inner.raise_first()
            except OSError as e:
                problem = ConfigError(str(self.path), key, f"cannot read {path}: {e.strerror or e}")
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
                problem = ConfigError(str(self.path), key, f"{path}: invalid TOML: {e}")
            except ConfigError as e:
                problem = ConfigError(str(self.path), key, str(e))
            else:
                problem = None
            finally:
                _PROBLEMS.reset(token)
            if problem is not None:
                (outer.unknown if inner.unknown else outer.other).append(problem)
                continue
            for pin in included:
                if (pin.key, pin.revision, pin.track) not in seen:
                    seen.add((pin.key, pin.revision, pin.track))
                    pins.append(pin)
        return tuple(pins)

    def pins(self, tables: Any) -> tuple[Pin, ...]:
        if not isinstance(tables, list):
            _Reader(self.path, "pin", {}).fail("", "must be an array of tables ([[pin]])")
            return ()
        pins, seen = [], set()
        for i, table in enumerate(tables):
            r = _Reader(self.path, f"pin[{i}]", table)
            repo, rtype = r.get("repo", None), r.get("type", "model")
            revision, track = r.get("revision", None), r.get("track", None)
            r.done()  # a typo'd key explains a "missing" one: it is reported first
            pin = self._pin(r, repo, rtype, revision, track)
            if pin is None:
                continue
            ident = (pin.key, pin.revision, pin.track)
            if ident in seen:
                r.fail("repo", f"duplicate pin for {repo}")
            seen.add(ident)
            pins.append(pin)
        return tuple(pins)

    def _pin(self, r: _Reader, repo: Any, rtype: Any, revision: Any, track: Any) -> Pin | None:
        """The validated pin, or None when a problem was recorded."""
        if repo is None:
            r.fail("repo", "missing (every [[pin]] needs repo = 'namespace/name')")
            return None
        problem = valid_repo_id(repo)
        if problem:
            r.fail("repo", problem)
            return None
        if rtype not in REPO_TYPES:
            r.fail("type", f"must be one of {', '.join(REPO_TYPES)}, not {rtype!r}")
            return None
        if revision is not None and not (isinstance(revision, str) and _SHA.match(revision)):
            r.fail("revision", f"must be a full 40-hex commit sha, not {revision!r}")
            return None
        problem = valid_track(track) if track is not None else None
        if problem:
            r.fail("track", problem)
            return None
        if revision is None and track is None:
            r.fail("revision", "give revision (a commit sha), track (a branch or tag), or both")
            return None
        return Pin(repo, rtype, revision.lower() if revision else None, track)

    def webhook_url(self, r: _Reader, key: str, env_name: str) -> Secret | None:
        inline = r.get(key, None, _url)
        from_file = self.secret_file(r, f"{key}_file")
        if inline and from_file:
            r.fail(key, f"give {key} or {key}_file, not both")
            return None
        if from_file is not None:
            try:
                _url(from_file.reveal())
            except ValueError as e:
                r.fail(f"{key}_file", f"the file's URL {e}")
                return None
            return from_file
        if inline:
            return Secret(inline)
        from_env = _env_url(r, self.env, env_name, key)
        return Secret(from_env) if from_env else None

    def lookalike(self, r: _Reader) -> LookalikeSettings:
        s = LookalikeSettings(
            protected=r.get("protected", (), _names),
            allow=r.get("allow", (), _names),
            every=r.get("every", 3600.0, parse_duration),
            probe_budget=r.get("probe_budget", 50, _int(0, 100000)),
            reprobe_after=r.get("reprobe_after", 86400.0, parse_duration),
            clone_watch=r.get("clone_watch", 50, _int(0, 1000)),
            clone_budget=r.get("clone_budget", 50, _clone_budget),
        )
        r.done()
        return s

    def roster(self, r: _Reader) -> RosterSettings:
        s = RosterSettings(
            orgs=r.get("orgs", (), _names),
            users=r.get("users", (), _names),
            every=r.get("every", 21600.0, parse_duration),
            budget=r.get("budget", 200, _int(1, 100000)),
        )
        r.done()
        return s


def load(path: str | os.PathLike, env: dict[str, str] | None = None) -> Settings:
    """Read and validate a config file; raises ConfigError (one line, naming the absolute path) on
    any problem."""
    p = Path(os.path.abspath(path))
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(str(p), "", f"cannot read config: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(str(p), "", f"invalid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(str(p), "", "invalid TOML: arrays or tables nested too deeply") from None
    problems, bare = _Problems(), []
    token, bare_token = _PROBLEMS.set(problems), _BARE.set(bare)
    try:
        settings = _Loader(p.resolve(), dict(os.environ if env is None else env)).load(data)
    finally:
        _PROBLEMS.reset(token)
        _BARE.reset(bare_token)
    problems.raise_first()
    return replace(settings, bare_durations=tuple(dict.fromkeys(bare)))
