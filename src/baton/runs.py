"""Run records: everything that happened for one request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from baton.execute import Status
from baton.plan import Plan

__all__ = ["Run", "RunStatus", "Session", "TaskRecord"]

RunStatus = Literal["running", "succeeded", "failed", "interrupted"]


class TaskRecord(BaseModel):
    """One task of a run: what it was, which model ran it, and how it ended."""

    id: int
    task: str
    model: str | None = None
    status: Status = "pending"
    outputs: dict[str, Any] = Field(default_factory=dict)  # port -> {"kind", "value"|"artifact"}
    error: str | None = None
    started: float | None = None
    seconds: float | None = None


class Run(BaseModel):
    """One request's record: the plan, the chosen experts, each task's outcome and the answer."""

    id: str
    session_id: str
    request: str
    planner: str = ""
    status: RunStatus = "running"
    plan: Plan = Field(default_factory=Plan)
    tasks: list[TaskRecord] = Field(default_factory=list)
    answer: str = ""
    error: str | None = None
    notices: list[str] = Field(default_factory=list)  # things the user should know: fallbacks, repairs
    usage: dict[str, dict[str, int]] = Field(default_factory=dict)  # LLM calls and tokens per stage
    created: float = 0.0
    finished: float | None = None

    def task(self, task_id: int) -> TaskRecord:
        return next(t for t in self.tasks if t.id == task_id)


class Session(BaseModel):
    """A conversation: its runs and the files it knows."""

    id: str
    name: str
    created: float
    runs: int = 0
