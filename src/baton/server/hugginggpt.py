"""The HuggingGPT-compatible API: Microsoft JARVIS's ``/hugginggpt``, ``/tasks`` and ``/results``.

Each takes JARVIS's body, ``{"messages": [{"role": "user", "content": "..."}], ...}`` (its
``api_key``, ``api_type`` and ``api_endpoint`` are accepted and ignored: the server's own LLM, if
any, conducts), and answers in JARVIS's shapes:

- ``/hugginggpt``: ``{"message": ANSWER}``;
- ``/tasks``: the plan, ``[{"task", "id", "dep": [-1] | [ids], "args"}]``, without running it;
- ``/results``: ``{"0": {"task": {...}, "inference result": {...}, "choose model result": {"id", "reason"}}}``,
  where an inference result is ``{"generated text": ...}``, ``{"generated image": URL}``, ... or
  ``{"error": {"message": ...}}``.

A request that cannot be planned is answered with ``{"message": WHY}``, as JARVIS answers one it
cannot parse. Files travel as data: URLs inside the text (as JARVIS's web client sends images) or as
OpenAI content parts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from baton.media import BadInput
from baton.respond import NOTHING_TO_DO

from .app import base_url, service_of
from .errors import ApiError
from .inputs import read_messages
from .openai_api import ChatMessage
from .service import Job, Service

__all__ = ["router"]

router = APIRouter(tags=["hugginggpt"])


class JarvisRequest(BaseModel):
    """JARVIS's request body; other fields (api_key, api_type, api_endpoint) are ignored."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)


async def _job(service: Service, body: JarvisRequest) -> Job:
    inputs = service.new_inputs()
    try:
        text = await run_in_threadpool(read_messages, [m.model_dump() for m in body.messages], inputs)
        await run_in_threadpool(inputs.check)
    except BaseException:
        inputs.cleanup()
        raise
    return Job(request=text, inputs=inputs)


def _cannot_plan(error: ApiError) -> bool:
    """Refusals JARVIS answers with a message: a request it cannot plan, or a plan that cannot run."""
    return error.code in ("cannot_plan", "invalid_plan")


@router.post("/hugginggpt")
async def hugginggpt(request: Request, body: JarvisRequest) -> dict[str, Any]:
    """Plan, run and answer: ``{"message": ANSWER}`` (media as artifact URLs)."""
    service = service_of(request)
    live = service.start(await _job(service, body))
    try:
        result = await service.result(live)
    except ApiError as error:
        if _cannot_plan(error):
            return {"message": error.message}
        raise
    return {"message": await run_in_threadpool(service.answer_text, result.run, base_url(request))}


@router.post("/tasks", response_model=None)
async def tasks(request: Request, body: JarvisRequest) -> list[dict[str, Any]] | dict[str, Any]:
    """The plan in HuggingGPT's format, not run; nothing is stored."""
    from baton.llm import LLMError
    from baton.planners import PlannerError, PlanningFailed

    service = service_of(request)
    job = await _job(service, body)
    try:
        plan = await asyncio.wait_for(run_in_threadpool(service.plan, job), service.settings.request_timeout)
    except PlannerError as exc:
        return {"message": str(exc)}
    except (PlanningFailed, LLMError) as exc:
        return {"message": f"I could not plan this request: {exc}"}
    except BadInput as exc:
        raise ApiError(400, str(exc)) from None
    except TimeoutError:
        raise ApiError(504, "planning took longer than the server's request timeout", code="timeout") from None
    finally:
        if job.inputs is not None:
            job.inputs.cleanup()
    if not plan.tasks:
        return {"message": NOTHING_TO_DO}
    return [_task(task.model_dump()) for task in plan.tasks]


def _task(task: dict[str, Any]) -> dict[str, Any]:
    return {"task": task["task"], "id": task["id"], "dep": task.get("dep") or [-1], "args": task.get("args", {})}


@router.post("/results", response_model=None)
async def results(request: Request, body: JarvisRequest) -> dict[str, Any]:
    """Plan and run; each task's result keyed by its id, without an answer."""
    service = service_of(request)
    live = service.start(await _job(service, body))
    try:
        result = await service.result(live)
    except ApiError as error:
        if _cannot_plan(error):
            return {"message": error.message}
        raise
    run = await run_in_threadpool(service.trace, result.run, base_url(request))
    if not run["tasks"]:
        return {"message": NOTHING_TO_DO}
    urls = {artifact["name"]: artifact["url"] for artifact in run["artifacts"]}
    planned = {task["id"]: task for task in run["plan"]["tasks"]}
    answer: dict[str, Any] = {}
    for record in run["tasks"]:
        task = _task(planned.get(record["id"], {"task": record["task"], "id": record["id"]}))
        task["task"] = record["task"]
        answer[str(record["id"])] = {
            "task": task,
            "inference result": _inference(record, urls),
            "choose model result": _choice(record, run["planner"]),
        }
    return answer


def _inference(record: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
    if record["status"] != "succeeded":
        return {"error": {"message": record["error"] or f"the task {record['status']}"}}
    found: dict[str, Any] = {}
    for port, value in record["outputs"].items():
        kind = value.get("kind", "text")
        key = f"generated {kind}" if kind in ("text", "image", "audio", "video") else port
        if key in found:
            key = f"{key} ({port})"
        found[key] = urls.get(value["artifact"], value["artifact"]) if "artifact" in value else value.get("value")
    return found


def _choice(record: dict[str, Any], planner: str) -> dict[str, Any]:
    if record["model"] is None:
        return {"id": None, "reason": record["error"] or "no expert can run this task here"}
    return {"id": record["model"], "reason": "the best ranked expert that can run this task here"}
