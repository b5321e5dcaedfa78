"""The DAG scheduler: each task starts the moment its dependencies finish.

No polling: when a task ends, its dependants' counters drop and those that reach zero start at
once. Independent tasks run concurrently, bounded by a gate (CPU slots by default; model experts can
add a memory budget). A failure marks every dependant skipped with the reason, and the rest of the
plan still runs. Cancelling the coroutine (Ctrl-C) cancels running tasks and marks the rest cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Event", "Outcome", "SlotGate", "Status", "execute"]

Status = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]


@dataclass
class Outcome:
    status: Status = "pending"
    outputs: Any = None
    error: str | None = None
    started: float | None = None  # time.time() when it started
    seconds: float | None = None


@dataclass(frozen=True)
class Event:
    """Progress: a task started or ended (``status`` says how)."""

    task_id: int
    status: Status
    outcome: Outcome = field(compare=False)


class SlotGate:
    """Admits at most ``slots`` tasks at a time."""

    def __init__(self, slots: int) -> None:
        self._semaphore = asyncio.Semaphore(max(1, slots))

    def __call__(self, task_id: int) -> AbstractAsyncContextManager[Any]:
        return self._semaphore


async def execute(
    deps: Mapping[int, list[int]],
    run_one: Callable[[int], Awaitable[Any]],
    *,
    gate: Callable[[int], AbstractAsyncContextManager[Any]] | None = None,
    timeout: float | None = None,
    on_event: Callable[[Event], None] | None = None,
    describe_error: Callable[[BaseException], str] = lambda exc: f"{type(exc).__name__}: {exc}",
) -> dict[int, Outcome]:
    """Run every task of a validated DAG; return each task's outcome.

    ``deps`` maps each task id to the ids it depends on (all present, acyclic). ``run_one(id)`` does
    the work and returns the outputs. ``timeout`` bounds each task's run, not its wait for a slot.
    """
    outcomes = {tid: Outcome() for tid in deps}
    dependants: dict[int, list[int]] = {tid: [] for tid in deps}
    waiting = {tid: len(set(ds)) for tid, ds in deps.items()}
    for tid, ds in deps.items():
        for dep in set(ds):
            dependants[dep].append(tid)
    gate = gate or SlotGate(len(deps) or 1)
    emit = on_event or (lambda event: None)
    running: set[asyncio.Task[None]] = set()
    crashed: list[BaseException] = []
    done = asyncio.Event()
    remaining = len(deps)

    def finish(tid: int, status: Status, error: str | None = None) -> None:
        nonlocal remaining
        queue = [(tid, status, error)]
        while queue:  # a loop, not recursion: a failure may skip a long chain
            tid, status, error = queue.pop()
            outcome = outcomes[tid]
            outcome.status, outcome.error = status, error
            remaining -= 1
            emit(Event(tid, status, outcome))
            for child in dependants[tid]:
                if outcomes[child].status != "pending":
                    continue
                if status == "succeeded":
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        start(child)
                else:
                    # a skipped task passes its cause on: a chain of reasons would grow with its length
                    if status == "skipped" and error:
                        reason = error
                    else:
                        reason = f"skipped because task {tid} {status}" + (f": {error}" if error else "")
                    outcomes[child].status = "skipped"
                    queue.append((child, "skipped", reason))
        if remaining == 0:
            done.set()

    async def run(tid: int) -> None:
        async with gate(tid):
            outcome = outcomes[tid]
            outcome.status, outcome.started = "running", time.time()
            emit(Event(tid, "running", outcome))
            began = time.perf_counter()
            limit = asyncio.timeout(timeout)
            try:
                async with limit:
                    outcome.outputs = await run_one(tid)
            except asyncio.CancelledError:
                outcome.seconds = time.perf_counter() - began
                outcome.status, outcome.error = "cancelled", "cancelled by the user"
                raise
            except Exception as exc:  # a failed expert fails its task, never the whole run
                outcome.seconds = time.perf_counter() - began
                if limit.expired():  # our deadline, not a TimeoutError the task itself raised
                    finish(
                        tid, "failed", f"timed out after {timeout:g} s; raise the task timeout or simplify the input"
                    )
                else:
                    finish(tid, "failed", describe_error(exc))
            else:
                outcome.seconds = time.perf_counter() - began
                finish(tid, "succeeded")

    def start(tid: int) -> None:
        task = asyncio.create_task(run(tid), name=f"task-{tid}")
        running.add(task)
        task.add_done_callback(ended)

    def ended(task: asyncio.Task[None]) -> None:
        running.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a bug outside the task's work (e.g. in on_event): stop, never hang
            crashed.append(error)
            done.set()

    async def stop() -> None:
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    if not deps:
        return outcomes
    for tid, count in waiting.items():
        if count == 0:
            start(tid)
    try:
        await done.wait()
    except asyncio.CancelledError:
        await stop()
        for tid, outcome in outcomes.items():
            if outcome.status in ("pending", "running"):
                outcome.status, outcome.error = "cancelled", "cancelled by the user"
            if outcome.status == "cancelled":
                emit(Event(tid, "cancelled", outcome))
        raise
    if crashed:
        await stop()
        raise crashed[0]
    return outcomes
