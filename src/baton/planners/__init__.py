"""Planners turn a request (and the kinds of its attached files) into a Plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from baton.plan import Plan

__all__ = ["Attachment", "Planner", "PlannerError"]

Attachment = tuple[str, str]  # (file name as the user gave it, media kind)


class PlannerError(ValueError):
    """The request cannot be planned as given; the message says what to add or change."""


class Planner(Protocol):
    name: str

    def plan(self, request: str, files: Sequence[Attachment]) -> Plan: ...
