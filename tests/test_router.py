"""Routing (--planner auto with an LLM): the local planner answers when it is sure, the LLM otherwise.

The LLM is the scripted OpenAI-compatible server on 127.0.0.1, driven through the real ``openai``
client; ``server.calls`` counts the round trips.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from baton.assistant import Assistant
from baton.catalog import Catalog, ModelCard
from baton.config import Settings
from baton.experts import Expert, ExpertContext
from baton.media import BadInput, Resource
from baton.plan import Plan, Task
from baton.planners import Attachment, PlanContext
from baton.planners.local import LocalPlanner
from baton.planners.router import RoutingPlanner
from baton.testing import ScriptedLLM


class Caption(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        return {"text": Resource.text("a white picture")}


class Speak(Expert):
    """Says what it would speak (as text): enough to see the plan ran end to end."""

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        return {"text": Resource.text(f"spoken: {inputs['text'].as_text()}")}


def card(model_id: str, task: str, expert: type[Expert]) -> ModelCard:
    return ModelCard(
        id=model_id, task=task, backend="builtin", description=model_id, factory=f"{__name__}:{expert.__name__}"
    )


CATALOG = (card("test/caption", "image-to-text", Caption), card("test/classify", "text-classification", Speak))
READ_PICTURE = "read the text in this image"
LLM_PLAN = json.dumps({"tasks": [{"id": 0, "task": "image-to-text", "args": {"image": "sign.png"}, "dep": []}]})
ANSWER = "It says nothing much."


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as scripted:
        yield scripted


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Assistant] = []

    def build(server: ScriptedLLM, threshold: float) -> Assistant:
        settings = Settings(
            home=tmp_path / "home",
            cpu_slots=2,
            task_timeout=30,
            llm_max_retries=1,
            llm_base_url=server.base_url,
            llm_model="scripted-model",
            router_threshold=threshold,
        )
        assistant = Assistant(settings, catalog=Catalog(CATALOG))
        made.append(assistant)
        return assistant

    yield build
    for assistant in made:
        assistant.close()


async def test_a_sure_local_plan_saves_the_llm_round_trip(server: ScriptedLLM, make: Any, picture: Path) -> None:
    server.add(ANSWER)  # only the answer: planning must not call the LLM
    result = await make(server, 0.5).run(READ_PICTURE, [picture])
    assert result.run.planner == "local"
    assert [t.task for t in result.run.tasks] == ["image-to-text"]
    assert result.run.answer == ANSWER and server.calls == 1
    assert "You are the planner" not in json.dumps(server.requests)


async def test_below_the_threshold_the_llm_plans(server: ScriptedLLM, make: Any, picture: Path) -> None:
    server.add(LLM_PLAN, ANSWER)
    result = await make(server, 1.0).run(READ_PICTURE, [picture])  # 1: always the LLM
    assert result.run.planner == "llm" and server.calls == 2
    assert result.run.status == "succeeded" and result.run.answer == ANSWER


async def test_when_the_local_planner_finds_no_task_the_llm_is_asked(server: ScriptedLLM, make: Any) -> None:
    server.add('{"tasks": []}', "Hello!")
    result = await make(server, 0.0).run("hmm")
    assert result.run.planner == "llm" and server.calls == 2 and result.run.answer == "Hello!"


async def test_when_the_local_plan_cannot_be_wired_the_llm_is_asked(server: ScriptedLLM, make: Any) -> None:
    """The local planner needs an image for OCR and none is attached; the LLM may know better."""
    server.add('{"tasks": []}', "Please attach the image.")
    result = await make(server, 0.0).run(READ_PICTURE)
    assert result.run.planner == "llm" and result.run.answer == "Please attach the image."


async def test_explicit_planners_are_not_routed(server: ScriptedLLM, make: Any, picture: Path) -> None:
    server.add(LLM_PLAN, ANSWER, ANSWER)
    assistant = make(server, 0.0)
    assert (await assistant.run(READ_PICTURE, [picture], planner="llm")).run.planner == "llm"
    assert server.calls == 2
    assert (await assistant.run(READ_PICTURE, [picture], planner="local")).run.planner == "local"
    assert server.calls == 3  # the answer only


class Recording:
    """A planner that records its calls and answers with one task."""

    name = "llm"

    def __init__(self) -> None:
        self.calls = 0

    def plan(self, request: str, files: Sequence[Attachment], context: PlanContext | None = None) -> Plan:
        self.calls += 1
        return Plan(tasks=[Task(id=0, task="conversational", args={"text": request})])


@pytest.mark.parametrize(
    ("threshold", "who"),
    [(0.0, "local"), (0.5, "local"), (0.99, "llm"), (1.0, "llm")],
)
def test_the_threshold_decides_who_plans(threshold: float, who: str, monkeypatch: pytest.MonkeyPatch) -> None:
    local = LocalPlanner()
    monkeypatch.setattr(local, "plan_with_confidence", lambda *a: (Plan(tasks=[Task(id=0, task="tts")]), 0.9))
    llm = Recording()
    router = RoutingPlanner(local, llm, threshold)
    found = router.plan("say hi", [])
    assert router.name == who and router.confidence == 0.9
    assert found.tasks[0].task == ("tts" if who == "local" else "conversational")
    assert llm.calls == (who == "llm")


def test_the_real_confidence_routes_clear_and_vague_requests_apart() -> None:
    llm = Recording()
    router = RoutingPlanner(LocalPlanner(), llm, 0.8)
    router.plan("read the text in this image aloud", [("sign.png", "image")])
    assert router.name == "local"
    router.plan("could you maybe help me with my project about the ocean", [])
    assert router.name == "llm" and llm.calls == 1


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("0.65", 0.65), ("1", 1.0)])
def test_the_threshold_setting(value: str, expected: float, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path))
    assert Settings.load().router_threshold == 0.8
    monkeypatch.setenv("BATON_ROUTER_THRESHOLD", value)
    assert Settings.load().router_threshold == expected


def test_the_threshold_from_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("router_threshold = 0.95\n")
    assert Settings.load().router_threshold == 0.95


@pytest.mark.parametrize("value", ["1.5", "-0.1", "sure"])
def test_a_bad_threshold_names_the_fix(value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path))
    monkeypatch.setenv("BATON_ROUTER_THRESHOLD", value)
    with pytest.raises(BadInput, match="BATON_ROUTER_THRESHOLD"):
        Settings.load()
