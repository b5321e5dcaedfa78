"""Tool-calling mode: the LLM calls one tool at a time over native tool_calls, against a scripted server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from baton.agent import run_agent
from baton.assistant import Assistant
from baton.catalog import Catalog, ModelCard
from baton.config import Settings
from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import BadInput, Resource
from baton.testing import Script, ScriptedLLM


class Sentiment(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        label = "negative" if "awful" in inputs["text"].as_text() else "positive"
        return {"text": Resource.text(label)}


class FirstWords(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        return {"text": Resource.text("summary: " + " ".join(inputs["text"].as_text().split()[:3]))}


class Painter(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 8), (200, 30, 30)).save(buffer, format="PNG")
        return {"image": Resource.media(ctx.save_bytes(buffer.getvalue(), ".png"))}


class Caption(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        with Image.open(inputs["image"].path) as image:
            return {"text": Resource.text(f"a {image.size[0]}x{image.size[1]} picture")}


class NoDictionary(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        raise ExpertError("no dictionary for Klingon is installed")


def card(model_id: str, task: str, expert: type[Expert]) -> ModelCard:
    return ModelCard(
        id=model_id, task=task, backend="builtin", description=f"test {task}", factory=f"{__name__}:{expert.__name__}"
    )


CATALOG = (
    card("test/sentiment", "text-classification", Sentiment),
    card("test/first-words", "summarization", FirstWords),
    card("test/painter", "text-to-image", Painter),
    card("test/caption", "image-to-text", Caption),
    card("test/klingon", "translation", NoDictionary),
)


def call(name: str, arguments: Any) -> Script:
    """One tool call; ``arguments`` as text is sent as written (it may be malformed JSON)."""
    return Script(tool_calls=[(name, arguments if isinstance(arguments, str) else json.dumps(arguments))])


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as scripted:
        yield scripted


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Assistant] = []

    def build(server: ScriptedLLM | None) -> Assistant:
        llm: dict[str, Any] = {"llm_base_url": server.base_url, "llm_model": "scripted-model"} if server else {}
        # router_threshold 1: plan mode here means the LLM plans (these tests compare it with agent mode)
        settings = Settings(
            home=tmp_path / "home", cpu_slots=2, task_timeout=30, llm_max_retries=1, router_threshold=1.0, **llm
        )
        assistant = Assistant(settings, catalog=Catalog(CATALOG))
        made.append(assistant)
        return assistant

    yield build
    for assistant in made:
        assistant.close()


def tool_results(body: dict[str, Any]) -> list[Any]:
    """What the model was told about each tool call, decoded."""
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


async def test_the_model_calls_tools_one_at_a_time_and_answers(server: ScriptedLLM, make: Any) -> None:
    server.add(
        call("text-classification", {"text": "what a lovely day"}),
        call("summarization", {"text": "The verdict is positive for a lovely day"}),
        "The text is positive; summary: The verdict is.",
    )
    assistant = make(server)
    pieces: list[str] = []
    result = await run_agent(assistant, "is 'what a lovely day' positive? then summarize", on_answer=pieces.append)
    run = result.run

    assert run.status == "succeeded" and run.planner == "agent"
    assert [(t.id, t.task, t.model, t.status) for t in run.tasks] == [
        (0, "text-classification", "test/sentiment", "succeeded"),
        (1, "summarization", "test/first-words", "succeeded"),
    ]
    assert run.answer == "The text is positive; summary: The verdict is." == "".join(pieces)
    assert server.calls == 3
    assert all(body["stream"] is True for body in server.requests)
    offered = {tool["function"]["name"] for tool in server.requests[0]["tools"]}
    assert offered == {c.task for c in CATALOG}  # only tasks an expert can run here
    summarize = next(t["function"] for t in server.requests[0]["tools"] if t["function"]["name"] == "summarization")
    assert summarize["parameters"]["required"] == ["text"] and "sentences" in summarize["parameters"]["properties"]
    assert tool_results(server.requests[1]) == [{"status": "succeeded", "outputs": {"text": "positive"}}]
    assert tool_results(server.requests[2])[1] == {
        "status": "succeeded",
        "outputs": {"text": "summary: The verdict is"},
    }
    assert run.usage == {"agent": {"calls": 3, "prompt_tokens": 150, "completion_tokens": 60}}
    stored = assistant.store.run(run.id)
    assert stored is not None and stored.answer == run.answer and [t.status for t in stored.tasks] == ["succeeded"] * 2


async def test_malformed_argument_json_is_returned_to_the_model_which_corrects_itself(
    server: ScriptedLLM, make: Any
) -> None:
    server.add(
        call("summarization", '{"text": "the boats sleep in the harbour"'),
        call("summarization", {"text": "the boats sleep in the harbour"}),
        "Summary: the boats sleep.",
    )
    result = await run_agent(make(server), "summarize 'the boats sleep in the harbour'")
    run = result.run

    (error,) = tool_results(server.requests[1])
    assert error["status"] == "error"
    assert error["error"].startswith("the arguments of summarization are not valid JSON (Expecting ',' delimiter")
    assert error["error"].endswith("send a JSON object with keys text")
    assert tool_results(server.requests[2])[1] == {
        "status": "succeeded",
        "outputs": {"text": "summary: the boats sleep"},
    }
    assert [(t.task, t.status) for t in run.tasks] == [("summarization", "succeeded")]  # the bad call ran nothing
    assert run.status == "succeeded" and run.answer == "Summary: the boats sleep."


async def test_an_unknown_tool_is_answered_with_the_error(server: ScriptedLLM, make: Any) -> None:
    server.add(call("draw_picture", {"text": "a boat"}), call("text-to-image", {"text": "a boat"}), "Here: done.")
    result = await run_agent(make(server), "draw a boat")

    (error,) = tool_results(server.requests[1])
    assert error["status"] == "error"
    assert "unknown task 'draw_picture'" in error["error"]
    assert error["error"].endswith("call one of the tools you were given")
    assert [t.task for t in result.run.tasks] == ["text-to-image"]
    assert result.run.status == "succeeded"


async def test_a_file_the_session_does_not_know_is_rejected_back_to_the_model(
    server: ScriptedLLM, make: Any, picture: Path
) -> None:
    outside = str(picture)  # a real image on disk, but not one the user gave to this session
    server.add(
        call("image-to-text", {"image": "image/deadbeef.png"}),
        call("image-to-text", {"image": outside}),
        call("image-to-text", {"image": "sign.png"}),
        "It is a 32x24 picture.",
    )
    result = await run_agent(make(server), "what is in sign.png?", [picture])
    run = result.run

    first, second = tool_results(server.requests[2])
    assert first == {
        "status": "error",
        "error": "argument 'image': the file 'image/deadbeef.png' is not known to this session; "
        "attach it with -i image/deadbeef.png",
    }
    assert second["status"] == "error" and f"the file '{outside}' is not known to this session" in second["error"]
    assert tool_results(server.requests[3])[2] == {"status": "succeeded", "outputs": {"text": "a 32x24 picture"}}
    assert [t.status for t in run.tasks] == ["succeeded"]
    assert [n for n in run.notices if n.startswith("rejected a call to image-to-text")] == [
        n for n in run.notices if "not known to this session" in n
    ]
    assert len(run.notices) == 2
    assert "sign.png: image" in server.requests[0]["messages"][0]["content"]  # the files it may use are listed


async def test_media_results_are_shown_by_artifact_name_and_can_be_used_next(server: ScriptedLLM, make: Any) -> None:
    def produce(body: dict[str, Any]) -> Script | str:
        done = tool_results(body)
        if not done:
            return call("text-to-image", {"text": "a red square"})
        if len(done) == 1:
            return call("image-to-text", {"image": done[0]["outputs"]["image"]})
        return f"I painted {done[0]['outputs']['image']}; it is {done[1]['outputs']['text']}."

    with ScriptedLLM(produce) as scripted:
        result = await run_agent(make(scripted), "paint a red square and describe it")
    (name,) = result.artifacts()
    assert name.startswith("image/") and name.endswith(".png")
    assert [t.status for t in result.run.tasks] == ["succeeded", "succeeded"]
    assert result.run.answer == f"I painted {name}; it is a 16x8 picture."
    assert result.run.task(0).outputs == {"image": {"kind": "image", "artifact": name}}


async def test_a_failing_tool_returns_its_error_as_the_result(server: ScriptedLLM, make: Any) -> None:
    server.add(
        call("translation", {"text": "good morning", "target": "Klingon"}),
        "I could not translate it: no Klingon dictionary is installed.",
    )
    result = await run_agent(make(server), "translate 'good morning' into Klingon")
    run = result.run
    assert tool_results(server.requests[1]) == [{"status": "error", "error": "no dictionary for Klingon is installed"}]
    assert [(t.task, t.status, t.error) for t in run.tasks] == [
        ("translation", "failed", "no dictionary for Klingon is installed")
    ]
    assert run.status == "failed"
    assert run.answer == "I could not translate it: no Klingon dictionary is installed."


async def test_a_server_without_tools_falls_back_to_planning_mode_with_a_notice(make: Any) -> None:
    plan = {"tasks": [{"id": 0, "task": "text-classification", "args": {"text": "what a lovely day"}, "dep": []}]}
    with ScriptedLLM([json.dumps(plan), "It is positive."], tools=False) as server:
        assistant = make(server)
        result = await run_agent(assistant, "is 'what a lovely day' positive?", session="s")
    run = result.run

    assert run.status == "succeeded" and run.planner == "llm"
    assert run.notices[0] == "the LLM server does not support tool calls; used planning mode"
    assert run.answer == "It is positive."
    assert [t.model for t in run.tasks] == ["test/sentiment"]
    assert "tools" in server.requests[0] and "tools" not in server.requests[1]
    runs = assistant.store.runs()
    assert [r.planner for r in runs] == ["llm", "agent"]
    abandoned = runs[1]
    assert abandoned.status == "failed" and abandoned.error == "the LLM server does not support tool calls"
    stored = assistant.store.run(run.id)
    assert stored is not None and stored.notices[0] == run.notices[0]


async def test_the_step_limit_stops_a_model_that_never_answers(server: ScriptedLLM, make: Any) -> None:
    server.add(*[call("summarization", {"text": f"round {i} of the same thing"}) for i in range(5)])
    result = await run_agent(make(server), "summarize forever", max_steps=3)
    run = result.run

    assert server.calls == 3
    assert [t.status for t in run.tasks] == ["succeeded"] * 3
    assert "stopped after 3 tool steps without a final answer" in run.notices
    assert run.answer.startswith("I stopped after 3 steps without finishing. What was done so far:\n")
    assert "[2] summarization: succeeded" in run.answer


async def test_a_tool_call_stream_cut_midway_is_asked_again(server: ScriptedLLM, make: Any) -> None:
    whole = call("summarization", {"text": "the boats sleep in the harbour tonight"})
    cut = Script(tool_calls=whole.tool_calls, cut_after=4)
    server.add(cut, whole, "Summary: the boats sleep.")
    result = await run_agent(make(server), "summarize it")
    assert [t.status for t in result.run.tasks] == ["succeeded"]  # the cut call was not run half-read
    assert result.run.task(0).outputs == {"text": {"kind": "text", "value": "summary: the boats sleep"}}
    assert server.calls == 3 and result.run.usage["agent"]["calls"] == 3
    assert "the LLM's streamed reply was cut off; asked again" in result.run.notices


async def test_an_answer_stream_cut_midway_is_asked_again_and_marked(server: ScriptedLLM, make: Any) -> None:
    answer = "The boats are asleep in the harbour, and so is everyone else."
    server.add(Script(answer, cut_after=3), answer)
    pieces: list[str] = []
    result = await run_agent(make(server), "what are the boats doing?", on_answer=pieces.append)
    assert result.run.answer == answer
    partial, marker, rest = "".join(pieces).partition("\n[the answer was cut off; asking again]\n")
    assert marker and rest == answer and answer.startswith(partial) and partial != answer
    assert result.run.notices == ["the LLM's streamed reply was cut off; asked again"]


async def test_an_llm_failure_midway_is_recorded_with_what_was_done(server: ScriptedLLM, make: Any) -> None:
    server.add(call("text-classification", {"text": "what a lovely day"}), Script(status=401, error="key revoked"))
    result = await run_agent(make(server), "rate it, then summarize")
    run = result.run
    assert run.status == "failed"
    assert run.error is not None and "check OPENAI_API_KEY" in run.error
    assert run.answer.startswith("The LLM failed: ")
    assert run.answer.endswith("What was done so far:\n[0] text-classification: succeeded")


async def test_agent_mode_needs_an_llm(make: Any) -> None:
    with pytest.raises(BadInput, match="--mode agent needs an LLM, and none is configured"):
        await run_agent(make(None), "summarize it")


async def test_each_run_reports_its_own_llm_notices_only(make: Any, tmp_path: Path) -> None:
    with ScriptedLLM(["First answer.", "Second answer."], models=("local-llama",)) as server:
        settings = Settings(home=tmp_path / "home", llm_base_url=server.base_url)  # no model named
        assistant = Assistant(settings, catalog=Catalog(CATALOG))
        try:
            first = await run_agent(assistant, "hello", session="s")
            second = await run_agent(assistant, "hello again", session="s")
        finally:
            assistant.close()
    notice = "BATON_LLM_MODEL is not set; using the server's first model, local-llama"
    assert first.run.notices == [notice]
    assert second.run.notices == []  # not repeated from the earlier run
    assert [body["model"] for body in server.requests] == ["local-llama", "local-llama"]
