"""Routing between the local planner and the LLM: answer locally when the model is sure, else ask the LLM.

The local planner's confidence is the least sure of its decisions about which tasks a request needs
(each tool's probability, or its complement when left out). At or above the threshold
(``BATON_ROUTER_THRESHOLD``) its plan is used and the LLM round trip is saved; below it, or when the
local planner finds no task or cannot wire the plan, the LLM plans; a threshold of 1 always asks the
LLM. ``name`` says who planned the last request ("local" or "llm"), ``confidence`` the local
planner's confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from baton.plan import Plan
from baton.planners import Attachment, PlanContext, Planner, PlannerError
from baton.planners.local import LocalPlanner

if TYPE_CHECKING:
    from baton.catalog import Catalog
    from baton.config import Settings
    from baton.llm import LLM

__all__ = ["RoutingPlanner", "choose_planner"]


class RoutingPlanner:
    """The local planner when its confidence reaches ``threshold``, else the LLM planner."""

    def __init__(self, local: LocalPlanner, llm: Planner, threshold: float) -> None:
        self.local = local
        self.llm = llm
        self.threshold = threshold
        self.name = "auto"
        self.confidence: float | None = None

    def plan(self, request: str, files: Sequence[Attachment], context: PlanContext | None = None) -> Plan:
        try:
            plan, self.confidence = self.local.plan_with_confidence(request, files, context)
        except PlannerError:
            plan, self.confidence = None, None
        sure = self.confidence is not None and self.threshold < 1 and self.confidence >= self.threshold
        if plan is not None and plan.tasks and sure:
            self.name = self.local.name
            return plan
        self.name = self.llm.name
        return self.llm.plan(request, files, context)


def choose_planner(name: str, settings: Settings, llm: LLM | None, catalog: Catalog | None = None) -> Planner:
    """The planner for ``--planner``: 'local'; 'llm'; 'auto' = routing when an LLM is configured, else local."""
    if name == "local" or (name == "auto" and llm is None):
        return LocalPlanner()
    if llm is None:
        from baton.media import BadInput

        raise BadInput(
            "--planner llm needs an LLM, and none is configured: set BATON_LLM_MODEL and OPENAI_BASE_URL "
            "(or OPENAI_API_KEY for OpenAI)"
        )
    from baton.catalog import load_catalog
    from baton.planners.llm import LLMPlanner

    cards = catalog if catalog is not None else load_catalog()
    llm_planner = LLMPlanner(llm, {card.task for card in cards if not card.missing(settings)})
    if name == "llm":
        return llm_planner
    return RoutingPlanner(LocalPlanner(), llm_planner, settings.router_threshold)
