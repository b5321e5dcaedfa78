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
from typing import Literal

from baton.catalog import Catalog, ModelCard, load_catalog
from baton.config import Settings
from baton.execute import Event, SlotGate, execute
from baton.experts import ExpertError, TaskContext
from baton.experts.cache import ExpertCache, LoadEvent, parse_budget
from baton.llm import LLM, LLMError, Usage
from baton.media import Artifact, BadInput, MediaKind, Resource, check_media_file
from baton.plan import REF, Arg, Plan, ValidPlan, validate
from baton.planners import PlanContext, Planner, PlanningFailed
from baton.respond import llm_answer, template_answer
from baton.runs import Run, TaskRecord
from baton.select import NoExpert, choose_with_llm, runnable, select
from baton.store import Store, pid_alive

__all__ = ["Assistant", "PlannerName", "Result", "SelectMode"]

PlannerName = Literal["auto", "local", "llm"]
SelectMode = Literal["rank", "llm"]


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
        llm: LLM | None = None,
        on_load: Callable[[LoadEvent], None] | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self.store = store or Store(self.settings.home)
        self.catalog = catalog or load_catalog()
        self.planner = planner  # None: the LLM planner when an LLM is configured, else the local one
        if llm is None and self.settings.llm_configured:
            llm = LLM(self.settings)
        self.llm = llm
        self.experts = ExpertCache(parse_budget(self.settings.memory), on_load=on_load)
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

    def require_llm(self, what: str) -> LLM:
        if self.llm is None:
            raise BadInput(
                f"{what} needs an LLM, and none is configured: set BATON_LLM_MODEL and OPENAI_BASE_URL "
                "(or OPENAI_API_KEY for OpenAI)"
            )
        return self.llm

    def choose_planner(self, name: PlannerName = "auto") -> Planner:
        """The planner for ``--planner``: auto = routing between the local planner and the LLM when one is
        configured (local at or above ``router_threshold`` confidence), else the local planner."""
        if name == "auto" and self.planner is not None:
            return self.planner
        from baton.planners.router import choose_planner

        if name == "llm":
            self.require_llm("--planner llm")
        return choose_planner(name, self.settings, self.llm, self.catalog)

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

    def history(self, session_id: str | None, limit: int = 20) -> list[tuple[str, str]]:
        """The session's earlier (request, answer) pairs, oldest first."""
        if session_id is None:
            return []
        runs = self.store.runs(limit=limit, session_id=session_id)
        return [(run.request, run.answer) for run in reversed(runs) if run.status != "running"]

    def prepare(
        self,
        request: str,
        inputs: Sequence[Path] = (),
        *,
        plan: Plan | None = None,
        session: str | None = None,
        planner: PlannerName = "auto",
        usage: Usage | None = None,
        plan_select: bool = False,
    ) -> tuple[Run, ValidPlan]:
        """Check the inputs, plan and validate, then store the inputs.

        Raises BadInput, PlannerError or PlanError before anything is written: a rejected request
        leaves the store as it was. An LLM planner that fails raises PlanningFailed or LLMError, which
        ``run`` records as a failed run.
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
        chosen_planner = "given"
        if plan is None:
            planning = self.choose_planner(planner)
            context = PlanContext(
                known=known,
                history=self.history(existing.id if existing else None),
                usage=usage,
                candidates=self._candidates() if plan_select else None,
            )
            plan = planning.plan(request, list(kinds.items()), context)
            chosen_planner = planning.name  # after planning: routing names who answered
        valid = validate(plan, known)
        record = existing or self.store.session(session)
        for label, (path, _) in labels.items():
            self.store.add_file(record.id, path, label=label, origin="input")
        run = Run(
            id=uuid.uuid4().hex[:12],
            session_id=record.id,
            request=request,
            planner=chosen_planner,
            plan=plan,
            tasks=[TaskRecord(id=task.id, task=valid.specs[task.id].name) for task in plan.tasks],
            created=time.time(),
        )
        return run, valid

    def _candidates(self) -> dict[str, list[tuple[str, str]]]:
        """Runnable models per task, for planning and choosing in one call."""
        found: dict[str, list[tuple[str, str]]] = {}
        for card in self.catalog:
            if not card.missing(self.settings):
                found.setdefault(card.task, []).append((card.id, card.description))
        return found

    def _failed_planning(
        self, request: str, inputs: Sequence[Path], session: str | None, planner: str, error: str
    ) -> Run:
        """Record a request whose planning failed: its inputs are kept, the run says why."""
        record = self.store.session(session)
        for label, (path, _) in self.check_inputs(inputs).items():
            self.store.add_file(record.id, path, label=label, origin="input")
        run = Run(
            id=uuid.uuid4().hex[:12],
            session_id=record.id,
            request=request.strip(),
            planner=planner,
            status="failed",
            error=f"planning failed: {error}",
            answer=f"I could not plan this request: {error}",
            created=time.time(),
            finished=time.time(),
        )
        self.store.start_run(run)
        self.store.finish_run(run)
        return run

    async def run(
        self,
        request: str,
        inputs: Sequence[Path] = (),
        *,
        plan: Plan | None = None,
        session: str | None = None,
        models: Mapping[str, str] | None = None,
        planner: PlannerName = "auto",
        select_mode: SelectMode = "rank",
        plan_select: bool = False,
        on_event: Callable[[Run, Event], None] | None = None,
        on_start: Callable[[Run], None] | None = None,
        on_answer: Callable[[str], None] | None = None,
    ) -> Result:
        """Run one request end to end. Bad input raises BadInput/PlanError before anything runs.

        ``on_answer`` receives the LLM's answer as it streams (nothing without an LLM).
        """
        usage = Usage()
        notices_before = len(self.llm.notices) if self.llm else 0
        if select_mode == "llm":
            self.require_llm("--select llm")
        if plan_select:
            self.require_llm("--plan-select")
        try:
            run, valid = self.prepare(
                request, inputs, plan=plan, session=session, planner=planner, usage=usage, plan_select=plan_select
            )
        except (PlanningFailed, LLMError) as exc:
            failed = self._failed_planning(request, inputs, session, "llm", str(exc))
            failed.usage = usage.stages
            self._add_llm_notices(failed, notices_before)
            self.store.finish_run(failed)
            return Result(run=failed)
        run.usage = usage.stages
        chosen, unavailable = self._assign(run, models, select_mode, usage)
        self.store.start_run(run)
        if on_start:
            on_start(run)
        outputs: dict[int, dict[str, Resource]] = {}
        try:
            await self.execute(run, valid, chosen, unavailable, outputs, usage, on_event)
        except BaseException as exc:  # Ctrl-C, or a failure outside the tasks: record the run as stopped
            self._stop(run, outputs, exc)
            raise
        run.status = "succeeded" if all(t.status == "succeeded" for t in run.tasks) else "failed"
        run.answer = await self._answer(run, outputs, usage, on_answer)
        self._add_llm_notices(run, notices_before)
        run.finished = time.time()
        self.store.finish_run(run)
        return Result(run=run, outputs=outputs)

    def _assign(
        self, run: Run, models: Mapping[str, str] | None, select_mode: SelectMode, usage: Usage
    ) -> tuple[dict[int, ModelCard], dict[int, str]]:
        """A model for each task: forced by the user, chosen by the planner or the LLM, or ranked."""
        chosen: dict[int, ModelCard] = {}
        unavailable: dict[int, str] = {}
        planned = {task.id: task.model for task in run.plan.tasks}
        for task in run.tasks:
            try:
                selection = select(task.task, self.catalog, models, self.settings)
            except NoExpert as exc:
                unavailable[task.id] = str(exc)
                continue
            chosen[task.id] = selection.card
            wanted = planned.get(task.id)
            if wanted and not (models and task.task in models):
                options = {card.id: card for card in (selection.card, *selection.alternatives)}
                if wanted in options:
                    chosen[task.id] = options[wanted]
                else:
                    run.notices.append(
                        f"the plan chose '{wanted}' for task {task.id}, which cannot run {task.task} here; "
                        f"using {selection.card.id}"
                    )
        if select_mode == "llm" and self.llm is not None:
            open_tasks = {
                task.id: (task.task, runnable(task.task, self.catalog, self.settings))
                for task in run.tasks
                if task.id in chosen and not (models and task.task in models)
            }
            try:
                picks, notices = choose_with_llm(run.request, open_tasks, self.llm, usage)
            except LLMError as exc:
                picks, notices = {}, [f"choosing models with the LLM failed ({exc}); using the ranked choices"]
            run.notices += notices
            for tid, model_id in picks.items():
                chosen[tid] = self.catalog.get(model_id)
        for task in run.tasks:
            task.model = chosen[task.id].id if task.id in chosen else None
        return chosen, unavailable

    async def execute(
        self,
        run: Run,
        valid: ValidPlan,
        chosen: Mapping[int, ModelCard],
        unavailable: Mapping[int, str],
        outputs: dict[int, dict[str, Resource]],
        usage: Usage | None = None,
        on_event: Callable[[Run, Event], None] | None = None,
    ) -> None:
        """Run the tasks of a validated plan with their chosen experts, recording each outcome."""
        known = self.store.files_of(run.session_id)

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
                    context = TaskContext(self.store, run.session_id, workdir, self.settings, self.llm, usage)
                    with self.experts.lease(card) as expert:  # waits for memory when the budget is full
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

        pending = {task.id for task in run.tasks if task.status == "pending"}
        await execute(
            {tid: [d for d in deps if d in pending] for tid, deps in valid.deps().items() if tid in pending},
            run_one,
            gate=SlotGate(self.settings.cpu_slots),
            timeout=self.settings.task_timeout,
            on_event=record,
            describe_error=_describe,
        )

    def _stop(self, run: Run, outputs: dict[int, dict[str, Resource]], exc: BaseException) -> None:
        reason = (
            "cancelled by the user" if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)) else _describe(exc)
        )
        run.status, run.error, run.finished = "interrupted", reason, time.time()
        for task in run.tasks:
            if task.status in ("pending", "running"):
                task.status, task.error = "cancelled", reason
        run.answer = template_answer(run, outputs)
        self.store.finish_run(run)

    async def _answer(
        self,
        run: Run,
        outputs: dict[int, dict[str, Resource]],
        usage: Usage,
        on_answer: Callable[[str], None] | None,
    ) -> str:
        """The LLM's answer when one is configured (the template answer if it fails), else the template."""
        llm = self.llm
        if llm is None:
            return template_answer(run, outputs)
        from baton.planners.llm import history_text

        known = self.store.files_of(run.session_id)
        history = history_text(
            self.history(run.session_id), self.settings.history_chars
        )  # this run is still 'running': not included
        try:
            answer, notices = await asyncio.get_running_loop().run_in_executor(
                self._pool,
                lambda: llm_answer(
                    run, outputs, llm, usage=usage, on_delta=on_answer, history=history, known_files=known
                ),
            )
        except LLMError as exc:
            run.notices.append(f"the LLM could not write the answer ({exc}); this is the template answer")
            return template_answer(run, outputs)
        run.notices += notices
        return answer

    def _add_llm_notices(self, run: Run, since: int) -> None:
        """The LLM's notices since the run began, after those about its configuration (e.g. OPENAI_API_BASE)."""
        if self.llm is not None:
            run.notices += [*self.llm.settings.notices, *self.llm.notices[since:]]

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
