"""Hugging Face Hub webhook payloads -> frozen `HubEvent`s, and the shared-secret check.

The payload is attacker-reachable (anyone who can reach the port can POST), so the parser is
tolerant in one direction only: unknown keys, unknown scopes and future actions are accepted
(the Hub documents that scopes will grow), but every field we *use* is checked for type, shape
and length, and anything else ends as one `HubEventError` line, never as another exception.
Error texts name the offending key, never echo its value (they are sent back to the caller).

Payload shape (hub-docs `webhooks.md`, webhook version 3; `huggingface_hub._webhooks_payload`):
``{"event": {"action", "scope"}, "repo": {"type", "name", "id", "headSha", ...},
"updatedRefs": [{"ref", "oldSha", "newSha"}], "movedTo": {"name", "owner": {"id"}}, "webhook": {...}}``
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from monitor.config import REPO_TYPES, repo_key

MAX_PAYLOAD = 1_000_000
MAX_REFS = 1000
_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # actions and scopes: "update", "repo.content"
_PART = r"[A-Za-z0-9_.-]{1,96}"
# Legacy canonical repos ("gpt2") have no namespace, so the namespace is optional here.
_REPO_NAME = re.compile(rf"(?:{_PART}/)?{_PART}")
_SHA = re.compile(r"[0-9a-fA-F]{40}")
_REF = re.compile(r"refs/[\x21-\x7e]{1,250}")  # printable ASCII, no spaces: refs/heads/main, refs/pr/1
_RAW_ID = re.compile(r"[\x21-\x7e]{1,64}")


class HubEventError(ValueError):
    """The body is not a Hub webhook payload we can use. The message is one line, safe to return."""


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    old_sha: str | None  # None: the ref was created
    new_sha: str | None  # None: the ref was deleted


@dataclass(frozen=True)
class HubEvent:
    action: str  # create / delete / update / move (others accepted: the Hub may add some)
    scope: str  # repo / repo.content / repo.config / discussion / discussion.comment / ...
    repo_type: str  # model / dataset / space
    repo_name: str  # as sent, e.g. "meta-llama/Llama-3-8B"
    head_sha: str | None = None  # lower-case; only sent on repo.* scopes
    updated_refs: tuple[RefUpdate, ...] = ()
    moved_to: str | None = None  # new repo id on a "move"
    raw_id: str | None = None  # the Hub's object id of the repo (`repo.id`); changes on delete+re-create

    @property
    def key(self) -> str:
        """The state key of the repo (as `Pin.key`)."""
        return repo_key(self.repo_type, self.repo_name)


def secret_matches(configured: str, given: str | None) -> bool:
    """Constant-time comparison of a secret sent in a header (X-Webhook-Secret, the Bearer token)
    with the configured one."""
    if not given:
        return False
    # http.server decodes header bytes as latin-1; encoding back gives the bytes that were sent.
    return hmac.compare_digest(configured.encode("utf-8"), given.encode("latin-1", "replace"))


def parse_hub_event(body: bytes, max_bytes: int = MAX_PAYLOAD) -> HubEvent:
    """Raw request body -> HubEvent; raises HubEventError (and nothing else) on any problem."""
    if not isinstance(body, (bytes, bytearray)):
        raise HubEventError("payload must be bytes")
    if len(body) > max_bytes:
        raise HubEventError(f"payload larger than {max_bytes} bytes")
    try:
        data = json.loads(bytes(body).decode("utf-8"))
    except UnicodeDecodeError:
        raise HubEventError("payload is not UTF-8") from None
    except (ValueError, RecursionError):  # RecursionError: a deeply nested document
        raise HubEventError("payload is not valid JSON") from None
    return event_from_json(data)


def event_from_json(data: Any) -> HubEvent:
    """A decoded JSON value -> HubEvent; raises HubEventError on anything unusable."""
    if not isinstance(data, dict):
        raise HubEventError("payload must be a JSON object")
    event = _object(data, "event")
    action = _match(event, "action", _TOKEN, "event.action")
    scope = _match(event, "scope", _TOKEN, "event.scope")
    repo = _object(data, "repo")
    repo_type = repo.get("type")
    if repo_type not in REPO_TYPES:
        raise HubEventError(f"repo.type must be one of {', '.join(REPO_TYPES)}")
    name = _match(repo, "name", _REPO_NAME, "repo.name")
    head = _optional(repo, "headSha", _SHA, "repo.headSha")
    raw_id = _optional(repo, "id", _RAW_ID, "repo.id")
    return HubEvent(action, scope, repo_type, name, head.lower() if head else None,
                    _refs(data.get("updatedRefs")), _moved_to(data.get("movedTo")), raw_id)


def _object(parent: dict, key: str) -> dict:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise HubEventError(f"{key} must be a JSON object")
    return value


def _match(parent: dict, key: str, pattern: re.Pattern, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise HubEventError(f"{where} is missing or malformed")
    return value


def _optional(parent: dict, key: str, pattern: re.Pattern, where: str) -> str | None:
    if parent.get(key) is None:
        return None
    return _match(parent, key, pattern, where)


def _refs(value: Any) -> tuple[RefUpdate, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise HubEventError("updatedRefs must be a list")
    if len(value) > MAX_REFS:
        raise HubEventError(f"updatedRefs has more than {MAX_REFS} entries")
    out = []
    for i, item in enumerate(value):
        where = f"updatedRefs[{i}]"
        if not isinstance(item, dict):
            raise HubEventError(f"{where} must be a JSON object")
        ref = _match(item, "ref", _REF, f"{where}.ref")
        old = _optional(item, "oldSha", _SHA, f"{where}.oldSha")
        new = _optional(item, "newSha", _SHA, f"{where}.newSha")
        out.append(RefUpdate(ref, old.lower() if old else None, new.lower() if new else None))
    return tuple(out)


def _moved_to(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # not the documented shape, but unambiguous
        value = {"name": value}
    if not isinstance(value, dict):
        raise HubEventError("movedTo must be a JSON object")
    return _match(value, "name", _REPO_NAME, "movedTo.name")
