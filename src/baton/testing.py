"""A scripted OpenAI-compatible server on 127.0.0.1, for tests and benchmarks of the LLM side.

It speaks the real wire format (chat completions, streamed ``chat.completion.chunk`` events with
content and tool-call deltas, usage, ``data: [DONE]``, OpenAI's error body) so that baton is driven
through the real ``openai`` client. Each request takes the next scripted Reply, or a function of the
request body produces one. ``requests`` keeps every body received.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Script", "ScriptedLLM"]


@dataclass
class Script:
    """One scripted answer: content and/or tool calls, or an HTTP error, or a stream cut short."""

    content: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (function name, arguments JSON text)
    status: int = 200
    error: str = ""  # message of an error reply
    error_code: str | None = None
    cut_after: int | None = None  # streamed chunks sent before the connection drops
    prompt_tokens: int = 50
    completion_tokens: int = 20


Producer = Callable[[dict[str, Any]], "Script | str"]


class ScriptedLLM:
    """Serve scripted replies on 127.0.0.1 until stopped; use as a context manager."""

    def __init__(
        self,
        replies: Iterable[Script | str] | Producer = (),
        *,
        models: tuple[str, ...] = ("scripted-model",),
        json_schema: bool = True,
        json_object: bool = True,
        tools: bool = True,
        chunk_size: int = 7,
    ) -> None:
        self._producer = replies if callable(replies) else None
        self._queue: list[Script | str] = [] if callable(replies) else list(replies)
        self.models = models
        self.supports = {"json_schema": json_schema, "json_object": json_object, "tools": tools}
        self.chunk_size = chunk_size
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def calls(self) -> int:
        return len(self.requests)

    def add(self, *replies: Script | str) -> None:
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> ScriptedLLM:
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # a short poll interval: stop() waits for the serving loop to notice, up to one interval
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, body: dict[str, Any]) -> Script:
        with self._lock:
            self.requests.append(body)
            if self._producer is not None:
                reply = self._producer(body)
            elif self._queue:
                reply = self._queue.pop(0)
            else:
                reply = Script(status=500, error="the scripted server has no reply left for this request")
        return Script(content=reply) if isinstance(reply, str) else reply


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a timeout, a cut stream) is part of the script, not an error to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(llm: ScriptedLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
            self._json(
                status,
                {"error": {"message": message, "type": kind.get(status, "server_error"), "param": None, "code": code}},
            )

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(
                    200,
                    {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"} for m in llm.models]},
                )
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._error(404, f"no route {self.path}")
                return
            unsupported = self._unsupported(body)
            if unsupported:
                with llm._lock:
                    llm.requests.append(body)
                self._error(400, unsupported)
                return
            script = llm._next(body)
            if script.status != 200:
                self._error(script.status, script.error or f"scripted error {script.status}", script.error_code)
            elif body.get("stream"):
                self._stream(body, script)
            else:
                self._json(200, _completion(body, script))

        def _unsupported(self, body: dict[str, Any]) -> str:
            kind = (body.get("response_format") or {}).get("type")
            if kind in ("json_schema", "json_object") and not llm.supports[kind]:
                return f"response_format type '{kind}' is not supported by this server"
            if body.get("tools") and not llm.supports["tools"]:
                return "this server does not support tools"
            return ""

        def _stream(self, body: dict[str, Any], script: Script) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            base = {
                "id": "chatcmpl-scripted",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model"),
            }
            chunks: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
            text = script.content
            chunks += [{"content": text[i : i + llm.chunk_size]} for i in range(0, len(text), llm.chunk_size)]
            for index, (name, arguments) in enumerate(script.tool_calls):
                chunks.append(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": f"call_{index}",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
                for i in range(0, len(arguments), llm.chunk_size):
                    piece = arguments[i : i + llm.chunk_size]
                    chunks.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            events = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in chunks]
            if script.cut_after is not None:
                for event in events[: script.cut_after]:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                return  # the connection drops: no finish_reason, no [DONE]
            finish = "tool_calls" if script.tool_calls else "stop"
            events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({**base, "choices": [], "usage": _usage(script)})
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def _usage(script: Script) -> dict[str, int]:
    return {
        "prompt_tokens": script.prompt_tokens,
        "completion_tokens": script.completion_tokens,
        "total_tokens": script.prompt_tokens + script.completion_tokens,
    }


def _completion(body: dict[str, Any], script: Script) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": script.content or None}
    if script.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(script.tool_calls)
        ]
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if script.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(script),
    }
