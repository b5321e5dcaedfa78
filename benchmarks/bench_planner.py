"""Cross-validate the learned local planner on TaskBench's dev splits and print the tables.

    .venv/bin/python benchmarks/bench_planner.py [--domain huggingface|multimedia ...] [--folds 5]
        [--set KEY=VALUE ...] [--grid KEY=V1,V2 ...] [--json OUT.json]

For each domain: the dev split is cut into 5 folds (fixed seed); for each fold a model is trained on
the other 4 with baton's training code, written and read back as an artefact, and the held-out
requests are planned through the batch code path (``baton plan --batch``), then scored with the
evaluation code (``baton eval taskbench``). Printed: node-F1, edge-F1, t-F1, v-F1 and NED overall
and per type; planning latency (median, p99); training time per fold; routing at confidence
thresholds 0.5 / 0.7 / 0.8 (the default) / 0.9 (share answered locally and their node-F1).

``--set`` changes a training setting (TrainConfig); ``--grid`` tries inference settings (mix,
threshold, w_place, w_prior, w_root) on the same trained folds, which is how the shipped values were
chosen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from baton.planners.batch import BatchPlanner
from baton.planners.model import PlannerModel, Prediction, read_artifact, write_artifact
from baton.planners.training import TrainConfig, train, training_data
from baton.taskbench import DOMAINS, NODE_REF, Scores, data_dir, evaluate, load_tools, read_jsonl

TARGETS = {"huggingface": {"n_f1": 75.0, "e_f1": 45.0}, "multimedia": {"n_f1": 80.0, "e_f1": 55.0}}
PUBLISHED = {  # TaskBench's paper: node-F1 / edge-F1
    "huggingface": {"gpt-4": (81.54, 54.70), "gpt-3.5-turbo": (69.49, 33.36), "codellama-13b": (53.16, 14.64)},
    "multimedia": {"gpt-4": (90.90, 69.27), "gpt-3.5-turbo": (72.83, 44.02), "codellama-13b": (62.78, 24.61)},
}
ROUTING = (0.5, 0.7, 0.8, 0.9)  # 0.8: the default BATON_ROUTER_THRESHOLD


def folds(count: int, k: int, seed: int) -> list[list[int]]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return [sorted(order[i::k]) for i in range(k)]


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cross_validate(domain: str, k: int, config: TrainConfig, grid: dict[str, list[Any]]) -> dict[str, Any]:
    records = [r for _, r in read_jsonl(data_dir() / f"{domain}.dev.jsonl") if isinstance(r, dict)]
    tools = load_tools(domain)
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] or [{}]
    predictions: list[dict[str, Any]] = [{} for _ in combos]
    given_set: dict[str, Any] = {}  # the same planner given the gold tools: it orders, links and fills them
    given_order: dict[str, Any] = {}  # ... given the gold tools in a topological order of the gold plan
    seconds: list[float] = []
    training_seconds: list[float] = []
    sizes: list[int] = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, held_out in enumerate(folds(len(records), k, config.seed)):
            held = set(held_out)
            began = time.perf_counter()
            trained = train(
                training_data([r for i, r in enumerate(records) if i not in held], tools), tools, domain, config
            )
            path = Path(scratch) / f"{domain}-{number}.planner.zip"
            write_artifact(path, trained.header, trained.arrays)
            training_seconds.append(time.perf_counter() - began)
            sizes.append(path.stat().st_size)
            model = PlannerModel(*read_artifact(path.read_bytes()))
            lines = [json.dumps({"id": records[i]["id"], "instruction": records[i]["instruction"]}) for i in held_out]
            for combo, found in zip(combos, predictions, strict=True):
                model.params.update(combo)
                planner = BatchPlanner.for_tools(domain, model=model)
                for line in planner.plan_lines(lines):
                    prediction = json.loads(line)
                    found[str(prediction["id"])] = prediction
                if combo is combos[0]:
                    seconds += planner.seconds
            for i in held_out:
                ordered = gold_order(records[i], model.index)
                if ordered:
                    for into, keep in ((given_set, False), (given_order, True)):
                        nodes = model.arrange(records[i]["instruction"], ordered, keep_order=keep)
                        into[str(records[i]["id"])] = {"result": Prediction(nodes=nodes, confidence=1.0).to_taskbench()}
            print(f"  {domain} fold {number + 1}/{k}: trained in {training_seconds[-1]:.1f} s", file=sys.stderr)
    results = []
    for combo, found in zip(combos, predictions, strict=True):
        scores = evaluate(records, found, tools)
        routing = {}
        for threshold in ROUTING:
            sure = [r for r in records if found.get(str(r["id"]), {}).get("confidence", 0) >= threshold]
            subset = evaluate(sure, found, tools)["all"] if sure else Scores()
            routing[str(threshold)] = {"share": 100 * len(sure) / len(records), "n_f1": subset.n_f1}
        results.append({"settings": combo, "scores": {g: s.to_json() for g, s in scores.items()}, "routing": routing})
    ordered = sorted(seconds)
    return {
        "domain": domain,
        "records": len(records),
        "folds": k,
        "results": results,
        "latency_ms": {
            "median": 1000 * statistics.median(ordered),
            "p99": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "mean": 1000 * statistics.fmean(ordered),
        },
        "edge_f1_given_tools": evaluate(records, given_set, tools)["all"].e_f1,
        "edge_f1_given_order": evaluate(records, given_order, tools)["all"].e_f1,
        "training_seconds_per_fold": statistics.fmean(training_seconds),
        "artefact_bytes": max(sizes),
    }


def gold_order(record: dict[str, Any], known: Mapping[str, int]) -> list[str]:
    """The gold plan's tools (those in the list) in a topological order of its <node-k> references, ties by
    position: TaskBench's node lists are not always in running order."""
    nodes = [n for n in record.get("task_nodes", []) if isinstance(n, dict)]
    parents: list[set[int]] = []
    for index, node in enumerate(nodes):
        found = set()
        for argument in node.get("arguments") or []:
            for match in NODE_REF.finditer(argument if isinstance(argument, str) else ""):
                k = int(match.group(1))
                if k < len(nodes) and k != index:
                    found.add(k)
        parents.append(found)
    placed: list[int] = []
    while len(placed) < len(nodes):
        ready = [i for i in range(len(nodes)) if i not in placed and parents[i] <= set(placed)]
        placed.append(
            ready[0] if ready else next(i for i in range(len(nodes)) if i not in placed)
        )  # cycles: by position
    return list(dict.fromkeys(t for i in placed if isinstance(t := nodes[i].get("task"), str) and t in known))


def link_ceiling(domain: str) -> float | None:
    """Edge-F1 of the gold plans' own task_links written as <node-k> references, against the gold references:
    what a planner that predicts TaskBench's links exactly would score (its references are not all 0-based)."""
    records = [r for _, r in read_jsonl(data_dir() / f"{domain}.dev.jsonl") if isinstance(r, dict)]
    predictions = {}
    for record in records:
        order = list(dict.fromkeys(node["task"] for node in record["task_nodes"]))
        nodes: list[dict[str, Any]] = [{"task": task, "arguments": []} for task in order]
        for link in record.get("task_links", []):
            if link["source"] in order and link["target"] in order:
                nodes[order.index(link["target"])]["arguments"].append(f"<node-{order.index(link['source'])}>")
        predictions[str(record["id"])] = {"result": {"task_nodes": nodes}}
    return evaluate(records, predictions, load_tools(domain))["all"].e_f1


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(result: dict[str, Any]) -> None:
    domain = result["domain"]
    print(f"\n## {domain}: {result['records']} dev records, {result['folds']}-fold cross-validation\n")
    best = result["results"][0]
    if len(result["results"]) > 1:
        print("| settings | n-F1 | e-F1 | t-F1 | v-F1 | NED |")
        print("|---|---|---|---|---|---|")
        for item in result["results"]:
            s = item["scores"]["all"]
            print(
                f"| {item['settings']} | {fmt(s['n_f1'])} | {fmt(s['e_f1'])} | {fmt(s['t_f1'])} "
                f"| {fmt(s['v_f1'])} | {fmt(s['ned'], 4)} |"
            )
        print()
    print("| type | records | n-F1 | e-F1 | t-F1 | v-F1 | NED |")
    print("|---|---|---|---|---|---|---|")
    for group, s in best["scores"].items():
        print(
            f"| {group} | {s['records']} | {fmt(s['n_f1'])} | {fmt(s['e_f1'])} | {fmt(s['t_f1'])} "
            f"| {fmt(s['v_f1'])} | {fmt(s['ned'], 4)} |"
        )
    overall = best["scores"]["all"]
    target = TARGETS.get(domain, {})
    if target:
        checks = ", ".join(
            f"{metric} {fmt(overall[metric])} vs {value} ({'met' if (overall[metric] or 0) >= value else 'MISSED'})"
            for metric, value in target.items()
        )
        print(f"\ntargets: {checks}")
        published = "; ".join(f"{llm} {n} / {e}" for llm, (n, e) in PUBLISHED[domain].items())
        print(f"published (n-F1 / e-F1): {published}")
        print(f"edge-F1 of TaskBench's own task_links against its <node-k> references: {fmt(link_ceiling(domain))}")
        print(
            f"edge-F1 of this planner given the gold tool set: {fmt(result['edge_f1_given_tools'])}; "
            f"given the gold tools in the gold order: {fmt(result['edge_f1_given_order'])}"
        )
    latency = result["latency_ms"]
    print(
        f"\nplanning latency per request: median {latency['median']:.2f} ms, p99 {latency['p99']:.2f} ms, "
        f"mean {latency['mean']:.2f} ms"
    )
    print(
        f"training time per fold: {result['training_seconds_per_fold']:.1f} s; "
        f"artefact size {result['artefact_bytes'] / 1e6:.2f} MB"
    )
    print("\n| confidence threshold | answered locally | their n-F1 |")
    print("|---|---|---|")
    for threshold, item in best["routing"].items():
        print(f"| {threshold} | {item['share']:.1f} % | {fmt(item['n_f1'])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", action="append", choices=DOMAINS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2")
    parser.add_argument("--json", type=Path, metavar="OUT.json")
    args = parser.parse_args()
    known = {f.name for f in fields(TrainConfig)}
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in known:
            parser.error(f"--set {key}: not a training setting ({', '.join(sorted(known))})")
        overrides[key] = parse_value(value)
    config = replace(TrainConfig(), **overrides)
    grid = {}
    for item in args.grid:
        key, _, values = item.partition("=")
        grid[key] = [parse_value(v) for v in values.split(",")]
    results = []
    for domain in args.domain or DOMAINS:
        result = cross_validate(domain, args.folds, config, grid)
        report(result)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
