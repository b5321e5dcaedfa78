"""The LLM client: any OpenAI-compatible server through the official ``openai`` SDK.

One call shape for every stage: ``chat(messages, stage=...)`` streams when asked (content and tool-call
deltas are gathered), asks for JSON when given a schema (``response_format`` json_schema, else plain
JSON mode, else the prompt alone: detected once per client or set by BATON_LLM_JSON_MODE), retries
429 and 5xx with backoff (the SDK's own retry loop), and turns every failure into an LLMError whose
message says what to fix. Token usage is counted per stage.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai import OpenAI

    from baton.config import Settings

__all__ = ["LLM", "LLMError", "Reply", "ToolCall", "Usage", "parse_json"]

Message = dict[str, Any]


class LLMError(RuntimeError):
    """The LLM server could not be used; the message names the problem and the fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status the server answered, if it answered


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model wrote it (it may be malformed)


@dataclass
class Reply:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None  # None when a stream ended before the model finished
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def complete(self) -> bool:
        return self.finish_reason is not None


@dataclass
class Usage:
    """LLM calls and tokens per stage (plan, select, answer, agent, task)."""

    stages: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, stage: str, reply: Reply) -> None:
        counts = self.stages.setdefault(stage, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        counts["calls"] += 1
        counts["prompt_tokens"] += reply.prompt_tokens
        counts["completion_tokens"] += reply.completion_tokens

    @property
    def calls(self) -> int:
        return sum(counts["calls"] for counts in self.stages.values())


class LLM:
    """A client for one OpenAI-compatible endpoint and model."""

    def __init__(self, settings: Settings, *, client: OpenAI | None = None) -> None:
        self.settings = settings
        self.base_url = settings.llm_base_url or "https://api.openai.com/v1"
        self._client = client
        self._model = settings.llm_model
        self._json_mode = settings.llm_json_mode
        self._lock = threading.Lock()
        self.notices: list[str] = list(settings.notices)

    @property
    def client(self) -> OpenAI:
        if self._client is None:
            try:
                from openai import OpenAI
            except ImportError:
                raise LLMError("the openai package is not installed: pip install 'baton[llm]'") from None
            self._client = OpenAI(
                base_url=self.base_url,
                api_key=self.settings.llm_api_key or "no-key",  # local servers need none
                timeout=self.settings.llm_timeout,
                max_retries=self.settings.llm_max_retries,
            )
        return self._client

    @property
    def model(self) -> str:
        """The configured model, or the server's first model when only a base URL is set."""
        with self._lock:
            if self._model is None:
                models = self.list_models()
                if not models:
                    raise LLMError(f"the LLM server at {self.base_url} lists no models; set BATON_LLM_MODEL")
                self._model = models[0]
                self.notices.append(f"BATON_LLM_MODEL is not set; using the server's first model, {self._model}")
            return self._model

    def list_models(self) -> list[str]:
        try:
            return [model.id for model in self.client.models.list()]
        except Exception as exc:
            raise self._explain(exc) from None

    def chat(
        self,
        messages: Sequence[Message],
        *,
        stage: str,
        usage: Usage | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        on_delta: Callable[[str], None] | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> Reply:
        """One chat completion. With ``on_delta`` the reply streams and each content piece is passed on."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": temperature,
        }
        if max_tokens:
            request["max_tokens"] = max_tokens
        if tools:
            request["tools"] = tools
        if json_schema is not None:
            request.update(self._json_request(json_schema))
        while True:
            try:
                reply = self._stream(request, on_delta) if on_delta else self._complete(request)
                break
            except Exception as exc:
                downgraded = self._downgrade_json(request, exc)
                if downgraded is None:
                    raise self._explain(exc) from None
                request = downgraded
        if usage is not None:
            usage.add(stage, reply)
        return reply

    # JSON output: json_schema, else json_object, else the prompt alone

    def _json_request(self, schema: dict[str, Any]) -> dict[str, Any]:
        mode = self._json_mode
        if mode in ("auto", "json_schema"):
            return {"response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}}
        if mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {}

    def _downgrade_json(self, request: dict[str, Any], exc: Exception) -> dict[str, Any] | None:
        """When a server rejects response_format in auto mode, retry with the next weaker JSON mode."""
        from openai import BadRequestError, UnprocessableEntityError

        if self.settings.llm_json_mode != "auto" or "response_format" not in request:
            return None
        if not isinstance(exc, (BadRequestError, UnprocessableEntityError)):
            return None
        if _is_context_overflow(_server_message(exc)):
            return None  # the request is too long in any JSON mode
        request = dict(request)
        if request["response_format"]["type"] == "json_schema":
            self._json_mode = "json_object"
            request["response_format"] = {"type": "json_object"}
        else:
            self._json_mode = "prompt"
            del request["response_format"]
        self.notices.append(f"the LLM server does not take that response_format; using JSON mode '{self._json_mode}'")
        return request

    # calls

    def _complete(self, request: dict[str, Any]) -> Reply:
        response = self.client.chat.completions.create(**request)
        choice = response.choices[0]
        message = choice.message
        calls = [
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "")
            for call in (message.tool_calls or [])
            if getattr(call, "function", None) is not None
        ]
        used = response.usage
        return Reply(
            content=message.content or "",
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            prompt_tokens=used.prompt_tokens if used else 0,
            completion_tokens=used.completion_tokens if used else 0,
        )

    def _stream(self, request: dict[str, Any], on_delta: Callable[[str], None]) -> Reply:
        stream = self.client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
        reply = Reply()
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        for chunk in stream:
            if chunk.usage is not None:
                reply.prompt_tokens = chunk.usage.prompt_tokens
                reply.completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    parts.append(delta.content)
                    on_delta(delta.content)
                for call in delta.tool_calls or []:
                    gathered = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    gathered["id"] = call.id or gathered["id"]
                    if call.function is not None:
                        gathered["name"] += call.function.name or ""
                        gathered["arguments"] += call.function.arguments or ""
                if choice.finish_reason:
                    reply.finish_reason = choice.finish_reason
        reply.content = "".join(parts)
        reply.tool_calls = [ToolCall(**calls[index]) for index in sorted(calls)]
        return reply

    def _explain(self, exc: Exception) -> LLMError:
        """An LLMError saying what went wrong with the server and what to do about it."""
        import openai

        where = f"the LLM server at {self.base_url}"
        message = _server_message(exc)
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(
                f"{where} did not answer within {self.settings.llm_timeout:g} s; raise BATON_LLM_TIMEOUT or check the server"
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(
                f"cannot reach {where} ({exc.__cause__ or exc}); check OPENAI_BASE_URL and that the server is running"
            )
        if isinstance(exc, openai.AuthenticationError):
            return LLMError(f"{where} refused the API key (401: {message}); check OPENAI_API_KEY", status)
        if isinstance(exc, openai.PermissionDeniedError):
            return LLMError(
                f"{where} denied access (403: {message}); check the key's permissions for model {self._model}", status
            )
        if isinstance(exc, openai.NotFoundError):
            return LLMError(
                f"{where} does not know model '{self._model}' (404: {message}); set BATON_LLM_MODEL to a model it serves",
                status,
            )
        if isinstance(exc, openai.RateLimitError):
            return LLMError(
                f"{where} is rate-limiting (429: {message}) after {self.settings.llm_max_retries} retries; wait and try again",
                status,
            )
        if isinstance(exc, openai.BadRequestError) and _is_context_overflow(message):
            return LLMError(
                f"the request is too long for model {self._model}'s context window ({message}); "
                "start a new session or shorten the request",
                status,
            )
        if isinstance(exc, openai.APIStatusError):
            return LLMError(f"{where} answered {exc.status_code}: {message}", status)
        return LLMError(f"the LLM call failed: {type(exc).__name__}: {exc}")


def _server_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(getattr(exc, "message", "") or exc)


def _is_context_overflow(message: str) -> bool:
    text = message.lower()
    return any(
        phrase in text
        for phrase in ("context length", "context_length", "maximum context", "context window", "too many tokens")
    )


def parse_json(text: str) -> Any:
    """Tolerant JSON: code fences, prose around it, trailing commas, single quotes, a missing outer bracket.

    Returns None when there is no JSON in the text at all.
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    import json_repair

    value = json_repair.loads(text)
    return None if value == "" else value
