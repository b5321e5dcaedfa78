"""The OpenAI-compatible API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

The models are baton's planner modes. The last user message is the request; images (``image_url``:
data URLs, and http URLs when network access is on), audio (``input_audio``) and video of every user
message become its input files. The answer is the run's answer with produced media as artifact URLs;
the extra ``baton`` field holds the run id, the session (id and key, to continue it) and the
artifacts. With ``stream`` the answer comes as ``chat.completion.chunk`` events ending in
``data: [DONE]``; task progress is sent as SSE comments, which clients ignore.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .app import absolute, base_url, event_stream, service_of, sse
from .errors import ApiError
from .inputs import read_messages
from .service import Job, LiveRun, Service

__all__ = ["MODELS", "router"]

router = APIRouter(prefix="/v1", tags=["openai"])

# model id -> (planner, mode, description, needs an LLM)
MODELS: dict[str, tuple[str, str, str, bool]] = {
    "baton": ("auto", "plan", "plans with the LLM when the server has one, else with the local planner", False),
    "baton-local": ("local", "plan", "the local planner: no LLM", False),
    "baton-llm": ("llm", "plan", "the LLM plans, the experts run, the LLM answers", True),
    "baton-agent": ("auto", "agent", "the LLM calls one expert at a time (tool calling)", True),
}
CREATED = int(time.time())


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """Chat Completions; unknown fields (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    session: str | None = Field(default=None, description="baton: continue this session (needs session_key)")
    session_key: str | None = Field(default=None, description="baton: the session's key")


def _models(service: Service) -> dict[str, tuple[str, str, str, bool]]:
    has_llm = service.assistant.llm is not None
    return {name: spec for name, spec in MODELS.items() if has_llm or not spec[3]}


def _model_object(name: str, description: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "baton", "description": description}


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    """The planner modes this server can use, as models."""
    models = _models(service_of(request))
    return {"object": "list", "data": [_model_object(name, spec[2]) for name, spec in models.items()]}


@router.get("/models/{model_id}")
async def get_model(request: Request, model_id: str) -> dict[str, Any]:
    models = _models(service_of(request))
    if model_id not in models:
        raise _unknown_model(model_id, models)
    return _model_object(model_id, models[model_id][2])


def _unknown_model(model: str, models: dict[str, Any]) -> ApiError:
    why = " (it needs an LLM, and this server has none)" if model in MODELS else ""
    return ApiError(
        404,
        f"the model '{model}' does not exist here{why}; use one of: {', '.join(models)}",
        code="model_not_found",
        param="model",
    )


@router.post("/chat/completions", response_model=None)
async def chat_completions(request: Request, body: ChatRequest) -> Any:
    """Run the last user message through baton; answer as a chat completion (or a stream of chunks)."""
    service = service_of(request)
    models = _models(service)
    if body.model not in models:
        raise _unknown_model(body.model, models)
    planner, mode, _, _ = models[body.model]
    session_name = session_id = None
    if body.session is not None:
        session = await run_in_threadpool(service.authorize, body.session, body.session_key)
        session_name, session_id = session.name, session.id
    inputs = service.new_inputs()
    messages = [message.model_dump() for message in body.messages]
    try:
        text = await run_in_threadpool(read_messages, messages, inputs)
        await run_in_threadpool(inputs.check)
    except BaseException:
        inputs.cleanup()
        raise
    job = Job(
        request=text, inputs=inputs, session=session_name, session_id=session_id,
        planner=planner, mode=mode,  # type: ignore[arg-type]
    )  # fmt: skip
    live = service.start(job)
    base = base_url(request)
    created = int(time.time())
    if body.stream:
        first = await live.first("start", "answer")
        if first["type"] == "error":  # refused before anything ran: a proper HTTP error, not a stream
            raise ApiError(first["status"], first["error"]["message"], code=first["error"]["code"])
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return event_stream(_chunks(service, live, body.model, created, include_usage, base))
    result = await service.result(live)
    run = await run_in_threadpool(service.trace, result.run, base)
    return {
        "id": f"chatcmpl-{run['id']}",
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": run["answer"], "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(run),
        "baton": _extra(service, run, base),
    }


def _usage(run: dict[str, Any]) -> dict[str, int]:
    stages = run.get("usage", {}).values()
    prompt = sum(stage.get("prompt_tokens", 0) for stage in stages)
    completion = sum(stage.get("completion_tokens", 0) for stage in stages)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _extra(service: Service, run: dict[str, Any], base: str) -> dict[str, Any]:
    """What only baton knows: the run, its session (with the key to continue it) and the media it made."""
    key = service.session_key(run["session_id"])
    return {
        "run_id": run["id"],
        "status": run["status"],
        "session_id": run["session_id"],
        "session_key": key,
        "run": f"{base}/runs/{run['id']}?key={key}",
        "artifacts": run["artifacts"],
        "tasks": [{k: task[k] for k in ("id", "task", "model", "status", "error", "seconds")} for task in run["tasks"]],
    }


async def _chunks(
    service: Service, live: LiveRun, model: str, created: int, include_usage: bool, base: str
) -> AsyncIterator[str]:
    ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
        return sse({**body, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    streamed = False
    async for event in live.follow_async():
        kind = event["type"]
        if kind == "start":
            ident = f"chatcmpl-{event['run']['id']}"
            tasks = event["run"]["tasks"]
            yield f": planned {len(tasks)} task{'s' if len(tasks) != 1 else ''}\n\n"
        elif kind == "task":
            task = event["task"]
            yield f": task {task['id']} {task['task']} ({task['model'] or 'no model'}) {task['status']}\n\n"
        elif kind == "answer":
            streamed = True
            yield chunk({"content": event["delta"]})
        elif kind == "error":
            yield sse({"error": event["error"]})
            yield "data: [DONE]\n\n"
            return
        elif kind == "done":
            run = dict(event["run"])
            run["artifacts"] = [{**a, "url": base + a["url"]} for a in run["artifacts"]]
            if not streamed:
                yield chunk({"content": absolute(run["answer"], base)})
            elif run["artifacts"]:  # the streamed answer named files by name: add their URLs
                yield chunk({"content": "\n\nFiles: " + " ".join(a["url"] for a in run["artifacts"])})
            yield chunk({}, "stop", baton=_extra(service, run, base))
            if include_usage:
                body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
                yield sse({**body, "choices": [], "usage": _usage(run)})
            yield "data: [DONE]\n\n"
            return
