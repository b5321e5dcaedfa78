"""Answers: what was done, by which model, and what came out."""

from __future__ import annotations

from baton.media import Resource
from baton.runs import Run

__all__ = ["NOTHING_TO_DO", "template_answer"]

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
