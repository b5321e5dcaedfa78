"""Experts: loaded, runnable ModelCards.

An Expert is built from its card, loads lazily (``load()`` on first use), runs one task at a time
from typed inputs to typed outputs, and can be unloaded. Blocking work is fine: the executor runs
``run()`` in a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from baton.catalog import ModelCard
    from baton.media import Artifact, Resource

__all__ = ["Expert", "ExpertContext", "ExpertError"]


class ExpertError(RuntimeError):
    """A task failed for a reason the user can act on; the message says what happened and why."""


class ExpertContext(Protocol):
    """What an expert may touch: a scratch folder and the session's artifact store."""

    @property
    def workdir(self) -> Path: ...

    def save_bytes(self, data: bytes, ext: str) -> Artifact: ...

    def save_file(self, path: Path) -> Artifact: ...


class Expert:
    """Base class: subclasses implement ``run`` and, when they hold a model, ``load``/``unload``."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self.loaded = False

    @property
    def memory_bytes(self) -> int:
        return self.card.memory_mb * 1024 * 1024

    def load(self) -> None:
        self.loaded = True

    def unload(self) -> None:
        self.loaded = False

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        raise NotImplementedError
