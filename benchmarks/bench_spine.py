"""Measure the spine's claims and print a table of measured / target ratios (<= 1.00 meets the target).

    .venv/bin/python benchmarks/bench_spine.py [--quick]

- scheduler overhead per task on 1,000-node plans of no-op tasks (chain, independent, random DAG);
- wall time / critical-path time on a wide plan of sleeping tasks (4 levels x 8 wide, 50 ms each);
- `baton --help` wall time;
- the README example end to end (OCR then speech of examples/sign.png).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from baton.execute import SlotGate, execute

ROOT = Path(__file__).resolve().parent.parent
BATON = str(Path(sys.executable).with_name("baton"))


def scheduler_overhead(deps: dict[int, list[int]], repeats: int) -> float:
    """Milliseconds of scheduling per task: the plan's wall time with no-op tasks, over its size."""

    async def noop(task_id: int) -> dict[str, Any]:
        return {}

    async def once() -> float:
        began = time.perf_counter()
        outcomes = await execute(deps, noop, gate=SlotGate(2), timeout=60)
        took = time.perf_counter() - began
        assert all(o.status == "succeeded" for o in outcomes.values())
        return took

    best = min(asyncio.run(once()) for _ in range(repeats))
    return best / len(deps) * 1000


def random_dag(size: int, seed: int = 7) -> dict[int, list[int]]:
    rng = random.Random(seed)
    return {i: sorted(rng.sample(range(i), min(i, rng.randint(0, 3)))) for i in range(size)}


def wide_plan_ratio(levels: int, width: int, seconds: float) -> float:
    """Wall time over critical-path time; each level depends on every task of the level before."""
    deps = {
        level * width + i: [(level - 1) * width + j for j in range(width)] if level else []
        for level in range(levels)
        for i in range(width)
    }
    pool = ThreadPoolExecutor(max_workers=width)

    async def sleeper(task_id: int) -> None:
        await asyncio.get_running_loop().run_in_executor(pool, time.sleep, seconds)

    async def once() -> float:
        began = time.perf_counter()
        await execute(deps, sleeper, gate=SlotGate(width), timeout=60)
        return time.perf_counter() - began

    try:
        walls = [asyncio.run(once()) for _ in range(3)]
    finally:
        pool.shutdown()
    return statistics.median(walls) / (levels * seconds)


def command_seconds(command: list[str], repeats: int, env: dict[str, str] | None = None) -> float:
    walls = []
    for _ in range(repeats):
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env, cwd=ROOT)
        walls.append(time.perf_counter() - began)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()}")
    return statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    repeats = 2 if parser.parse_args().quick else 5
    rows: list[tuple[str, float, float, str]] = []

    def add(name: str, measure: Callable[[], float], target: float, unit: str) -> None:
        rows.append((name, measure(), target, unit))

    size = 1000
    add(
        "scheduler: 1,000-node chain",
        lambda: scheduler_overhead({i: [i - 1] if i else [] for i in range(size)}, repeats),
        0.2,
        "ms/task",
    )
    add(
        "scheduler: 1,000 independent",
        lambda: scheduler_overhead({i: [] for i in range(size)}, repeats),
        0.2,
        "ms/task",
    )
    add("scheduler: 1,000-node random DAG", lambda: scheduler_overhead(random_dag(size), repeats), 0.2, "ms/task")
    add("wide plan 4x8 x 50 ms: wall / critical path", lambda: wide_plan_ratio(4, 8, 0.05), 1.05, "ratio")
    add("`baton --help` wall time", lambda: command_seconds([BATON, "--help"], repeats), 0.3, "s")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BATON_HOME": home}
        example = [BATON, "run", "read the text in this image aloud", "-i", "examples/sign.png"]
        command_seconds(example, 1, env)  # first run creates the store
        add("README example end to end", lambda: command_seconds(example, repeats, env), 2.0, "s")

    print(f"{'measure':<46} {'measured':>10} {'target':>8}  {'unit':<8} {'ratio':>6}")
    print("-" * 84)
    for name, value, target, unit in rows:
        ratio = value / target
        print(
            f"{name:<46} {value:>10.3f} {target:>8.2f}  {unit:<8} {ratio:>6.2f}{'' if ratio <= 1 else '  over target'}"
        )


if __name__ == "__main__":
    main()
