"""The Assistant: one request through plan -> assign -> execute -> answer, recorded in the store."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from baton.catalog import Catalog, ModelCard, load_catalog
from baton.config import Settings
from baton.execute import Event, SlotGate, execute
from baton.experts import ExpertError, TaskContext
from baton.experts.cache import ExpertCache
from baton.media import Artifact, BadInput, MediaKind, Resource, check_media_file
from baton.plan import REF, Arg, Plan, ValidPlan, validate
from baton.planners import Planner
from baton.respond import template_answer
from baton.runs import Run, TaskRecord
from baton.select import NoExpert, select
from baton.store import Store, pid_alive

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
        self._scratch = self.store.home / "tmp"
        _remove_orphaned_scratch(self._scratch)
        # expert threads of our own: asyncio.run's shutdown does not wait for them after Ctrl-C
        self._pool = ThreadPoolExecutor(max_workers=self.settings.cpu_slots, thread_name_prefix="baton-expert")

    def close(self) -> None:
        """Stop the expert threads without waiting for them, unload experts, close the store."""
        from baton.experts.process import stop_programs

        self._pool.shutdown(wait=False, cancel_futures=True)
        stop_programs()
        self.experts.clear()
        self.store.close()

    @staticmethod
    def check_inputs(paths: Sequence[Path]) -> dict[str, tuple[Path, MediaKind]]:
        """The user's files by their own file name, each checked to be the media it claims."""
        labels: dict[str, tuple[Path, MediaKind]] = {}
        for path in paths:
            kind = check_media_file(path)
            if path.name in labels and labels[path.name][0].resolve() != path.resolve():
                raise BadInput(
                    f"two inputs are both named '{path.name}' ({labels[path.name][0]} and {path}); rename one"
                )
            labels[path.name] = (path, kind)
        return labels

    def prepare(
        self,
        request: str,
        inputs: Sequence[Path] = (),
        *,
        plan: Plan | None = None,
        session: str | None = None,
    ) -> tuple[Run, ValidPlan]:
        """Check the inputs, plan and validate, then store the inputs.

        Raises BadInput, PlannerError or PlanError before anything is written: a rejected request
        leaves the store as it was.
        """
        request = request.strip()
        if not request and plan is None:
            raise BadInput(
                'the request is empty; say what you want, e.g. baton run "read the text in this image aloud" -i photo.png'
            )
        labels = self.check_inputs(inputs)
        existing = self.store.find_session(session) if session is not None else None
        known: dict[str, str] = {}
        if existing is not None:
            known = {name: artifact.kind for name, artifact in self.store.files_of(existing.id).items()}
        kinds = {label: kind for label, (_, kind) in labels.items()}
        known.update(kinds)
        planner = "given" if plan is not None else self.planner.name
        if plan is None:
            plan = self.planner.plan(request, list(kinds.items()))
        valid = validate(plan, known)
        record = existing or self.store.session(session)
        for label, (path, _) in labels.items():
            self.store.add_file(record.id, path, label=label, origin="input")
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

            def work() -> dict[str, Resource]:
                # the scratch folder lives as long as the thread: a timed-out expert keeps its files
                workdir = Path(tempfile.mkdtemp(prefix=f"task-{os.getpid()}-", dir=self._scratch))
                try:
                    expert = self.experts.get(card)
                    context = TaskContext(self.store, run.session_id, workdir, self.settings)
                    return expert.run(arguments, valid.options[task_id], context)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)

            result = await asyncio.get_running_loop().run_in_executor(self._pool, work)
            if not isinstance(result, dict) or not all(isinstance(r, Resource) for r in result.values()):
                raise ExpertError(
                    f"{card.id} returned {result!r:.100} instead of Resources by port; this is a bug in that expert"
                )
            outputs[task_id] = result
            return result

        def record(event: Event) -> None:
            task = run.task(event.task_id)
            outcome = event.outcome
            task.status, task.error, task.started, task.seconds = (
                event.status,
                outcome.error,
                outcome.started,
                outcome.seconds,
            )
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
            reason = (
                "cancelled by the user"
                if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))
                else _describe(exc)
            )
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


def _remove_orphaned_scratch(folder: Path) -> None:
    """Delete the scratch folders of baton processes that were killed before they could clean up."""
    folder.mkdir(exist_ok=True)
    for path in folder.glob("task-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ExpertError, NoExpert, BadInput)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
