"""`hubwatch check-config` warnings: valid settings that are likely a surprise. One line each,
naming the file and the key; never an error (exit stays 0). Secret-file permission warnings come
from secrets_check and end the list."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from typing import Mapping

from monitor.config import Settings
from monitor.secrets_check import secret_file_warnings

# Secrets a config may hold inline (the others can only come from files).
INLINE_SECRETS = (("slack", "webhook_url"), ("webhook", "url"))


def warnings(settings: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    where = str(settings.path)
    out: list[str] = []
    if not _loopback(settings.http.host) and settings.http.token is None:
        out.append(f"{where}: http.listen: {settings.http.host}:{settings.http.port} is reachable from other "
                   "hosts and http.token_file is not set: /metrics and /v1/lookup answer anyone")
    out += [f"{where}: {section}.{key}: a secret written inline in a config readable by group/others "
            f"(mode {mode:04o}): use {key}_file (a systemd credential) or chmod 600 the config"
            for section, key, mode in _inline_secrets(settings)]
    if settings.sink_names() == ("stdout",) and (env.get("INVOCATION_ID") or env.get("JOURNAL_STREAM")):
        out.append(f"{where}: slack.webhook_url: no [slack] or [webhook] sink: under systemd, alerts go to "
                   "stdout (the journal) only, where nobody is paged")
    out += [f"{where}: {key}: a bare number is read as seconds; write it with its unit (e.g. \"30s\", \"10m\")"
            for key in settings.bare_durations]
    return out + secret_file_warnings(settings.secret_files, env)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any address


def _inline_secrets(settings: Settings) -> list[tuple[str, str, int]]:
    try:
        mode = os.stat(settings.path).st_mode & 0o777
        if not mode & 0o077:
            return []
        data = tomllib.loads(settings.path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return []
    return [(section, key, mode) for section, key in INLINE_SECRETS
            if isinstance(data.get(section), dict) and key in data[section]]
