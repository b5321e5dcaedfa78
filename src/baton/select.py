"""Choosing an expert for each task: candidates from the catalogue, filtered by what runs here, ranked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baton.catalog import Catalog, ModelCard, UnknownModel
from baton.tasks import get_task

if TYPE_CHECKING:
    from baton.config import Settings
    from baton.llm import LLM, Usage

__all__ = ["NoExpert", "Selection", "choose_with_llm", "parse_model_overrides", "runnable", "select"]


class NoExpert(LookupError):
    """No model can run a task here; the message lists what would make one available."""


@dataclass(frozen=True)
class Selection:
    card: ModelCard
    alternatives: tuple[ModelCard, ...] = ()  # runnable fallbacks, best first


def _rank(card: ModelCard, cpu_budget_mb: float) -> tuple[bool, bool, int, int]:
    """Cached before needing a download, fitting the budget before not, smaller first, then popularity."""
    from baton.experts.hub import is_cached

    return (not is_cached(card), card.memory_mb > cpu_budget_mb, card.memory_mb, -card.popularity)


def runnable(task: str, catalog: Catalog, settings: Settings | None = None) -> list[ModelCard]:
    """The models that can run ``task`` here, best first."""
    from baton.experts.cache import default_budget, parse_budget

    budget = parse_budget(settings.memory).get("cpu") if settings is not None and settings.memory else None
    cpu_mb = (budget or default_budget("cpu")) / 2**20
    ready = [card for card in catalog.for_task(task) if not card.missing(settings)]
    return sorted(ready, key=lambda card: _rank(card, cpu_mb))


def select(
    task: str, catalog: Catalog, forced: Mapping[str, str] | None = None, settings: Settings | None = None
) -> Selection:
    """The best runnable model for ``task`` (or the one the user forced); raises NoExpert."""
    forced = forced or {}
    if task in forced:
        card = catalog.get(forced[task])
        missing = card.missing(settings)
        if missing:
            raise NoExpert(f"{card.id} cannot run here: {'; '.join(missing)}")
        return Selection(card)
    ready = runnable(task, catalog, settings)
    if ready:
        return Selection(ready[0], tuple(ready[1:]))
    candidates = catalog.for_task(task)
    if not candidates:
        raise NoExpert(
            f"no model for {task} is in the catalogue yet; install a plugin that provides one (see 'baton models')"
        )
    fixes = "; ".join(f"{card.id}: {', '.join(card.missing(settings))}" for card in candidates)
    raise NoExpert(f"no model for {task} can run here. To make one available: {fixes}")


def choose_with_llm(
    request: str,
    tasks: Mapping[int, tuple[str, Sequence[ModelCard]]],
    llm: LLM,
    usage: Usage | None = None,
    top_k: int = 5,
) -> tuple[dict[int, str], list[str]]:
    """ONE LLM call choosing a model for every task that has several candidates.

    ``tasks`` maps task id -> (task name, runnable candidates best first). Returns the valid choices
    (task id -> model id) and notices for choices that were not among the candidates.
    """
    from baton.llm import parse_json
    from baton.prompts import render

    open_choices = {tid: (name, list(cards)[:top_k]) for tid, (name, cards) in tasks.items() if len(cards) > 1}
    if not open_choices:
        return {}, []
    lines = []
    for tid, (name, cards) in open_choices.items():
        lines.append(f"task {tid} ({name}):")
        lines += [f"  - {card.id}: {card.description}" for card in cards]
    prompt = render("select_system.txt", request=request, tasks="\n".join(lines))
    reply = llm.chat([{"role": "user", "content": prompt}], stage="select", usage=usage, json_schema=SELECT_SCHEMA)
    data = parse_json(reply.content)
    picks = data.get("choices", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    chosen: dict[int, str] = {}
    notices: list[str] = []
    for pick in picks:
        if not isinstance(pick, dict):
            continue
        try:
            tid = int(pick.get("id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        model = str(pick.get("model", ""))
        if tid not in open_choices:
            continue
        if model in {card.id for card in open_choices[tid][1]}:
            chosen[tid] = model
    for tid, (_, cards) in open_choices.items():
        if tid not in chosen:
            notices.append(
                f"the LLM chose no valid model for task {tid} (candidates: {', '.join(c.id for c in cards)}); "
                f"using the ranked choice {cards[0].id}"
            )
    return chosen, notices


SELECT_SCHEMA = {
    "type": "object",
    "properties": {
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "model": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["id", "model"],
            },
        }
    },
    "required": ["choices"],
}


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
