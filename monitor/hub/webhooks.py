"""Register hubwatch's Hub webhook (needs a token): one webhook watching the pinned repos and the
protected orgs, pointed at the daemon's /hooks/hub. Re-running install updates it in place."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config import Settings
from monitor.errors import HubError, TokenRejected, Transient
from monitor.hub import session


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str | None
    watched: tuple[tuple[str, str], ...]  # (type, name)
    domains: tuple[str, ...]
    disabled: bool
    created: bool = False  # install: True when new, False when an existing one was updated


def watched_items(settings: Settings) -> list[dict[str, str]]:
    items = {(p.type, p.repo) for p in settings.pin}
    items |= {("org", name) for name in settings.lookalike.protected}
    return [{"type": t, "name": n} for t, n in sorted(items)]


def _api(settings: Settings):
    session.prepare(settings.hub.endpoint)
    from huggingface_hub import HfApi

    return HfApi(endpoint=settings.hub.endpoint, token=settings.hub.token.reveal())


def _convert(info, created: bool = False) -> Webhook:
    return Webhook(info.id, info.url, tuple((w.type, w.name) for w in info.watched or ()),
                   tuple(info.domains or ()), bool(info.disabled), created)


def _call(fn, *args, **kwargs):
    from huggingface_hub import errors as hf_errors

    try:
        return fn(*args, **kwargs)
    except hf_errors.HfHubHTTPError as e:
        from monitor.hub.client import BAD_TOKEN_MESSAGE, error_message

        status = getattr(e.response, "status_code", None)
        if status == 401 and error_message(e.response) == BAD_TOKEN_MESSAGE:  # header or body alike
            raise TokenRejected(f"the Hub rejected the token: {BAD_TOKEN_MESSAGE}", status=401) from None
        if status is None or status >= 500 or status == 429:
            raise Transient(f"Hub error {status} while managing webhooks", status=status) from None
        raise HubError(f"the Hub refused ({status}): check the token has write access to webhooks",
                       status=status) from None
    except OSError as e:
        raise Transient(f"Hub unreachable: {type(e).__name__}") from None


def list_webhooks(settings: Settings) -> list[Webhook]:
    api = _api(settings)
    return [_convert(w) for w in _call(api.list_webhooks)]


def install(settings: Settings, url: str) -> Webhook:
    """Create the webhook, or update the one already pointing at `url`."""
    api = _api(settings)
    watched = watched_items(settings)
    secret = settings.hub_webhook_secret.reveal()
    existing = next((w for w in _call(api.list_webhooks) if w.url == url), None)
    if existing is not None:
        info = _call(api.update_webhook, existing.id, url=url, watched=watched, domains=["repo"], secret=secret)
        return _convert(info, created=False)
    return _convert(_call(api.create_webhook, url=url, watched=watched, domains=["repo"], secret=secret),
                    created=True)
