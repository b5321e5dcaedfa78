"""Training the learned planner from TaskBench records (needs scikit-learn: the 'text' extra).

Deterministic for a given seed and data: scikit-learn's solvers are seeded, weights are stored as
int8 with a scale per tool, and the artefact is written with fixed timestamps, so the same data and
seed give the same bytes.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from baton.planners.model import (
    FORMAT,
    PlannerModel,
    char_ngrams,
    clauses,
    model_path,
    normalize_request,
    word_ngrams,
    write_artifact,
)
from baton.taskbench import DOMAINS, NODE_REF, Tool, ToolList, content_kind, data_dir, load_tools, read_jsonl

__all__ = ["TrainConfig", "Trained", "train", "train_domain", "training_data"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters, chosen by 5-fold cross-validation on the dev splits (benchmarks/bench_planner.py)."""

    seed: int = 0
    char_low: int = 2
    char_high: int = 5
    max_char: int = 30000  # features kept (most frequent); bounds the artefact's size
    max_word: int = 8000
    doc_c: float = 3.0  # inverse regularization of the whole-request model (one-vs-rest)
    seg_c: float = 10.0  # ... and of the clause model (softmax with 'none')
    mix: float = 0.4  # weight of the whole-request model in the mix (a feature of the stacked model)
    stack_folds: int = 3  # held-out folds whose base scores train the stacked tool model
    stack_c: float = 1.0
    threshold: float = 0.4  # probability from which a tool is planned
    max_tools: int = 8
    candidates: int = 8  # the most probable tools among which the tool set is chosen
    floor: float = 0.03  # ... if at least this probable
    w_missing: float = 1.0  # tool set: penalty per media input nothing provides
    w_parts: float = 1.0  # tool set: penalty per extra unlinked part
    w_place: float = 1.0  # ordering: agreement with where tools are mentioned
    w_prior: float = 0.25  # ordering: how often one tool fed the other in training
    w_root: float = 1.0  # ordering: the first tool should take a kind of input the request gives


@dataclass
class Example:
    """One training request: its normalized text, its tools (indices) and its per-tool step texts."""

    text: str
    tools: list[int]
    steps: list[tuple[str, int]] = field(default_factory=list)
    links: list[tuple[int, int]] = field(default_factory=list)
    literals: list[str] = field(default_factory=list)


def training_data(
    records: Iterable[Any], tools: ToolList, label_of: Callable[[str], str | None] | None = None
) -> list[Example]:
    """Usable examples from TaskBench records; tools outside the list and malformed records are skipped."""
    index = {tool.id: i for i, tool in enumerate(tools.tools)}

    def label(name: Any) -> int | None:
        if not isinstance(name, str):
            return None
        mapped = label_of(name) if label_of else name
        return index.get(mapped) if mapped is not None else None

    examples = []
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("instruction"), str):
            continue
        nodes = record.get("task_nodes")
        if not isinstance(nodes, list):
            continue
        names = [node.get("task") if isinstance(node, dict) else None for node in nodes]
        labels = [label(name) for name in names]
        known = list(dict.fromkeys(i for i in labels if i is not None))
        if not known:
            continue
        example = Example(text=normalize_request(record["instruction"]), tools=known)
        steps = record.get("task_steps")
        if isinstance(steps, list) and len(steps) == len(nodes):
            for step, name, tool in zip(steps, names, labels, strict=True):
                if isinstance(step, str) and tool is not None and isinstance(name, str):
                    text = re.sub(r"^\s*(?:step\s*)?\d+\s*[:.)]\s*", "", step, flags=re.IGNORECASE)
                    example.steps.append((normalize_request(re.sub(re.escape(name), " ", text, flags=re.I)), tool))
        for link in record.get("task_links") or []:
            if isinstance(link, dict):
                source, target = label(link.get("source")), label(link.get("target"))
                if source is not None and target is not None and source != target:
                    example.links.append((source, target))
        for node in nodes:
            arguments = node.get("arguments") if isinstance(node, dict) else None
            for argument in arguments if isinstance(arguments, list) else []:
                if isinstance(argument, str) and not NODE_REF.search(argument):
                    example.literals.append(argument)
        examples.append(example)
    return examples


@dataclass
class Trained:
    """A trained model: its header and arrays, as written to the artefact."""

    header: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _quantize(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and a float32 scale per column."""
    scale = np.abs(weights).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    return np.round(weights / scale).astype(np.int8), scale.astype(np.float32)


def train(examples: Sequence[Example], tools: ToolList, domain: str, config: TrainConfig | None = None) -> Trained:
    """Fit the base models on all examples, and the stacked tool model on their held-out scores."""
    from sklearn.linear_model import LogisticRegression

    config = config or TrainConfig()
    rows: list[np.ndarray] = []
    labels: list[bool] = []
    order = np.random.default_rng(config.seed).permutation(len(examples))
    for fold in range(config.stack_folds):
        held = set(order[fold :: config.stack_folds].tolist())
        base = _fit_base([e for i, e in enumerate(examples) if i not in held], tools, domain, config)
        model = PlannerModel(base.header, base.arrays)
        for i in sorted(held):
            whole, per_clause, _ = model.base_scores(examples[i].text)
            rows.append(model.stack_features(whole, per_clause, examples[i].text))
            labels.extend(tool in examples[i].tools for tool in range(len(tools.tools)))
    trained = _fit_base(examples, tools, domain, config)
    stacker = LogisticRegression(C=config.stack_c, max_iter=5000, random_state=config.seed)
    stacker.fit(np.vstack(rows), np.asarray(labels, dtype=np.int64))
    trained.arrays["stack_w"] = stacker.coef_[0].astype(np.float32)
    trained.arrays["stack_b"] = stacker.intercept_.astype(np.float32)
    return trained


def _fit_base(examples: Sequence[Example], tools: ToolList, domain: str, config: TrainConfig) -> Trained:
    """Fit the featurizer, the whole-request model, the clause model and the link prior."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    count = len(tools.tools)
    none = count  # the clause model's class for clauses that name no tool

    def chars(text: str) -> list[str]:
        return char_ngrams(text, config.char_low, config.char_high)

    # clause model, stage 1: step descriptions and one-tool requests, which need no alignment
    clean: list[tuple[str, int]] = [step for example in examples for step in example.steps]
    clean += [(example.text, example.tools[0]) for example in examples if len(example.tools) == 1]
    clean += [(part, none) for example in examples if not example.tools for part in clauses(example.text)]
    multi = [(example, clauses(example.text)) for example in examples if len(example.tools) > 1]
    corpus = [example.text for example in examples] + [text for text, _ in clean]
    corpus += [part for _, parts in multi for part in parts]

    vectorizers = [
        TfidfVectorizer(analyzer=chars, min_df=2, sublinear_tf=True, max_features=config.max_char, dtype=np.float64),
        TfidfVectorizer(
            analyzer=word_ngrams, min_df=2, sublinear_tf=True, max_features=config.max_word, dtype=np.float64
        ),
    ]
    for vectorizer in vectorizers:
        vectorizer.fit(corpus)

    def features(texts: Sequence[str]) -> Any:
        from scipy.sparse import hstack

        return hstack([v.transform(texts) for v in vectorizers]).tocsr()

    def clause_model(pairs: Sequence[tuple[str, int]]) -> LogisticRegression:
        model = LogisticRegression(C=config.seg_c, max_iter=3000, random_state=config.seed)
        return model.fit(features([t for t, _ in pairs]), [y for _, y in pairs])

    def clause_probabilities(model: LogisticRegression, parts: Sequence[str]) -> np.ndarray:
        found = np.zeros((len(parts), count + 1))
        found[:, model.classes_] = model.predict_proba(features(parts))
        return found

    first = clause_model(clean)
    aligned = list(clean)
    for example, parts in multi:
        probabilities = clause_probabilities(first, parts)
        used = set()
        for tool in example.tools:
            best = int(probabilities[:, tool].argmax())
            used.add(best)
            aligned.append((parts[best], tool))
        aligned += [(part, none) for k, part in enumerate(parts) if k not in used]
    second = clause_model(aligned)
    seg_w = np.zeros((features(["x"]).shape[1], count + 1))
    seg_b = np.full(count + 1, -30.0)
    coef = second.coef_ if len(second.classes_) > 2 else np.vstack([-second.coef_[0], second.coef_[0]])
    intercept = (
        second.intercept_ if len(second.classes_) > 2 else np.array([-second.intercept_[0], second.intercept_[0]])
    )
    seg_w[:, second.classes_] = coef.T
    seg_b[second.classes_] = intercept

    # whole-request model: one binary model per tool
    documents = features([example.text for example in examples])
    doc_w = np.zeros((documents.shape[1], count))
    doc_b = np.full(count, -30.0)
    for tool in range(count):
        target = np.array([tool in example.tools for example in examples], dtype=int)
        if 0 < target.sum() < len(target):
            model = LogisticRegression(C=config.doc_c, solver="liblinear", random_state=config.seed)
            model.fit(documents, target)
            doc_w[:, tool], doc_b[tool] = model.coef_[0], model.intercept_[0]
        elif target.sum() == len(target):
            doc_b[tool] = 30.0

    # link prior: log-odds that a feeds b when both are planned
    fed = np.zeros((count, count))
    together = np.zeros((count, count))
    for example in examples:
        for a in example.tools:
            for b in example.tools:
                together[a, b] += a != b
        for a, b in set(example.links):
            fed[a, b] += 1
    prior = np.log((fed + 0.5) / (np.maximum(together - fed, 0) + 0.5))

    literals = Counter(value for example in examples for value in example.literals)
    default_files = {}
    for kind in ("image", "audio", "video"):
        found = [value for value, _ in literals.most_common() if content_kind(value) == kind and " " not in value]
        if found:
            default_files[kind] = found[0]

    doc_q, doc_scale = _quantize(doc_w)
    seg_q, seg_scale = _quantize(seg_w)
    char_vocab = sorted(vectorizers[0].vocabulary_, key=vectorizers[0].vocabulary_.__getitem__)
    word_vocab = sorted(vectorizers[1].vocabulary_, key=vectorizers[1].vocabulary_.__getitem__)
    header = {
        "format": FORMAT,
        "domain": domain,
        "tools": tools.to_json(),
        "char_range": [config.char_low, config.char_high],
        "vocab_char": char_vocab,
        "vocab_word": word_vocab,
        "params": {
            "mix": config.mix,
            "threshold": config.threshold,
            "max_tools": config.max_tools,
            "candidates": config.candidates,
            "floor": config.floor,
            "w_missing": config.w_missing,
            "w_parts": config.w_parts,
            "w_place": config.w_place,
            "w_prior": config.w_prior,
            "w_root": config.w_root,
        },
        "default_files": default_files,
        "training": {"records": len(examples), "config": asdict(config)},
    }
    arrays = {
        "idf": np.concatenate([vectorizers[0].idf_, vectorizers[1].idf_]).astype(np.float32),
        "doc_w": doc_q,
        "doc_scale": doc_scale,
        "doc_b": doc_b.astype(np.float32),
        "seg_w": seg_q,
        "seg_scale": seg_scale,
        "seg_b": seg_b.astype(np.float32),
        "prior": prior.astype(np.float16),
    }
    return Trained(header=header, arrays=arrays)


def baton_tools(names: Iterable[str]) -> ToolList:
    """A tool list of baton tasks (for the "baton" model): required input kinds, output kinds (json as text)."""
    from baton.tasks import get_task

    tools = []
    for name in dict.fromkeys(names):
        spec = get_task(name)
        outputs = [("text" if port.kind == "json" else port.kind) for port in spec.outputs]
        tools.append(
            Tool(
                id=spec.name,
                inputs=tuple(port.kind for port in spec.inputs if not port.optional),
                outputs=tuple(dict.fromkeys(outputs)),
                desc=spec.description,
            )
        )
    return ToolList(name="baton", tools=tools)


def _records(path: Path) -> list[Any]:
    return [record for _, record in read_jsonl(path) if record is not None]


def domain_examples(domain: str, data: Path | None = None) -> tuple[list[Example], ToolList]:
    """The examples and tool list a domain's model is trained on ("baton": both domains in baton's task names)."""
    folder = data or data_dir()
    if domain in DOMAINS:
        tools = load_tools(domain)
        return training_data(_records(folder / f"{domain}.dev.jsonl"), tools), tools
    if domain != "baton":
        raise ValueError(f"unknown domain '{domain}'; use huggingface, multimedia or baton")
    from baton.tasks import UnknownTask, resolve

    def to_baton(name: str) -> str | None:
        try:
            return resolve(name)
        except UnknownTask:
            return None

    records = [record for d in DOMAINS for record in _records(folder / f"{d}.dev.jsonl")]
    names = [mapped for d in DOMAINS for tool in load_tools(d).tools if (mapped := to_baton(tool.id)) is not None]
    tools = baton_tools(names)
    return training_data(records, tools, to_baton) + no_task_examples(), tools


def no_task_examples() -> list[Example]:
    """Small talk that needs no task (``models/no_task.txt``): TaskBench has none, a conversation has plenty."""
    text = resources.files("baton.planners").joinpath("models", "no_task.txt").read_text("utf-8")
    lines = [line.strip() for line in text.splitlines()]
    return [Example(text=normalize_request(line), tools=[]) for line in lines if line and not line.startswith("#")]


@dataclass
class TrainReport:
    path: Path
    records: int
    seconds: float
    sha256: str
    size: int


def train_domain(
    domain: str,
    *,
    data: Path | None = None,
    out: Path | None = None,
    config: TrainConfig | None = None,
    limit: int | None = None,
) -> TrainReport:
    """Train a domain's model from the dev split and write it (by default over the shipped one)."""
    started = time.perf_counter()
    examples, tools = domain_examples(domain, data)
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise ValueError(f"no usable TaskBench records for '{domain}' in {data or data_dir()}")
    trained = train(examples, tools, domain, config)
    path = out or model_path(domain)
    write_artifact(path, trained.header, trained.arrays)
    content = path.read_bytes()
    return TrainReport(
        path=path,
        records=len(examples),
        seconds=time.perf_counter() - started,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )
