"""ModelCards and the catalogue: which models can do which task, and whether they can run here.

Experts reach the catalogue through the ``baton.experts`` entry-point group: each entry point is a
``register(add)`` function that calls ``add(card)`` for every ModelCard it offers. baton's own builtin
experts use the same path as third-party plugins.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import shutil
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from baton.config import Settings

__all__ = ["Catalog", "ModelCard", "UnknownModel", "load_catalog"]

Backend = Literal["builtin", "transformers", "diffusers", "remote", "ray", "llm"]


class ModelCard(BaseModel):
    """One model that can do one task, and what it needs to run."""

    model_config = ConfigDict(frozen=True)

    id: str  # "org/name" for Hub models, "builtin/..." for offline ones
    task: str  # baton task name
    backend: Backend
    description: str
    factory: str  # "module:Class" building the Expert from this card
    popularity: int = 0
    popularity_source: str = ""
    params: int | None = None  # parameter count, when the model has any
    memory_mb: int = 0  # resident memory while loaded (fp32 for Hub models), an estimate
    memory_fp16_mb: int = 0  # the same at fp16, for Hub models on a GPU
    licence: str = ""
    python: tuple[str, ...] = ()  # importable modules it needs
    extra: str | None = None  # the pip extra that provides them
    binaries: tuple[str, ...] = ()  # programs it runs
    apt: tuple[str, ...] = ()  # Debian packages that provide those programs
    options: dict[str, Any] = {}
    hub: dict[str, Any] = {}  # how a Hub model loads: pipeline task, diffusers class, base model, local path

    def missing(self, settings: Settings | None = None) -> list[str]:
        """What stops this model from running here, each with its fix; empty when it can run."""
        reasons = []
        if self.backend == "llm":
            from baton.config import Settings

            if not (settings or Settings.load()).llm_configured:
                reasons.append(
                    "no LLM is configured: set BATON_LLM_MODEL and OPENAI_BASE_URL (or OPENAI_API_KEY for OpenAI)"
                )
        absent = [m for m in self.python if importlib.util.find_spec(m) is None]
        if absent:
            install = f"pip install 'baton[{self.extra}]'" if self.extra else "pip install " + " ".join(absent)
            reasons.append(f"Python module {', '.join(absent)} is not installed: {install}")
        programs = [b for b in self.binaries if shutil.which(b) is None]
        if programs:
            packages = " ".join(self.apt) or " ".join(programs)
            reasons.append(f"program {', '.join(programs)} is not installed: sudo apt-get install {packages}")
        if self.backend in ("transformers", "diffusers"):
            from baton.experts.hub import weights_missing

            reasons += weights_missing(self, settings)
        return reasons

    def build(self) -> Any:
        """Construct the (not yet loaded) Expert for this card."""
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)(self)


OWN_EXPERTS = {
    "builtin": "baton.experts.builtin:register",
    "llm": "baton.experts.llm:register",
    "hub": "baton.experts.hub:register",
}


class UnknownModel(LookupError):
    pass


class Catalog:
    """All ModelCards known here, by id and by task."""

    def __init__(self, cards: Iterable[ModelCard] = ()) -> None:
        self._cards: dict[str, ModelCard] = {}
        for card in cards:
            self.add(card)

    def add(self, card: ModelCard) -> None:
        from baton.tasks import resolve

        card = card.model_copy(update={"task": resolve(card.task)})
        if card.id in self._cards and self._cards[card.id].task != card.task:
            raise ValueError(f"model id '{card.id}' is registered twice for different tasks")
        self._cards[card.id] = card

    def __iter__(self) -> Any:
        return iter(self._cards.values())

    def __len__(self) -> int:
        return len(self._cards)

    def get(self, model_id: str) -> ModelCard:
        try:
            return self._cards[model_id]
        except KeyError:
            close = difflib.get_close_matches(model_id, list(self._cards), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownModel(f"unknown model '{model_id}'{hint} (see 'baton models' for the catalogue)") from None

    def for_task(self, task: str) -> list[ModelCard]:
        return [card for card in self._cards.values() if card.task == task]


def load_catalog() -> Catalog:
    """The catalogue from every installed ``baton.experts`` entry point (builtin included)."""
    from importlib.metadata import entry_points

    catalog = Catalog()
    found = entry_points(group="baton.experts")
    registers: list[Callable[[Callable[[ModelCard], None]], None]] = [ep.load() for ep in found]
    names = {ep.name for ep in found}
    for name, target in OWN_EXPERTS.items():  # a source tree that was never installed has no entry points
        if name not in names:
            module, _, attr = target.partition(":")
            registers.append(getattr(importlib.import_module(module), attr))
    for register in registers:
        register(catalog.add)
    return catalog
