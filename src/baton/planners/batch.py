"""Batch planning in TaskBench's format: exactly one prediction line for every input line.

Input lines are ``{"id", "user_request"}`` (or ``"instruction"``); output lines are
``{"id", "result": {"task_steps", "task_nodes", "task_links"}, "confidence"}`` using the tool ids of
the chosen tool list. A blank or unreadable line, or one without a request, gets an empty plan and an
``error`` saying why, so the output stays aligned with the input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from baton.planners.model import Node, PlannerModel, Prediction, load_model
from baton.taskbench import DOMAINS, ToolList, load_tools

__all__ = ["EMPTY_RESULT", "BatchPlanner"]

EMPTY_RESULT: dict[str, list[Any]] = {"task_steps": [], "task_nodes": [], "task_links": []}


@dataclass
class BatchPlanner:
    """Plans TaskBench lines with the model that fits a tool list, answering in that list's tool ids."""

    tools: ToolList
    model: PlannerModel
    mapping: dict[str, str] | None = None  # model tool -> list tool, when the model is not the list's own
    seconds: list[float] = field(default_factory=list)  # planning time of each request

    @classmethod
    def for_tools(cls, spec: str, model: PlannerModel | None = None) -> BatchPlanner:
        """'huggingface', 'multimedia', or a tool_desc.json path (planned by the model whose tools it lists,
        else by the 'baton' model, mapped through task aliases)."""
        tools = load_tools(spec)
        if model is not None:
            return cls(tools=tools, model=model, mapping=_mapping(model, tools))
        for domain in DOMAINS:
            if set(load_tools(domain).ids) == set(tools.ids):
                return cls(tools=tools, model=load_model(domain))
        general = load_model("baton")
        return cls(tools=tools, model=general, mapping=_mapping(general, tools))

    def plan_line(self, line: str) -> dict[str, Any]:
        """The prediction line for one input line (never raises for bad input)."""
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError as exc:
            return {"id": None, "result": _empty(), "error": f"not JSON: {exc.msg}"}
        if record is None:
            return {"id": None, "result": _empty(), "error": "blank line"}
        if not isinstance(record, dict):
            return {"id": None, "result": _empty(), "error": "not a JSON object"}
        request = record.get("user_request", record.get("instruction"))
        if not isinstance(request, str) or not request.strip():
            return {"id": record.get("id"), "result": _empty(), "error": "no user_request or instruction"}
        started = time.perf_counter()
        try:
            prediction = self.model.predict(request)
            result = self._result(prediction)
        except Exception as exc:  # one line per input line, always: a failure is reported in its line
            return {
                "id": record.get("id"),
                "result": _empty(),
                "error": f"planning failed: {type(exc).__name__}: {exc}",
            }
        self.seconds.append(time.perf_counter() - started)
        return {"id": record.get("id"), "result": result, "confidence": prediction.confidence}

    def plan_lines(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            yield json.dumps(self.plan_line(line), ensure_ascii=False)

    def _result(self, prediction: Prediction) -> dict[str, Any]:
        if self.mapping is None:
            return prediction.to_taskbench()
        kept = [i for i, node in enumerate(prediction.nodes) if node.tool in self.mapping]
        renumber = {old: new for new, old in enumerate(kept)}
        nodes = []
        for old in kept:
            node = prediction.nodes[old]
            args = []
            for arg in node.args:
                if arg.startswith("<node-"):
                    source = int(arg[6:-1])
                    if source in renumber:
                        args.append(f"<node-{renumber[source]}>")
                else:
                    args.append(arg)
            parents = [renumber[p] for p in node.parents if p in renumber]
            nodes.append(Node(tool=self.mapping[node.tool], args=args, parents=parents, probability=node.probability))
        return Prediction(nodes=nodes, confidence=prediction.confidence).to_taskbench()


def _empty() -> dict[str, list[Any]]:
    return {key: [] for key in EMPTY_RESULT}


def _mapping(model: PlannerModel, tools: ToolList) -> dict[str, str] | None:
    """Model tool id -> the list's tool id naming the same baton task; None when the ids already match."""
    if set(model.ids) <= set(tools.ids):
        return None
    from baton.tasks import UnknownTask, resolve

    def baton_name(name: str) -> str | None:
        try:
            return resolve(name)
        except UnknownTask:
            return None

    by_task: dict[str, str] = {}
    for tool in tools.tools:
        task = baton_name(tool.id)
        if task is not None:
            by_task.setdefault(task, tool.id)
    mapping = {}
    for tool_id in model.ids:
        task = baton_name(tool_id)
        if task is not None and task in by_task:
            mapping[tool_id] = by_task[task]
    return mapping
