"""Measure the model cache's claims with BERT-base-sized classifiers (random weights) and print a table.

    .venv/bin/python benchmarks/bench_model_cache.py [--models 10] [--fit 3] [--rounds 3] [--compare-trim]

Ten text classifiers of BERT-base architecture (110M parameters, 418 MiB at fp32) are built once in a
child process, saved with save_pretrained into a temporary folder, copied (one file each, so nothing is
shared) and registered with add_local_model into a temporary BATON_HOME. Two variants:

- fp32: weights stored at fp32 and run at fp32; transformers maps the safetensors file, so weights
  become resident as the first inference reads them (file-backed pages);
- fp16: weights stored at fp16 and run at fp32 on the CPU, as many Hub models ship; every load
  converts, so weights live in heap memory, which is what malloc keeps after a free.

Measured:
1. cold load (cache miss: build + load) against warm hit (the loaded expert) latency of ``lease()``,
   and, for context, the cold request (load + first inference) against a warm one;
2. peak memory while a sequence of requests (``Assistant.run``, one classification each) cycles through
   the models round robin with a budget for ``--fit`` of them (``Settings.memory``, 3 x the card's
   estimate): the process's resident memory above its baseline (VmHWM after resetting it through
   /proc/self/clear_refs where allowed, and a 2 ms sampler of VmRSS), and the cache's own accounting.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MB = 2**20
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "day", "is", "fine", "bad", "good", "cat", "dog"]
TEXT = "the day is fine"


def build(root: Path, models: int) -> None:
    """In a child process (so its memory stays out of the measurements): tiny warm-up model, fp32 and fp16 sets."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    labels: dict[str, Any] = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    torch.manual_seed(0)
    tiny = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **labels)
    BertForSequenceClassification(tiny).save_pretrained(root / "tiny")
    tokenizer.save_pretrained(root / "tiny")
    model = BertForSequenceClassification(BertConfig(**labels))  # BERT-base: 12 layers, hidden 768, vocab 30522
    for variant in ("fp32", "fp16"):
        first = root / f"{variant}-0"
        if variant == "fp16":
            model.half()  # type: ignore[no-untyped-call]
        model.save_pretrained(first)
        tokenizer.save_pretrained(first)
        for i in range(1, models):
            shutil.copytree(first, root / f"{variant}-{i}")


def status(field: str) -> int:
    """A figure of /proc/self/status in bytes (VmRSS, VmHWM, RssAnon, RssFile)."""
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """The peak resident size over a stretch of work: VmHWM reset through clear_refs, and a sampler."""

    def __init__(self, every: float = 0.002) -> None:
        self.every, self.sampled, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.hwm_exact = False

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.sampled = max(self.sampled, status("VmRSS"))
            time.sleep(self.every)

    def __enter__(self) -> PeakRSS:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.hwm_exact = True
        except OSError:
            self.hwm_exact = False
        self.sampled = status("VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sampled = max(self.sampled, status("VmRSS"))

    @property
    def peak(self) -> int:
        return max(self.sampled, status("VmHWM") if self.hwm_exact else 0)


def register(root: Path, home: Path, variant: str, models: int) -> list[str]:
    from baton.config import Settings
    from baton.experts.hub import add_local_model

    settings = Settings(home=home)
    return [
        add_local_model(root / f"{variant}-{i}", "text-classification", f"bench/{variant}-{i}", settings)["id"]
        for i in range(models)
    ]


def latency(ids: list[str], home: Path, budget: int, tries: int) -> dict[str, float]:
    """Seconds: cold lease (miss), warm lease (hit), cold first inference and warm inference (medians).

    Also the card's estimate and the measured size, in bytes.
    """
    from baton.catalog import load_catalog
    from baton.config import Settings
    from baton.experts import TaskContext
    from baton.experts.cache import ExpertCache
    from baton.media import Resource
    from baton.store import Store

    catalog = load_catalog()
    store = Store(home)
    workdir = Path(tempfile.mkdtemp(dir=home))
    ctx = TaskContext(store, store.session("bench").id, workdir, Settings(home=home))
    inputs = {"text": Resource.text(TEXT)}
    cache = ExpertCache({"cpu": budget})
    cold, warm, cold_run, warm_run = [], [], [], []
    for model in ids[:tries]:
        card = catalog.get(model)
        began = time.perf_counter()
        with cache.lease(card) as expert:
            cold.append(time.perf_counter() - began)
            measured = cache.size_of(model) or 0
            began = time.perf_counter()
            expert.run(inputs, {}, ctx)
            cold_run.append(time.perf_counter() - began)
        for _ in range(200):
            began = time.perf_counter()
            with cache.lease(card):
                warm.append(time.perf_counter() - began)
        for _ in range(3):
            with cache.lease(card) as expert:
                began = time.perf_counter()
                expert.run(inputs, {}, ctx)
                warm_run.append(time.perf_counter() - began)
    cache.clear()
    store.close()
    return {
        "cold": statistics.median(cold),
        "warm": statistics.median(warm),
        "cold_request": statistics.median(c + r for c, r in zip(cold, cold_run, strict=True)),
        "warm_request": statistics.median(warm_run) + statistics.median(warm),
        "measured": measured,
        "estimate": card.memory_mb * MB,
    }


def cycle(ids: list[str], home: Path, budget: int, rounds: int, baseline: int) -> dict[str, Any]:
    """Requests through Assistant.run, round robin over the models; memory above ``baseline``."""
    from baton.assistant import Assistant
    from baton.config import Settings
    from baton.experts.cache import LoadEvent
    from baton.plan import Plan, Task

    accounted = [0]
    loads = [0]

    def on_load(event: LoadEvent) -> None:
        if event.action == "loaded":
            loads[0] += 1
        accounted[0] = max(accounted[0], assistant.experts.used("cpu"))

    settings = Settings(home=home, memory=f"cpu={budget}B", cpu_slots=2, task_timeout=600)
    assistant = Assistant(settings, on_load=on_load)
    plan = Plan(tasks=[Task(id=0, task="text-classification", args={"text": TEXT})])
    began = time.perf_counter()
    with PeakRSS() as rss:
        for _ in range(rounds):
            for model in ids:
                result = asyncio.run(assistant.run("classify", plan=plan, models={"text-classification": model}))
                assert result.ok, result.run.task(0).error
        held = len(assistant.experts.loaded())
    seconds = time.perf_counter() - began
    assistant.close()
    gc.collect()
    return {
        "peak": rss.peak - baseline,
        "sampled": rss.sampled - baseline,
        "exact": rss.hwm_exact,
        "accounted": accounted[0],
        "loads": loads[0],
        "requests": rounds * len(ids),
        "held": held,
        "after": status("VmRSS") - baseline,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--fit", type=int, default=3, help="how many models the budget holds")
    parser.add_argument("--rounds", type=int, default=3, help="times the request sequence cycles through the models")
    parser.add_argument("--variants", default="fp32,fp16")
    parser.add_argument("--compare-trim", action="store_true", help="also run each cycle without malloc_trim")
    parser.add_argument("--dir", type=Path, help="keep the built models in this folder and reuse them next time")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.models)
        return

    root = args.dir or Path(tempfile.mkdtemp(prefix="baton-bench-cache-"))
    try:
        home = root / "home"
        shutil.rmtree(home, ignore_errors=True)
        os.environ.update(BATON_HOME=str(home), HF_HUB_OFFLINE="1")
        if not (root / f"fp16-{args.models - 1}").exists():
            began = time.perf_counter()
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, __file__, "--build", str(root), "--models", str(args.models)], check=True)
            print(f"built {args.models} BERT-base classifiers per variant in {time.perf_counter() - began:.0f} s")
        run(root, home, args)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


def run(root: Path, home: Path, args: argparse.Namespace) -> None:
    from baton.catalog import load_catalog
    from baton.experts import cache as cache_module
    from baton.experts.hub import add_local_model

    variants = args.variants.split(",")
    ids = {variant: register(root, home, variant, args.models) for variant in variants}
    add_local_model(root / "tiny", "text-classification", "bench/tiny")
    estimate = load_catalog().get(ids[variants[0]][0]).memory_mb * MB
    budget = args.fit * estimate

    # warm-up: import and run the whole path once with a tiny model, so the baseline holds the libraries
    cycle(["bench/tiny"], home, budget, 1, 0)
    rows: list[tuple[str, float, str, str]] = []
    notes = []
    for variant in variants:
        lat = latency(ids[variant], home, budget, tries=3)
        if lat["estimate"] < lat["measured"]:
            notes.append(
                f"note: the {variant} cards estimate {lat['estimate'] / MB:.0f} MiB (from the size of their files) but "
                f"measure {lat['measured'] / MB:.0f} MiB loaded: until a model has been measured once, the cache admits "
                "it beside models that leave too little room, and unloads them only after it has loaded"
            )
        ratio = lat["cold"] / lat["warm"]
        rows += [
            (f"{variant}: cold load, lease() on a miss", lat["cold"] * 1000, "", "ms"),
            (f"{variant}: warm hit, lease() on a loaded model", lat["warm"] * 1e6, "", "us"),
            (f"{variant}: cold load / warm hit", ratio, ">= 50", "x"),
            (f"{variant}: cold request (load + 1st inference)", lat["cold_request"] * 1000, "", "ms"),
            (f"{variant}: warm request (hit + inference)", lat["warm_request"] * 1000, "", "ms"),
            (f"{variant}: cold request / warm request", lat["cold_request"] / lat["warm_request"], "", "x"),
        ]
    print(f"budget: {budget / MB:.0f} MiB = {args.fit} x the card estimate {estimate / MB:.0f} MiB", flush=True)
    trims = [True, False] if args.compare_trim else [True]
    for variant in variants:
        for trim in trims:
            if not trim:
                real = cache_module.release_freed_memory
                cache_module.release_freed_memory = gc.collect  # type: ignore[assignment]
            gc.collect()
            baseline = status("VmRSS")
            try:
                got = cycle(ids[variant], home, budget, args.rounds, baseline)
            finally:
                if not trim:
                    cache_module.release_freed_memory = real
            label = f"{variant}{'' if trim else ' (no malloc_trim)'}"
            limit = budget * 1.1
            rows += [
                (f"{label}: peak RSS above baseline", got["peak"] / MB, f"<= {limit / MB:.0f}", "MiB"),
                (f"{label}: peak RSS / (budget x 1.1)", got["peak"] / limit, "<= 1.00", "x"),
                (f"{label}: sampled peak RSS (2 ms)", got["sampled"] / MB, "", "MiB"),
                (f"{label}: cache accounting peak", got["accounted"] / MB, f"<= {budget / MB:.0f}", "MiB"),
                (f"{label}: RSS left after unloading all", got["after"] / MB, "", "MiB"),
                (f"{label}: loads / requests", got["loads"], str(got["requests"]), ""),
                (f"{label}: cycle wall time", got["seconds"], "", "s"),
            ]
            if not got["exact"]:
                rows.append((f"{label}: VmHWM could not be reset, peak is sampled only", 0, "", ""))
    print(f"\n{'measure':<52} {'measured':>11} {'target':>9}  unit")
    print("-" * 82)
    for name, value, target, unit in rows:
        shown = f"{value:,.1f}" if value >= 10 or value == 0 else f"{value:.2f}"
        print(f"{name:<52} {shown:>11} {target:>9}  {unit}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
