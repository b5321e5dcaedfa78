"""Planners turn a request (and the kinds of its attached files) into a Plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from baton.plan import Plan

if TYPE_CHECKING:
    from baton.llm import Usage

__all__ = ["Attachment", "PlanContext", "Planner", "PlannerError", "PlanningFailed"]

Attachment = tuple[str, str]  # (file name as the user gave it, media kind)


class PlannerError(ValueError):
    """The request cannot be planned as given; the message says what to add or change."""


class PlanningFailed(RuntimeError):
    """The planner could not produce a valid plan (after its repairs); recorded in the run."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class PlanContext:
    """What a planner may know beyond the request: the session's files, its history, candidates."""

    known: Mapping[str, str] = field(default_factory=dict)  # every name the session knows -> kind
    history: Sequence[tuple[str, str]] = ()  # earlier (request, answer) pairs, oldest first
    usage: Usage | None = None
    candidates: Mapping[str, Sequence[tuple[str, str]]] | None = None  # task -> (model id, description)


class Planner(Protocol):
    name: str

    def plan(self, request: str, files: Sequence[Attachment], context: PlanContext | None = None) -> Plan: ...
