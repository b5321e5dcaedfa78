"""Loaded experts, shared by the tasks of a process: each loads once, on first use."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from baton.catalog import ModelCard
    from baton.experts import Expert

__all__ = ["ExpertCache"]


class ExpertCache:
    def __init__(self) -> None:
        self._experts: dict[str, Expert] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, card: ModelCard) -> Expert:
        """The loaded expert for a card; concurrent callers wait for one load."""
        with self._guard:
            lock = self._locks.setdefault(card.id, threading.Lock())
        with lock:
            expert = self._experts.get(card.id)
            if expert is None:
                expert = card.build()
                expert.load()
                self._experts[card.id] = expert
            return expert

    def clear(self) -> None:
        with self._guard:
            experts, self._experts = self._experts, {}
        for expert in experts.values():
            expert.unload()
