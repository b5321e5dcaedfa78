"""Offline experts that run on a CPU with no downloaded weights.

Each module of this package lists its ModelCards in ``CARDS``; ``register`` adds them all. Modules
import their heavy libraries inside ``run`` so that listing the catalogue stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from baton.catalog import ModelCard

__all__ = ["register"]


def register(add: Callable[[ModelCard], None]) -> None:
    """Entry point of the ``baton.experts`` group for baton's own builtin experts."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        cards: list[ModelCard] = getattr(importlib.import_module(f"{__name__}.{module.name}"), "CARDS", [])
        for card in cards:
            add(card)
