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
    from baton.config import Settings
    from baton.llm import LLM, Usage
    from baton.media import Artifact, Resource
    from baton.store import Store

__all__ = ["Expert", "ExpertContext", "ExpertError", "TaskContext"]


class ExpertError(RuntimeError):
    """A task failed for a reason the user can act on; the message says what happened and why."""


class ExpertContext(Protocol):
    """What an expert may touch: a scratch folder and the session's artifact store."""

    @property
    def workdir(self) -> Path: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def llm(self) -> LLM | None: ...

    @property
    def usage(self) -> Usage | None: ...

    def save_bytes(self, data: bytes, ext: str) -> Artifact: ...

    def save_file(self, path: Path) -> Artifact: ...


class TaskContext:
    """The ExpertContext of one task: its scratch folder, and artifacts saved into a session's store."""

    def __init__(
        self,
        store: Store,
        session_id: str,
        workdir: Path,
        settings: Settings,
        llm: LLM | None = None,
        usage: Usage | None = None,
    ) -> None:
        self._store, self._session_id, self.workdir, self.settings = store, session_id, workdir, settings
        self.llm, self.usage = llm, usage

    def save_bytes(self, data: bytes, ext: str) -> Artifact:
        return self._store.add_bytes(self._session_id, data, ext)

    def save_file(self, path: Path) -> Artifact:
        return self._store.add_file(self._session_id, path)


class Expert:
    """Base class: subclasses implement ``run`` and, when they hold a model, ``load``/``unload``."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self.loaded = False

    @property
    def memory_bytes(self) -> int:
        """The estimated resident size while loaded (from the card)."""
        return self.card.memory_mb * 1024 * 1024

    @property
    def device(self) -> str:
        """Where the expert's memory lives: "cpu", or "cuda:0" and so on."""
        return "cpu"

    def measured_bytes(self) -> int:
        """The size actually loaded, once known (0: keep the estimate)."""
        return 0

    def load(self) -> None:
        self.loaded = True

    def unload(self) -> None:
        self.loaded = False

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        raise NotImplementedError
