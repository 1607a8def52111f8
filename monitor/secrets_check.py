"""Warnings about how secret files are kept (`check-config` and daemon start-up): one line each,
naming the config key. A secret file readable by group or others, or reached through a symlink
that leads out of the credentials directory (where another user may swap what it points at), is
accepted, but said out loud: the operator fixes it, the daemon keeps running.

The credentials directory is systemd's `$CREDENTIALS_DIRECTORY` when set (LoadCredential=), else
the directory the config names the file in.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Mapping


def secret_file_warnings(files: Iterable[tuple[str, Path]], env: Mapping[str, str] | None = None) -> list[str]:
    """One line per problem with the secret files `(config key, path)`."""
    env = os.environ if env is None else env
    out = []
    for key, path in files:
        try:
            link = os.lstat(path)
            target = os.stat(path)
        except OSError:
            continue  # unreadable: config loading already refused it
        if stat.S_ISLNK(link.st_mode):
            home = Path(env.get("CREDENTIALS_DIRECTORY") or path.parent).resolve()
            real = path.resolve()
            if not real.is_relative_to(home):
                out.append(f"{key}: {path} is a symlink to a file outside the credentials directory {home}; "
                           "point the key at the file itself, or keep it inside that directory")
        if target.st_mode & 0o044:
            out.append(f"{key}: {path} is readable by group or others (mode {stat.S_IMODE(target.st_mode):04o}); "
                       "chmod 600 it")
    return out
