"""The learned planner's model: which tools a request needs, their order, links and arguments.

``baton train planner`` fits it on TaskBench's requests (``training.py``); each domain's model is one
small zip in ``planners/models/`` holding a JSON header and numpy arrays (no pickle). Planning needs
numpy only and takes about three milliseconds:

1. **Reading.** File names and URLs become kind tokens (``zzimgfile``, ``zzurlaud``), other quoted
   spans ``zzquote``, and the kinds of attached files are appended the same way, so the models see
   what kinds of input a request brings rather than its particular names and quotes.
2. **Tools.** Two linear models over character 2-5-grams and word 1-2-grams score every tool. One reads
   the whole request (one-vs-rest); the other reads each clause (softmax over the tools and "none",
   trained on TaskBench's step descriptions and on the clauses aligned to them) and keeps each tool's
   best clause. A stacked logistic model turns both scores and type evidence (is the tool's input
   given; could another likely tool make its input or use its output) into a probability per tool.
   The tool set is chosen as a whole: the sum of the tools' log-odds against the threshold, less a
   penalty per media input nothing provides and per extra part that does not link up.
3. **Order and links.** Each tool is placed where the request mentions it: its best clause, then its
   best word there. The plan is the order that agrees best with those places and whose links are
   type-correct in the tool graph (exact search, Held-Karp, up to 8 tools). A tool takes its
   predecessor's output; an input of a kind that no file gives takes an earlier tool's unused output
   of that kind, which makes DAGs.
4. **Arguments.** References to linked tools by kind, file names and URLs from the request by kind,
   quoted spans for text (else the request itself).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from baton.taskbench import ToolList

__all__ = [
    "FORMAT",
    "KIND_TOKENS",
    "MODEL_DOMAINS",
    "Node",
    "PlannerModel",
    "Prediction",
    "char_ngrams",
    "clauses",
    "load_model",
    "model_path",
    "normalize_request",
    "quoted_spans",
    "read_artifact",
    "word_ngrams",
    "write_artifact",
]

FORMAT = 1
MODEL_DOMAINS = ("huggingface", "multimedia", "baton")  # "baton": both domains in baton's task names
MAX_EXACT = 8  # tools up to which the best order is found exactly

_EXTENSIONS = {
    "image": "jpe?g|png|gif|bmp|tiff?|svg|ico|webp",
    "audio": "mp3|wav|wma|ogg|aac|flac|aiff|au|m4a|opus",
    "video": "mp4|avi|mov|flv|wmv|mkv|webm|m4v|mpe?g",
}
_TOKEN = {"image": "img", "audio": "aud", "video": "vid"}
_ALL_EXTENSIONS = "|".join(_EXTENSIONS.values())
URL = re.compile(r"(?:https?://|www\.)[^\s'\"<>()\[\]{}]+")
FILE_NAME = re.compile(rf"(?<![\w/.-])[\w./-]*\w\.(?:{_ALL_EXTENSIONS})(?![\w-])", re.IGNORECASE)
# a quoted span: "…", “…”, or '…' / ‘…’ whose quotes are not apostrophes inside words (it's, don't)
QUOTED = re.compile(r"\"([^\"]{1,2000})\"|“([^”]{1,2000})”|(?<!\w)['‘]([^\n]{1,2000}?)['’](?!\w)")
_CLAUSE_BREAK = re.compile(
    r"(?<=[.?!;])\s+"
    r"|,\s*(?:and\s+)?(?=then\b|also\b|finally\b|after\b|next\b|lastly\b)"
    r"|\s+(?:and\s+)?then\s+"
    r"|,\s+and\s+"
    r"|\band\s+(?:also|finally|lastly)\b",
    re.IGNORECASE,
)
_DEFAULT_FILES = {
    "image": "example.jpg",
    "audio": "example.wav",
    "video": "example.mp4",
    "url": "https://www.example.com",
}
KIND_TOKENS = {"image": "zzimg", "audio": "zzaud", "video": "zzvid", "url": "zzurl"}  # in normalized text
_WORD = re.compile(r"\b\w\w+\b")
_SPACES = re.compile(r"\s\s+")


def media_kind(name: str) -> str | None:
    """image, audio or video for a file name or URL ending in a media extension."""
    name = name.lower().rstrip(".,;:!?")
    for kind, extensions in _EXTENSIONS.items():
        if re.search(rf"\.(?:{extensions})$", name):
            return kind
    return None


def quoted_spans(text: str) -> list[str]:
    """The quoted spans of a request, in order."""
    return [next(g for g in match.groups() if g is not None) for match in QUOTED.finditer(text)]


def normalize_request(request: str, kinds: Iterable[str] = ()) -> str:
    """The request as the models read it: files, URLs and quotes as kind tokens; attached kinds appended."""

    def url(match: re.Match[str]) -> str:
        return f" zzurl{_TOKEN.get(media_kind(match.group(0)) or '', '')} "

    def file(match: re.Match[str]) -> str:
        return f" zz{_TOKEN.get(media_kind(match.group(0)) or '', 'other')}file "

    def quote(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1].strip()
        return f" {inner} " if re.fullmatch(r"zz\w+", inner) else " zzquote "

    text = QUOTED.sub(quote, FILE_NAME.sub(file, URL.sub(url, request)))
    attached = " ".join(f"zz{_TOKEN[k]}file" for k in kinds if k in _TOKEN)
    return f"{text} {attached}".strip() if attached else text.strip()


def clauses(text: str) -> list[str]:
    """A normalized request cut into clauses ("... and then ...", sentences, ", also ...")."""
    found = [part.strip() for part in _CLAUSE_BREAK.split(text) if part and part.strip()]
    return found or [text]


def char_ngrams(text: str, low: int = 2, high: int = 5) -> list[str]:
    """Character n-grams inside word boundaries (scikit-learn's 'char_wb'), lower-cased."""
    grams: list[str] = []
    for word in _SPACES.sub(" ", text.lower()).split():
        padded = f" {word} "
        for n in range(low, high + 1):
            if len(padded) < n:
                break
            grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


def word_ngrams(text: str) -> list[str]:
    """Word unigrams and bigrams (words of two or more characters), lower-cased."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


# ---------------------------------------------------------------------------------------------------
# artefacts: a zip of a JSON header and .npy arrays, written byte for byte the same for the same model


def write_artifact(path: Path, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write a model reproducibly: fixed entry order and timestamps, no pickled objects."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:

        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=9)

        add("header.json", json.dumps(header, sort_keys=True, ensure_ascii=False).encode())
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            add(f"{name}.npy", buffer.getvalue())
    temporary.replace(path)


def read_artifact(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        header = json.loads(archive.read("header.json"))
        arrays = {
            name[: -len(".npy")]: np.lib.format.read_array(io.BytesIO(archive.read(name)), allow_pickle=False)
            for name in archive.namelist()
            if name.endswith(".npy")
        }
    return header, arrays


def model_path(domain: str) -> Path:
    """Where the shipped model of a domain lives (in the source tree or the installed package)."""
    return Path(str(resources.files("baton.planners").joinpath("models", f"{domain}.planner.zip")))


@cache
def load_model(domain: str) -> PlannerModel:
    """The shipped model of a domain ("huggingface", "multimedia" or "baton"), loaded once per process."""
    if domain not in MODEL_DOMAINS:
        raise ValueError(f"no planner model for '{domain}'; use one of {', '.join(MODEL_DOMAINS)}")
    path = model_path(domain)
    if not path.exists():
        raise FileNotFoundError(
            f"the planner model {path.name} is missing; rebuild it with: baton train planner --domain {domain}"
        )
    return PlannerModel.from_bytes(path.read_bytes())


# ---------------------------------------------------------------------------------------------------
# prediction


@dataclass
class Node:
    """One planned tool: TaskBench arguments (literals and ``<node-k>``) and the nodes it takes from."""

    tool: str
    args: list[str] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    probability: float = 0.0


@dataclass
class Prediction:
    """A planned tool graph in topological order, with the model's confidence in its tool set."""

    nodes: list[Node]
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)  # every tool's probability

    def to_taskbench(self) -> dict[str, Any]:
        """TaskBench's prediction format: task_steps, task_nodes, task_links."""
        steps = []
        for index, node in enumerate(self.nodes):
            given = ", ".join(
                f"the output of step {int(a[6:-1]) + 1}" if a.startswith("<node-") else repr(a[:60]) for a in node.args
            )
            steps.append(f"Step {index + 1}: use {node.tool}" + (f" on {given}" if given else ""))
        return {
            "task_steps": steps,
            "task_nodes": [{"task": node.tool, "arguments": list(node.args)} for node in self.nodes],
            "task_links": [
                {"source": self.nodes[parent].tool, "target": node.tool}
                for node in self.nodes
                for parent in node.parents
            ],
        }


@dataclass
class _Request:
    """What the argument filler needs from a request: files and URLs by kind, quoted spans."""

    text: str
    files: dict[str, list[str]]
    urls: list[str]
    quotes: list[str]

    @classmethod
    def read(cls, request: str, attached: Sequence[tuple[str, str]]) -> _Request:
        files: dict[str, list[str]] = {}
        for name, kind in attached:
            files.setdefault(kind, []).append(name)
        urls = [u.rstrip(".,;:!?") for u in URL.findall(request)]
        for url in urls:
            url_kind = media_kind(url)
            if url_kind is not None:
                files.setdefault(url_kind, []).append(url)
        without_urls = URL.sub(" ", request)
        for name in FILE_NAME.findall(without_urls):
            name_kind = media_kind(name)
            if name_kind is not None and name not in files.get(name_kind, []):
                files.setdefault(name_kind, []).append(name)
        quotes = [q for q in quoted_spans(request) if media_kind(q.strip()) is None and not URL.fullmatch(q.strip())]
        return cls(text=request, files=files, urls=urls, quotes=quotes)


def best_path(root: Sequence[float], pair: Sequence[Sequence[float]]) -> list[int]:
    """The order of all items maximizing root[first] + the sum of pair[a][b] over neighbours (Held-Karp)."""
    n = len(root)
    full = (1 << n) - 1
    best = [[-math.inf] * n for _ in range(full + 1)]
    back = [[-1] * n for _ in range(full + 1)]
    for a in range(n):
        best[1 << a][a] = root[a]
    for mask in range(1, full + 1):
        row = best[mask]
        for last in range(n):
            score = row[last]
            if score == -math.inf:
                continue
            after = pair[last]
            for following in range(n):
                if mask >> following & 1:
                    continue
                grown = mask | 1 << following
                value = score + after[following]
                if value > best[grown][following]:
                    best[grown][following] = value
                    back[grown][following] = last
    last = max(range(n), key=lambda a: best[full][a])
    path = []
    mask = full
    while last != -1:
        path.append(last)
        last, mask = back[mask][last], mask ^ (1 << last)
    return path[::-1]


def _parts(mask: int, members: Sequence[int], linked: Sequence[int]) -> int:
    """How many connected parts the members of a bit mask form, given each one's links as a bit mask."""
    seen = 0
    parts = 0
    for start in members:
        if seen >> start & 1:
            continue
        parts += 1
        frontier = 1 << start
        while frontier:
            seen |= frontier
            grown = 0
            for x in members:
                if frontier >> x & 1:
                    grown |= linked[x]
            frontier = grown & mask & ~seen
    return parts


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30, 30))))


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(clipped / (1 - clipped)))


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True))


class PlannerModel:
    """A trained planner for one tool list; ``predict`` plans a request in TaskBench's terms."""

    def __init__(self, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        if header.get("format") != FORMAT:
            raise ValueError(
                f"planner model format {header.get('format')} is not {FORMAT}; rebuild it with baton train planner"
            )
        self.header = dict(header)
        self.domain: str = header["domain"]
        self.tools = ToolList.from_json(header["tools"], self.domain)
        self.ids = self.tools.ids
        self.params: dict[str, Any] = dict(header["params"])
        self.char_range = tuple(header["char_range"])
        self.vocab_char = {term: i for i, term in enumerate(header["vocab_char"])}
        offset = len(self.vocab_char)
        self.vocab_word = {term: offset + i for i, term in enumerate(header["vocab_word"])}
        self.idf = arrays["idf"].astype(np.float32)
        self.doc_w, self.doc_scale, self.doc_b = arrays["doc_w"], arrays["doc_scale"], arrays["doc_b"]
        self.seg_w, self.seg_scale, self.seg_b = arrays["seg_w"], arrays["seg_scale"], arrays["seg_b"]
        self.prior = arrays["prior"].astype(np.float32)  # log-odds that tool i feeds tool j, given both
        self.defaults: dict[str, str] = dict(header.get("default_files", {}))
        self.index = {tool_id: i for i, tool_id in enumerate(self.ids)}
        self.feeds = np.array(
            [[self.tools.can_feed(a, b) for b in self.ids] for a in self.ids], dtype=bool
        )  # feeds[a, b]: a's output can be b's input
        self.stack_w: np.ndarray | None = arrays.get("stack_w")
        self.stack_b = float(arrays["stack_b"][0]) if "stack_b" in arrays else 0.0
        self.outputs = [set(self.tools.by_id[t].outputs) for t in self.ids]
        self.inputs_media = [sorted({k for k in self.tools.by_id[t].inputs if k in _DEFAULT_FILES}) for t in self.ids]

    @classmethod
    def from_bytes(cls, data: bytes) -> PlannerModel:
        header, arrays = read_artifact(data)
        return cls(header, arrays)

    # -- features

    def _vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """TF-IDF (sublinear tf, l2 per block) of a normalized text: feature indices and values."""
        indices: list[int] = []
        values: list[float] = []
        for grams, vocab in (
            (char_ngrams(text, *self.char_range), self.vocab_char),
            (word_ngrams(text), self.vocab_word),
        ):
            counts = Counter(vocab[g] for g in grams if g in vocab)
            if not counts:
                continue
            block = np.fromiter(counts, dtype=np.int64, count=len(counts))
            weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))) * self.idf[
                block
            ]
            weights /= np.linalg.norm(weights) or 1.0
            indices.extend(block.tolist())
            values.extend(weights.tolist())
        return np.asarray(indices, dtype=np.int64), np.asarray(values, dtype=np.float32)

    @staticmethod
    def _logits(vector: tuple[np.ndarray, np.ndarray], w: np.ndarray, scale: np.ndarray, b: np.ndarray) -> np.ndarray:
        indices, values = vector
        if not len(indices):
            return np.asarray(b, dtype=np.float32).copy()
        return np.asarray((values @ w[indices].astype(np.float32)) * scale + b)

    def base_scores(self, text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(whole-request probability per tool, per-clause probabilities [clause, tool], clauses)."""
        whole = _sigmoid(self._logits(self._vector(text), self.doc_w, self.doc_scale, self.doc_b))
        parts = clauses(text)
        per_clause = np.stack(
            [_softmax(self._logits(self._vector(p), self.seg_w, self.seg_scale, self.seg_b))[:-1] for p in parts]
        )
        return whole, per_clause, parts

    def stack_features(self, whole: np.ndarray, per_clause: np.ndarray, text: str) -> np.ndarray:
        """Per tool: the two models' scores, whether the request gives its input kind, and how likely
        other tools are to make its input or use its output (a tool set must fit together by type)."""
        best_clause = per_clause.max(axis=0)
        mix = float(self.params["mix"])
        mixed = mix * whole + (1 - mix) * best_clause
        given = {kind for kind, token in KIND_TOKENS.items() if token in text} | {"text"}
        count = len(self.ids)
        others = np.where(np.eye(count, dtype=bool), 0.0, mixed[None, :])  # others[t, u] = mixed[u], u != t
        producer = np.where(self.feeds.T, others, 0.0).max(axis=1)  # best u with u -> t
        consumer = np.where(self.feeds, others, 0.0).max(axis=1)  # best u with t -> u
        needs = np.array([bool(media) and not (set(media) & given) for media in self.inputs_media], dtype=float)
        rank = np.empty(count)
        rank[np.argsort(-mixed)] = np.arange(count)
        columns = [
            _logit(whole),
            _logit(best_clause),
            _logit(mixed),
            producer,
            consumer,
            needs,
            needs * producer,
            np.full(count, mixed.sum()),
            1.0 / (1.0 + rank),
            np.full(count, float(len(per_clause))),
        ]
        return np.column_stack([*columns, np.eye(count)])

    def tool_scores(self, text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(probability per tool, per-clause probabilities [clause, tool], clauses) of a normalized text."""
        whole, per_clause, parts = self.base_scores(text)
        if self.stack_w is None:
            mix = float(self.params["mix"])
            return mix * whole + (1 - mix) * per_clause.max(axis=0), per_clause, parts
        features = self.stack_features(whole, per_clause, text)
        return _sigmoid(features @ self.stack_w + self.stack_b), per_clause, parts

    def _place(self, tool: int, per_clause: np.ndarray, parts: Sequence[str]) -> float:
        """Where a tool is mentioned: its best clause, then its best word there (clause index + fraction)."""
        clause = int(per_clause[:, tool].argmax())
        words = parts[clause].split()
        if len(words) < 2:
            return float(clause)
        evidence = []
        for word in words:
            columns = [self.vocab_char[g] for g in char_ngrams(word, *self.char_range) if g in self.vocab_char]
            columns += [self.vocab_word[g] for g in word_ngrams(word) if g in self.vocab_word]
            evidence.append(float((self.idf[columns] * self.seg_w[columns, tool]).sum()) if columns else 0.0)
        smooth = np.convolve(np.asarray(evidence), np.ones(3), mode="same")
        return clause + (int(smooth.argmax()) + 0.5) / len(words)

    # -- planning

    def predict(
        self,
        request: str,
        attached: Sequence[tuple[str, str]] = (),
        *,
        at_least_one: bool = True,
        boosts: Mapping[str, float] | None = None,
        damp: float = 1.0,
    ) -> Prediction:
        """Plan a request: the tools whose probability passes the threshold, ordered, linked and filled.

        ``attached`` lists (file name, kind) of files given beside the request. ``boosts`` raises the
        probability of tools named by other evidence (e.g. keyword rules) to at least the given value,
        and ``damp`` scales the others' when there are boosts. With ``at_least_one`` the best tool is
        kept even when no set scores (TaskBench requests always need a tool).
        """
        text = normalize_request(request, [kind for _, kind in attached])
        probabilities, per_clause, parts = self.tool_scores(text)
        if boosts and damp != 1.0:
            boosted = [self.index[t] for t in boosts if t in self.index]
            others = np.ones(len(probabilities), dtype=bool)
            others[boosted] = False
            probabilities[others] *= damp
        for tool_id, value in (boosts or {}).items():
            if tool_id in self.index:
                probabilities[self.index[tool_id]] = max(probabilities[self.index[tool_id]], value)
        threshold = float(self.params["threshold"])
        given = {kind for kind, token in KIND_TOKENS.items() if token in text}
        chosen = self._choose(probabilities, given)
        if not chosen and at_least_one:
            chosen = [int(probabilities.argmax())]
        confidence = self._confidence(probabilities, set(chosen), threshold)
        scores = {tool_id: round(float(p), 4) for tool_id, p in zip(self.ids, probabilities, strict=True)}
        if not chosen:
            return Prediction(nodes=[], confidence=confidence, scores=scores)
        facts = _Request.read(request, attached)
        places = {i: self._place(i, per_clause, parts) for i in chosen}
        order = self._order(
            [int(i) for i in chosen], places, set(facts.files) | {"text"} | ({"url"} if facts.urls else set())
        )
        nodes = self._link([self.ids[i] for i in order], facts)
        for node in nodes:
            node.probability = round(float(probabilities[self.index[node.tool]]), 4)
        return Prediction(nodes=nodes, confidence=confidence, scores=scores)

    def arrange(
        self,
        request: str,
        tool_ids: Sequence[str],
        attached: Sequence[tuple[str, str]] = (),
        *,
        keep_order: bool = False,
    ) -> list[Node]:
        """Order, link and fill a given set of tools for a request (as ``predict`` does for the tools it
        chooses); ``keep_order`` takes the tools in the order given. Used to measure the ordering and
        linking apart from the choice of tools (benchmarks/bench_planner.py)."""
        unknown = [t for t in tool_ids if t not in self.index]
        if unknown:
            raise ValueError(f"tools not in the {self.domain} tool list: {', '.join(unknown)}")
        chosen = list(dict.fromkeys(self.index[t] for t in tool_ids))
        facts = _Request.read(request, attached)
        if not keep_order and len(chosen) > 1:
            _, per_clause, parts = self.tool_scores(normalize_request(request, [kind for _, kind in attached]))
            places = {i: self._place(i, per_clause, parts) for i in chosen}
            chosen = self._order(chosen, places, set(facts.files) | {"text"} | ({"url"} if facts.urls else set()))
        return self._link([self.ids[i] for i in chosen], facts)

    def _choose(self, probabilities: np.ndarray, given: set[str]) -> list[int]:
        """The tool set with the best score: each tool's log-odds against the threshold, less a penalty
        for each media input that neither the request nor another chosen tool provides, and one for
        each part the set falls into (a plan's tools link up)."""
        threshold = float(self.params["threshold"])
        w_missing, w_parts = float(self.params["w_missing"]), float(self.params["w_parts"])
        ranked = [int(i) for i in np.argsort(-probabilities)[: int(self.params["candidates"])]]
        candidates = [i for i in ranked if probabilities[i] >= float(self.params["floor"])]
        if not candidates:
            return []
        p = np.clip(probabilities[candidates], 1e-6, 1 - 1e-6)
        gain = (np.log(p / (1 - p)) - math.log(threshold / (1 - threshold))).tolist()
        count = len(candidates)
        needs: list[list[int]] = []  # per candidate, per missing media input: the candidates that could make it
        linked = [0] * count  # per candidate: candidates it links with either way
        for x, i in enumerate(candidates):
            needs.append([])
            for kind in self.inputs_media[i]:
                if kind not in given:
                    needs[x].append(
                        sum(1 << y for y, j in enumerate(candidates) if self.feeds[j, i] and kind in self.outputs[j])
                    )
            for y, j in enumerate(candidates):
                if x != y and (self.feeds[i, j] or self.feeds[j, i]):
                    linked[x] |= 1 << y
        best_score, best_mask = 0.0, 0
        for mask in range(1, 1 << count):
            members = [x for x in range(count) if mask >> x & 1]
            if len(members) > int(self.params["max_tools"]):
                continue
            score = sum(gain[x] for x in members)
            score -= w_missing * sum(1 for x in members for makers in needs[x] if not makers & mask)
            if w_parts and len(members) > 1:
                score -= w_parts * (_parts(mask, members, linked) - 1)
            if score > best_score:
                best_score, best_mask = score, mask
        return [candidates[x] for x in range(count) if best_mask >> x & 1]

    @staticmethod
    def _confidence(probabilities: np.ndarray, chosen: set[int], threshold: float) -> float:
        """How sure the model is of its tool set: the least sure decision, rescaled so the threshold is 0.5."""
        shift = math.log(threshold / (1 - threshold))
        logits = np.log(np.clip(probabilities, 1e-6, 1 - 1e-6) / np.clip(1 - probabilities, 1e-6, 1))
        centred = _sigmoid(logits - shift)
        sure = [float(centred[i]) if i in chosen else 1 - float(centred[i]) for i in range(len(probabilities))]
        return round(min(sure), 4)

    def _order(self, chosen: list[int], places: Mapping[int, float], given: set[str]) -> list[int]:
        """The order of tools that agrees best with where they are mentioned and links by type."""
        by_place = sorted(chosen, key=lambda i: (places[i], i))
        if len(chosen) == 1 or len(chosen) > MAX_EXACT:
            return by_place
        w_place, w_prior, w_root = (float(self.params[k]) for k in ("w_place", "w_prior", "w_root"))
        root = [0.0 if any(k in given for k in self.tools.by_id[self.ids[a]].inputs) else -w_root for a in by_place]
        pair = [
            [
                (0.0 if self.feeds[a, b] else -5.0)
                + w_place * float(np.sign(places[b] - places[a]))
                + w_prior * float(self.prior[a, b])
                + (1e-6 if x < y else 0.0)  # ties keep the order of mention
                for y, b in enumerate(by_place)
            ]
            for x, a in enumerate(by_place)
        ]
        return [by_place[i] for i in best_path(root, pair)]

    def _link(self, order: Sequence[str], facts: _Request) -> list[Node]:
        """Nodes in order, each taking its predecessor's output when the types allow, then filled."""
        nodes: list[Node] = []
        consumed: set[int] = set()
        used: Counter[str] = Counter()
        quotes = list(facts.quotes)
        for index, tool_id in enumerate(order):
            tool = self.tools.by_id[tool_id]
            args: list[str | None] = [None] * len(tool.inputs)
            parents: list[int] = []
            if index > 0:
                made = self.tools.by_id[order[index - 1]].outputs
                slot = next((s for s, kind in enumerate(tool.inputs) if kind in made), None)
                if slot is not None:
                    args[slot] = f"<node-{index - 1}>"
                    parents.append(index - 1)
                    consumed.add(index - 1)
            for slot, kind in enumerate(tool.inputs):
                if args[slot] is not None:
                    continue
                if kind not in _DEFAULT_FILES:
                    args[slot] = quotes.pop(0) if quotes else facts.text
                    continue
                given = facts.urls if kind == "url" else facts.files.get(kind, [])
                fresh = next((f for f in given if not used[f]), None)
                earlier = next(
                    (
                        k
                        for k in range(index - 1, -1, -1)
                        if k not in consumed and kind in self.tools.by_id[order[k]].outputs
                    ),
                    None,
                )
                if fresh is None and earlier is not None:
                    args[slot] = f"<node-{earlier}>"
                    parents.append(earlier)
                    consumed.add(earlier)
                else:
                    value = fresh or (given[0] if given else self.defaults.get(kind, _DEFAULT_FILES[kind]))
                    used[value] += 1
                    args[slot] = value
            nodes.append(Node(tool=tool_id, args=[a for a in args if a is not None], parents=parents))
        return nodes
