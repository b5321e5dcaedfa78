"""Planning with an LLM, HuggingGPT style, that never loses a request to a formatting slip.

The prompt is generated from the task registry (names, typed inputs and outputs, descriptions), the
session's files by name, a trimmed history and worked examples from ``prompts/``. The reply is read
tolerantly (code fences, prose around the JSON, trailing commas, single quotes, a missing outer
bracket, ``<GENERATED>-k`` typos), then validated. If it still cannot run, the model is asked once
more with the exact problems; after that the planning fails with those problems, recorded in the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from baton.llm import LLM, parse_json
from baton.plan import Plan, PlanError, parse_plan, validate
from baton.planners import Attachment, PlanContext, PlanningFailed
from baton.prompts import load_json, render
from baton.tasks import TaskSpec, all_tasks

__all__ = ["PLAN_SCHEMA", "LLMPlanner", "fix_references", "history_text"]

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tasks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "task": {"type": "string"},
                    "args": {"type": "object"},
                    "dep": {"type": "array", "items": {"type": "integer"}},
                    "model": {"type": "string"},
                },
                "required": ["id", "task", "args", "dep"],
            },
        }
    },
    "required": ["tasks"],
}

# "<GENERATED-1>", "<generated>-1", "GENERATED-1", "<GENERATED>1", "<GENERATED>_1", "<node-1>"
_REFERENCE_TYPO = re.compile(r"<?\s*generated\s*>?\s*[-_ ]?\s*(\d+)\s*>?|<node-(\d+)>", re.IGNORECASE)

HISTORY_CHARS = 6000  # about 1,500 tokens of earlier turns


class LLMPlanner:
    """Plans with an LLM: one call, one re-ask with the problems if needed."""

    name = "llm"

    def __init__(self, llm: LLM, runnable: set[str] | None = None) -> None:
        self.llm = llm
        self.runnable = runnable  # tasks an expert can run here, marked in the prompt

    def plan(self, request: str, files: Sequence[Attachment], context: PlanContext | None = None) -> Plan:
        context = context or PlanContext(known=dict(files))
        known = dict(context.known) or dict(files)
        messages = self.messages(request, known, context)
        reply = self.llm.chat(messages, stage="plan", usage=context.usage, json_schema=PLAN_SCHEMA)
        plan, problems = self.read(reply.content, known)
        if plan is not None:
            return plan
        messages += [
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": render("plan_repair.txt", problems="\n".join(f"- {p}" for p in problems))},
        ]
        retry = self.llm.chat(messages, stage="plan", usage=context.usage, json_schema=PLAN_SCHEMA)
        plan, problems = self.read(retry.content, known)
        if plan is not None:
            return plan
        raise PlanningFailed(
            "the LLM's plan could not run, even after it was shown the problems: " + "; ".join(problems), problems
        )

    def messages(self, request: str, known: Mapping[str, str], context: PlanContext) -> list[dict[str, Any]]:
        system = render("plan_system.txt", tasks=self._task_lines(), files=_file_lines(known))
        if context.candidates:
            lines = [
                f"{task}: " + "; ".join(f"{model} ({description})" for model, description in models)
                for task, models in context.candidates.items()
            ]
            system += "\n" + render("plan_select_rule.txt", candidates="\n".join(lines))
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for example in load_json("plan_examples.json"):
            shown = f"Files: {json.dumps(example['files'])}\n{example['request']}"
            messages += [
                {"role": "user", "content": shown},
                {"role": "assistant", "content": json.dumps(example["plan"])},
            ]
        earlier = history_text(context.history, self.llm.settings.history_chars)
        prefix = f"Earlier in this conversation:\n{earlier}\n\n" if earlier else ""
        messages.append({"role": "user", "content": f"{prefix}Files: {json.dumps(dict(known))}\n{request}"})
        return messages

    def read(self, text: str, known: Mapping[str, str]) -> tuple[Plan | None, list[str]]:
        """The plan in a reply, or the problems that stop it from running."""
        data = _plan_in(parse_json(text))
        if data is None or isinstance(data, (str, int, float, bool)):
            return None, ['the reply held no JSON plan; reply with {"tasks": [...]} only']
        if isinstance(data, dict) and "tasks" not in data and "task" in data:
            data = [data]  # a single task object without its list
        try:
            plan = parse_plan(fix_references(data))
            validate(plan, known)
        except PlanError as exc:
            return None, exc.problems
        return plan, []

    def _task_lines(self) -> str:
        return "\n".join(_task_line(spec, self.runnable) for spec in all_tasks())


def _task_line(spec: TaskSpec, runnable: set[str] | None) -> str:
    inputs = ", ".join(f"{p.name}: {p.kind}{'?' if p.optional else ''}" for p in spec.inputs)
    outputs = ", ".join(p.kind for p in spec.outputs)
    mark = "" if runnable is None else (" [runs here]" if spec.name in runnable else "")
    return f"{spec.name}({inputs}) -> {outputs}: {spec.description}{mark}"


def _file_lines(known: Mapping[str, str]) -> str:
    return "\n".join(f"{name}: {kind}" for name, kind in known.items()) or "(none)"


def _plan_in(data: Any) -> Any:
    """The plan inside a tolerantly decoded reply: brackets or braces in prose around it decode as JSON too."""

    def find(value: Any) -> Any:
        if isinstance(value, dict) and any(key in value for key in ("tasks", "task_nodes", "task")):
            return value
        if isinstance(value, list) and any(isinstance(item, dict) and "task" in item for item in value):
            return value  # a list of tasks (HuggingGPT's format, or a plan missing its outer object)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        return next((found for found in map(find, children) if found is not None), None)

    found = find(data)
    return data if found is None else found


def fix_references(data: Any) -> Any:
    """Repair common misspellings of ``<GENERATED>-k`` in every string of a decoded plan."""
    if isinstance(data, str):
        return _REFERENCE_TYPO.sub(lambda m: f"<GENERATED>-{m.group(1) or m.group(2)}", data)
    if isinstance(data, list):
        return [fix_references(item) for item in data]
    if isinstance(data, dict):
        return {key: fix_references(value) for key, value in data.items()}
    return data


def history_text(history: Sequence[tuple[str, str]], budget: int = HISTORY_CHARS) -> str:
    """The most recent turns that fit the budget, oldest first, as 'user:' / 'baton:' lines."""
    kept: list[str] = []
    used = 0
    for request, answer in reversed(history):
        turn = f"user: {request}\nbaton: {answer}"
        used += len(turn)
        if used > budget:
            break
        kept.insert(0, turn)
    return "\n".join(kept)
