"""Tasks and plans: reading HuggingGPT, TaskBench and baton plans, and validating them as typed DAGs.

Three formats are read:

- HuggingGPT: ``[{"task", "id", "dep": [-1] | [ids], "args": {...}}]``, references ``<GENERATED>-k``;
- TaskBench: ``{"task_nodes": [{"task", "arguments": [...]}]}``, references ``<node-k>`` (k = index);
- baton: ``{"tasks": [...]}`` with HuggingGPT's task objects (``dep: []`` for none).

The declared ``dep`` is kept and checked, never silently rebuilt: a reference to a task that is not a
dependency is an error that says which id to add.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from baton.media import MEDIA_KINDS, Kind, kind_of_filename
from baton.tasks import Port, TaskSpec, UnknownTask, get_task

__all__ = ["Arg", "Plan", "PlanError", "Task", "ValidPlan", "parse_plan", "validate"]

REF = re.compile(r"<GENERATED>-(\d+)")
NODE_REF = re.compile(r"<node-(\d+)>")
FILE_TOKEN = re.compile(r"[\w./-]+\.[A-Za-z0-9]{2,5}\b")
URL = re.compile(r"^https?://\S+$")
KIND_KEY = re.compile(r"(?<=[a-z])\d+$")


class PlanError(ValueError):
    """A plan that cannot run; ``problems`` holds one message per problem, each naming the fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Task(BaseModel):
    """One node of a plan: which task, its arguments, and the ids it depends on."""

    id: int
    task: str
    args: dict[str, Any] | list[Any] = Field(default_factory=dict)
    dep: list[int] = Field(default_factory=list)
    model: str | None = None  # a model the planner chose (plan-and-select in one call)


class Plan(BaseModel):
    """The tasks a request needs; an empty plan means no expert is needed."""

    tasks: list[Task] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def parse_plan(data: Any) -> Plan:
    """Read a plan in HuggingGPT, TaskBench or baton format (already JSON-decoded, or JSON text)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise PlanError(
                [f"the plan is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix the JSON"]
            ) from None
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict) and "task_nodes" in data:
        return _parse_taskbench(data["task_nodes"])
    elif isinstance(data, dict) and "tasks" in data:
        items = data["tasks"]
    else:
        raise PlanError(
            [
                "the plan must be a list of tasks (HuggingGPT), an object with 'tasks' (baton) "
                "or an object with 'task_nodes' (TaskBench)"
            ]
        )
    if not isinstance(items, list):
        raise PlanError(["the plan's tasks must be a JSON list"])
    tasks = []
    problems = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f'item {position} of the plan is not an object; write {{"task", "id", "dep", "args"}}')
            continue
        item = dict(item)
        item.setdefault("id", position)
        dep = item.get("dep", [])
        if isinstance(dep, (int, str)):
            dep = [dep]
        if isinstance(dep, list):
            item["dep"] = [d for d in dep if d != -1 and d != "-1"]
        try:
            tasks.append(Task.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problems.append(f"task at position {position}: field '{where}' {first['msg'].lower()}; fix that field")
    if problems:
        raise PlanError(problems)
    return Plan(tasks=tasks)


def _parse_taskbench(nodes: Any) -> Plan:
    if not isinstance(nodes, list):
        raise PlanError(["'task_nodes' must be a JSON list"])
    tasks = []
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("task"), str):
            raise PlanError([f"task node {index} must be an object with a 'task' name"])
        raw = node.get("arguments", [])
        arguments = raw if isinstance(raw, (list, dict)) else [raw]
        values = arguments.values() if isinstance(arguments, dict) else arguments

        def to_ref(value: Any) -> Any:
            return NODE_REF.sub(r"<GENERATED>-\1", value) if isinstance(value, str) else value

        refs = sorted({int(k) for v in values if isinstance(v, str) for k in NODE_REF.findall(v)})
        if isinstance(arguments, dict):
            args: dict[str, Any] | list[Any] = {k: to_ref(v) for k, v in arguments.items()}
        else:
            args = [to_ref(v) for v in arguments]
        tasks.append(Task(id=index, task=node["task"], args=args, dep=refs))
    return Plan(tasks=tasks)


@dataclass(frozen=True, slots=True)
class Arg:
    """A task argument bound to one input port: literal text, a session file, or a task's output."""

    kind: Kind
    text: str | None = None  # literal (text/url/json); may embed <GENERATED>-k references
    value: Any = None  # a json literal
    file: str | None = None  # a name the session knows (artifact name or the user's file name)
    ref: int | None = None  # the whole value is this task's output


@dataclass
class ValidPlan:
    """A plan that passed validation, with each task's arguments bound to its ports."""

    plan: Plan
    specs: dict[int, TaskSpec] = field(default_factory=dict)
    bindings: dict[int, dict[str, Arg]] = field(default_factory=dict)
    options: dict[int, dict[str, str]] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # a topological order

    def deps(self) -> dict[int, list[int]]:
        return {task.id: list(task.dep) for task in self.plan.tasks}


def validate(plan: Plan, files: Mapping[str, str] | None = None) -> ValidPlan:
    """Check a plan against the task registry and the session's files; raise PlanError listing every problem.

    ``files`` maps each name the session knows (artifact names and the user's own file names) to its
    media kind.
    """
    files = files or {}
    problems: list[str] = []
    result = ValidPlan(plan=plan)
    ids: dict[int, Task] = {}
    for task in plan.tasks:
        if task.id in ids:
            problems.append(
                f"task id {task.id} is used twice ('{ids[task.id].task}' and '{task.task}'); give each task its own id"
            )
            continue
        ids[task.id] = task
        try:
            result.specs[task.id] = get_task(task.task)
        except UnknownTask as exc:
            problems.append(f"task {task.id}: {exc}")
    for task in ids.values():
        label = _label(task, result.specs.get(task.id))
        for dep in task.dep:
            if dep == task.id:
                problems.append(f"{label} depends on itself; remove {dep} from its dep")
            elif dep not in ids:
                problems.append(
                    f"{label} depends on task {dep}, which is not in the plan; remove {dep} from its dep or add task {dep}"
                )
    order, cycle = _topological_order(ids)
    if cycle:
        chain = " -> ".join(str(i) for i in cycle)
        problems.append(f"tasks {chain} depend on each other in a cycle; remove one of these dependencies")
    result.order = order
    for task in ids.values():
        spec = result.specs.get(task.id)
        if spec is not None:
            _bind(task, spec, result, files, problems)
    if problems:
        raise PlanError(problems)
    return result


def _label(task: Task, spec: TaskSpec | None) -> str:
    return f"task {task.id} ({spec.name if spec else task.task})"


def _topological_order(tasks: Mapping[int, Task]) -> tuple[list[int], list[int]]:
    """Kahn's order over known dependencies, and one cycle (as ids) if there is one."""
    waiting = {tid: {d for d in t.dep if d in tasks and d != tid} for tid, t in tasks.items()}
    order = [tid for tid, deps in waiting.items() if not deps]
    dependants: dict[int, list[int]] = {tid: [] for tid in tasks}
    for tid, deps in waiting.items():
        for dep in deps:
            dependants[dep].append(tid)
    position = 0
    while position < len(order):
        for child in dependants[order[position]]:
            waiting[child].discard(order[position])
            if not waiting[child]:
                order.append(child)
        position += 1
    if len(order) == len(tasks):
        return order, []
    # walk back along unresolved dependencies until a task repeats
    node = next(tid for tid, deps in waiting.items() if deps)
    path: list[int] = []
    while node not in path:
        path.append(node)
        node = min(waiting[node])
    return order, [*path[path.index(node) :], node]


def _bind(task: Task, spec: TaskSpec, result: ValidPlan, files: Mapping[str, str], problems: list[str]) -> None:
    label = _label(task, spec)
    assigned: dict[str, Any] = {}
    options: dict[str, str] = {}
    if isinstance(task.args, list):
        # whole references and file names first, so a sentence that mentions a file cannot take that file's port
        for value in sorted(task.args, key=lambda v: not _is_whole_source(v, files)):
            port = _port_for_positional(value, spec, assigned, result, files)
            if port is None:
                problems.append(f"{label}: argument {value!r} fits none of its inputs ({_inputs(spec)}); remove it")
            else:
                assigned[port.name] = value
    else:
        # exact port names first, so {"text": ..., "question": ...} binds 'question' by name whatever the order
        pending = []
        for key, value in task.args.items():
            named_port = spec.input(key)
            if named_port is not None:
                assigned[named_port.name] = value
            else:
                pending.append((key, value))
        for key, value in pending:
            kind = KIND_KEY.sub("", key)  # HuggingGPT writes kinds as keys: "image", "text1", "text2"
            port = next((p for p in spec.inputs if p.kind == kind and p.name not in assigned), None)
            if port is not None:
                assigned[port.name] = value
            elif key in spec.options:
                options[key] = str(value)
            else:
                extra = f"; options: {', '.join(spec.options)}" if spec.options else ""
                problems.append(f"{label}: unknown argument '{key}'; it takes {_inputs(spec)}{extra}")
    bound: dict[str, Arg] = {}
    for port in spec.inputs:
        if port.name not in assigned:
            if not port.optional:
                problems.append(
                    f"{label} lacks its required {port.kind} argument '{port.name}'; add it to args "
                    f"(a value, a file name or <GENERATED>-k)"
                )
            continue
        arg = _bind_value(assigned[port.name], port, task, label, result, files, problems)
        if arg is not None:
            bound[port.name] = arg
    result.bindings[task.id] = bound
    result.options[task.id] = options


def _a(kind: str) -> str:
    """'an image', 'an audio', 'a video'."""
    return f"{'an' if kind[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind}"


def _inputs(spec: TaskSpec) -> str:
    return ", ".join(f"{p.name} ({p.kind}{', optional' if p.optional else ''})" for p in spec.inputs)


def _port_for_positional(
    value: Any, spec: TaskSpec, assigned: Mapping[str, Any], result: ValidPlan, files: Mapping[str, str]
) -> Port | None:
    kinds: list[str] = ["text", "url", "json"]
    if isinstance(value, str):
        refs = [int(k) for k in REF.findall(value)]
        source = result.specs.get(refs[0]) if len(refs) == 1 else None
        named = _file_in(value, files)
        if source is not None:
            kinds = [p.kind for p in source.outputs] + kinds
        elif named is not None:
            kinds = [files.get(named) or kind_of_filename(named) or "text", *kinds]
    free = [p for p in spec.inputs if p.name not in assigned]
    for kind in kinds:
        port = next((p for p in free if p.kind == kind), None)
        if port is not None:
            return port
    return None


def _is_whole_source(value: Any, files: Mapping[str, str]) -> bool:
    """Whether a value is just one task output (<GENERATED>-k) or just a file name."""
    if not isinstance(value, str):
        return False
    stripped = value.strip().strip("'\"")
    return (
        bool(REF.fullmatch(stripped))
        or stripped in files
        or (kind_of_filename(stripped) is not None and " " not in stripped)
    )


def _file_in(value: str, files: Mapping[str, str]) -> str | None:
    """The file a value names: the whole value, or a file-name token inside a sentence."""
    stripped = value.strip().strip("'\"")
    if stripped in files or (kind_of_filename(stripped) is not None and " " not in stripped):
        return stripped
    for token in FILE_TOKEN.findall(value):
        if token in files or kind_of_filename(token):
            return str(token)
    return None


def _bind_value(
    value: Any,
    port: Port,
    task: Task,
    label: str,
    result: ValidPlan,
    files: Mapping[str, str],
    problems: list[str],
) -> Arg | None:
    where = f"{label}, argument '{port.name}'"
    if port.kind == "json" and not isinstance(value, str):
        return Arg(kind="json", value=value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and port.kind == "text":
        value = str(value)
    if not isinstance(value, str):
        problems.append(f"{where}: expected {port.kind} as a string, got {type(value).__name__}; write it as a string")
        return None
    refs = [int(k) for k in REF.findall(value)]
    ok = True
    for ref in dict.fromkeys(refs):
        ok &= _check_ref(ref, task, port, where, result, whole=value.strip() == f"<GENERATED>-{ref}", problems=problems)
    if not ok:
        return None
    if port.kind in MEDIA_KINDS:
        if len(set(refs)) == 1:
            return Arg(kind=port.kind, ref=refs[0])
        if refs:
            problems.append(f"{where}: needs one {port.kind}, but several task outputs are named; keep one")
            return None
        if URL.match(value.strip()) and value.strip() not in files:
            # checked before file names: "https://host/a.jpg" names a download, not a session file
            problems.append(
                f"{where}: '{value.strip()}' is a URL, and fetching URLs is not enabled; "
                f"download the file and attach it with -i"
            )
            return None
        named = _file_in(value, files)
        if named is None:
            problems.append(f"{where}: needs {_a(port.kind)} file, got {value!r}; name a file given with -i")
            return None
        kind = files.get(named) or kind_of_filename(named)
        if kind != port.kind:
            problems.append(
                f"{where}: '{named}' is {_a(str(kind))} file but {_a(port.kind)} is needed; give {_a(port.kind)} file"
            )
            return None
        if named not in files:
            problems.append(f"{where}: the file '{named}' is not known to this session; attach it with -i {named}")
            return None
        return Arg(kind=port.kind, file=named)
    if len(refs) == 1 and value.strip() == f"<GENERATED>-{refs[0]}":
        return Arg(kind=port.kind, ref=refs[0])
    return Arg(kind=port.kind, text=value)


def _check_ref(
    ref: int, task: Task, port: Port, where: str, result: ValidPlan, *, whole: bool, problems: list[str]
) -> bool:
    source = result.specs.get(ref)
    if ref == task.id:
        problems.append(f"{where}: refers to its own output <GENERATED>-{ref}; a task cannot use its own output")
        return False
    if ref not in {t.id for t in result.plan.tasks}:
        problems.append(f"{where}: refers to <GENERATED>-{ref}, but there is no task {ref}; use an existing task id")
        return False
    if ref not in task.dep:
        problems.append(f"{where}: uses <GENERATED>-{ref} but task {ref} is not in its dep; add {ref} to dep")
        return False
    if source is None:
        return False  # the unknown task is reported already
    needs_kind = whole or port.kind in MEDIA_KINDS
    if needs_kind and source.output_of_kind(port.kind) is None:
        made = ", ".join(p.kind for p in source.outputs) or "nothing"
        problems.append(
            f"{where}: needs {port.kind} but task {ref} ({source.name}) produces {made}; "
            f"reference a task that produces {port.kind}"
        )
        return False
    return True
