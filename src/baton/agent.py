"""Tool-calling mode, Visual ChatGPT style, on native ``tools`` / ``tool_calls``.

Every task an expert can run here is a function with a JSON schema. The LLM calls tools one at a
time and sees each result (media by artifact name) before it decides the next step, until it
answers. Guards: a step limit; calls whose arguments are not JSON, name an unknown tool or a file the
session does not know are answered with the error, so the model can correct itself; a failed tool
returns its error as the result. A server without tool support gets planning mode, with a notice.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from baton.assistant import Assistant, Result
from baton.execute import Event
from baton.llm import LLMError, Reply, ToolCall, Usage
from baton.media import Resource
from baton.plan import Plan, PlanError, Task, validate
from baton.planners.llm import history_text
from baton.prompts import render
from baton.runs import Run, TaskRecord
from baton.select import NoExpert, select
from baton.tasks import TaskSpec, UnknownTask, all_tasks, get_task

__all__ = ["MAX_STEPS", "run_agent", "tool_schemas"]

MAX_STEPS = 8


def tool_schemas(specs: Sequence[TaskSpec]) -> list[dict[str, Any]]:
    """One function per task: its inputs as string parameters (media by file name)."""
    tools = []
    for spec in specs:
        properties = {
            port.name: {
                "type": "string",
                "description": f"a file name ({port.kind})" if port.kind in ("image", "audio", "video") else port.kind,
            }
            for port in spec.inputs
        }
        properties.update({option: {"type": "string", "description": "option"} for option in spec.options})
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": {
                        "type": "object",
                        "properties": properties,
                        "required": [port.name for port in spec.inputs if not port.optional],
                    },
                },
            }
        )
    return tools


async def run_agent(
    assistant: Assistant,
    request: str,
    inputs: Sequence[Path] = (),
    *,
    session: str | None = None,
    models: dict[str, str] | None = None,
    max_steps: int = MAX_STEPS,
    on_event: Callable[[Run, Event], None] | None = None,
    on_start: Callable[[Run], None] | None = None,
    on_answer: Callable[[str], None] | None = None,
) -> Result:
    """Answer a request by letting the LLM call tools one at a time."""
    llm = assistant.require_llm("--mode agent")
    notices_before = len(llm.notices)
    if not request.strip():
        return await assistant.run(request, inputs, session=session)  # the same clear error as planning mode
    labels = assistant.check_inputs(inputs)
    record = assistant.store.session(session)
    history = assistant.history(record.id)
    for label, (path, _) in labels.items():
        assistant.store.add_file(record.id, path, label=label, origin="input")
    usage = Usage()
    run = Run(
        id=uuid.uuid4().hex[:12], session_id=record.id, request=request.strip(), planner="agent", created=time.time()
    )
    assistant.store.start_run(run)
    if on_start:
        on_start(run)
    runnable_specs = [
        spec
        for spec in all_tasks()
        if any(not card.missing(assistant.settings) for card in assistant.catalog.for_task(spec.name))
    ]
    files = assistant.store.files_of(record.id)
    system = render("agent_system.txt", files="\n".join(f"{n}: {a.kind}" for n, a in files.items()) or "(none)")
    earlier = history_text(history, assistant.settings.history_chars)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    if earlier:
        messages.append({"role": "user", "content": f"Earlier in this conversation:\n{earlier}"})
        messages.append({"role": "assistant", "content": "Understood."})
    messages.append({"role": "user", "content": run.request})
    tools = tool_schemas(runnable_specs)
    outputs: dict[int, dict[str, Resource]] = {}
    answer = ""
    try:
        for step in range(max_steps):
            try:
                reply = _step(llm, messages, tools, usage, on_answer, run.notices)
            except LLMError as exc:
                if step == 0 and exc.status in (400, 404, 422) and "tool" in str(exc).lower():
                    assistant.store.finish_run(_abandon(run, "the LLM server does not support tool calls"))
                    result = await assistant.run(
                        request, inputs, session=record.name, models=models, on_event=on_event, on_start=on_start,
                        on_answer=on_answer,
                    )  # fmt: skip
                    result.run.notices.insert(0, "the LLM server does not support tool calls; used planning mode")
                    assistant.store.finish_run(result.run)
                    return result
                raise
            messages.append(_assistant_message(reply))
            if not reply.tool_calls:
                answer = reply.content.strip()
                break
            if reply.content and on_answer:
                on_answer("\n")  # the next step's words start on a line of their own
            for call in reply.tool_calls:
                content = await _call_tool(assistant, run, call, models, usage, outputs, on_event)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        else:
            run.notices.append(f"stopped after {max_steps} tool steps without a final answer")
            answer = f"I stopped after {max_steps} steps without finishing. What was done so far:\n" + _summary(run)
    except LLMError as exc:
        run.error = str(exc)
        answer = f"The LLM failed: {exc}\nWhat was done so far:\n{_summary(run)}"
    except BaseException as exc:
        assistant._stop(run, outputs, exc)
        raise
    run.status = "succeeded" if run.error is None and all(t.status == "succeeded" for t in run.tasks) else "failed"
    run.answer = answer or "(the model gave an empty answer)"
    run.usage = usage.stages
    assistant._add_llm_notices(run, notices_before)  # this run's, not every earlier run's too
    run.finished = time.time()
    assistant.store.finish_run(run)
    return Result(run=run, outputs=outputs)


def _step(
    llm: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    usage: Usage,
    on_answer: Any,
    notices: list[str],
) -> Reply:
    """One model turn; a stream cut short is asked for once more, with a notice."""
    reply: Reply = llm.chat(messages, stage="agent", usage=usage, tools=tools, on_delta=on_answer or (lambda _: None))
    if not reply.complete:
        notices.append("the LLM's streamed reply was cut off; asked again")
        if on_answer and reply.content:
            on_answer("\n[the answer was cut off; asking again]\n")  # what streamed so far is not the answer
        reply = llm.chat(messages, stage="agent", usage=usage, tools=tools, on_delta=on_answer or (lambda _: None))
        if not reply.complete:
            raise LLMError("the LLM's reply was cut off twice")
    return reply


def _assistant_message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in reply.tool_calls
        ]
    return message


async def _call_tool(
    assistant: Assistant,
    run: Run,
    call: ToolCall,
    models: dict[str, str] | None,
    usage: Usage,
    outputs: dict[int, dict[str, Resource]],
    on_event: Callable[[Run, Event], None] | None,
) -> str:
    """Run one tool call as a task of the run; the result (or the error) as JSON text for the model."""
    try:
        spec = get_task(call.name)
    except UnknownTask as exc:
        return _error(f"{exc}; call one of the tools you were given")
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        return _error(
            f"the arguments of {call.name} are not valid JSON ({exc.msg} at character {exc.pos}); "
            f"send a JSON object with keys {', '.join(p.name for p in spec.inputs)}"
        )
    if not isinstance(args, dict):
        return _error(f"the arguments of {call.name} must be a JSON object, not {type(args).__name__}")
    task_id = len(run.plan.tasks)
    task = Task(id=task_id, task=spec.name, args=args, dep=[])
    known = {name: artifact.kind for name, artifact in assistant.store.files_of(run.session_id).items()}
    try:
        valid = validate(Plan(tasks=[task]), known)
    except PlanError as exc:
        run.notices.append(f"rejected a call to {call.name}: {'; '.join(exc.problems)}")
        return _error("; ".join(re.sub(rf"^task {task_id} \([^)]*\),? ?", "", p) for p in exc.problems))
    run.plan.tasks.append(task)
    record = TaskRecord(id=task_id, task=spec.name)
    run.tasks.append(record)
    chosen, unavailable = {}, {}
    try:
        chosen[task_id] = select(spec.name, assistant.catalog, models, assistant.settings).card
        record.model = chosen[task_id].id
    except NoExpert as exc:
        unavailable[task_id] = str(exc)
    await assistant.execute(run, valid, chosen, unavailable, outputs, usage, on_event)
    if record.status != "succeeded":
        return _error(record.error or f"{spec.name} {record.status}")
    shown = {
        port: (resource.artifact.name if resource.artifact is not None else resource.describe(limit=4000))
        for port, resource in outputs.get(task_id, {}).items()
    }
    return json.dumps({"status": "succeeded", "outputs": shown}, ensure_ascii=False)


def _error(message: str) -> str:
    return json.dumps({"status": "error", "error": message}, ensure_ascii=False)


def _abandon(run: Run, reason: str) -> Run:
    run.status, run.error, run.finished = "failed", reason, time.time()
    run.answer = f"{reason}; answered in planning mode instead (see the next run)"
    return run


def _summary(run: Run) -> str:
    return (
        "\n".join(f"[{t.id}] {t.task}: {t.status}{': ' + t.error if t.error else ''}" for t in run.tasks) or "nothing"
    )
