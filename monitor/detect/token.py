"""The Hub rejected our token: one finding about the token, never one about a repo."""

from __future__ import annotations

from monitor.detect.findings import Finding, Link


def token_rejected(endpoint: str, source: str | None, since: str) -> Finding:
    """`source` names where the token came from (`hub.token_file`, `$HF_TOKEN`). Keyed by when the
    rejection began: one alert per episode, a new one only after the token worked in between."""
    where = source or "no configured token"
    return Finding.make(
        "token_rejected", "high", endpoint,
        f"the Hub rejected the token from {where} (401 Invalid credentials in Authorization header): "
        "no pinned repo can be checked until it is replaced",
        key=[since], evidence={"endpoint": endpoint, "token_source": source, "since": since,
                               "hub_answer": "401 Invalid credentials in Authorization header"},
        links=(Link("Access tokens", f"{endpoint.rstrip('/')}/settings/tokens"),))
