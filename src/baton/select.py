"""Choosing an expert for each task: candidates from the catalogue, filtered by what runs here, ranked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from baton.catalog import Catalog, ModelCard, UnknownModel
from baton.tasks import get_task

__all__ = ["NoExpert", "Selection", "parse_model_overrides", "select"]


class NoExpert(LookupError):
    """No model can run a task here; the message lists what would make one available."""


@dataclass(frozen=True)
class Selection:
    card: ModelCard
    alternatives: tuple[ModelCard, ...] = ()  # runnable fallbacks, best first


def _rank(card: ModelCard) -> tuple[int, int, int]:
    # offline builtin experts first, then smaller memory, then popularity
    return (0 if card.backend == "builtin" else 1, card.memory_mb, -card.popularity)


def select(task: str, catalog: Catalog, forced: Mapping[str, str] | None = None) -> Selection:
    """The best runnable model for ``task`` (or the one the user forced); raises NoExpert."""
    forced = forced or {}
    if task in forced:
        card = catalog.get(forced[task])
        missing = card.missing()
        if missing:
            raise NoExpert(f"{card.id} cannot run here: {'; '.join(missing)}")
        return Selection(card)
    candidates = sorted(catalog.for_task(task), key=_rank)
    runnable = [card for card in candidates if not card.missing()]
    if runnable:
        return Selection(runnable[0], tuple(runnable[1:]))
    if not candidates:
        raise NoExpert(
            f"no model for {task} is in the catalogue yet; install a plugin that provides one (see 'baton models')"
        )
    fixes = "; ".join(f"{card.id}: {', '.join(card.missing())}" for card in candidates)
    raise NoExpert(f"no model for {task} can run here. To make one available: {fixes}")


def parse_model_overrides(pairs: list[str], catalog: Catalog) -> dict[str, str]:
    """Read ``TASK=MODEL`` pairs, checking that the task and model exist and match."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        task_name, sep, model_id = pair.partition("=")
        if not sep or not task_name.strip() or not model_id.strip():
            raise ValueError(f"--model '{pair}' must look like TASK=MODEL, e.g. image-to-text=builtin/tesseract")
        spec = get_task(task_name.strip())
        try:
            card = catalog.get(model_id.strip())
        except UnknownModel as exc:
            raise ValueError(str(exc)) from None
        if card.task != spec.name:
            raise ValueError(f"model {card.id} does {card.task}, not {spec.name}; pick a model for {spec.name}")
        overrides[spec.name] = card.id
    return overrides
