"""The FastAPI app: access rules, limits, errors in OpenAI's shape, and the native API.

``create_app`` builds one app with the OpenAI-compatible API (``/v1``), the HuggingGPT-compatible API
(``/hugginggpt``, ``/tasks``, ``/results``), the native API (sessions, runs, events, artifacts) and,
unless disabled, the web UI at ``/ui``.

Access: with ``BATON_API_TOKEN`` set, every request needs it (``Authorization: Bearer TOKEN``, or a
cookie the UI gets by opening ``/ui?token=TOKEN`` once) except ``/health``, ``/openapi.json`` and
artifact URLs, which carry their session's key instead. Without a token the server must listen on a
loopback address, and it answers only requests addressed to a loopback name (no DNS rebinding) and
coming from no other web origin (no cross-site requests).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from baton.config import Settings

from .errors import ApiError, error_body
from .inputs import MB, Inputs, mime_type
from .service import Job, LiveRun, Service

__all__ = ["ServerConfigError", "create_app", "is_loopback", "sse"]

log = logging.getLogger("baton.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = ("/health", "/openapi.json")
TOKEN_COOKIE = "baton_token"


class ServerConfigError(ValueError):
    """The server cannot start as configured; the message says what to set."""


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine only (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def check_access(host: str, token: str | None) -> None:
    if token is None and not is_loopback(host):
        raise ServerConfigError(
            f"refusing to listen on {host} without an API token: anyone who can reach it could use it. "
            "Set BATON_API_TOKEN (e.g. to the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
            "or listen on 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise ServerConfigError("BATON_API_TOKEN is too short to be safe; use at least 16 random characters")


def _host_of(value: str) -> str:
    """The host part of a Host header or an Origin URL."""
    if "://" in value:
        return urlsplit(value).hostname or ""
    return urlsplit(f"//{value}").hostname or ""


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": data})


class AccessGuard:
    """Who may use the server: the token holder, or (tokenless, on loopback) local programs only."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem: tuple[int, str, str] | None = None
        if self.token is None:
            origin = headers.get("origin", "")
            if not is_loopback(_host_of(headers.get("host", ""))):
                problem = (403, "this server answers only requests addressed to localhost or 127.0.0.1", "bad_host")
            elif origin and origin != "null" and not is_loopback(_host_of(origin)):
                problem = (403, f"requests from the web page {origin} are not allowed", "bad_origin")
        elif not self._public(scope["path"]) and not self._authorized(headers):
            query = dict(parse_qsl(scope.get("query_string", b"").decode()))
            given = query.get("token", "")
            if scope["type"] == "http" and scope["method"] == "GET" and given and _equal(given, self.token):
                await self._remember(scope, query, send)
                return
            problem = (
                401,
                "this server needs its API token: send 'Authorization: Bearer TOKEN' (the openai client's api_key), "
                "or open /ui?token=TOKEN once in a browser",
                "invalid_api_key",
            )
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            status, message, code = problem
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            await _send_json(send, status, error_body(status, message, code=code), extra)

    @staticmethod
    def _public(path: str) -> bool:
        return path in PUBLIC_PATHS or path.startswith("/artifacts/")

    def _authorized(self, headers: Headers) -> bool:
        assert self.token is not None
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _equal(value.strip(), self.token):
            return True
        cookies = [part.strip().partition("=") for part in headers.get("cookie", "").split(";")]
        return any(name == TOKEN_COOKIE and _equal(value, self.token) for name, _, value in cookies)

    async def _remember(self, scope: Scope, query: dict[str, str], send: Send) -> None:
        """``?token=`` in a browser: keep it in a strict cookie and reload without it in the address."""
        rest = urlencode({k: v for k, v in query.items() if k != "token"})
        location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
        cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _equal(given: str, expected: str) -> bool:
    import hmac

    return hmac.compare_digest(given.encode(), expected.encode())


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is over the server's limit of {limit / MB:.3g} MB; send smaller files, "
            "or raise BATON_MAX_UPLOAD_MB on the server",
        )


class BodyLimit:
    """Refuse request bodies over the limit: by Content-Length at once, else as soon as they pass it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            error = BodyTooLarge(self.limit)
            await _send_json(send, 413, error_body(413, str(error.detail), code="request_too_large"))
            return
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


# errors


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        code = None
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}; the API is described at /openapi.json"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /openapi.json"
        elif exc.status_code == 413:
            code = "request_too_large"
        elif exc.status_code == 400 and ("parsing the body" in message or "multipart" in message.lower()):
            message = f"the request body is malformed ({message.rstrip('.')}); send JSON, or multipart/form-data"
        return JSONResponse(error_body(exc.status_code, message, code=code), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"] if part not in ("body", "query", "header", "path"))
        if first.get("type") == "json_invalid":
            context: Any = first.get("ctx") or {}
            message = f"the request body is not valid JSON ({context.get('error', first['msg'])})"
        else:
            message = f"{where or 'the request'}: {first['msg']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        return JSONResponse(error_body(400, message, param=where or None), status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error handling %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(500, f"internal error ({type(exc).__name__}); see the server log"), status_code=500
        )


# helpers shared by the routers


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
    )


async def native_events(service: Service, live: LiveRun, base: str) -> AsyncIterator[str]:
    """A run's events as server-sent events, each named by its type; the last is ``done`` or ``error``."""
    async for event in live.follow_async():
        yield sse(_absolute(event, base), event["type"])


RELATIVE_URL = re.compile(r"(?<![\w/.-])/artifacts/")


def absolute(text: str, base: str) -> str:
    """Artifact URLs in a text (answers name them from the server's root) made absolute."""
    return RELATIVE_URL.sub(base + "/artifacts/", text)


def _absolute(event: dict[str, Any], base: str) -> dict[str, Any]:
    """Artifact URLs made absolute for clients outside the browser."""
    if event["type"] in ("start", "done"):
        run = dict(event["run"])
        run["artifacts"] = [{**a, "url": base + a["url"]} for a in run.get("artifacts", [])]
        run["answer"] = absolute(run.get("answer", ""), base)
        return {**event, "run": run}
    if "artifacts" in event:
        return {**event, "artifacts": [{**a, "url": base + a["url"]} for a in event["artifacts"]]}
    return event


async def add_uploads(inputs: Inputs, files: list[UploadFile]) -> None:
    for number, upload in enumerate(files):
        name = Inputs.safe_name(upload.filename, f"files[{number}]")
        await run_in_threadpool(inputs.add_stream, upload.file, name)
    await run_in_threadpool(inputs.check)


# native API

native = APIRouter()

SessionKey = Annotated[
    str | None,
    Query(alias="key", description="The session's key (or send it in the X-Session-Key header)."),
]
SessionKeyHeader = Annotated[str | None, Header(alias="X-Session-Key", include_in_schema=True)]


class SessionIn(BaseModel):
    name: str | None = Field(default=None, description="A name for the session; unique. Default: its id.")


class SessionOut(BaseModel):
    id: str
    name: str
    created: float
    runs: int = 0
    key: str | None = Field(default=None, description="Needed to read or continue the session; keep it.")


class Health(BaseModel):
    status: str
    version: str
    runs_in_progress: int
    llm: str | None
    ui: bool


@native.get("/health", tags=["native"])
async def health(request: Request) -> Health:
    """Liveness: no token needed."""
    from baton import __version__

    service = service_of(request)
    llm = service.assistant.llm
    return Health(
        status="ok",
        version=__version__,
        runs_in_progress=service.active,
        llm=llm.base_url if llm is not None else None,
        ui=bool(getattr(request.app.state, "ui", False)),
    )


@native.post("/sessions", status_code=201, tags=["native"])
async def create_session(request: Request, body: SessionIn | None = None) -> SessionOut:
    """Start a session; the answer holds the key that reading or continuing it needs."""
    service = service_of(request)
    session = await run_in_threadpool(service.create_session, body.name if body else None)
    return SessionOut(**session.model_dump(), key=service.session_key(session.id))


@native.get("/sessions", tags=["native"])
async def list_sessions(request: Request) -> list[SessionOut]:
    """Every session, newest first (without keys: reading one needs its key)."""
    sessions = await run_in_threadpool(service_of(request).store.sessions)
    return [SessionOut(**session.model_dump()) for session in sessions]


def _key(query: str | None, header: str | None) -> str | None:
    return header or query


@native.get("/sessions/{session_id}", tags=["native"])
async def get_session(
    request: Request,
    session_id: str,
    key: SessionKey = None,
    x_session_key: SessionKeyHeader = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many of the latest runs")] = 100,
) -> dict[str, Any]:
    """The session with its history (runs oldest first, answers with artifact URLs) and its files."""
    service = service_of(request)
    session = service.authorize(session_id, _key(key, x_session_key))
    base = base_url(request)

    def read() -> dict[str, Any]:
        runs = service.store.runs(limit=limit, session_id=session.id)
        files = service.store.files_of(session.id)
        return {
            **session.model_dump(),
            "history": [service.trace(run, base) for run in reversed(runs)],
            "files": [
                {**service.describe(session.id, artifact), "url": base + service.artifact_url(session.id, name)}
                for name, artifact in files.items()
                if name == artifact.name
            ],
        }

    return await run_in_threadpool(read)


@native.delete("/sessions/{session_id}", status_code=204, tags=["native"])
async def delete_session(
    request: Request, session_id: str, key: SessionKey = None, x_session_key: SessionKeyHeader = None
) -> Response:
    """Forget the session: its runs and file names (refused while one of its runs is in progress)."""
    service = service_of(request)
    session = service.authorize(session_id, _key(key, x_session_key))
    await run_in_threadpool(service.delete_session, session)
    return Response(status_code=204)


@native.post("/sessions/{session_id}/messages", tags=["native"], response_model=None)
async def post_message(
    request: Request,
    session_id: str,
    text: Annotated[str, Form(description="The request, in plain words.")] = "",
    files: Annotated[list[UploadFile], File(description="Images, audio or video; the request can name them.")] = [],  # noqa: B006
    planner: Annotated[str, Form(pattern="^(auto|local|llm)$")] = "auto",
    mode: Annotated[str, Form(pattern="^(plan|agent)$")] = "plan",
    stream: Annotated[bool, Form(description="Answer with server-sent events as the run goes.")] = False,
    wait: Annotated[bool, Form(description="false: answer 202 with the run id once it is planned.")] = True,
    key: SessionKey = None,
    x_session_key: SessionKeyHeader = None,
) -> Any:
    """Run a request in the session (multipart/form-data), answering with the run when it is done."""
    service = service_of(request)
    session = service.authorize(session_id, _key(key, x_session_key))
    inputs = service.new_inputs()
    try:
        await add_uploads(inputs, files)
    except BaseException:
        inputs.cleanup()
        raise
    job = Job(
        request=text, inputs=inputs, session=session.name, session_id=session.id,
        planner=planner, mode=mode,  # type: ignore[arg-type]
    )  # fmt: skip
    live = service.start(job)
    base = base_url(request)
    if stream:
        first = await live.first("start", "answer")
        if first["type"] == "error":  # refused before anything ran: a proper HTTP error, not a stream
            raise ApiError(first["status"], first["error"]["message"], code=first["error"]["code"])
        return event_stream(native_events(service, live, base))
    if not wait:
        event = await live.first("start")
        if event["type"] == "error":
            raise ApiError(event["status"], event["error"]["message"], code=event["error"]["code"])
        run_id = event["run"]["id"]
        query = f"?key={service.session_key(session.id)}"
        return JSONResponse(
            {
                "run_id": run_id,
                "session_id": session.id,
                "status": event["run"]["status"],
                "run": f"{base}/runs/{run_id}{query}",
                "events": f"{base}/runs/{run_id}/events{query}",
            },
            status_code=202 if event["type"] == "start" else 200,
        )
    result = await service.result(live)
    return await run_in_threadpool(service.trace, result.run, base)


def _authorized_run(service: Service, run_id: str, key: str | None) -> Any:
    found = service.run_record(run_id)
    if found is None:
        raise ApiError(404, f"no run '{run_id[:40]}'", code="run_not_found")
    try:
        service.authorize(found.session_id, key)
    except ApiError:
        raise ApiError(404, f"no run '{run_id[:40]}' with that session key", code="run_not_found") from None
    return found


@native.get("/runs/{run_id}", tags=["native"])
async def get_run(
    request: Request, run_id: str, key: SessionKey = None, x_session_key: SessionKeyHeader = None
) -> dict[str, Any]:
    """The trace: request, plan, each task's expert, status, outputs and timings, the answer."""
    service = service_of(request)
    found = await run_in_threadpool(_authorized_run, service, run_id, _key(key, x_session_key))
    return await run_in_threadpool(service.trace, found, base_url(request))


@native.get("/runs/{run_id}/events", tags=["native"], response_class=StreamingResponse)
async def run_events(
    request: Request, run_id: str, key: SessionKey = None, x_session_key: SessionKeyHeader = None
) -> StreamingResponse:
    """Progress as server-sent events (start, task, answer, then done or error); a finished run sends done."""
    service = service_of(request)
    found = await run_in_threadpool(_authorized_run, service, run_id, _key(key, x_session_key))
    base = base_url(request)
    live = service.live(run_id)
    if live is not None:
        return event_stream(native_events(service, live, base))

    async def finished() -> AsyncIterator[str]:
        yield sse(_absolute({"type": "done", "run": service.trace(found)}, base), "done")

    return event_stream(finished())


@native.head("/artifacts/{name:path}", include_in_schema=False)
@native.get("/artifacts/{name:path}", tags=["native"], response_class=FileResponse)
async def get_artifact(
    request: Request,
    name: str,
    session: Annotated[str, Query(description="The id of the session that knows the artifact.")] = "",
    key: SessionKey = None,
    x_session_key: SessionKeyHeader = None,
) -> FileResponse:
    """A produced or uploaded file by its name in the session, with its MIME type; byte ranges for media."""
    service = service_of(request)
    try:
        service.authorize(session, _key(key, x_session_key))
    except ApiError:
        raise ApiError(404, f"no artifact '{name[:80]}' for that session and key", code="artifact_not_found") from None
    artifact = await run_in_threadpool(service.artifact, session, name)
    if artifact is None or not artifact.path.is_file():
        raise ApiError(404, f"no artifact '{name[:80]}' in this session", code="artifact_not_found")
    return FileResponse(
        artifact.path,
        media_type=mime_type(artifact.name),
        filename=artifact.name.rsplit("/", 1)[-1],
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


# the app


def create_app(
    settings: Settings | None = None,
    *,
    service: Service | None = None,
    host: str = "127.0.0.1",
    ui: bool = True,
) -> FastAPI:
    """The whole server as one ASGI app. ``host`` is the address it will listen on (for the access rules)."""
    from baton import __version__

    settings = settings or (service.settings if service else Settings.load())
    check_access(host, settings.api_token)
    own = service is None
    service = service or Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if own:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="baton",
        version=__version__,
        description="A planner conducting a team of expert models. OpenAI-compatible (/v1), "
        "HuggingGPT-compatible (/hugginggpt, /tasks, /results) and native (sessions, runs, artifacts) APIs.",
        docs_url=None,  # the interactive docs load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.ui = False
    _install_error_handlers(app)
    from .hugginggpt import router as hugginggpt
    from .openai_api import router as openai_api

    app.include_router(openai_api)
    app.include_router(hugginggpt)
    app.include_router(native)
    limit = int(settings.max_upload_mb * MB * 1.4) + MB  # base64 makes files a third larger; plus the JSON around
    app.add_middleware(BodyLimit, limit=limit)  # type: ignore[arg-type]
    app.add_middleware(AccessGuard, token=settings.api_token)  # type: ignore[arg-type]
    _add_bearer_to_schema(app)
    if ui:
        from baton.web import mount

        mount(app, service, path="/ui")
        app.state.ui = True

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse("/ui/")

    return app


def _add_bearer_to_schema(app: FastAPI) -> None:
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "BATON_API_TOKEN, when the server has one",
                }
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
