"""The Hub rejected our token: one finding about the token, never one about a repo."""

from __future__ import annotations

from monitor.detect.findings import Finding, Link


HUB_ANSWER = "401 Invalid credentials in Authorization header"


def token_origin(source: str | None) -> str:
    """Where the token came from (`hub.token_file`, `$HF_TOKEN`), as reports name it."""
    return source or "no configured token"


def rejected_sentence(source: str | None, consequence: str) -> str:
    """The one wording of a rejected token: the finding, `once` and `refs scan` differ only in
    what it stops (`consequence`)."""
    return f"the Hub rejected the token from {token_origin(source)} ({HUB_ANSWER}): {consequence}"


def token_rejected(endpoint: str, source: str | None, since: str) -> Finding:
    """`source` names where the token came from (`hub.token_file`, `$HF_TOKEN`). Keyed by when the
    rejection began: one alert per episode, a new one only after the token worked in between."""
    return Finding.make(
        "token_rejected", "high", endpoint,
        rejected_sentence(source, "no pinned repo can be checked until it is replaced"),
        key=[since], evidence={"endpoint": endpoint, "token_source": source, "since": since,
                               "hub_answer": HUB_ANSWER},
        links=(Link("Access tokens", f"{endpoint.rstrip('/')}/settings/tokens"),))
