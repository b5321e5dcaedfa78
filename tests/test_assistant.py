"""The Assistant end to end with test experts: failures, missing models, run records, bad requests, cancellation."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from baton.assistant import Assistant
from baton.catalog import Catalog, ModelCard
from baton.config import Settings
from baton.execute import Event
from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import BadInput, Resource
from baton.plan import Plan, PlanError, Task
from baton.runs import Run, TaskRecord
from baton.store import Store


class Classifier(Expert):
    """Labels a text; refuses texts without letters."""

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        text = inputs["text"].as_text()
        if not any(ch.isalpha() for ch in text):
            raise ExpertError(f"cannot classify {text!r}: it has no words")
        label = "negative" if "bad" in text else "positive"
        return {"text": Resource.text(label), "json": Resource.json_value({"label": label, "score": 0.9})}


class Summarizer(Expert):
    """Keeps the first three words, and remembers what it was given."""

    seen: ClassVar[list[str]] = []

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        text = inputs["text"].as_text()
        Summarizer.seen.append(text)
        return {"text": Resource.text("summary: " + " ".join(text.split()[:3]))}


class SlowSummarizer(Expert):
    """Blocks until the test releases it."""

    started = threading.Event()
    release = threading.Event()

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        SlowSummarizer.started.set()
        SlowSummarizer.release.wait(10)
        return {"text": Resource.text("late summary")}


class Broken(Expert):
    """Returns plain strings instead of Resources (a plugin bug)."""

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Any]:
        return {"text": "not a resource"}


class ImageSize(Expert):
    """Reads its image file and saves a thumbnail, to check that files reach experts and come back."""

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        with Image.open(inputs["image"].path) as image:
            width, height = image.size
        return {"text": Resource.text(f"{width}x{height} from {inputs['image'].artifact.label}")}  # type: ignore[union-attr]


def card(model_id: str, task: str, expert: type[Expert], **extra: Any) -> ModelCard:
    return ModelCard(
        id=model_id,
        task=task,
        backend="builtin",
        description=f"test expert for {task}",
        factory=f"{__name__}:{expert.__name__}",
        **extra,
    )


CLASSIFIER = card("test/classifier", "text-classification", Classifier)
SUMMARIZER = card("test/summarizer", "summarization", Summarizer)
SLOW = card("test/slow-summarizer", "summarization", SlowSummarizer)


@pytest.fixture(autouse=True)
def _reset_experts() -> Iterator[None]:
    Summarizer.seen = []
    SlowSummarizer.started.clear()
    SlowSummarizer.release.clear()
    yield
    SlowSummarizer.release.set()  # never leave a worker thread blocked


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, cpu_slots=2, task_timeout=30)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = Store(settings.home)
    yield opened
    opened.close()


def make_assistant(settings: Settings, store: Store, *cards: ModelCard) -> Assistant:
    return Assistant(settings, store=store, catalog=Catalog(cards or (CLASSIFIER, SUMMARIZER)))


def classify_then_summarize(text: str) -> Plan:
    return Plan(
        tasks=[
            Task(id=0, task="text-classification", args={"text": text}),
            Task(id=1, task="summarization", args={"text": "<GENERATED>-0"}, dep=[0]),
            Task(id=2, task="summarization", args={"text": "The harbour was quiet at dawn, boats asleep."}),
        ]
    )


def assert_stored_as_returned(store: Store, run: Run) -> None:
    stored = store.run(run.id)
    assert stored is not None
    assert stored == run
    assert [(t.id, t.status, t.model, t.outputs, t.error) for t in stored.tasks] == [
        (t.id, t.status, t.model, t.outputs, t.error) for t in run.tasks
    ]
    assert stored.answer == run.answer and stored.status == run.status


async def test_a_successful_run_passes_outputs_downstream_and_is_stored(settings: Settings, store: Store) -> None:
    assistant = make_assistant(settings, store)
    result = await assistant.run("classify and summarize", plan=classify_then_summarize("a fine day"))
    run = result.run

    assert run.status == "succeeded" and result.ok
    assert run.planner == "given"
    assert [t.model for t in run.tasks] == ["test/classifier", "test/summarizer", "test/summarizer"]
    assert run.task(0).outputs == {
        "text": {"kind": "text", "value": "positive"},
        "json": {"kind": "json", "value": {"label": "positive", "score": 0.9}},
    }
    assert "positive" in Summarizer.seen  # task 1 was given task 0's text output
    assert run.task(1).outputs == {"text": {"kind": "text", "value": "summary: positive"}}
    assert result.outputs[2]["text"].value == "summary: The harbour was"
    assert run.answer.startswith("3 of 3 tasks succeeded.")
    assert '"summary: positive"' in run.answer
    assert all(t.started is not None and t.seconds is not None for t in run.tasks)
    assert run.finished is not None and run.finished >= run.created
    assert_stored_as_returned(store, run)


async def test_a_failed_task_skips_its_dependants_and_the_answer_says_so(settings: Settings, store: Store) -> None:
    assistant = make_assistant(settings, store)
    events: list[tuple[int, str]] = []
    result = await assistant.run(
        "classify and summarize",
        plan=classify_then_summarize("#### 1234"),
        on_event=lambda run, event: events.append((event.task_id, event.status)),
    )
    run = result.run

    assert run.status == "failed" and not result.ok
    assert run.task(0).status == "failed"
    assert run.task(0).error == "cannot classify '#### 1234': it has no words"
    assert run.task(0).outputs == {}
    assert run.task(1).status == "skipped"
    assert "task 0 failed" in (run.task(1).error or "")
    assert "it has no words" in (run.task(1).error or "")
    assert run.task(2).status == "succeeded"  # the unrelated task still ran
    assert Summarizer.seen == ["The harbour was quiet at dawn, boats asleep."]
    assert set(result.outputs) == {2}

    answer = run.answer
    assert answer.startswith("1 of 3 tasks succeeded.")
    assert "failed: cannot classify '#### 1234': it has no words" in answer
    assert "[1] summarization (test/summarizer): skipped: skipped because task 0 failed" in answer
    assert "positive" not in answer and "negative" not in answer  # no result claimed for the failed task
    assert "3 of 3" not in answer

    assert (0, "failed") in events and (1, "skipped") in events and (2, "succeeded") in events
    assert_stored_as_returned(store, run)


async def test_a_task_without_a_model_fails_and_says_how_to_get_one(settings: Settings, store: Store) -> None:
    assistant = make_assistant(settings, store)
    plan = Plan(
        tasks=[
            Task(id=0, task="translation", args={"text": "Bonjour"}),
            Task(id=1, task="summarization", args={"text": "<GENERATED>-0"}, dep=[0]),
        ]
    )
    result = await assistant.run("translate and summarize", plan=plan)
    run = result.run

    assert run.status == "failed"
    assert run.task(0).model is None
    assert run.task(0).status == "failed"
    error = run.task(0).error or ""
    assert "no model for translation" in error
    assert "install a plugin" in error and "baton models" in error
    assert run.task(1).status == "skipped"
    assert Summarizer.seen == []
    assert error in run.answer
    assert_stored_as_returned(store, run)


async def test_a_model_that_cannot_run_here_names_the_install_command(settings: Settings, store: Store) -> None:
    needy = card(
        "test/needy-translator",
        "translation",
        Summarizer,
        python=("baton_test_module_that_is_not_installed",),
        extra="hf",
    )
    assistant = make_assistant(settings, store, CLASSIFIER, SUMMARIZER, needy)
    result = await assistant.run("translate", plan=Plan(tasks=[Task(id=0, task="translation", args={"text": "Hallo"})]))
    error = result.run.task(0).error or ""
    assert result.run.task(0).status == "failed"
    assert "test/needy-translator" in error
    assert "pip install 'baton[hf]'" in error
    assert Summarizer.seen == []  # the unrunnable model was never used


async def test_an_expert_returning_wrong_types_fails_only_its_task(settings: Settings, store: Store) -> None:
    broken = card("test/broken-classifier", "text-classification", Broken)
    assistant = make_assistant(settings, store, broken, SUMMARIZER)
    result = await asyncio.wait_for(assistant.run("go", plan=classify_then_summarize("words here")), 10)
    run = result.run
    assert run.status == "failed"
    assert run.task(0).status == "failed"
    assert "test/broken-classifier" in (run.task(0).error or "")
    assert run.task(1).status == "skipped"
    assert run.task(2).status == "succeeded"
    assert_stored_as_returned(store, run)


async def test_an_input_file_reaches_the_expert_by_its_own_name(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    photo = tmp_path / "holiday.png"
    Image.new("RGB", (40, 30), (10, 120, 200)).save(photo)
    assistant = make_assistant(settings, store, card("test/size", "image-to-text", ImageSize))
    plan = Plan(tasks=[Task(id=0, task="image-to-text", args={"image": "holiday.png"})])
    result = await assistant.run("how big is it", [photo], plan=plan, session="trip")
    assert result.run.status == "succeeded"
    assert result.outputs[0]["text"].value == "40x30 from holiday.png"
    known = store.files_of(result.run.session_id)
    assert known["holiday.png"].path.read_bytes() == photo.read_bytes()
    assert store.session("trip").id == result.run.session_id


async def test_runs_in_a_named_session_share_it(settings: Settings, store: Store) -> None:
    assistant = make_assistant(settings, store)
    plan = Plan(tasks=[Task(id=0, task="summarization", args={"text": "one two three four"})])
    first = await assistant.run("summarize", plan=plan, session="notes")
    second = await assistant.run("summarize", plan=plan, session="notes")
    assert first.run.session_id == second.run.session_id
    assert first.run.id != second.run.id
    assert {s.name: s.runs for s in store.sessions()} == {"notes": 2}


@pytest.mark.parametrize("request_text", ["", "   \n\t "])
async def test_an_empty_request_without_a_plan_is_refused(settings: Settings, store: Store, request_text: str) -> None:
    assistant = make_assistant(settings, store)
    with pytest.raises(BadInput, match="the request is empty"):
        await assistant.run(request_text)
    assert store.runs() == []
    assert store.sessions() == []


async def test_an_empty_request_with_a_plan_runs_it(settings: Settings, store: Store) -> None:
    assistant = make_assistant(settings, store)
    plan = Plan(tasks=[Task(id=0, task="summarization", args={"text": "alpha beta gamma delta"})])
    result = await assistant.run("", plan=plan)
    assert result.run.status == "succeeded"
    assert result.outputs[0]["text"].value == "summary: alpha beta gamma"


async def test_a_slow_task_times_out(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, cpu_slots=2, task_timeout=0.2)
    store = Store(tmp_path)
    try:
        assistant = make_assistant(settings, store, CLASSIFIER, SLOW)
        plan = Plan(tasks=[Task(id=0, task="summarization", args={"text": "a long text"})])
        result = await asyncio.wait_for(assistant.run("summarize", plan=plan), 10)
        task = result.run.task(0)
        assert result.run.status == "failed"
        assert task.status == "failed"
        assert "timed out after 0.2 s" in (task.error or "")
        assert_stored_as_returned(store, result.run)
    finally:
        SlowSummarizer.release.set()
        store.close()


async def test_cancelling_a_run_stores_it_as_interrupted(settings: Settings, store: Store) -> None:
    assistant = make_assistant(settings, store, CLASSIFIER, SLOW)
    plan = Plan(
        tasks=[
            Task(id=0, task="summarization", args={"text": "a very long book"}),  # slow
            Task(id=1, task="text-classification", args={"text": "<GENERATED>-0"}, dep=[0]),  # waits for 0
            Task(id=2, task="text-classification", args={"text": "a good day"}),  # quick and independent
        ]
    )
    started: list[Run] = []
    finished = asyncio.Event()

    def on_event(run: Run, event: Event) -> None:
        if event.task_id == 2 and event.status == "succeeded":
            finished.set()

    runner = asyncio.create_task(
        assistant.run("summarize then classify", plan=plan, on_start=started.append, on_event=on_event)
    )
    assert await asyncio.to_thread(SlowSummarizer.started.wait, 10)
    await asyncio.wait_for(finished.wait(), 10)
    assert store.run(started[0].id).status == "running"  # type: ignore[union-attr]

    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    SlowSummarizer.release.set()

    stored = store.run(started[0].id)
    assert stored is not None
    assert stored.status == "interrupted"
    assert stored.error == "cancelled by the user"
    assert stored.finished is not None
    assert [t.status for t in stored.tasks] == ["cancelled", "cancelled", "succeeded"]
    assert stored.task(0).error == "cancelled by the user"
    assert stored.task(2).outputs["text"] == {"kind": "text", "value": "positive"}
    assert "1 of 3 tasks succeeded." in stored.answer
    assert "cancelled" in stored.answer

    reopened = Store(settings.home)  # the next start keeps it as it is
    try:
        again = reopened.run(started[0].id)
        assert again is not None and again.status == "interrupted"
    finally:
        reopened.close()


async def test_a_store_failure_during_a_run_stops_it_and_records_why(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = make_assistant(settings, store)
    save_task = store.save_task

    def failing(run_id: str, task: TaskRecord) -> None:
        if task.status == "succeeded":
            raise sqlite3.OperationalError("disk I/O error")
        save_task(run_id, task)

    monkeypatch.setattr(store, "save_task", failing)
    started: list[Run] = []
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await asyncio.wait_for(
            assistant.run("go", plan=classify_then_summarize("fine words"), on_start=started.append), 10
        )
    stored = store.run(started[0].id)
    assert stored is not None
    assert stored.status == "interrupted"  # not left 'running' while this process lives on
    assert stored.error == "OperationalError: disk I/O error"
    assert stored.task(1).status == "cancelled"
    assert "disk I/O error" in (stored.task(1).error or "")


async def test_a_rejected_plan_leaves_the_store_untouched(settings: Settings, store: Store, tmp_path: Path) -> None:
    photo = tmp_path / "holiday.png"
    Image.new("RGB", (40, 30), (10, 120, 200)).save(photo)
    assistant = make_assistant(settings, store, card("test/size", "image-to-text", ImageSize))
    plan = Plan(tasks=[Task(id=0, task="image-to-text", args={"image": "elsewhere.png"})])
    with pytest.raises(PlanError, match=r"'elsewhere\.png' is not known"):
        await assistant.run("how big is it", [photo], plan=plan, session="trip")
    assert store.sessions() == []
    assert store.runs() == []
    assert not any(store.files.rglob("*.png"))


async def test_the_same_picture_under_two_names_answers_to_both(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (40, 30), (10, 120, 200)).save(first)
    second.write_bytes(first.read_bytes())
    assistant = make_assistant(settings, store, card("test/size", "image-to-text", ImageSize))
    plan = Plan(
        tasks=[
            Task(id=0, task="image-to-text", args={"image": "a.png"}),
            Task(id=1, task="image-to-text", args={"image": "b.png"}),
        ]
    )
    result = await assistant.run("sizes", [first, second], plan=plan)
    assert result.run.status == "succeeded"
    assert result.outputs[0]["text"].value == "40x30 from a.png"
    assert result.outputs[1]["text"].value == "40x30 from b.png"
    known = store.files_of(result.run.session_id)
    assert known["a.png"].sha256 == known["b.png"].sha256


def test_scratch_folders_of_dead_processes_are_removed(settings: Settings, store: Store) -> None:
    scratch = settings.home / "tmp"
    scratch.mkdir(exist_ok=True)
    dead = scratch / "task-99999999-abc"  # above any pid Linux hands out
    alive = scratch / f"task-{os.getpid()}-abc"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "speech.wav").write_bytes(b"RIFF")
    make_assistant(settings, store)
    assert not dead.exists()
    assert (alive / "speech.wav").exists()
