"""TaskBench: its tool lists, its record and prediction formats, and its plan metrics.

TaskBench (Shen et al., from the HuggingGPT authors) pairs user requests with gold tool graphs. A
record is ``{"id", "type", "instruction", "task_nodes": [{"task", "arguments"}], "task_links"}``;
an argument is a literal or ``"<node-k>"``, the output of node k of the same list. A prediction line
is ``{"id", "result": {"task_steps", "task_nodes", "task_links"}}``.

The metrics follow TaskBench's definitions for its "resource" domains (huggingface, multimedia),
pooled over records (micro): node-F1 over tool names, edge-F1 over links read from ``<node-k>``
arguments, t-F1 over ``TOOL-KIND`` argument names, v-F1 over ``TOOL-KIND-VALUE`` and the normalized
edit distance between tool sequences. One change: a missing or unparsable prediction counts as an
empty plan instead of being skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DOMAINS",
    "METRICS",
    "Scores",
    "Tool",
    "ToolList",
    "content_kind",
    "data_dir",
    "evaluate",
    "load_tools",
    "read_jsonl",
    "read_predictions",
]

DOMAINS = ("huggingface", "multimedia")
METRICS = ("n_f1", "e_f1", "t_f1", "v_f1", "ned")
TYPES = ("single", "chain", "dag")

NODE_REF = re.compile(r"<node-(\d+)>")

# TaskBench's kinds of a literal argument, by a file extension anywhere in it (checked in this order)
_EXTENSIONS = {
    "image": ("jpg", "png", "jpeg", "gif", "bmp", "tiff", "svg", "ico"),
    "audio": ("mp3", "wav", "wma", "ogg", "aac", "flac", "aiff", "au"),
    "video": ("mp4", "avi", "mov", "flv", "wmv", "mkv", "webm", "m4v", "mpg", "mpeg"),
}


def data_dir() -> Path:
    """The TaskBench data beside the repository: ``../shared/taskbench`` from the repository root."""
    return Path(__file__).resolve().parents[3] / "shared" / "taskbench"


@dataclass(frozen=True, slots=True)
class Tool:
    """One TaskBench tool: its exact id and its typed inputs and outputs (lower-case kinds)."""

    id: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    desc: str = ""

    @property
    def output(self) -> str:
        """The kind a ``<node-k>`` reference to this tool carries ('none' for a tool with no output)."""
        return self.outputs[0] if self.outputs else "none"


@dataclass
class ToolList:
    """A domain's tools in their listed order; a link A -> B is possible when A makes a kind B takes."""

    name: str
    tools: list[Tool]
    by_id: dict[str, Tool] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {tool.id: tool for tool in self.tools}

    @property
    def ids(self) -> list[str]:
        return [tool.id for tool in self.tools]

    def can_feed(self, source: str, target: str) -> bool:
        a, b = self.by_id.get(source), self.by_id.get(target)
        return a is not None and b is not None and source != target and any(k in b.inputs for k in a.outputs)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodes": [
                {"id": t.id, "desc": t.desc, "input-type": list(t.inputs), "output-type": list(t.outputs)}
                for t in self.tools
            ],
        }

    @classmethod
    def from_json(cls, data: Any, name: str) -> ToolList:
        """A tool list in TaskBench's ``tool_desc.json`` format."""
        nodes = data.get("nodes") if isinstance(data, dict) else data
        if not isinstance(nodes, list) or not nodes:
            raise ValueError("a tool list is {'nodes': [{'id', 'input-type', 'output-type'}, ...]}")
        tools = []
        for node in nodes:
            if not isinstance(node, dict) or not isinstance(node.get("id"), str):
                raise ValueError(f"each tool needs an 'id' string; got {node!r:.80}")
            tools.append(
                Tool(
                    id=node["id"],
                    inputs=tuple(str(k).lower() for k in node.get("input-type", [])),
                    outputs=tuple(str(k).lower() for k in node.get("output-type", [])),
                    desc=str(node.get("desc", "")),
                )
            )
        return cls(name=str(data.get("name", name)) if isinstance(data, dict) else name, tools=tools)


def load_tools(spec: str | Path) -> ToolList:
    """A domain's tool list ('huggingface', 'multimedia': shipped with baton) or a ``tool_desc.json`` file."""
    if isinstance(spec, str) and spec in DOMAINS:
        text = resources.files("baton.planners").joinpath("models", f"{spec}.tools.json").read_text("utf-8")
        return ToolList.from_json(json.loads(text), spec)
    path = Path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(
            f"cannot read the tool list '{spec}' ({exc.strerror}); give huggingface, multimedia or a tool_desc.json"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"the tool list '{spec}' is not JSON ({exc})") from None
    return ToolList.from_json(data, path.name.split(".")[0])


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value or None when the line is blank or not JSON) for every line."""
    with path.open(encoding="utf-8-sig", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            try:
                yield number, json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                yield number, None


def read_predictions(path: Path) -> dict[str, Any]:
    """Prediction records by id; a line that cannot be read is left out (and so scores as an empty plan)."""
    found: dict[str, Any] = {}
    for _, record in read_jsonl(path):
        if isinstance(record, dict) and "id" in record:
            found[str(record["id"])] = record
    return found


def content_kind(value: str) -> str:
    """TaskBench's kind of a literal argument: image, audio or video by a file extension in it, else text."""
    value = value.strip("'")
    for kind, extensions in _EXTENSIONS.items():
        if any(f".{ext}" in value for ext in extensions):
            return kind
    return "text"


def _nodes(record: Any) -> list[dict[str, Any]] | None:
    """The task nodes of a gold record or a prediction (``result`` may be an object or JSON text)."""
    if not isinstance(record, dict):
        return None
    result = record.get("result", record)
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except json.JSONDecodeError:
            return None
    nodes = result.get("task_nodes") if isinstance(result, dict) else None
    if not isinstance(nodes, list):
        return None
    return [node for node in nodes if isinstance(node, dict) and isinstance(node.get("task"), str)]


@dataclass
class _Labels:
    """One plan's labels for each metric."""

    tools: list[str] = field(default_factory=list)  # in node order, for NED
    edges: set[str] = field(default_factory=set)
    arg_names: set[str] = field(default_factory=set)
    arg_values: set[str] = field(default_factory=set)


def _labels(nodes: Sequence[Mapping[str, Any]], tools: ToolList) -> _Labels:
    names = [str(node["task"]).replace("_", " ") for node in nodes]
    labels = _Labels(tools=names)
    for index, node in enumerate(nodes):
        raw = node.get("arguments", [])
        arguments = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else [raw]
        name = names[index]
        for argument in arguments:
            text = argument if isinstance(argument, str) else json.dumps(argument, ensure_ascii=False)
            refs = [int(k) for k in NODE_REF.findall(text)]
            sources = [k for k in dict.fromkeys(refs) if k < len(names) and k != index]
            if sources:
                for k in sources:
                    source = names[k]
                    tool = tools.by_id.get(source)
                    kind = tool.output if tool is not None else "unknown"
                    labels.edges.add(f"{source} - {name}")
                    labels.arg_names.add(f"{name}-{kind}")
                    labels.arg_values.add(f"{name}-{kind}-{source}")
            elif index in refs:
                continue  # a reference to itself only: ignored, as TaskBench does
            else:
                kind = content_kind(text)
                labels.arg_names.add(f"{name}-{kind}")
                labels.arg_values.add(f"{name}-{kind}-{text}")
    return labels


class _Pool:
    """Pooled binary decisions over the union of gold and predicted labels of each record."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def add(self, gold: Iterable[str], pred: Iterable[str], allowed: set[str] | None = None) -> None:
        gold_set, pred_set = set(gold), set(pred)
        if allowed is not None:
            gold_set &= allowed
            pred_set &= allowed
        self.tp += len(gold_set & pred_set)
        self.fp += len(pred_set - gold_set)
        self.fn += len(gold_set - pred_set)

    def f1(self) -> float | None:
        """Percent F1; None when neither gold nor prediction has any label (e.g. links of one-task plans)."""
        if not self.tp + self.fp + self.fn:
            return None
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        return 100 * 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Normalized InDel similarity (Levenshtein.ratio): 1 - (insertions + deletions) / (len(a) + len(b))."""
    if not a and not b:
        return 1.0
    previous = [0] * (len(b) + 1)  # longest common subsequence, row by row
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return 2 * previous[-1] / (len(a) + len(b))


@dataclass
class Scores:
    """Metrics of one group of records: F1 in percent, NED as a fraction (lower is better); None when undefined."""

    records: int = 0
    missing: int = 0  # predictions missing or unreadable, scored as empty plans
    n_f1: float | None = None
    e_f1: float | None = None
    t_f1: float | None = None
    v_f1: float | None = None
    ned: float | None = None

    def to_json(self) -> dict[str, float | int | None]:
        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "records": self.records,
            "missing": self.missing,
            "n_f1": rounded(self.n_f1, 2),
            "e_f1": rounded(self.e_f1, 2),
            "t_f1": rounded(self.t_f1, 2),
            "v_f1": rounded(self.v_f1, 2),
            "ned": rounded(self.ned, 4),
        }


def _score(pairs: Sequence[tuple[_Labels, _Labels, bool]], tools: ToolList) -> Scores:
    allowed = set(tools.ids)
    index = {tool_id: position + 1 for position, tool_id in enumerate(tools.ids)}
    pools = {metric: _Pool() for metric in ("n_f1", "e_f1", "t_f1", "v_f1")}
    similarity = 0.0
    for gold, pred, _ in pairs:
        pools["n_f1"].add(gold.tools, pred.tools, allowed)
        pools["e_f1"].add(gold.edges, pred.edges)
        pools["t_f1"].add(gold.arg_names, pred.arg_names)
        pools["v_f1"].add(gold.arg_values, pred.arg_values)
        similarity += _similarity([index.get(t, 0) for t in gold.tools], [index.get(t, 0) for t in pred.tools])
    count = len(pairs)
    return Scores(
        records=count,
        missing=sum(missing for _, _, missing in pairs),
        n_f1=pools["n_f1"].f1(),
        e_f1=pools["e_f1"].f1(),
        t_f1=pools["t_f1"].f1(),
        v_f1=pools["v_f1"].f1(),
        ned=1 - similarity / count if count else None,
    )


def evaluate(gold: Iterable[Any], predictions: Mapping[str, Any], tools: ToolList) -> dict[str, Scores]:
    """Scores overall ('all') and per gold type (single, chain, dag) of predictions matched to gold by id.

    Gold records that cannot be read are skipped; a missing or unreadable prediction is an empty plan.
    """
    groups: dict[str, list[tuple[_Labels, _Labels, bool]]] = {"all": []}
    for record in gold:
        gold_nodes = _nodes(record)
        if gold_nodes is None:
            continue
        pred_nodes = _nodes(predictions.get(str(record.get("id"))))
        pair = (_labels(gold_nodes, tools), _labels(pred_nodes or [], tools), pred_nodes is None)
        groups["all"].append(pair)
        kind = record.get("type")
        if isinstance(kind, str):
            groups.setdefault(kind, []).append(pair)
    ordered = ["all", *(t for t in TYPES if t in groups), *sorted(set(groups) - {"all", *TYPES})]
    return {name: _score(groups[name], tools) for name in ordered}
