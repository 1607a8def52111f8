"""A job's round-robin over a list under a per-cycle budget: where it stopped is kept in the store
(meta), so successive cycles cover the whole list even when the list changes in between."""

from __future__ import annotations

from typing import Generic, Sequence, TypeVar

from monitor.store import Store

T = TypeVar("T")


class RoundRobin(Generic[T]):
    def __init__(self, store: Store, key: str, items: Sequence[T]):
        self.store, self.key, self.items = store, key, list(items)
        self.start = int(store.get_meta(key) or 0) % max(1, len(self.items))

    def order(self) -> list[T]:
        """The items, from where the last cycle stopped round to just before it."""
        return self.items[self.start:] + self.items[:self.start]

    def advance(self, done: int) -> None:
        """Move past the `done` items handled this cycle (an empty list keeps the stored cursor)."""
        if self.items:
            self.store.set_meta(self.key, str((self.start + done) % len(self.items)))
