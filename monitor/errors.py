"""One small error hierarchy. Every error says whether retrying could help (`permanent`)."""

from __future__ import annotations


class HubwatchError(Exception):
    """Base of every error hubwatch raises on purpose."""

    permanent: bool = True


class ConfigError(HubwatchError):
    """Invalid configuration: names the file, the key and the problem in one line."""

    def __init__(self, path: str, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        # Key names come from the file and may hold newlines or U+2028: escape them, keep one line.
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in where + problem))


class UsageError(HubwatchError):
    """Bad command-line input (exit 2)."""


class HubError(HubwatchError):
    """The Hub answered something other than what we asked for."""

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        self.status, self.request_id = status, request_id
        super().__init__(message)


class NotFound(HubError):
    """Definitive: repository (or namespace) does not exist, or is private to us."""


class Gated(NotFound):
    """Definitive: repository is gated and we have no access."""


class Disabled(HubError):
    """Definitive: repository has been disabled by the Hub."""


class RevisionNotFound(HubError):
    """Definitive: the repository exists but this revision does not resolve."""


class TokenRejected(HubError):
    """Definitive about the token, never about a repo: the Hub answered 401 "Invalid credentials in
    Authorization header" (revoked, mistyped or expired token). Nothing can be checked until an
    operator replaces it, so retrying with the same token cannot help."""


class Transient(HubError):
    """Unknown outcome (5xx, 429, timeout, garbled body): retry later, never alert on it."""

    permanent = False

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class SinkError(HubwatchError):
    """An alert sink refused or failed a delivery."""

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None,
                 sink_dead: bool = False, status: int | None = None):
        # sink_dead: the receiver refuses the sink itself (a revoked or mistyped webhook, an
        # archived channel), not this one message: every later message would be refused too.
        self.permanent, self.retry_after = permanent or sink_dead, retry_after
        self.sink_dead, self.status = sink_dead, status
        super().__init__(message)


class StateError(HubwatchError):
    """The state database cannot be used: one line naming the config file, `state.path` and the
    absolute path. Permanent (exit 78) when only an operator can fix it, else temporary (75)."""

    def __init__(self, message: str, *, permanent: bool):
        self.permanent = permanent
        super().__init__(message)
