"""The DAG scheduler: start on dependency completion, concurrency, the gate, failures, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import pytest

from baton.execute import Event, Outcome, SlotGate, execute


class Recorder:
    """A run_one that sleeps per task and records when each task started and ended."""

    def __init__(self, sleeps: dict[int, float] | None = None, fail: dict[int, Exception] | None = None) -> None:
        self.sleeps = sleeps or {}
        self.fail = fail or {}
        self.started: dict[int, float] = {}
        self.ended: dict[int, float] = {}
        self.calls: list[int] = []
        self.active = 0
        self.max_active = 0
        self.cancelled: set[int] = set()

    async def __call__(self, tid: int) -> dict[str, int]:
        self.calls.append(tid)
        self.started[tid] = time.perf_counter()
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.sleeps.get(tid, 0))
            if tid in self.fail:
                raise self.fail[tid]
            return {"task": tid}
        except asyncio.CancelledError:
            self.cancelled.add(tid)
            raise
        finally:
            self.active -= 1
            self.ended[tid] = time.perf_counter()


def by_task(events: list[Event]) -> dict[int, list[str]]:
    statuses: dict[int, list[str]] = defaultdict(list)
    for event in events:
        statuses[event.task_id].append(event.status)
    return dict(statuses)


async def test_empty_plan_returns_empty_dict_and_runs_nothing() -> None:
    events: list[Event] = []
    work = Recorder()
    assert await execute({}, work, on_event=events.append) == {}
    assert work.calls == []
    assert events == []


async def test_outcomes_carry_outputs_and_timings() -> None:
    before = time.time()
    outcomes = await execute({0: [], 1: [0]}, Recorder({0: 0.02}))
    assert set(outcomes) == {0, 1}
    for tid, outcome in outcomes.items():
        assert outcome.status == "succeeded"
        assert outcome.outputs == {"task": tid}
        assert outcome.error is None
        assert outcome.started is not None and before <= outcome.started <= time.time()
        assert outcome.seconds is not None and outcome.seconds >= 0
    assert (outcomes[0].seconds or 0) >= 0.015


async def test_join_starts_right_after_the_slower_branch() -> None:
    # 0 -> (1 fast, 2 slow) -> 3: the join waits for 2, and starts the moment 2 ends
    work = Recorder({0: 0.05, 1: 0.05, 2: 0.4, 3: 0.0})
    outcomes = await execute({0: [], 1: [0], 2: [0], 3: [1, 2]}, work)
    assert all(o.status == "succeeded" for o in outcomes.values())
    assert work.calls[0] == 0 and work.calls[-1] == 3
    # both branches start as soon as the root ends, and run side by side
    assert 0 <= work.started[1] - work.ended[0] < 0.05
    assert 0 <= work.started[2] - work.ended[0] < 0.05
    assert work.started[2] < work.ended[1]
    # the join does not start after the fast branch, only after the slow one, with no polling delay
    assert work.started[3] - work.ended[1] > 0.2
    assert 0 <= work.started[3] - work.ended[2] < 0.05


async def test_a_dependency_listed_twice_starts_its_dependant_once() -> None:
    work = Recorder()
    outcomes = await execute({0: [], 1: [0, 0]}, work)
    assert work.calls == [0, 1]
    assert outcomes[1].status == "succeeded"


async def test_independent_tasks_run_concurrently() -> None:
    work = Recorder(dict.fromkeys(range(8), 0.1))
    began = time.perf_counter()
    outcomes = await execute({tid: [] for tid in range(8)}, work)
    wall = time.perf_counter() - began
    assert all(o.status == "succeeded" for o in outcomes.values())
    assert work.max_active == 8
    assert wall < 0.5  # one after another would take 0.8 s


async def test_slot_gate_bounds_concurrency() -> None:
    work = Recorder(dict.fromkeys(range(6), 0.05))
    outcomes = await execute({tid: [] for tid in range(6)}, work, gate=SlotGate(2))
    assert all(o.status == "succeeded" for o in outcomes.values())
    assert work.max_active == 2


async def test_slot_gate_of_zero_still_admits_one() -> None:
    work = Recorder(dict.fromkeys(range(3), 0.01))
    outcomes = await execute({tid: [] for tid in range(3)}, work, gate=SlotGate(0))
    assert all(o.status == "succeeded" for o in outcomes.values())
    assert work.max_active == 1


async def test_failure_skips_transitive_dependants_and_spares_other_branches() -> None:
    # 0 fails -> 1 -> 2 -> 3 (3 also needs 4); 4 -> 5 is an unrelated branch; 6 is independent
    deps = {0: [], 1: [0], 2: [1], 3: [2, 4], 4: [], 5: [4], 6: []}
    work = Recorder({0: 0.02}, fail={0: ValueError("the input has no words")})
    events: list[Event] = []
    outcomes = await execute(deps, work, on_event=events.append)

    assert outcomes[0].status == "failed"
    assert outcomes[0].error == "ValueError: the input has no words"
    for tid in (1, 2, 3):
        assert outcomes[tid].status == "skipped"
        assert outcomes[tid].error == "skipped because task 0 failed: ValueError: the input has no words"
    assert {4, 5, 6} == {tid for tid, o in outcomes.items() if o.status == "succeeded"}
    assert sorted(work.calls) == [0, 4, 5, 6]  # skipped tasks never run
    statuses = by_task(events)
    for tid in (1, 2, 3):
        assert statuses[tid] == ["skipped"]  # never 'running', finished exactly once


async def test_a_join_whose_other_dependency_fails_later_is_skipped_once() -> None:
    # 2 needs 0 (succeeds fast) and 1 (fails later)
    work = Recorder({1: 0.05}, fail={1: RuntimeError("boom")})
    events: list[Event] = []
    outcomes = await execute({0: [], 1: [], 2: [0, 1]}, work, on_event=events.append)
    assert [o.status for o in outcomes.values()] == ["succeeded", "failed", "skipped"]
    assert "task 1 failed" in (outcomes[2].error or "")
    assert by_task(events)[2] == ["skipped"]
    assert 2 not in work.calls


async def test_custom_error_description_is_used() -> None:
    work = Recorder(fail={0: KeyError("port")})
    outcomes = await execute({0: []}, work, describe_error=lambda exc: f"described: {exc!r}")
    assert outcomes[0].error == "described: KeyError('port')"


async def test_long_failing_chain_does_not_hit_the_recursion_limit() -> None:
    size = 3000
    deps = {0: [], **{tid: [tid - 1] for tid in range(1, size)}}
    events: list[Event] = []
    work = Recorder(fail={0: RuntimeError("first link broke")})
    outcomes = await execute(deps, work, on_event=events.append)
    assert outcomes[0].status == "failed"
    assert all(outcomes[tid].status == "skipped" for tid in range(1, size))
    # every skipped task names the task that failed (the reason does not grow along the chain)
    assert {o.error for tid, o in outcomes.items() if tid} == {
        "skipped because task 0 failed: RuntimeError: first link broke"
    }
    assert work.calls == [0]
    assert len([e for e in events if e.status != "running"]) == size


async def test_long_succeeding_chain_runs_in_order() -> None:
    size = 3000
    deps = {0: [], **{tid: [tid - 1] for tid in range(1, size)}}
    work = Recorder()
    outcomes = await execute(deps, work)
    assert work.calls == list(range(size))
    assert all(o.status == "succeeded" for o in outcomes.values())


async def test_task_timeout_fails_the_task_and_skips_dependants() -> None:
    work = Recorder({0: 10.0, 2: 0.01})
    began = time.perf_counter()
    outcomes = await execute({0: [], 1: [0], 2: []}, work, timeout=0.1)
    assert time.perf_counter() - began < 3
    assert outcomes[0].status == "failed"
    assert "timed out" in (outcomes[0].error or "")
    assert "0.1 s" in (outcomes[0].error or "")
    assert outcomes[0].seconds is not None and outcomes[0].seconds >= 0.09
    assert outcomes[1].status == "skipped"
    assert outcomes[2].status == "succeeded"
    assert 0 in work.cancelled  # the work itself was stopped


async def test_timeout_does_not_count_the_wait_for_a_slot() -> None:
    # one slot: task 1 waits ~0.15 s for task 0, then runs 0.15 s; both are within a 0.4 s timeout
    work = Recorder({0: 0.15, 1: 0.15})
    outcomes = await execute({0: [], 1: []}, work, gate=SlotGate(1), timeout=0.4)
    assert [o.status for o in outcomes.values()] == ["succeeded", "succeeded"]
    assert abs(work.started[1] - work.ended[0]) < 0.1 or abs(work.started[0] - work.ended[1]) < 0.1


@pytest.mark.parametrize("timeout", [None, 5.0])
async def test_a_timeout_error_raised_by_the_work_is_not_reported_as_our_timeout(timeout: float | None) -> None:
    work = Recorder(fail={0: TimeoutError("the server did not answer")})
    outcomes = await asyncio.wait_for(execute({0: [], 1: [0]}, work, timeout=timeout), 5)
    assert outcomes[0].status == "failed"
    assert outcomes[0].error == "TimeoutError: the server did not answer"
    assert outcomes[1].status == "skipped"


async def test_events_come_in_order_and_each_task_finishes_once() -> None:
    events: list[Event] = []
    deps = {0: [], 1: [0], 2: [0], 3: [1, 2]}
    await execute(deps, Recorder({1: 0.02, 2: 0.04}), on_event=events.append)
    assert by_task(events) == {tid: ["running", "succeeded"] for tid in deps}
    position = {(e.task_id, e.status): index for index, e in enumerate(events)}
    for tid, ds in deps.items():
        for dep in ds:
            assert position[(dep, "succeeded")] < position[(tid, "running")]
    assert position[(1, "succeeded")] < position[(2, "succeeded")]  # 1 sleeps less
    assert all(isinstance(e.outcome, Outcome) for e in events)


async def test_on_event_sees_the_outcome_at_the_time_of_the_event() -> None:
    seen: list[tuple[int, str, str]] = []
    await execute(
        {0: [], 1: [0]},
        Recorder(fail={0: RuntimeError("x")}),
        on_event=lambda e: seen.append((e.task_id, e.status, e.outcome.status)),
    )
    assert seen == [(0, "running", "running"), (0, "failed", "failed"), (1, "skipped", "skipped")]


async def test_an_on_event_callback_that_raises_stops_the_run_instead_of_hanging() -> None:
    def broken(event: Event) -> None:
        if event.status == "succeeded":
            raise OSError("disk full")

    work = Recorder({1: 10.0})
    with pytest.raises(OSError, match="disk full"):
        await asyncio.wait_for(execute({0: [], 1: []}, work, on_event=broken), 5)
    assert 1 in work.cancelled  # the rest of the plan was stopped


async def test_cancelling_marks_running_and_pending_tasks_cancelled() -> None:
    # 0 succeeds at once (not gated); 1 and 3 run long in the two slots; 4 waits for a slot; 2 waits for 1
    deps = {0: [], 1: [], 3: [], 4: [], 2: [1]}
    work = Recorder({0: 0.0, 1: 10.0, 3: 10.0, 4: 0.0})
    events: list[Event] = []
    running: set[int] = set()
    both_running = asyncio.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if event.status == "running":
            running.add(event.task_id)
            if {1, 3} <= running:
                both_running.set()

    slots = SlotGate(2)

    def gate(tid: int) -> AbstractAsyncContextManager[Any]:
        return nullcontext() if tid == 0 else slots(tid)

    runner = asyncio.create_task(execute(deps, work, gate=gate, on_event=on_event))
    await asyncio.wait_for(both_running.wait(), 5)
    await asyncio.sleep(0.02)  # let task 0 finish and task 4 queue for a slot
    began = time.perf_counter()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert time.perf_counter() - began < 2  # the long sleeps were interrupted, not waited for

    final = {e.task_id: e for e in events if e.status != "running"}
    assert final[0].status == "succeeded"
    for tid in (1, 2, 3, 4):
        assert final[tid].status == "cancelled"
        assert final[tid].outcome.status == "cancelled"
        assert final[tid].outcome.error == "cancelled by the user"
    assert work.cancelled == {1, 3}
    assert 4 not in work.calls and 2 not in work.calls
    statuses = by_task(events)
    assert statuses[1] == ["running", "cancelled"]
    assert statuses[2] == ["cancelled"]
    assert statuses[4] == ["cancelled"]
