"""The server's plain-Python side: one Assistant shared by every request, live progress, session keys.

Each request runs in a worker thread of its own (with its own event loop), so that a blocking step
(an LLM planning call, an image check) never stalls the server; the Assistant's expert threads are
shared by all of them. While a run goes, its progress is a list of events that any number of
listeners can follow from the start (the HTTP event streams and the web UI).

Sessions are isolated by a key: ``HMAC(server secret, session id)``. Reading a session, its runs or
its artifacts needs both the id and the key; artifact URLs carry them, so that a browser can load
media without an Authorization header. The secret lives in ``$BATON_HOME/server.secret``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from baton.assistant import Assistant, PlannerName, Result
from baton.config import Settings
from baton.media import Artifact, BadInput
from baton.plan import Plan
from baton.runs import Run, Session, TaskRecord
from baton.store import pid_alive

from .errors import ApiError
from .inputs import Inputs, mime_type

__all__ = ["Endpoint", "Job", "LiveRun", "Mode", "Service"]

log = logging.getLogger("baton.server")

Mode = Literal["plan", "agent"]
Event = dict[str, Any]
TERMINAL = ("done", "error")


@dataclass(frozen=True)
class Endpoint:
    """An LLM endpoint chosen per request (the web UI's settings), instead of the configured one."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)


@dataclass
class Job:
    """One request to run: the text, its files, and where and how to run it."""

    request: str
    inputs: Inputs | None = None
    session: str | None = None  # the session's name (the Assistant's handle); None starts a new session
    session_id: str | None = None
    planner: PlannerName = "auto"
    mode: Mode = "plan"
    endpoint: Endpoint | None = None


class LiveRun:
    """A run in progress: its events so far, and listeners that receive each new one."""

    def __init__(self, deadline: float, session_id: str | None) -> None:
        self.id: str | None = None
        self.session_id = session_id
        self.run: Run | None = None
        self.deadline = deadline
        self.future: Future[Result] | None = None
        self._events: list[Event] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self.cancel_reason = ""

    @property
    def finished(self) -> bool:
        with self._lock:
            return bool(self._events) and self._events[-1]["type"] in TERMINAL

    def publish(self, event: Event) -> None:
        with self._lock:  # listeners only enqueue: delivering under the lock keeps every stream in order
            if self._events and self._events[-1]["type"] in TERMINAL:
                return
            self._events.append(event)
            for listener in self._listeners:
                listener(event)

    def subscribe(self, listener: Callable[[Event], None]) -> list[Event]:
        """Add a listener; returns the events so far, which it will not receive again."""
        with self._lock:
            self._listeners.append(listener)
            return list(self._events)

    def unsubscribe(self, listener: Callable[[Event], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def follow(self) -> Iterator[Event]:
        """Every event from the first to the last, blocking between them (for worker threads)."""
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        listener = events.put
        backlog = self.subscribe(listener)
        try:
            for event in backlog:
                yield event
                if event["type"] in TERMINAL:
                    return
            while True:
                event = events.get()
                yield event
                if event["type"] in TERMINAL:
                    return
        finally:
            self.unsubscribe(listener)

    async def follow_async(self) -> AsyncIterator[Event]:
        """Every event from the first to the last, for the server's event loop."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def listener(event: Event) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
                loop.call_soon_threadsafe(events.put_nowait, event)

        backlog = self.subscribe(listener)
        try:
            for event in backlog:
                yield event
                if event["type"] in TERMINAL:
                    return
            while True:
                event = await events.get()
                yield event
                if event["type"] in TERMINAL:
                    return
        finally:
            self.unsubscribe(listener)

    async def first(self, *types: str) -> Event:
        """The first event of one of ``types`` (or the terminal one)."""
        async for event in self.follow_async():
            if event["type"] in types or event["type"] in TERMINAL:
                return event
        raise AssertionError("unreachable: a run always ends with a terminal event")

    def _attach(self, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._loop, self._task = task.get_loop(), task
            if self._cancelled:
                task.cancel()

    def cancel(self, reason: str) -> None:
        """Stop the run (it is recorded as interrupted, with the reason); one still waiting never starts."""
        with self._lock:
            self._cancelled = True
            self.cancel_reason = self.cancel_reason or reason
            loop, task = self._loop, self._task
        if self.future is not None and self.future.cancel():
            self.publish(error_event(ApiError(503, f"the request was cancelled before it started: {reason}")))
        elif loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop has just finished
                loop.call_soon_threadsafe(task.cancel)


def error_event(error: ApiError) -> Event:
    return {"type": "error", "status": error.status, **error.body()}


class Service:
    """What the HTTP API and the web UI share: the Assistant, the runs in progress, session keys."""

    def __init__(self, settings: Settings | None = None, assistant: Assistant | None = None) -> None:
        self.owns_assistant = assistant is None
        self.assistant = assistant or Assistant(settings)
        self.settings = settings or self.assistant.settings
        self.store = self.assistant.store
        self._secret = _secret(self.store.home)
        self._uploads = self.store.home / "tmp"
        _remove_orphaned_uploads(self._uploads)
        self._workers = ThreadPoolExecutor(max_workers=self.settings.server_runs, thread_name_prefix="baton-run")
        self._lock = threading.Lock()
        self._active: set[LiveRun] = set()
        self._by_id: dict[str, LiveRun] = {}
        self._assistants: dict[Endpoint, Assistant] = {}
        self._closed = False

    # sessions and keys

    def session_key(self, session_id: str) -> str:
        return hmac.new(self._secret, f"session:{session_id}".encode(), sha256).hexdigest()[:32]

    def authorize(self, session_id: str, key: str | None) -> Session:
        """The session, if ``key`` is its key; otherwise 404, the same answer as for a session that does not exist."""
        session = self.store.session_by_id(session_id) if _looks_like_id(session_id) else None
        if session is None or not key or not hmac.compare_digest(key.encode(), self.session_key(session_id).encode()):
            raise ApiError(
                404,
                f"no session '{session_id[:40]}' with that key; use the id and key that creating the session returned",
                code="session_not_found",
            )
        return session

    def create_session(self, name: str | None) -> Session:
        if name is not None:
            name = name.strip()
            if not name or len(name) > 200:
                raise ApiError(400, "a session name must have 1 to 200 characters", param="name")
            if self.store.find_session(name) is not None:
                raise ApiError(409, f"a session named '{name}' exists already; choose another name", param="name")
        return self.store.session(name)

    def delete_session(self, session: Session) -> None:
        with self._lock:
            if any(live.session_id == session.id for live in self._active):
                raise ApiError(409, "this session has a run in progress; delete it when the run has finished")
            self.store.delete_session(session.id)

    def session_name(self, session_id: str) -> str:
        session = self.store.session_by_id(session_id)
        return session.name if session else session_id

    # files

    def new_inputs(self) -> Inputs:
        return Inputs(self._uploads / f"upload-{os.getpid()}-{uuid.uuid4().hex}", self.settings)

    def artifact(self, session_id: str, name: str) -> Artifact | None:
        """An artifact by its exact name in the session (never a path, never another session's)."""
        found = self.store.files_of(session_id).get(name)
        return found if found is not None and found.name == name else None

    def artifact_url(self, session_id: str, name: str) -> str:
        return f"/artifacts/{quote(name)}?session={session_id}&key={self.session_key(session_id)}"

    def describe(self, session_id: str, artifact: Artifact) -> dict[str, Any]:
        return {
            "name": artifact.name,
            "kind": artifact.kind,
            "label": artifact.label or None,
            "mime_type": mime_type(artifact.name),
            "url": self.artifact_url(session_id, artifact.name),
        }

    def run_artifacts(self, run: Run, known: dict[str, Artifact] | None = None) -> list[Artifact]:
        """The media a run produced, in task order."""
        known = self.store.files_of(run.session_id) if known is None else known
        names = [
            value["artifact"]
            for task in run.tasks
            for value in task.outputs.values()
            if isinstance(value, dict) and value.get("artifact")
        ]
        return [known[name] for name in dict.fromkeys(names) if name in known]

    def answer_text(self, run: Run, base: str = "", *, markdown: bool = False) -> str:
        """The answer with file paths and artifact names turned into URLs (or markdown links named by the
        artifact); files it does not name are listed after it."""
        known = self.store.files_of(run.session_id)
        links: dict[str, str] = {}
        for artifact in self.run_artifacts(run, known):
            url = base + self.artifact_url(run.session_id, artifact.name)
            links[str(artifact.path)] = links[artifact.name] = f"[{artifact.name}]({url})" if markdown else url
        text = run.answer
        if links:
            pattern = re.compile("|".join(re.escape(key) for key in sorted(links, key=len, reverse=True)))
            text = pattern.sub(lambda match: links[match.group(0)], text)
            missing = [link for link in dict.fromkeys(links.values()) if link not in text]
            if missing:
                text += "\n\nFiles: " + " ".join(missing)
        return text

    def trace(self, run: Run, base: str = "") -> dict[str, Any]:
        """The run record as JSON, its answer with URLs and its artifacts described."""
        data = run.model_dump(mode="json")
        known = self.store.files_of(run.session_id)
        data["answer"] = self.answer_text(run, base) if run.answer else ""
        data["artifacts"] = [
            {**self.describe(run.session_id, artifact), "url": base + self.artifact_url(run.session_id, artifact.name)}
            for artifact in self.run_artifacts(run, known)
        ]
        return data

    def run_record(self, run_id: str) -> Run | None:
        found = self.store.run(run_id) if _looks_like_id(run_id) else None
        return found if found is not None and found.id == run_id else None

    def live(self, run_id: str) -> LiveRun | None:
        with self._lock:
            return self._by_id.get(run_id)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    # running

    def assistant_for(self, endpoint: Endpoint | None) -> Assistant:
        """The shared Assistant, or one for another LLM endpoint sharing its store, catalogue and experts."""
        if endpoint is None or not (endpoint.base_url or endpoint.model or endpoint.api_key):
            return self.assistant
        if endpoint.base_url and not re.match(r"https?://", endpoint.base_url):
            raise ApiError(400, f"the LLM endpoint '{endpoint.base_url}' must be an http:// or https:// URL")
        with self._lock:
            found = self._assistants.get(endpoint)
            if found is None:
                settings = self.settings.replace(
                    llm_base_url=endpoint.base_url or self.settings.llm_base_url,
                    llm_model=endpoint.model or self.settings.llm_model,
                    llm_api_key=endpoint.api_key or self.settings.llm_api_key,
                )
                found = Assistant(settings, store=self.store, catalog=self.assistant.catalog)
                found.experts = self.assistant.experts
                self._assistants[endpoint] = found
            return found

    def start(self, job: Job) -> LiveRun:
        """Queue a job on a worker thread; follow it with the LiveRun's events or wait for ``result``."""
        live = LiveRun(time.monotonic() + self.settings.request_timeout, job.session_id)
        with self._lock:
            if self._closed:
                raise ApiError(503, "the server is shutting down; try again when it is back")
            self._active.add(live)
        live.future = self._workers.submit(self._work, job, live)
        live.future.add_done_callback(lambda future: self._never_started(future, job, live))
        return live

    def _never_started(self, future: Future[Result], job: Job, live: LiveRun) -> None:
        """A job cancelled while it waited: ``_work`` never ran, so tidy up here."""
        if future.cancelled():
            if job.inputs is not None:
                job.inputs.cleanup()
            with self._lock:
                self._active.discard(live)

    async def result(self, live: LiveRun) -> Result:
        """The finished run; ApiError if it was refused, failed inside baton, or ran out of time.

        If the caller is cancelled (the client went away, the server stops), the run is stopped too.
        """
        assert live.future is not None
        try:
            return await asyncio.shield(asyncio.wrap_future(live.future))
        except asyncio.CancelledError:
            live.cancel("the client went away")
            raise

    def plan(self, job: Job) -> Plan:
        """Plan without running (HuggingGPT's /tasks): nothing is stored."""
        assistant = self.assistant_for(job.endpoint)
        labels = assistant.check_inputs(job.inputs.paths if job.inputs else [])
        files = [(label, kind) for label, (_, kind) in labels.items()]
        from baton.planners import PlanContext

        return assistant.choose_planner(job.planner).plan(job.request, files, PlanContext(known=dict(files)))

    def _work(self, job: Job, live: LiveRun) -> Result:
        try:
            result = asyncio.run(self._drive(job, live))
        except TimeoutError:
            timeout = self.settings.request_timeout
            reason = f"stopped after the server's request timeout of {timeout:g} s (BATON_REQUEST_TIMEOUT)"
            self._interrupted(live, reason)
            stopped = ApiError(
                504,
                f"the request took longer than {timeout:g} s and was stopped; simplify it, "
                "or raise BATON_REQUEST_TIMEOUT on the server",
                code="timeout",
            )
            live.publish(error_event(stopped))
            raise stopped from None
        except asyncio.CancelledError:
            reason = live.cancel_reason or "the server stopped it"
            self._interrupted(live, f"cancelled: {reason}")
            stopped = ApiError(503, f"the run was stopped before it finished: {reason}")
            live.publish(error_event(stopped))
            raise stopped from None
        except ApiError as refused:
            live.publish(error_event(refused))
            raise
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                log.exception("a run failed inside baton")
                refusal = ApiError(
                    500, f"the run failed inside baton ({type(exc).__name__}: {exc}); see the server log"
                )
            live.publish(error_event(refusal))
            raise refusal from None
        else:
            live.publish({"type": "done", "run": self.trace(result.run)})
            return result
        finally:
            if job.inputs is not None:
                job.inputs.cleanup()
            with self._lock:
                self._active.discard(live)
                if live.id is not None:
                    self._by_id.pop(live.id, None)

    async def _drive(self, job: Job, live: LiveRun) -> Result:
        task = asyncio.current_task()
        assert task is not None
        live._attach(task)
        remaining = live.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        assistant = self.assistant_for(job.endpoint)
        paths = job.inputs.paths if job.inputs else []

        def started(run: Run) -> None:
            live.id, live.run, live.session_id = run.id, run, run.session_id
            with self._lock:
                self._by_id[run.id] = live
            live.publish({"type": "start", "run": self.trace(run)})

        def progressed(run: Run, event: Any) -> None:
            live.publish(self._task_event(run, run.task(event.task_id)))

        def answered(piece: str) -> None:
            live.publish({"type": "answer", "run_id": live.id, "delta": piece})

        async with asyncio.timeout(remaining):
            if job.mode == "agent":
                from baton.agent import run_agent

                return await run_agent(
                    assistant, job.request, paths, session=job.session,
                    on_start=started, on_event=progressed, on_answer=answered,
                )  # fmt: skip
            return await assistant.run(
                job.request, paths, session=job.session, planner=job.planner,
                on_start=started, on_event=progressed, on_answer=answered,
            )  # fmt: skip

    def _task_event(self, run: Run, task: TaskRecord) -> Event:
        event: Event = {"type": "task", "run_id": run.id, "task": task.model_dump(mode="json")}
        if task.status == "succeeded":
            names = [value["artifact"] for value in task.outputs.values() if value.get("artifact")]
            if names:
                known = self.store.files_of(run.session_id)
                event["artifacts"] = [self.describe(run.session_id, known[name]) for name in names if name in known]
        return event

    def _interrupted(self, live: LiveRun, reason: str) -> None:
        """Record why a stopped run stopped (the Assistant says 'cancelled by the user', or was cut off)."""
        run = live.run
        if run is None:
            return
        if run.status == "running" or run.error == "cancelled by the user":
            run.status, run.error = "interrupted", reason
            run.finished = run.finished or time.time()
            for task in run.tasks:
                if task.status in ("pending", "running") or task.error == "cancelled by the user":
                    task.status, task.error = "cancelled", reason
            run.answer = run.answer or f"Stopped: {reason}."
            self.store.finish_run(run)

    def close(self, wait: float = 5.0) -> None:
        """Stop taking runs, cancel those in progress, wait a little for them, then close the Assistant."""
        with self._lock:
            self._closed = True
            active = list(self._active)
        for live in active:
            live.cancel("the server is shutting down")
        futures = [live.future for live in active if live.future is not None]
        if futures:
            wait_for_futures(futures, timeout=wait)
        self._workers.shutdown(wait=False, cancel_futures=True)
        if self.owns_assistant:
            self.assistant.close()


def _refusal(exc: Exception) -> ApiError | None:
    """A run refused for its input (before anything ran) as a 400, or None for a failure inside baton."""
    from baton.catalog import UnknownModel
    from baton.plan import PlanError
    from baton.planners import PlannerError
    from baton.tasks import UnknownTask

    if isinstance(exc, PlanError):
        return ApiError(400, "invalid plan: " + "; ".join(exc.problems), code="invalid_plan")
    if isinstance(exc, PlannerError):
        return ApiError(400, str(exc), code="cannot_plan")
    if isinstance(exc, (BadInput, UnknownTask, UnknownModel)):
        return ApiError(400, str(exc))
    return None


def _looks_like_id(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{6,64}", text))


def _secret(home: Path) -> bytes:
    """The server's secret for session keys: created once (readable only by its owner), then reused."""
    path = home / "server.secret"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            raise BadInput(f"{path} is damaged; delete it (session keys given out before will change)") from None
        return bytes.fromhex(text)
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _remove_orphaned_uploads(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("upload-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
