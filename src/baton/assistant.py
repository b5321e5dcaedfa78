"""The Assistant: one request through plan -> assign -> execute -> answer, recorded in the store."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from baton.catalog import Catalog, ModelCard, load_catalog
from baton.config import Settings
from baton.execute import Event, SlotGate, execute
from baton.experts import ExpertError
from baton.experts.cache import ExpertCache
from baton.media import Artifact, BadInput, Resource, check_media_file
from baton.plan import REF, Arg, Plan, ValidPlan, validate
from baton.planners import Planner
from baton.respond import template_answer
from baton.runs import Run, TaskRecord
from baton.select import NoExpert, select
from baton.store import Store

__all__ = ["Assistant", "Result"]


@dataclass
class Result:
    """A finished run with its outputs as Resources and every artifact it can name."""

    run: Run
    outputs: dict[int, dict[str, Resource]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(task.status == "succeeded" for task in self.run.tasks)

    def artifacts(self) -> dict[str, Path]:
        """Artifact name -> file path for every medium the run produced."""
        return {
            resource.artifact.name: resource.artifact.path
            for results in self.outputs.values()
            for resource in results.values()
            if resource.artifact is not None
        }


class _TaskContext:
    """What one expert may touch: its scratch folder and the session's store."""

    def __init__(self, store: Store, session_id: str, workdir: Path) -> None:
        self._store, self._session_id, self.workdir = store, session_id, workdir

    def save_bytes(self, data: bytes, ext: str) -> Artifact:
        return self._store.add_bytes(self._session_id, data, ext)

    def save_file(self, path: Path) -> Artifact:
        return self._store.add_file(self._session_id, path)


class Assistant:
    """Runs requests; one instance may serve many sessions."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        catalog: Catalog | None = None,
        planner: Planner | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self.store = store or Store(self.settings.home)
        self.catalog = catalog or load_catalog()
        if planner is None:
            from baton.planners.local import KeywordPlanner

            planner = KeywordPlanner()
        self.planner = planner
        self.experts = ExpertCache()

    def add_inputs(self, session_id: str, paths: Sequence[Path]) -> list[Artifact]:
        """Check and store the user's files; each becomes addressable by its own file name."""
        labels: dict[str, Path] = {}
        for path in paths:
            check_media_file(path)
            if path.name in labels and labels[path.name].resolve() != path.resolve():
                raise BadInput(f"two inputs are both named '{path.name}' ({labels[path.name]} and {path}); rename one")
            labels[path.name] = path
        return [self.store.add_file(session_id, path, label=path.name, origin="input") for path in labels.values()]

    def prepare(
        self,
        request: str,
        inputs: Sequence[Path] = (),
        *,
        plan: Plan | None = None,
        session: str | None = None,
    ) -> tuple[Run, ValidPlan]:
        """Store the inputs, plan and validate; raises BadInput or PlanError before any task runs."""
        request = request.strip()
        if not request and plan is None:
            raise BadInput("the request is empty; say what you want, e.g. baton run \"read the text in this image aloud\" -i photo.png")
        for path in inputs:
            check_media_file(path)
        record = self.store.session(session)
        attached = self.add_inputs(record.id, inputs)
        known = self.store.files_of(record.id)
        planner = "given" if plan is not None else self.planner.name
        if plan is None:
            plan = self.planner.plan(request, [(a.label, a.kind) for a in attached])
        valid = validate(plan, {name: artifact.kind for name, artifact in known.items()})
        run = Run(
            id=uuid.uuid4().hex[:12],
            session_id=record.id,
            request=request,
            planner=planner,
            plan=plan,
            tasks=[TaskRecord(id=task.id, task=valid.specs[task.id].name) for task in plan.tasks],
            created=time.time(),
        )
        return run, valid

    async def run(
        self,
        request: str,
        inputs: Sequence[Path] = (),
        *,
        plan: Plan | None = None,
        session: str | None = None,
        models: Mapping[str, str] | None = None,
        on_event: Callable[[Run, Event], None] | None = None,
        on_start: Callable[[Run], None] | None = None,
    ) -> Result:
        """Run one request end to end. Bad input raises BadInput/PlanError before anything runs."""
        run, valid = self.prepare(request, inputs, plan=plan, session=session)
        chosen: dict[int, ModelCard] = {}
        unavailable: dict[int, str] = {}
        for task in run.tasks:
            try:
                chosen[task.id] = select(task.task, self.catalog, models).card
                task.model = chosen[task.id].id
            except NoExpert as exc:
                unavailable[task.id] = str(exc)
        self.store.start_run(run)
        if on_start:
            on_start(run)
        known = self.store.files_of(run.session_id)
        outputs: dict[int, dict[str, Resource]] = {}

        async def run_one(task_id: int) -> dict[str, Resource]:
            if task_id in unavailable:
                raise NoExpert(unavailable[task_id])
            card = chosen[task_id]
            arguments = {
                port: self._resolve(arg, valid, outputs, known) for port, arg in valid.bindings[task_id].items()
            }
            workdir = Path(tempfile.mkdtemp(prefix="task-", dir=self.store.home))
            try:
                context = _TaskContext(self.store, run.session_id, workdir)

                def work() -> dict[str, Resource]:
                    expert = self.experts.get(card)
                    return expert.run(arguments, valid.options[task_id], context)

                result = await asyncio.to_thread(work)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            if not isinstance(result, dict) or not all(isinstance(r, Resource) for r in result.values()):
                raise ExpertError(f"{card.id} returned {result!r:.100} instead of Resources by port; this is a bug in that expert")
            outputs[task_id] = result
            return result

        def record(event: Event) -> None:
            task = run.task(event.task_id)
            outcome = event.outcome
            task.status, task.error, task.started, task.seconds = event.status, outcome.error, outcome.started, outcome.seconds
            if event.status == "succeeded":
                task.outputs = {port: r.to_record() for port, r in outputs.get(task.id, {}).items()}
            if event.status != "running":
                self.store.save_task(run.id, task)
            if on_event:
                on_event(run, event)

        try:
            await execute(
                valid.deps(),
                run_one,
                gate=SlotGate(self.settings.cpu_slots),
                timeout=self.settings.task_timeout,
                on_event=record,
                describe_error=_describe,
            )
        except BaseException as exc:  # Ctrl-C, or a failure outside the tasks: record the run as stopped
            reason = "cancelled by the user" if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)) else _describe(exc)
            run.status, run.error, run.finished = "interrupted", reason, time.time()
            for task in run.tasks:
                if task.status in ("pending", "running"):
                    task.status, task.error = "cancelled", reason
            run.answer = template_answer(run, outputs)
            self.store.finish_run(run)
            raise
        run.status = "succeeded" if all(t.status == "succeeded" for t in run.tasks) else "failed"
        run.answer = template_answer(run, outputs)
        run.finished = time.time()
        self.store.finish_run(run)
        return Result(run=run, outputs=outputs)

    @staticmethod
    def _resolve(
        arg: Arg, valid: ValidPlan, outputs: Mapping[int, Mapping[str, Resource]], known: Mapping[str, Artifact]
    ) -> Resource:
        if arg.file is not None:
            return Resource.media(known[arg.file])
        if arg.ref is not None:
            produced = outputs[arg.ref]
            port = valid.specs[arg.ref].output_of_kind(arg.kind)
            resource = produced.get(port.name) if port else None
            if resource is None:
                raise ExpertError(f"task {arg.ref} produced no {arg.kind} output to use")
            if arg.kind == "text" and resource.kind != "text":
                return Resource.text(resource.as_text())
            return resource
        if arg.kind == "json":
            return Resource.json_value(arg.value)

        def substitute(match: re.Match[str]) -> str:
            produced = outputs[int(match.group(1))]
            spec = valid.specs[int(match.group(1))]
            port = spec.output_of_kind("text") or spec.outputs[0]
            return produced[port.name].as_text() if port.name in produced else match.group(0)

        text = REF.sub(substitute, arg.text or "")
        return Resource(kind=arg.kind, value=text)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ExpertError, NoExpert, BadInput)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

