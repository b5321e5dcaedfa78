"""Planning without an LLM: a model learned from TaskBench, helped by keyword rules for short commands.

``LocalPlanner`` (the default without an LLM) asks the learned model (``model.py``; its 'baton' model
knows both TaskBench domains in baton's task names) which tasks a request needs and how they link,
then wires them as baton arguments: media inputs take a linked task's output, else an attached file,
else the latest earlier output of that kind; text inputs take a linked output, a quoted span, the
words after "say", or the request. Trigger phrases (``TRIGGERS``) raise the model's probability of
the tasks they name (and damp the others'), so terse commands ("say 'hi'", "what does this audio
say") plan as before. A task TaskBench does not have (e.g. background-removal) is planned by the
trigger phrases alone; a request the model finds nothing in ("", "hmm", small talk, which the model
learned from ``models/no_task.txt``) gets each attached file read, or no task at all.

``KeywordPlanner``, the first local planner, still plans from the trigger phrases alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baton.plan import Plan, Task
from baton.planners import Attachment, PlanContext, PlannerError
from baton.planners.model import FILE_NAME, QUOTED, quoted_spans
from baton.tasks import Port, TaskSpec, all_tasks, get_task, normalize

if TYPE_CHECKING:
    from baton.planners.model import PlannerModel, Prediction

__all__ = ["KeywordPlanner", "LocalPlanner"]

KEYWORD_BOOST = 0.9  # the probability a task named by a trigger phrase gets at least
KEYWORD_DAMP = 0.5  # ... and the factor on the other tasks' probabilities (the rules are precise)
MIN_WORDS = 2  # a request of fewer words (and no trigger phrase) is not read by the model
_WORDS = re.compile(r"\b\w\w+\b")
DEFAULT_READERS = {"image": "image-to-text", "audio": "automatic-speech-recognition", "video": "video-to-text"}

_A = r"(?:this|the|that|my|an?|attached)"
_IMAGE = r"(?:image|picture|photo|photograph|pic|screenshot|scan|sign|poster|document|page)"
_AUDIO = r"(?:audio|recording|clip|voice|speaker|sound|speech|song|file|wav|mp3|message)"

TRIGGERS: dict[str, list[str]] = {
    "image-to-text": [
        r"\bocr\b",
        r"\bread (?:out )?(?:the |all )?(?:text|words|writing|letters)\b",
        rf"\b(?:text|words|writing) (?:in|on|from|of) {_A}? ?{_IMAGE}",
        rf"\bwhat does {_A} {_IMAGE} say\b",
        r"\b(?:extract|recogni[sz]e|get|copy) (?:the )?(?:text|words)\b",
        rf"\b(?:caption|describe) {_A} {_IMAGE}\b",
        rf"\btranscribe {_A} {_IMAGE}\b",
    ],
    "text-to-speech": [
        r"\b(?:aloud|out loud)\b",
        r"\bread (?:it|this|that) (?:to me|out)\b",
        r"\b(?:speak|pronounce|narrate|voice)\b(?! (?:changer|recording))",
        r"\btext[- ]to[- ]speech\b|\btts\b",
        r"^\W*(?:please |can you |could you )?say\b",
        r"\bsay ['\"“‘]",
        r"\b(?:as|into|to) (?:an? )?(?:audio|speech|wav|mp3|sound)(?: file)?\b",
    ],
    "automatic-speech-recognition": [
        rf"\bwhat (?:does|did|do) {_A} {_AUDIO}s? say\b",
        r"\bwhat(?:'s| is| was) (?:said|being said|spoken)\b",
        r"\btranscri(?:be|ption)\b",
        r"\bspeech[- ]to[- ]text\b|\bspeech recognition\b|\bdictation\b",
        rf"\b(?:listen to|recogni[sz]e) {_A} {_AUDIO}\b",
    ],
    "summarization": [r"\bsummar(?:y|ize|ise|ization)\b", r"\btl;?dr\b"],
    "translation": [r"\btranslat(?:e|ion)\b"],
    "text-classification": [r"\bsentiment\b", r"\bclassify (?:this|the) text\b"],
    "object-detection": [r"\bdetect\b", r"\bfind (?:the |all )?(?:faces|people|objects|cats)\b", r"\bbounding box"],
    "image-segmentation": [r"\bsegment(?:ation)?\b"],
    "depth-estimation": [r"\bdepth\b"],
    "text-to-image": [
        r"\b(?:generate|create|draw|paint|make) (?:me )?(?:an? )?(?:image|picture|drawing|painting|photo)\b"
    ],
    "keyword-extraction": [r"\bkeywords?\b"],
    "background-removal": [r"\bremove (?:the )?background\b"],
}

_AFTER_SAY = re.compile(r"^\W*(?:please |can you |could you )?(?:say|speak|pronounce)\b[\s:,]+(.+?)\W*$", re.I)


def with_named_files(request: str, files: Sequence[Attachment], context: PlanContext | None) -> list[Attachment]:
    """The attached files plus the session's files that the request names, e.g. "read sign.png aloud"."""
    if context is None:
        return list(files)
    given = {name for name, _ in files}
    named = [
        (n, k)
        for n, k in context.known.items()
        if n not in given and re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", request)
    ]
    return [*files, *named]


class LocalPlanner:
    """Plans with the learned model and the keyword rules; no LLM, a few milliseconds per request."""

    name = "local"

    def __init__(self, model: PlannerModel | None = None) -> None:
        self._model = model
        self.confidence: float | None = None  # of the last plan

    @property
    def model(self) -> PlannerModel:
        if self._model is None:
            from baton.planners.model import load_model

            self._model = load_model("baton")
        return self._model

    def plan(self, request: str, files: Sequence[Attachment], context: PlanContext | None = None) -> Plan:
        found, self.confidence = self.plan_with_confidence(request, files, context)
        return found

    def plan_with_confidence(
        self, request: str, files: Sequence[Attachment], context: PlanContext | None = None
    ) -> tuple[Plan, float]:
        """The plan and the model's confidence in its set of tasks (0 to 1)."""
        files = with_named_files(request, files, context)
        boosts = {spec.name: KEYWORD_BOOST for _, spec in KeywordPlanner._find_tasks(request)}
        if any(task not in self.model.index for task in boosts):
            # a task TaskBench does not have (e.g. background-removal): the keyword rules plan it
            return KeywordPlanner().plan(request, files), KEYWORD_BOOST
        words = _WORDS.findall(FILE_NAME.sub(" ", request))
        prediction = self._predict(request, files, boosts) if boosts or len(words) >= MIN_WORDS else None
        if prediction is None or not prediction.nodes:
            # nothing the model recognizes ("", "hmm", "hello"): each attached file is read, or no task at all
            return KeywordPlanner().plan("", files), prediction.confidence if prediction else 1.0
        tasks = [get_task(node.tool) for node in prediction.nodes]
        if not _explicit_text(request) and any(p.kind == "text" for s in tasks for p in s.inputs):
            # "summarize this recording": a file no planned task reads becomes the text to work on
            reads = {p.kind for s in tasks for p in s.inputs}
            unread = {DEFAULT_READERS[k]: KEYWORD_BOOST for _, k in files if k in DEFAULT_READERS and k not in reads}
            if unread:
                prediction = self._predict(request, files, {**boosts, **unread})
        return _wire(prediction, request, files), prediction.confidence

    def _predict(self, request: str, files: Sequence[Attachment], boosts: Mapping[str, float]) -> Prediction:
        return self.model.predict(request, files, at_least_one=False, boosts=boosts, damp=KEYWORD_DAMP)


def _explicit_text(request: str) -> bool:
    return bool(QUOTED.search(request) or _AFTER_SAY.match(request))


@dataclass
class _Literals:
    """What a request gives a task's inputs that no earlier task makes: files by kind, quoted text (or
    the words after "say"), URLs, else the request itself."""

    request: str
    files: Sequence[Attachment]
    quoted: list[str]
    urls: list[str]

    def __post_init__(self) -> None:
        self.after_say = _AFTER_SAY.match(self.request)

    def value(self, spec: TaskSpec, port: Port, used_files: set[str]) -> str:
        if port.kind in ("image", "audio", "video"):
            name = next((n for n, k in self.files if k == port.kind and n not in used_files), None)
            if name is None:
                raise PlannerError(
                    f"the request asks for {spec.name}, which needs {'an' if port.kind[0] in 'aeiou' else 'a'} "
                    f"{port.kind}, but none was given; attach one with -i FILE"
                )
            used_files.add(name)
            return name
        if port.kind == "text":
            if self.quoted:
                return self.quoted.pop(0)
            if self.after_say and spec.name == "text-to-speech":
                return self.after_say.group(1)
            return self.request
        if port.kind == "url" and self.urls:
            return self.urls.pop(0)
        raise PlannerError(f"the request asks for {spec.name}, which needs a {port.kind}; give it in the request")


def _wire(prediction: Prediction, request: str, files: Sequence[Attachment]) -> Plan:
    """Baton tasks from the model's nodes: linked outputs, files, quoted text or the request as arguments."""
    literals = _Literals(request, files, quoted_spans(request), re.findall(r"https?://[^\s'\"<>]+", request))
    tasks: list[Task] = []
    specs: list[TaskSpec] = []
    for task_id, node in enumerate(prediction.nodes):
        spec = get_task(node.tool)
        args: dict[str, str] = {}
        dep: list[int] = []
        parents = [p for p in node.parents if p < task_id]
        used_files: set[str] = set()
        for port in spec.inputs:
            source = next((p for p in parents if specs[p].output_of_kind(port.kind) and p not in dep), None)
            if (
                source is None
                and port.kind in ("image", "audio", "video")
                and not any(k == port.kind and n not in used_files for n, k in files)
            ):
                source = next((t for t in range(task_id - 1, -1, -1) if specs[t].output_of_kind(port.kind)), None)
            if source is not None:
                args[port.name] = f"<GENERATED>-{source}"
                dep.append(source)
                continue
            if not port.optional:
                args[port.name] = literals.value(spec, port, used_files)
        tasks.append(Task(id=task_id, task=spec.name, args=args, dep=sorted(dep)))
        specs.append(spec)
    return Plan(tasks=tasks)


class KeywordPlanner:
    """The first local planner: trigger phrases and kind-directed chaining, no LLM."""

    name = "keyword"

    def plan(self, request: str, files: Sequence[Attachment], context: PlanContext | None = None) -> Plan:
        files = with_named_files(request, files, context)
        found = self._find_tasks(request)
        if not found:
            found = self._default_for_files(files)
        elif any(port.kind == "text" for _, spec in found for port in spec.inputs) and not _explicit_text(request):
            # "summarize this recording": a file no found task reads becomes the text to work on
            reads = {port.kind for _, spec in found for port in spec.inputs}
            found = [*self._default_for_files([f for f in files if f[1] not in reads], position=-1), *found]
        if not found:
            return Plan()
        ordered = self._order(found, files)
        return self._wire(ordered, request, files)

    @staticmethod
    def _find_tasks(request: str) -> list[tuple[int, TaskSpec]]:
        text = request.lower()
        hits: dict[str, int] = {}
        for task, patterns in TRIGGERS.items():
            for pattern in patterns:
                match = re.search(pattern, text)
                if match:
                    hits[task] = min(hits.get(task, match.start()), match.start())
        words = normalize(request)
        for spec in all_tasks():  # a task named outright, e.g. "run image-segmentation"
            for name in (spec.name, *spec.aliases):
                key = normalize(name)
                if "-" in key and (position := f"-{words}-".find(f"-{key}-")) >= 0:
                    hits.setdefault(spec.name, position)
        return sorted((position, get_task(task)) for task, position in hits.items())

    @staticmethod
    def _default_for_files(files: Sequence[Attachment], position: int = 0) -> list[tuple[int, TaskSpec]]:
        """The task that turns each kind of file into text, for files the request names no task for."""
        defaults = {"image": "image-to-text", "audio": "automatic-speech-recognition", "video": "video-to-text"}
        kinds = list(dict.fromkeys(kind for _, kind in files))
        return [(position, get_task(defaults[k])) for k in kinds if k in defaults]

    @staticmethod
    def _order(found: list[tuple[int, TaskSpec]], files: Sequence[Attachment]) -> list[TaskSpec]:
        """Producers before consumers; otherwise the order the request mentions them."""
        remaining = [spec for _, spec in found]
        available = {kind for _, kind in files}
        ordered: list[TaskSpec] = []
        while remaining:
            spec = next((s for s in remaining if _ready(s, remaining, available)), remaining[0])
            remaining.remove(spec)
            ordered.append(spec)
            available |= {port.kind for port in spec.outputs}
        return ordered

    @staticmethod
    def _wire(specs: list[TaskSpec], request: str, files: Sequence[Attachment]) -> Plan:
        tasks: list[Task] = []
        produced: list[tuple[int, TaskSpec]] = []
        literals = _Literals(request, files, quoted_spans(request), urls=[])  # the rules plan no URL input
        for task_id, spec in enumerate(specs):
            args: dict[str, str] = {}
            dep: list[int] = []
            used_files: set[str] = set()
            for port in spec.inputs:
                source = next((tid for tid, s in reversed(produced) if s.output_of_kind(port.kind)), None)
                if source is not None and f"<GENERATED>-{source}" not in args.values():
                    args[port.name] = f"<GENERATED>-{source}"
                    dep.append(source)
                    continue
                if not port.optional:
                    args[port.name] = literals.value(spec, port, used_files)
            tasks.append(Task(id=task_id, task=spec.name, args=args, dep=sorted(set(dep))))
            produced.append((task_id, spec))
        return Plan(tasks=tasks)


def _ready(spec: TaskSpec, remaining: list[TaskSpec], available: set[str]) -> bool:
    """Whether a task's inputs are at hand: media of an available kind, text once its writers have run."""
    makes = {port.kind for port in spec.outputs} - {"text"}
    for port in spec.inputs:
        if port.optional:
            continue
        if port.kind == "text":
            # wait for a task that writes text, unless that task needs this one's output
            writers = [
                other
                for other in remaining
                if other is not spec and other.output_of_kind("text") and not any(p.kind in makes for p in other.inputs)
            ]
            if writers:
                return False
        elif port.kind not in available:
            return False
    return True
