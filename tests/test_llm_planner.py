"""The LLM side of a run through the Assistant: planning with repair, expert choice, answers, LLM text experts.

Every test drives baton through the real ``openai`` client against a scripted OpenAI-compatible server
on 127.0.0.1, with test experts in a private catalogue and a temporary store.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from baton.assistant import Assistant, Result
from baton.catalog import Catalog, ModelCard
from baton.config import Settings
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.llm import register as register_llm_experts
from baton.media import Resource
from baton.testing import Script, ScriptedLLM

# test experts: each says which model ran it, so a test sees the choice in the output


class Sentiment(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        text = inputs["text"].as_text()
        label = "negative" if "awful" in text else "positive"
        return {"text": Resource.text(f"{label} ({self.card.id})"), "json": Resource.json_value({"label": label})}


class FirstWords(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        words = inputs["text"].as_text().split()[:3]
        return {"text": Resource.text(f"summary: {' '.join(words)} ({self.card.id})")}


class Painter(Expert):
    """Paints a 16x8 PNG whose colour depends on the prompt."""

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        shade = sum(inputs["text"].as_text().encode()) % 256
        buffer = io.BytesIO()
        Image.new("RGB", (16, 8), (shade, 80, 160)).save(buffer, format="PNG")
        return {"image": Resource.media(ctx.save_bytes(buffer.getvalue(), ".png"))}


class Caption(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        with Image.open(inputs["image"].path) as image:
            width, height = image.size
        return {"text": Resource.text(f"a {width}x{height} picture")}


class NoDictionary(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        raise ExpertError("no dictionary for Klingon is installed")


def card(model_id: str, task: str, expert: type[Expert], **extra: Any) -> ModelCard:
    return ModelCard(
        id=model_id,
        task=task,
        backend="builtin",
        description=f"{model_id.split('/')[1]} for {task}",
        factory=f"{__name__}:{expert.__name__}",
        **extra,
    )


SENTIMENT = card("test/sentiment", "text-classification", Sentiment)
SUMMARY = card("test/first-words", "summarization", FirstWords)
PAINTER = card("test/painter", "text-to-image", Painter)
CAPTION = card("test/caption", "image-to-text", Caption)
KLINGON = card("test/klingon", "translation", NoDictionary)
BASIC = (SENTIMENT, SUMMARY, PAINTER, CAPTION, KLINGON)

# several candidates per task, ranked small first: the LLM's choice shows when it differs from the ranking
SENTIMENT_LARGE = card("test/sentiment-large", "text-classification", Sentiment, memory_mb=900)
SUMMARY_LARGE = card("test/first-words-large", "summarization", FirstWords, memory_mb=900)
SUMMARY_XL = card("test/first-words-xl", "summarization", FirstWords, memory_mb=2000)
CHOICES = (*BASIC, SENTIMENT_LARGE, SUMMARY_LARGE, SUMMARY_XL)

LLM_EXPERTS: list[ModelCard] = []
register_llm_experts(LLM_EXPERTS.append)

REQUEST = "Tell me whether 'what a lovely day at the harbour' is positive, and summarize that verdict."


def task(tid: int, name: str, args: dict[str, Any], dep: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": tid, "task": name, "args": args, "dep": dep or [], **extra}


CLASSIFY = task(0, "text-classification", {"text": "what a lovely day at the harbour"})
SUMMARIZE = task(1, "summarization", {"text": "<GENERATED>-0"}, [0])
GOOD_PLAN = json.dumps({"tasks": [CLASSIFY, SUMMARIZE]})


def plan_text(*tasks: dict[str, Any]) -> str:
    return json.dumps({"tasks": list(tasks)})


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as scripted:
        yield scripted


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    """make(server, *cards, **settings) -> an Assistant whose LLM is the scripted server."""
    made: list[Assistant] = []

    def build(server: ScriptedLLM | None, *cards: ModelCard, **settings: Any) -> Assistant:
        # router_threshold 1: these tests are about the LLM planner, so --planner auto always asks the LLM
        values: dict[str, Any] = {"cpu_slots": 2, "task_timeout": 30, "llm_max_retries": 1, "router_threshold": 1.0}
        if server is not None:
            values.update(llm_base_url=server.base_url, llm_model="scripted-model")
        assistant = Assistant(
            Settings(home=tmp_path / "home", **{**values, **settings}), catalog=Catalog(cards or BASIC)
        )
        made.append(assistant)
        return assistant

    yield build
    for assistant in made:
        assistant.close()


def messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["messages"])


def last_user(body: dict[str, Any]) -> str:
    return str(next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user"))


def outputs_text(result: Result) -> dict[int, str]:
    return {tid: ports["text"].as_text() for tid, ports in result.outputs.items() if "text" in ports}


def assert_stored(assistant: Assistant, result: Result) -> None:
    stored = assistant.store.run(result.run.id)
    assert stored is not None
    assert (stored.status, stored.answer, stored.error, stored.notices, stored.usage) == (
        result.run.status,
        result.run.answer,
        result.run.error,
        result.run.notices,
        result.run.usage,
    )


# planning: the happy path


async def test_the_llm_plans_the_run_and_streams_the_answer(server: ScriptedLLM, make: Any) -> None:
    server.add(GOOD_PLAN, "The text is positive; summary: positive.")
    assistant = make(server)
    pieces: list[str] = []
    result = await assistant.run(REQUEST, on_answer=pieces.append)
    run = result.run

    assert run.status == "succeeded" and run.planner == "llm"
    assert [(t.task, t.model, t.status) for t in run.tasks] == [
        ("text-classification", "test/sentiment", "succeeded"),
        ("summarization", "test/first-words", "succeeded"),
    ]
    assert outputs_text(result) == {
        0: "positive (test/sentiment)",
        1: "summary: positive (test/sentiment) (test/first-words)",
    }
    assert run.answer == "The text is positive; summary: positive." == "".join(pieces)
    assert server.calls == 2

    plan_request, answer_request = server.requests
    system = messages(plan_request)[0]["content"]
    lines = {line.split("(")[0]: line for line in system.splitlines() if "(" in line}
    assert lines["summarization"].startswith("summarization(text: text) -> text: ")
    assert lines["text-classification"].startswith("text-classification(text: text) -> text, json: ")
    assert lines["text-classification"].endswith(" [runs here]")
    assert lines["text-to-speech"].startswith("text-to-speech(text: text) -> audio: ")
    assert not lines["text-to-speech"].endswith("[runs here]")  # no expert for it in this catalogue
    assert last_user(plan_request).endswith(f"Files: {{}}\n{REQUEST}")
    assert plan_request["response_format"]["type"] == "json_schema"
    assert "stream" not in plan_request
    assert answer_request["stream"] is True
    results = last_user(answer_request)
    assert f"Request: {REQUEST}" in results
    assert (
        "task 0 text-classification (model test/sentiment): succeeded; text (text): positive (test/sentiment)"
        in results
    )
    assert_stored(assistant, result)


async def test_the_plan_prompt_shows_the_sessions_files_and_history(
    server: ScriptedLLM, make: Any, picture: Path
) -> None:
    first_plan = plan_text(task(0, "text-to-image", {"text": "a red boat"}))
    server.add(first_plan, "I painted a red boat.")
    assistant = make(server)
    first = await assistant.run("paint a red boat", [picture], session="harbour")
    painted = next(iter(first.artifacts()))

    server.add(plan_text(task(0, "image-to-text", {"image": painted})), "It shows a 16x8 picture.")
    second = await assistant.run("describe the boat you painted", session="harbour")

    assert second.run.status == "succeeded"
    assert outputs_text(second) == {0: "a 16x8 picture"}
    plan_request = server.requests[2]
    system = messages(plan_request)[0]["content"]
    assert f"{painted}: image" in system and "sign.png: image" in system
    user = last_user(plan_request)
    assert user.startswith("Earlier in this conversation:\nuser: paint a red boat\nbaton: I painted a red boat.")
    assert user.endswith("describe the boat you painted")


# planning: tolerant reading of what real models write


TYPO_PLAN = {"tasks": [CLASSIFY, {**SUMMARIZE, "args": {"text": "<GENERATED-0>"}}]}
REPLIES = {
    "fenced": f"```json\n{GOOD_PLAN}\n```",
    "prose before": f"Sure! Here's the plan (two steps):\n\n{GOOD_PLAN}",
    "prose after": f"```json\n{GOOD_PLAN}\n```\nThe first task classifies the text; the second summarizes it.",
    "brackets in the prose": f"I will use two tools [text-classification, summarization]:\n```json\n{GOOD_PLAN}\n```",
    "braces in the prose": f"The plan (as {{tasks}}) is:\n{GOOD_PLAN}",
    "trailing commas": GOOD_PLAN.replace("[0]", "[0,]").replace("]}", ",]}"),
    "single quotes": GOOD_PLAN.replace('"', "'"),
    "missing outer bracket": json.dumps(CLASSIFY) + ", " + json.dumps(SUMMARIZE),
    "unclosed": GOOD_PLAN[:-2],
    "hugginggpt list": json.dumps([{**CLASSIFY, "dep": [-1]}, SUMMARIZE]),
    "<GENERATED-0>": json.dumps(TYPO_PLAN),
    "<generated>-0": json.dumps(TYPO_PLAN).replace("<GENERATED-0>", "<generated>-0"),
    "GENERATED-0": json.dumps(TYPO_PLAN).replace("<GENERATED-0>", "GENERATED-0"),
    "<GENERATED>_0": json.dumps(TYPO_PLAN).replace("<GENERATED-0>", "<GENERATED>_0"),
    "<node-0>": json.dumps(TYPO_PLAN).replace("<GENERATED-0>", "<node-0>"),
}


@pytest.mark.parametrize("reply", REPLIES.values(), ids=REPLIES.keys())
async def test_a_slightly_malformed_plan_is_read_without_asking_again(
    server: ScriptedLLM, make: Any, reply: str
) -> None:
    server.add(reply, "Positive.")
    result = await make(server).run(REQUEST)

    assert result.run.status == "succeeded", result.run
    assert [t.task for t in result.run.tasks] == ["text-classification", "summarization"]
    # the summary was made from the classifier's output: the reference was understood
    assert outputs_text(result)[1] == "summary: positive (test/sentiment) (test/first-words)"
    assert server.calls == 2  # one plan call, one answer call: no re-ask


async def test_a_reference_to_an_unknown_file_is_asked_again_with_the_exact_problem(
    server: ScriptedLLM, make: Any, picture: Path
) -> None:
    wrong = plan_text(task(0, "image-to-text", {"image": "photo.jpg"}))
    server.add(wrong, plan_text(task(0, "image-to-text", {"image": "sign.png"})), "It is a 32x24 picture.")
    result = await make(server).run("what is in my picture?", [picture])

    assert result.run.status == "succeeded"
    assert outputs_text(result) == {0: "a 32x24 picture"}
    assert server.calls == 3
    retry = messages(server.requests[1])
    assert retry[: len(messages(server.requests[0]))] == messages(server.requests[0])
    assert retry[-2] == {"role": "assistant", "content": wrong}
    problem = "task 0 (image-to-text), argument 'image': the file 'photo.jpg' is not known to this session; attach it with -i photo.jpg"
    assert f"That plan cannot run. Problems:\n- {problem}\n" in retry[-1]["content"]
    assert result.run.usage["plan"]["calls"] == 2


async def test_a_cyclic_plan_is_fixed_on_the_re_ask(server: ScriptedLLM, make: Any) -> None:
    cyclic = plan_text(
        task(0, "text-classification", {"text": "<GENERATED>-1"}, [1]),
        task(1, "summarization", {"text": "<GENERATED>-0"}, [0]),
    )
    server.add(cyclic, GOOD_PLAN, "Positive.")
    result = await make(server).run(REQUEST)

    assert result.run.status == "succeeded"
    assert server.calls == 3
    assert "- tasks 0 -> 1 -> 0 depend on each other in a cycle; remove one of these dependencies" in last_user(
        server.requests[1]
    )


PROSE = "I'm sorry, but as a language model I cannot look at pictures. Could you describe it?"


@pytest.mark.parametrize(
    ("first", "second", "problem"),
    [
        (
            plan_text(task(0, "image-to-text", {"image": "photo.jpg"})),
            plan_text(task(0, "image-to-text", {"image": "holiday.png"})),
            "task 0 (image-to-text), argument 'image': the file 'holiday.png' is not known to this session; "
            "attach it with -i holiday.png",
        ),
        (PROSE, PROSE, 'the reply held no JSON plan; reply with {"tasks": [...]} only'),
        (
            GOOD_PLAN,
            plan_text(task(0, "summarise-poem", {"text": "roses"})),
            "task 0: unknown task 'summarise-poem'",
        ),
    ],
    ids=["unknown file twice", "prose twice", "unknown task"],
)
async def test_a_plan_still_invalid_after_the_re_ask_is_a_recorded_failure(
    server: ScriptedLLM, make: Any, first: str, second: str, problem: str
) -> None:
    if first == GOOD_PLAN:  # a valid plan cannot be re-asked: start from an invalid one
        first = PROSE
    server.add(first, second)
    assistant = make(server)
    result = await assistant.run("describe holiday.png")
    run = result.run

    assert run.status == "failed"
    assert run.tasks == [] and run.plan.tasks == []
    assert run.error is not None and run.error.startswith("planning failed: the LLM's plan could not run")
    assert problem in run.error
    assert run.answer.startswith("I could not plan this request: ") and problem in run.answer
    assert server.calls == 2  # plan and re-ask; no answer call for a request that was not planned
    assert run.usage["plan"]["calls"] == 2
    assert_stored(assistant, result)
    assert [r.id for r in assistant.store.runs()] == [run.id]


async def test_prose_without_json_is_asked_again_for_the_plan(server: ScriptedLLM, make: Any) -> None:
    server.add(PROSE, GOOD_PLAN, "Positive.")
    result = await make(server).run(REQUEST)
    assert result.run.status == "succeeded"
    assert 'the reply held no JSON plan; reply with {"tasks": [...]} only' in last_user(server.requests[1])
    assert server.calls == 3


async def test_an_empty_plan_is_answered_directly_by_the_llm(server: ScriptedLLM, make: Any) -> None:
    server.add('{"tasks": []}', "Hello! I am baton; I run expert models on your files.")
    pieces: list[str] = []
    result = await make(server).run("hello! who are you?", on_answer=pieces.append)

    assert result.run.status == "succeeded" and result.run.tasks == []
    assert result.run.answer == "Hello! I am baton; I run expert models on your files." == "".join(pieces)
    assert server.calls == 2
    assert last_user(server.requests[1]).endswith("Results:\n(no task was run)")


# planning: the server misbehaves


@pytest.mark.parametrize(("status", "error"), [(429, "Rate limit reached for gpt-4o"), (502, "Bad gateway")])
async def test_a_429_or_5xx_while_planning_is_retried(server: ScriptedLLM, make: Any, status: int, error: str) -> None:
    server.add(Script(status=status, error=error), GOOD_PLAN, "Positive.")
    started = time.monotonic()
    result = await make(server).run(REQUEST)
    assert time.monotonic() - started < 5
    assert result.run.status == "succeeded"
    assert server.calls == 3
    assert result.run.usage["plan"]["calls"] == 1  # the SDK's retry is one call for baton


OVERFLOW = "This model's maximum context length is 4096 tokens. However, your messages resulted in 5120 tokens."


@pytest.mark.parametrize(
    ("script", "fragments"),
    [
        (Script(status=401, error="Incorrect API key provided"), ["refused the API key", "check OPENAI_API_KEY"]),
        (Script(status=404, error="model not found"), ["does not know model 'scripted-model'", "BATON_LLM_MODEL"]),
        (Script(status=400, error=OVERFLOW), ["the request is too long", "maximum context length is 4096"]),
        (None, ["cannot reach the LLM server", "check OPENAI_BASE_URL"]),
    ],
    ids=["401", "404", "context overflow", "unreachable"],
)
async def test_an_llm_error_while_planning_is_a_recorded_failed_run(
    server: ScriptedLLM, make: Any, picture: Path, script: Script | None, fragments: list[str]
) -> None:
    if script is None:
        url = server.base_url
        server.stop()
        assistant = make(None, llm_base_url=url, llm_model="scripted-model", llm_max_retries=0)
    else:
        server.add(script)
        assistant = make(server)
    result = await assistant.run("what is in my picture?", [picture], session="trip")
    run = result.run

    assert run.status == "failed" and run.tasks == []
    for fragment in fragments:
        assert fragment in (run.error or "") and fragment in run.answer
    assert run.answer.startswith("I could not plan this request: ")
    assert_stored(assistant, result)
    session = assistant.store.find_session("trip")
    assert session is not None and "sign.png" in assistant.store.files_of(session.id)  # the input is kept


async def test_each_run_reports_its_own_llm_notices_once(make: Any) -> None:
    with ScriptedLLM(['{"tasks": []}', "Hi!"] * 2, models=("local-llama",), json_schema=False) as server:
        assistant = make(server, llm_model=None)
        first = await assistant.run("hello", session="s")
        second = await assistant.run("hello again", session="s")
    assert first.run.notices == [
        "BATON_LLM_MODEL is not set; using the server's first model, local-llama",
        "the LLM server does not take that response_format; using JSON mode 'json_object'",
    ]
    assert second.run.notices == []  # the client remembered both; the second run did not repeat them
    assert [(body.get("response_format") or {}).get("type") for body in server.requests] == [
        "json_schema",
        "json_object",
        None,
        "json_object",
        None,
    ]


async def test_a_configuration_notice_reaches_every_run(make: Any, server: ScriptedLLM) -> None:
    server.add(GOOD_PLAN, "Positive.", GOOD_PLAN, "Positive.")
    old_name = "OPENAI_API_BASE is the old name; set OPENAI_BASE_URL instead"
    assistant = make(server, notices=(old_name,))
    first = await assistant.run(REQUEST)
    second = await assistant.run(REQUEST)
    assert first.run.notices == [old_name] and second.run.notices == [old_name]


# answers


async def test_a_stream_cut_during_the_answer_is_asked_again(server: ScriptedLLM, make: Any) -> None:
    answer = "The text is positive, and its summary says so too."
    server.add(GOOD_PLAN, Script(answer, cut_after=4), answer)
    pieces: list[str] = []
    result = await make(server).run(REQUEST, on_answer=pieces.append)
    run = result.run

    assert run.status == "succeeded"
    assert run.answer == answer
    assert "the LLM's streamed answer was cut off; asked again" in run.notices
    streamed = "".join(pieces)
    assert streamed.endswith("\n[the answer was cut off; asking again]\n" + answer)
    assert server.calls == 3 and run.usage["answer"]["calls"] == 2


async def test_an_answer_cut_twice_falls_back_to_the_template_answer(server: ScriptedLLM, make: Any) -> None:
    server.add(GOOD_PLAN, Script("The text is", cut_after=2), Script("The text is", cut_after=2))
    result = await make(server).run(REQUEST, on_answer=lambda _: None)
    run = result.run
    assert run.status == "succeeded"
    assert run.answer.startswith("2 of 2 tasks succeeded.")
    assert any("could not write the answer (the LLM's answer was cut off twice)" in n for n in run.notices)


def answer_with(text: str) -> Any:
    """An answer producer: the plan first, then ``text`` with {file} replaced by the produced file's name."""
    plan = plan_text(task(0, "text-to-image", {"text": "a red boat at dawn"}))

    def produce(body: dict[str, Any]) -> str:
        if "response_format" in body:
            return plan
        produced = re.findall(r"image/[0-9a-f]{8}\.png", last_user(body))
        return text.replace("{file}", produced[0] if produced else "?")

    return produce


@pytest.mark.parametrize(
    ("scripted", "expected_end", "notice"),
    [
        ("I painted a red boat: {file}.", "I painted a red boat: {file}.", None),
        ("I painted a red boat for you.", "I painted a red boat for you.\n\nFiles produced: {file}", None),
        (
            "I painted a red boat: image/deadbeef.png.",
            "image/deadbeef.png.\n\nFiles produced: {file}",
            "the answer names files this run did not produce: image/deadbeef.png",
        ),
    ],
    ids=["named", "omitted", "invented"],
)
async def test_the_answer_names_produced_files_exactly(
    make: Any, scripted: str, expected_end: str, notice: str | None
) -> None:
    with ScriptedLLM(answer_with(scripted)) as server:
        result = await make(server, *BASIC).run("paint a red boat at dawn")
    run = result.run
    (name,) = result.artifacts()
    assert re.fullmatch(r"image/[0-9a-f]{8}\.png", name)
    assert run.answer.endswith(expected_end.replace("{file}", name))
    assert run.answer.count(name) == 1
    invented = [n for n in run.notices if "did not produce" in n]
    assert invented == ([notice] if notice else [])
    assert f"text-to-image (model test/painter): succeeded; image (image): {name}" in last_user(server.requests[1])


async def test_a_failed_task_is_reported_as_failed_to_the_llm(server: ScriptedLLM, make: Any) -> None:
    plan = plan_text(
        task(0, "translation", {"text": "good morning", "target": "Klingon"}),
        task(1, "summarization", {"text": "<GENERATED>-0"}, [0]),
        task(2, "text-classification", {"text": "what a lovely day"}),
    )
    server.add(plan, "I could not translate: no Klingon dictionary is installed. The sentiment is positive.")
    result = await make(server).run("translate 'good morning' into Klingon, summarize it, and rate 'what a lovely day'")
    run = result.run

    assert run.status == "failed" and not result.ok
    assert [t.status for t in run.tasks] == ["failed", "skipped", "succeeded"]
    assert run.answer == "I could not translate: no Klingon dictionary is installed. The sentiment is positive."
    shown = last_user(server.requests[1])
    assert (
        "task 0 translation (model test/klingon): failed; produced nothing: no dictionary for Klingon is installed"
        in shown
    )
    assert (
        "task 1 summarization (model test/first-words): skipped; produced nothing: skipped because task 0 failed"
        in shown
    )
    assert "task 2 text-classification (model test/sentiment): succeeded; text (text): positive" in shown
    assert "never claim its result" in messages(server.requests[1])[0]["content"]


async def test_an_answer_the_llm_cannot_write_is_the_template_answer_with_a_notice(
    server: ScriptedLLM, make: Any
) -> None:
    server.add(GOOD_PLAN, Script(status=401, error="key revoked"))
    result = await make(server).run(REQUEST)
    assert result.run.status == "succeeded"
    assert result.run.answer.startswith("2 of 2 tasks succeeded.")
    assert any("could not write the answer" in n and "check OPENAI_API_KEY" in n for n in result.run.notices)


# JSON modes the server does not take


@pytest.mark.parametrize(
    ("json_object", "sent", "modes"),
    [
        (True, ["json_schema", "json_object"], ["json_object"]),
        (False, ["json_schema", "json_object", None], ["json_object", "prompt"]),
    ],
    ids=["json_object", "prompt only"],
)
async def test_json_schema_unsupported_falls_back_with_notices(
    make: Any, json_object: bool, sent: list[str | None], modes: list[str]
) -> None:
    with ScriptedLLM([GOOD_PLAN, "Positive."], json_schema=False, json_object=json_object) as server:
        result = await make(server).run(REQUEST)
    assert result.run.status == "succeeded"
    plan_formats = [(body.get("response_format") or {}).get("type") for body in server.requests[:-1]]
    assert plan_formats == sent
    assert [n for n in result.run.notices if "response_format" in n] == [
        f"the LLM server does not take that response_format; using JSON mode '{mode}'" for mode in modes
    ]


# choosing experts


SELECT_PLAN = plan_text(
    CLASSIFY,
    task(1, "summarization", {"text": "<GENERATED>-0"}, [0]),
    task(2, "summarization", {"text": "the boats sleep in the harbour"}),
    task(3, "text-to-image", {"text": "a harbour"}),
)


async def test_select_llm_chooses_for_every_task_in_one_call(server: ScriptedLLM, make: Any) -> None:
    choices = {
        "choices": [
            {"id": 0, "model": "test/sentiment-large", "reason": "bigger"},
            {"id": 1, "model": "test/first-words-xl", "reason": "longest context"},
            {"id": 2, "model": "test/first-words-large", "reason": "good enough"},
        ]
    }
    server.add(SELECT_PLAN, json.dumps(choices), "Done.")
    result = await make(server, *CHOICES).run(REQUEST, select_mode="llm")
    run = result.run

    assert run.status == "succeeded"
    assert [t.model for t in run.tasks] == [
        "test/sentiment-large",
        "test/first-words-xl",
        "test/first-words-large",
        "test/painter",
    ]
    assert outputs_text(result)[1].endswith("(test/first-words-xl)")  # the chosen model ran
    assert server.calls == 3  # plan, ONE choice for all tasks, answer
    assert run.usage["select"]["calls"] == 1
    prompt = last_user(server.requests[1])
    assert "task 0 (text-classification):\n  - test/sentiment: sentiment for text-classification\n" in prompt
    assert "task 1 (summarization):\n  - test/first-words: " in prompt and "  - test/first-words-xl: " in prompt
    assert "task 2 (summarization):" in prompt
    assert "task 3" not in prompt and "test/painter" not in prompt  # one candidate: nothing to choose
    assert server.requests[1]["response_format"]["type"] == "json_schema"
    assert run.notices == []


async def test_select_llm_falls_back_to_the_ranked_choice_when_the_llm_picks_badly(
    server: ScriptedLLM, make: Any
) -> None:
    choices = {"choices": [{"id": 0, "model": "test/sentiment-large"}, {"id": 1, "model": "openai/gpt-4-summarizer"}]}
    server.add(SELECT_PLAN, json.dumps(choices), "Done.")
    result = await make(server, *CHOICES).run(REQUEST, select_mode="llm")
    run = result.run

    assert run.status == "succeeded"
    assert [t.model for t in run.tasks] == [
        "test/sentiment-large",
        "test/first-words",
        "test/first-words",
        "test/painter",
    ]
    assert run.notices == [
        "the LLM chose no valid model for task 1 (candidates: test/first-words, test/first-words-large, "
        "test/first-words-xl); using the ranked choice test/first-words",
        "the LLM chose no valid model for task 2 (candidates: test/first-words, test/first-words-large, "
        "test/first-words-xl); using the ranked choice test/first-words",
    ]


async def test_select_llm_makes_no_call_when_nothing_is_to_choose(server: ScriptedLLM, make: Any) -> None:
    server.add(GOOD_PLAN, "Positive.")
    result = await make(server).run(REQUEST, select_mode="llm")
    assert result.run.status == "succeeded"
    assert server.calls == 2 and "select" not in result.run.usage


async def test_plan_select_plans_and_chooses_in_one_call(server: ScriptedLLM, make: Any) -> None:
    plan = plan_text(
        {**CLASSIFY, "model": "test/sentiment-large"},
        {**SUMMARIZE, "model": "test/first-words-xl"},
        task(2, "summarization", {"text": "the boats sleep"}, model="no/such-model"),
    )
    server.add(plan, "Positive.")
    result = await make(server, *CHOICES).run(REQUEST, plan_select=True)
    run = result.run

    assert run.status == "succeeded"
    assert [t.model for t in run.tasks] == ["test/sentiment-large", "test/first-words-xl", "test/first-words"]
    assert server.calls == 2 and set(run.usage) == {"plan", "answer"}
    system = messages(server.requests[0])[0]["content"]
    assert 'add "model": <model id>' in system
    assert "summarization: test/first-words (first-words for summarization); " in system
    assert "test/first-words-xl (first-words-xl for summarization)" in system
    assert run.notices == [
        "the plan chose 'no/such-model' for task 2, which cannot run summarization here; using test/first-words"
    ]


async def test_select_llm_and_plan_select_need_an_llm(make: Any) -> None:
    from baton.media import BadInput

    assistant = make(None)
    with pytest.raises(BadInput, match="--select llm needs an LLM, and none is configured: set BATON_LLM_MODEL"):
        await assistant.run(REQUEST, select_mode="llm")
    with pytest.raises(BadInput, match="--plan-select needs an LLM"):
        await assistant.run(REQUEST, plan_select=True)


# counting


async def test_token_usage_is_recorded_per_stage(server: ScriptedLLM, make: Any) -> None:
    server.add(
        Script(PROSE, prompt_tokens=900, completion_tokens=30),
        Script(SELECT_PLAN, prompt_tokens=1000, completion_tokens=120),
        Script('{"choices": []}', prompt_tokens=300, completion_tokens=5),
        Script("Done.", prompt_tokens=400, completion_tokens=60),
    )
    assistant = make(server, *CHOICES)
    result = await assistant.run(REQUEST, select_mode="llm")
    expected = {
        "plan": {"calls": 2, "prompt_tokens": 1900, "completion_tokens": 150},
        "select": {"calls": 1, "prompt_tokens": 300, "completion_tokens": 5},
        "answer": {"calls": 1, "prompt_tokens": 400, "completion_tokens": 60},
    }
    assert result.run.usage == expected
    stored = assistant.store.run(result.run.id)
    assert stored is not None and stored.usage == expected


# text experts served by the LLM


def llm_tasks_server(task_replies: dict[str, str]) -> Any:
    """A producer: the plan for planning calls, the matching reply for each text task, an answer last."""
    plan = plan_text(
        task(0, "summarization", {"text": "The harbour was quiet at dawn. Boats slept. Gulls circled."}),
        task(1, "translation", {"text": "<GENERATED>-0", "target": "French"}, [0]),
        task(2, "question-answering", {"question": "What circled?", "context": "Gulls circled the boats."}),
    )

    def produce(body: dict[str, Any]) -> str:
        first = messages(body)[0]["content"]
        if first.startswith("You are the planner"):
            return plan
        if first.startswith("You are baton"):
            return "Here is the summary, its French translation and the answer."
        return next(reply for instruction, reply in task_replies.items() if instruction in first)

    return produce


async def test_llm_text_experts_run_through_the_configured_llm(make: Any) -> None:
    replies = {
        "Summarize the text below": "A quiet harbour at dawn.",
        "Translate the text below into French": "Un port calme à l'aube.",
        "Answer the question using only the context": "Gulls.",
    }
    with ScriptedLLM(llm_tasks_server(replies)) as server:
        result = await make(server, *LLM_EXPERTS).run("summarize, translate to French, and answer")
    run = result.run

    assert run.status == "succeeded", run
    assert [t.model for t in run.tasks] == ["llm/summarization", "llm/translation", "llm/question-answering"]
    assert outputs_text(result) == {0: "A quiet harbour at dawn.", 1: "Un port calme à l'aube.", 2: "Gulls."}
    assert run.usage["task"]["calls"] == 3 and run.usage["plan"]["calls"] == 1 and run.usage["answer"]["calls"] == 1
    prompts = {last_user(body).rstrip() for body in server.requests[1:-1]}
    assert any(p.endswith("Text:\nThe harbour was quiet at dawn. Boats slept. Gulls circled.") for p in prompts)
    assert any("into French" in p and p.endswith("Text:\nA quiet harbour at dawn.") for p in prompts)
    assert any("Question: What circled?" in p and p.endswith("Text:\nGulls circled the boats.") for p in prompts)


async def test_an_empty_reply_from_an_llm_text_expert_fails_that_task(make: Any) -> None:
    replies = {
        "Summarize the text below": "   ",
        "Translate the text below into French": "never asked",
        "Answer the question using only the context": "Gulls.",
    }
    with ScriptedLLM(llm_tasks_server(replies)) as server:
        result = await make(server, *LLM_EXPERTS).run("summarize, translate to French, and answer")
    run = result.run
    assert [t.status for t in run.tasks] == ["failed", "skipped", "succeeded"]
    assert run.task(0).error == "the LLM returned an empty summarization result"
    assert not any("into French" in last_user(body) for body in server.requests)


def test_llm_text_experts_are_runnable_only_with_an_llm(tmp_path: Path) -> None:
    cards = {c.id: c for c in LLM_EXPERTS}
    expected = {
        "summarization",
        "translation",
        "conversational",
        "text-generation",
        "text2text-generation",
        "question-answering",
        "grammar-check",
        "text-simplifier",
        "text-expander",
        "paraphrase",
        "keyword-extraction",
        "topic-generator",
        "article-spinner",
    }
    assert {c.task for c in cards.values()} == expected
    without = Settings(home=tmp_path)
    with_llm = Settings(home=tmp_path, llm_base_url="http://127.0.0.1:8000/v1")
    for model in cards.values():
        assert model.id == f"llm/{model.task}" and model.backend == "llm"
        assert any("no LLM is configured: set BATON_LLM_MODEL" in m for m in model.missing(without))
        assert model.missing(with_llm) == []
