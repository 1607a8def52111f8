"""How content inspectors read a file: by byte ranges, never whole.

`RangeReader` is the one interface the pure inspectors (pickles, GGUF) see. The Hub side
(hub/files.py) implements it with HTTP `Range` requests against the CDN location of one
resolve; tests use `BytesReader`. Every reader counts what it returned, so a verdict can say
how much it cost and the caps can be enforced where the bytes arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ContentReadError(Exception):
    """A range could not be read. `permanent` is False for what a later try may fix (timeouts,
    5xx, 429): the file is then *not inspected* this time, never judged clean."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ContentCaps:
    """Per-file limits (the issue's numbers); a file past a cap is reported not inspected."""

    pickle_bytes: int = 1_000_000          # bytes of one pickle stream (a ZIP member, decompressed) held
    header_bytes: int = 16 * 1024 * 1024   # GGUF key-value section / ZIP central directory read per file
    members: int = 64                      # *.pkl members inspected in one archive
    tar_members: int = 256                 # tar headers walked in the oldest PyTorch layout


class RangeReader(Protocol):
    path: str

    @property
    def size(self) -> int | None:  # total bytes when known
        ...

    @property
    def bytes_read(self) -> int:  # what read() has returned so far
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer only at the end of the file). Raises
        ContentReadError."""
        ...


class BytesReader:
    """A RangeReader over bytes in memory (tests, and members already decompressed)."""

    def __init__(self, data: bytes, path: str = "<memory>"):
        self._data, self.path, self._read, self.calls = data, path, 0, 0

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def bytes_read(self) -> int:
        return self._read

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ContentReadError(f"bad range {offset}+{length}", permanent=True)
        chunk = self._data[offset:offset + length]
        self._read += len(chunk)
        self.calls += 1
        return chunk
