"""The memory-budgeted expert cache: LRU eviction, shared loads, waiting for memory, sizes, events, budgets.

Most tests use small Expert subclasses whose cards set their memory exactly; one runs real tiny
transformers models registered with add_local_model through Assistant.run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from baton.assistant import Assistant
from baton.catalog import Catalog, ModelCard
from baton.config import Settings
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts import cache as cache_module
from baton.experts.cache import ExpertCache, LoadEvent, default_budget, parse_budget
from baton.media import BadInput, Resource
from baton.plan import Plan, Task

MB = 1024**2
GB = 1024**3


class Sized(Expert):
    """Holds exactly its card's memory; counts loads and unloads, and which models are loaded at once."""

    loads: ClassVar[Counter[str]] = Counter()
    unloads: ClassVar[Counter[str]] = Counter()
    resident: ClassVar[set[str]] = set()
    most_resident: ClassVar[int] = 0
    lock = threading.Lock()

    def load(self) -> None:
        delay = float(self.card.options.get("load_seconds", 0))
        if delay:
            time.sleep(delay)
        with Sized.lock:
            Sized.loads[self.card.id] += 1
            Sized.resident.add(self.card.id)
            Sized.most_resident = max(Sized.most_resident, len(Sized.resident))
        self.loaded = True

    def unload(self) -> None:
        with Sized.lock:
            Sized.unloads[self.card.id] += 1
            Sized.resident.discard(self.card.id)
        self.loaded = False

    def measured_bytes(self) -> int:
        return int(self.card.options.get("measured_mb", 0) * MB)

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        assert self.loaded, f"{self.card.id} ran without being loaded"
        time.sleep(float(self.card.options.get("run_seconds", 0)))
        return {"text": Resource.text(f"{self.card.id}: {inputs['text'].as_text()}")}


class Gated(Sized):
    """Runs until the test opens its gate."""

    running = threading.Event()
    gate = threading.Event()

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        Gated.running.set()
        assert Gated.gate.wait(10), "the test never opened the gate"
        return super().run(inputs, options, ctx)


class Failing(Sized):
    def load(self) -> None:
        raise ExpertError("the weights are corrupt")


def card(
    model_id: str, memory_mb: int, expert: type[Expert] = Sized, task: str = "paraphrase", **options: Any
) -> ModelCard:
    return ModelCard(
        id=model_id,
        task=task,
        backend="builtin",
        description=f"a {memory_mb} MB test expert",
        factory=f"{__name__}:{expert.__name__}",
        memory_mb=memory_mb,
        options=options,
    )


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    Sized.loads, Sized.unloads, Sized.resident, Sized.most_resident = Counter(), Counter(), set(), 0
    Gated.running.clear()
    Gated.gate.clear()
    yield
    Gated.gate.set()  # never leave a worker thread blocked


def actions(events: list[LoadEvent]) -> list[tuple[str, str]]:
    return [(event.action, event.model) for event in events]


# budgets


def test_parse_budget_reads_devices_sizes_and_decimals() -> None:
    assert parse_budget("cpu=8GB,cuda:0=20GB") == {"cpu": 8 * GB, "cuda:0": 20 * GB}
    assert parse_budget("512MB") == {"cpu": 512 * MB}
    assert parse_budget("cpu=1.5GB") == {"cpu": int(1.5 * GB)}
    assert parse_budget("0.5g") == {"cpu": GB // 2}
    assert parse_budget(" cpu = 8 gb , cuda=2GiB ") == {"cpu": 8 * GB, "cuda:0": 2 * GB}
    assert parse_budget("cuda:1=512MiB,mps=3GB") == {"cuda:1": 512 * MB, "mps": 3 * GB}
    assert parse_budget("") == {}


@pytest.mark.parametrize(
    "text", ["cpu", "cpu=", "=8GB", "cpu=8XB", "cpu=eight", "gpu=8GB", "cuda0=8GB", "cpu=8", "cpu=0GB", "cpu=-1GB"]
)
def test_parse_budget_rejects_bad_forms_naming_the_form(text: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_budget(text)
    assert "DEVICE=SIZE" in str(caught.value) and "cpu=8GB,cuda:0=20GB" in str(caught.value)
    assert text.strip() in str(caught.value)


def test_the_default_cpu_budget_is_half_the_available_ram(monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        available = next(
            int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines() if "MemAvailable" in line
        )
        assert default_budget("cpu") == pytest.approx(available / 2, rel=0.1)
    monkeypatch.setattr(cache_module, "_available_ram", lambda: 10 * GB)
    assert default_budget("cpu") == 5 * GB
    cache = ExpertCache()
    with cache.lease(card("test/a", 100)):
        pass
    assert cache.budget == {"cpu": 5 * GB}


# eviction


def test_a_third_model_evicts_the_least_recently_used_one() -> None:
    events: list[LoadEvent] = []
    cache = ExpertCache({"cpu": 250 * MB}, on_load=events.append)
    a, b, c = card("test/a", 100), card("test/b", 100), card("test/c", 100)
    with cache.lease(a) as first:
        assert first.loaded and isinstance(first, Sized)
    with cache.lease(b):
        pass
    with cache.lease(a) as again:  # a hit: a is now more recent than b
        assert again is first
    with cache.lease(c):
        pass

    assert sorted(cache.loaded()) == ["test/a", "test/c"]
    assert Sized.loads == {"test/a": 1, "test/b": 1, "test/c": 1}
    assert Sized.unloads == {"test/b": 1}
    assert cache.used("cpu") == 200 * MB
    assert actions(events) == [
        ("loading", "test/a"),
        ("loaded", "test/a"),
        ("loading", "test/b"),
        ("loaded", "test/b"),
        ("unloaded", "test/b"),
        ("loading", "test/c"),
        ("loaded", "test/c"),
    ]
    loaded = [event for event in events if event.action == "loaded"]
    assert all(event.seconds is not None and event.seconds >= 0 for event in loaded)
    assert all(event.bytes == 100 * MB and event.device == "cpu" for event in loaded)
    assert events[0].seconds is None  # "loading" has no duration yet
    assert events[4].bytes == 100 * MB


def test_a_model_in_use_is_not_evicted_even_when_least_recently_used() -> None:
    cache = ExpertCache({"cpu": 250 * MB})
    a, b, c = card("test/a", 100), card("test/b", 100), card("test/c", 100)
    with cache.lease(a) as held:
        with cache.lease(b):
            pass
        with cache.lease(c):  # a is older than b but running: b goes
            pass
        assert held.loaded
        assert sorted(cache.loaded()) == ["test/a", "test/c"]
    assert Sized.unloads == {"test/b": 1}


def test_clear_unloads_idle_experts() -> None:
    events: list[LoadEvent] = []
    cache = ExpertCache({"cpu": GB}, on_load=events.append)
    with cache.lease(card("test/a", 100)):
        pass
    cache.clear()
    assert cache.loaded() == [] and cache.used("cpu") == 0
    assert actions(events)[-1] == ("unloaded", "test/a")


# sharing


def test_concurrent_tasks_on_one_model_load_it_once() -> None:
    events: list[LoadEvent] = []
    cache = ExpertCache({"cpu": GB}, on_load=events.append)
    shared = card("test/slow-load", 100, load_seconds=0.3)
    start = threading.Barrier(8)
    experts: list[Expert] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            start.wait()
            for _ in range(20):
                with cache.lease(shared) as expert:
                    experts.append(expert)
                    assert expert.loaded
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    assert Sized.loads == {"test/slow-load": 1}
    assert len(experts) == 160 and len({id(expert) for expert in experts}) == 1
    assert actions(events) == [("loading", "test/slow-load"), ("loaded", "test/slow-load")]
    assert cache.used("cpu") == 100 * MB


def test_a_failed_load_frees_its_memory_and_is_retried_by_the_next_task() -> None:
    cache = ExpertCache({"cpu": 150 * MB})
    with pytest.raises(ExpertError, match="corrupt"), cache.lease(card("test/broken", 100, Failing)):
        pass
    assert cache.used("cpu") == 0 and cache.loaded() == []
    with cache.lease(card("test/a", 100)):  # the budget is free again
        pass


# too big


def test_a_model_larger_than_the_whole_budget_is_a_clear_error() -> None:
    cache = ExpertCache({"cpu": 250 * MB})
    with pytest.raises(ExpertError) as caught, cache.lease(card("test/huge", 300)):
        pass
    message = str(caught.value)
    assert "test/huge" in message and "300.0 MB" in message and "250.0 MB" in message
    assert "--memory DEVICE=SIZE" in message and "--memory cpu=300MB" in message
    assert Sized.loads == {} and cache.used("cpu") == 0


async def test_a_too_large_model_fails_its_task_in_a_run_with_the_fix(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, memory="cpu=1.5GB", task_timeout=30)
    assistant = Assistant(settings, catalog=Catalog([card("test/huge", 2048)]))
    try:
        result = await assistant.run(
            "paraphrase", plan=Plan(tasks=[Task(id=0, task="paraphrase", args={"text": "hi"})])
        )
    finally:
        assistant.close()
    task = result.run.task(0)
    assert task.status == "failed" and task.error is not None
    assert "2.0 GB" in task.error and "1.5 GB" in task.error and "--memory cpu=2GB" in task.error


# waiting for memory


def test_a_load_waits_for_a_running_expert_then_proceeds() -> None:
    events: list[LoadEvent] = []
    cache = ExpertCache({"cpu": 150 * MB}, on_load=events.append)
    gated, other = card("test/gated", 100, Gated), card("test/other", 100)
    ctx: Any = None
    outcome: list[str] = []

    def first() -> None:
        with cache.lease(gated) as expert:
            expert.run({"text": Resource.text("one")}, {}, ctx)

    def second() -> None:
        with cache.lease(other) as expert:
            outcome.append(expert.run({"text": Resource.text("two")}, {}, ctx)["text"].as_text())

    runner = threading.Thread(target=first)
    runner.start()
    assert Gated.running.wait(5)
    waiter = threading.Thread(target=second)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and Sized.loads["test/other"] == 0  # waiting, not failed
    assert cache.loaded() == ["test/gated"]
    Gated.gate.set()
    runner.join(5)
    waiter.join(5)
    assert outcome == ["test/other: two"]
    assert actions(events)[2:] == [("unloaded", "test/gated"), ("loading", "test/other"), ("loaded", "test/other")]
    assert cache.loaded() == ["test/other"]


def test_a_waiting_load_keeps_idle_models_that_would_not_make_enough_room() -> None:
    cache = ExpertCache({"cpu": 200 * MB})
    gated, idle, big = card("test/gated", 100, Gated), card("test/idle", 50), card("test/big", 120)
    with cache.lease(idle):
        pass
    with cache.lease(gated) as expert:  # a running expert holds 100 of 200 MB; test/idle holds 50
        runner = threading.Thread(target=expert.run, args=({"text": Resource.text("x")}, {}, None))
        runner.start()
        assert Gated.running.wait(5)
        waiter = threading.Thread(target=lambda: cache.get(big))
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive()
        assert sorted(cache.loaded()) == ["test/gated", "test/idle"]  # unloading idle alone would not be enough
        Gated.gate.set()
        runner.join(5)
    waiter.join(5)
    assert cache.loaded() == ["test/big"]
    assert Sized.unloads == {"test/idle": 1, "test/gated": 1}


@pytest.mark.parametrize("budget", ["cpu=150MB", "cpu=0.25GB"])
async def test_parallel_tasks_on_different_models_wait_for_memory_in_a_run(tmp_path: Path, budget: str) -> None:
    tasks = ("paraphrase", "text-simplifier", "grammar-check")
    cards = [card(f"test/{task}", 100, task=task, run_seconds=0.2) for task in tasks]
    events: list[LoadEvent] = []
    settings = Settings(home=tmp_path, memory=budget, cpu_slots=3, task_timeout=30)
    assistant = Assistant(settings, catalog=Catalog(cards), on_load=events.append)
    plan = Plan(tasks=[Task(id=i, task=task, args={"text": f"text {i}"}) for i, task in enumerate(tasks)])
    try:
        result = await assistant.run("three at once", plan=plan, models={c.task: c.id for c in cards})
    finally:
        assistant.close()

    assert result.ok, [(t.id, t.status, t.error) for t in result.run.tasks]
    for i, task in enumerate(tasks):
        assert result.outputs[i]["text"].as_text() == f"test/{task}: text {i}"
    fits = 2 if budget == "cpu=0.25GB" else 1
    assert Sized.most_resident == fits  # never more models loaded at once than the budget holds
    assert Sized.loads == {c.id: 1 for c in cards}
    assert [a for a, _ in actions(events)].count("unloaded") >= 3 - fits


# sizes


def test_the_measured_size_replaces_the_estimate_after_load() -> None:
    events: list[LoadEvent] = []
    cache = ExpertCache({"cpu": 150 * MB}, on_load=events.append)
    a, b = card("test/a", 100, measured_mb=40), card("test/b", 100, measured_mb=40)
    with cache.lease(a):
        assert cache.size_of("test/a") == 40 * MB
    with cache.lease(b):  # 40 + 100 fits; 100 + 100 (the estimates) would not
        pass
    assert sorted(cache.loaded()) == ["test/a", "test/b"]
    assert cache.used("cpu") == 80 * MB
    assert [event.bytes for event in events if event.action == "loaded"] == [40 * MB, 40 * MB]


def test_a_model_measured_larger_than_its_estimate_makes_room_and_is_remembered() -> None:
    cache = ExpertCache({"cpu": 150 * MB})
    small, grows = card("test/small", 50), card("test/grows", 50, measured_mb=120)
    with cache.lease(small):
        pass
    with cache.lease(grows):  # estimated 50 (fits beside small), measured 120: small is unloaded after the load
        assert cache.loaded() == ["test/grows"]
    assert cache.used("cpu") == 120 * MB
    cache.clear()
    with cache.lease(small):
        pass
    with cache.lease(grows):  # now known to need 120: small goes before the load
        assert Sized.resident == {"test/grows"}
    assert Sized.most_resident == 2  # only during the first, estimated load


# real tiny transformers models


def _tiny_bert_classifier(folder: Path, seed: int) -> int:
    """A random 1-layer BERT classifier with a tokenizer built offline; returns its parameter bytes."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "day", "is", "fine", "bad", "good", "cat", "dog"]
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=8000,  # ~2 MB of embeddings, so sizes are well above the 1 MB granularity of cards
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder)
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


@pytest.fixture(scope="session")
def tiny_classifiers(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], int]:
    root = tmp_path_factory.mktemp("tiny-bert")
    sizes = {_tiny_bert_classifier(root / f"bert-{i}", seed=i) for i in range(3)}
    assert len(sizes) == 1
    return [root / f"bert-{i}" for i in range(3)], sizes.pop()


@pytest.mark.slow
async def test_real_tiny_models_are_evicted_least_recently_used_in_runs(
    baton_home: Path, tiny_classifiers: tuple[list[Path], int]
) -> None:
    from baton.experts.hub import add_local_model

    folders, size = tiny_classifiers
    settings = Settings(home=baton_home, memory=f"cpu={int(size * 2.5)}B", task_timeout=60)
    ids = [
        add_local_model(folder, "text-classification", f"tiny/bert-{i}", settings)["id"]
        for i, folder in enumerate(folders)
    ]
    events: list[LoadEvent] = []
    assistant = Assistant(settings, on_load=events.append)
    plan = Plan(tasks=[Task(id=0, task="text-classification", args={"text": "the day is fine"})])
    try:
        for i in (0, 1, 0, 2):
            result = await assistant.run("classify", plan=plan, models={"text-classification": ids[i]})
            assert result.ok, result.run.task(0).error
            assert result.run.task(0).model == ids[i]
            assert result.outputs[0]["text"].kind == "text"
            label = result.outputs[0]["text"].as_text()
            assert any(word in label for word in ("positive", "negative")), label
        assert sorted(assistant.experts.loaded()) == [ids[0], ids[2]]
        assert assistant.experts.size_of(ids[0]) == size  # measured, not the card's estimate
        estimate = assistant.catalog.get(ids[0]).memory_mb * MB
        assert estimate != size
    finally:
        assistant.close()
    assert actions(events)[:7] == [
        ("loading", ids[0]),
        ("loaded", ids[0]),
        ("loading", ids[1]),
        ("loaded", ids[1]),
        ("unloaded", ids[1]),  # bert-0 was used after bert-1
        ("loading", ids[2]),
        ("loaded", ids[2]),
    ]
    assert all(event.bytes == size for event in events if event.action in ("loaded", "unloaded"))
