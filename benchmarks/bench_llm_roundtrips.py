"""Count LLM round trips per request, as a scripted OpenAI-compatible server sees them.

    .venv/bin/python benchmarks/bench_llm_roundtrips.py

Each request is planned and answered through the real openai client against baton's scripted server
on 127.0.0.1, with two runnable candidate models for every task (so that choosing is a real choice).
Printed per request: baton's default mode (targets: <= 2), `--select llm` (<= 3), `--plan-select`,
and HuggingGPT's count for the same plan: 1 planning + 1 per task with several candidates + 1 answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from baton.assistant import Assistant
from baton.catalog import load_catalog
from baton.config import Settings
from baton.testing import Script, ScriptedLLM

REQUESTS: dict[str, list[dict[str, Any]]] = {
    "read the text in a.png aloud": [
        {"id": 0, "task": "image-to-text", "args": {"image": "a.png"}, "dep": []},
        {"id": 1, "task": "text-to-speech", "args": {"text": "<GENERATED>-0"}, "dep": [0]},
    ],
    "read a.png and b.png, and speak both": [
        {"id": 0, "task": "image-to-text", "args": {"image": "a.png"}, "dep": []},
        {"id": 1, "task": "image-to-text", "args": {"image": "b.png"}, "dep": []},
        {"id": 2, "task": "text-to-speech", "args": {"text": "<GENERATED>-0"}, "dep": [0]},
        {"id": 3, "task": "text-to-speech", "args": {"text": "<GENERATED>-1"}, "dep": [1]},
    ],
    "say 'good morning' and read b.png": [
        {"id": 0, "task": "text-to-speech", "args": {"text": "good morning"}, "dep": []},
        {"id": 1, "task": "image-to-text", "args": {"image": "b.png"}, "dep": []},
    ],
    "read b.png, then say it slowly": [
        {"id": 0, "task": "image-to-text", "args": {"image": "b.png"}, "dep": []},
        {"id": 1, "task": "text-to-speech", "args": {"text": "<GENERATED>-0", "speed": "120"}, "dep": [0]},
    ],
}


def reply(body: dict[str, Any]) -> Script | str:
    """The scripted model: plans from REQUESTS, picks the second candidate, answers briefly."""
    system = body["messages"][0]["content"]
    last = body["messages"][-1]["content"]
    if "planner of baton" in system:
        request = last.rsplit("\n", 1)[-1]
        tasks = [dict(task) for task in REQUESTS[request]]
        if "Candidate models per task" in system:
            for task in tasks:
                task["model"] = f"alt/{task['task']}"
        return json.dumps({"tasks": tasks})
    if "choose an expert model" in last:
        ids = [int(i) for i in re.findall(r"^task (\d+) \(", last, flags=re.MULTILINE)]
        tasks = dict(re.findall(r"^task (\d+) \(([^)]+)\)", last, flags=re.MULTILINE))
        return json.dumps({"choices": [{"id": i, "model": f"alt/{tasks[str(i)]}"} for i in ids]})
    return "Done: here are your results."


def catalog_with_alternatives() -> Any:
    catalog = load_catalog()
    for card in list(catalog):
        if card.backend == "builtin" and card.task in ("image-to-text", "text-to-speech"):
            catalog.add(card.model_copy(update={"id": f"alt/{card.task}", "popularity": card.popularity // 2}))
    return catalog


def count(server: ScriptedLLM, home: Path, files: list[Path], request: str, **options: Any) -> int:
    before = server.calls
    settings = Settings(home=home, llm_base_url=server.base_url, llm_model="scripted-model", llm_max_retries=0)
    assistant = Assistant(settings, catalog=catalog_with_alternatives())
    try:
        result = asyncio.run(assistant.run(request, files, **options))
    finally:
        assistant.close()
    if result.run.status != "succeeded":
        raise SystemExit(f"{request!r} did not succeed: {result.run.error or result.run.answer}")
    return server.calls - before


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLM(reply) as server:
        folder = Path(tmp)
        files = []
        for name, text in (("a.png", "Hello there"), ("b.png", "Good night")):
            image = Image.new("RGB", (420, 90), "white")
            ImageDraw.Draw(image).text((20, 20), text, fill="black", font=ImageFont.load_default(size=40))
            image.save(folder / name)
            files.append(folder / name)
        rows = []
        for request, plan in REQUESTS.items():
            rows.append(
                (
                    request,
                    len(plan),
                    count(server, folder / "home", files, request),
                    count(server, folder / "home", files, request, select_mode="llm"),
                    count(server, folder / "home", files, request, plan_select=True),
                    2 + len(plan),  # every task here has two candidates
                )
            )
    header = ("request", "tasks", "baton", "--select llm", "--plan-select", "HuggingGPT")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    mean = [sum(row[i] for row in rows) / len(rows) for i in range(2, 6)]
    print(
        "  ".join(
            ["mean".ljust(widths[0]), "".ljust(widths[1])]
            + [f"{m:.2f}".ljust(w) for m, w in zip(mean, widths[2:], strict=True)]
        )
    )
    print(f"\nbaton / HuggingGPT round trips: default {mean[0] / mean[3]:.2f}, --select llm {mean[1] / mean[3]:.2f}")
    if mean[0] > 2 or mean[1] > 3:
        sys.exit("over target: default must be <= 2 and --select llm <= 3 round trips per request")


if __name__ == "__main__":
    main()
