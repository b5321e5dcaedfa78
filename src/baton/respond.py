"""Answers: what was done, by which model, and what came out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from baton.llm import LLMError
from baton.media import Resource
from baton.runs import Run

if TYPE_CHECKING:
    from baton.llm import LLM, Usage

__all__ = ["NOTHING_TO_DO", "llm_answer", "results_for_llm", "template_answer"]

NOTHING_TO_DO = (
    "I found no task to run for this request. Name what you want done, for example "
    "'read the text in this image aloud' with -i IMAGE, 'what does this audio say' with -i AUDIO, "
    "or \"say 'hello world'\"; 'baton tasks' lists every task."
)


def template_answer(run: Run, outputs: dict[int, dict[str, Resource]]) -> str:
    """The answer without an LLM: one entry per task, text inline and media as file paths."""
    if not run.tasks:
        return NOTHING_TO_DO
    succeeded = sum(task.status == "succeeded" for task in run.tasks)
    lines = [f"{succeeded} of {len(run.tasks)} task{'s' if len(run.tasks) != 1 else ''} succeeded."]
    for task in run.tasks:
        head = f"[{task.id}] {task.task}"
        if task.model:
            head += f" ({task.model}"
            head += f", {task.seconds:.2f} s)" if task.seconds is not None else ")"
        if task.status != "succeeded":
            lines.append(f"{head}: {task.status}: {task.error or 'no reason given'}")
            continue
        results = outputs.get(task.id, {})
        if not results:
            lines.append(f"{head}: done, no output")
        for port, resource in results.items():
            label = f"{head}{' ' + port if len(results) > 1 else ''}"
            if resource.artifact is not None:
                lines.append(f"{label}: {resource.kind} saved to {resource.artifact.path}")
            else:
                text = resource.as_text()
                quoted = f'"{text}"' if "\n" not in text else "\n   " + text.replace("\n", "\n   ")
                lines.append(f"{label}: {quoted if text else '(empty: nothing found)'}")
    return "\n".join(lines)


_ARTIFACT_NAME = re.compile(r"\b(?:image|audio|video)/[0-9a-f]{8,64}\.[a-z0-9]{2,5}\b")


def results_for_llm(run: Run, outputs: dict[int, dict[str, Resource]]) -> str:
    """Each task's outcome as the responder sees it: text inline, media by artifact name, errors stated."""
    lines = []
    for task in run.tasks:
        head = f"task {task.id} {task.task} (model {task.model or 'none'}): {task.status}"
        if task.status != "succeeded":
            lines.append(f"{head}; produced nothing: {task.error or 'no reason given'}")
            continue
        for port, resource in outputs.get(task.id, {}).items():
            value = resource.artifact.name if resource.artifact is not None else resource.describe(limit=4000)
            lines.append(f"{head}; {port} ({resource.kind}): {value}")
    return "\n".join(lines) or "(no task was run)"


def llm_answer(
    run: Run,
    outputs: dict[int, dict[str, Resource]],
    llm: LLM,
    *,
    usage: Usage | None = None,
    on_delta: Callable[[str], None] | None = None,
    history: str = "",
    known_files: Collection[str] = (),
) -> tuple[str, list[str]]:
    """The LLM's answer (streamed through ``on_delta``) and notices about it.

    A stream that ends early is asked for again without streaming; produced files the answer does
    not name are listed after it, and names it invents are pointed out.
    """
    from baton.prompts import render

    plan = json.dumps([task.model_dump(exclude_none=True) for task in run.plan.tasks], ensure_ascii=False)
    context = f"Earlier in this conversation:\n{history}\n\n" if history else ""
    messages = [
        {"role": "system", "content": render("answer_system.txt")},
        {
            "role": "user",
            "content": f"{context}Request: {run.request}\n\nPlan: {plan}\n\nResults:\n{results_for_llm(run, outputs)}",
        },
    ]
    notices = []
    reply = llm.chat(messages, stage="answer", usage=usage, on_delta=on_delta, temperature=0.3)
    if not reply.complete:
        notices.append("the LLM's streamed answer was cut off; asked again")
        if on_delta:
            on_delta("\n[the answer was cut off; asking again]\n")
        reply = llm.chat(messages, stage="answer", usage=usage, on_delta=on_delta, temperature=0.3)
        if not reply.complete:
            raise LLMError("the LLM's answer was cut off twice")
    answer = reply.content.strip()
    produced = {r.artifact.name for results in outputs.values() for r in results.values() if r.artifact is not None}
    invented = sorted(set(_ARTIFACT_NAME.findall(answer)) - produced - set(known_files))
    if invented:
        notices.append(f"the answer names files this run did not produce: {', '.join(invented)}")
    unnamed = sorted(name for name in produced if name not in answer)
    if unnamed:
        answer += "\n\nFiles produced: " + ", ".join(unnamed)
    return answer, notices
