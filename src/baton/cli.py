"""The ``baton`` command. Heavy modules are imported inside commands so that ``--help`` stays fast."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from baton.assistant import Result
    from baton.execute import Event
    from baton.experts.cache import LoadEvent
    from baton.runs import Run

app = typer.Typer(
    name="baton",
    help="A planner conducting a team of expert models: plan a request as tasks, run them, answer.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List past runs, or show one with 'baton runs show ID'.", no_args_is_help=False)
app.add_typer(runs_app, name="runs")
models_app = typer.Typer(
    help="The model catalogue; 'pull' downloads a Hub model, 'add' registers a local folder, 'rm' forgets it."
)
app.add_typer(models_app, name="models")

EXIT_OK, EXIT_TASK_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _esc(text: object) -> str:
    """Text shown inside rich markup: brackets in file names, requests and errors stay as written."""
    from rich.markup import escape

    return escape(str(text))


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    _console(stderr=True).print(f"[bold red]error:[/] {_esc(message)}", markup=True, highlight=False)
    return typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn every error caused by the user's input into one clear line and exit code 2."""
    from baton.catalog import UnknownModel
    from baton.media import BadInput
    from baton.plan import PlanError
    from baton.planners import PlannerError
    from baton.tasks import UnknownTask

    try:
        yield
    except PlanError as exc:
        if len(exc.problems) == 1:
            raise _fail(f"invalid plan: {exc.problems[0]}") from None
        raise _fail("invalid plan:\n  - " + "\n  - ".join(exc.problems)) from None
    except (BadInput, PlannerError, UnknownTask, UnknownModel) as exc:
        raise _fail(str(exc)) from None


def _version(value: bool) -> None:
    if value:
        from baton import __version__

        print(f"baton {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Plan a request as a graph of tasks, run each with an expert model, and answer."""


@app.command()
def run(
    request: Annotated[str, typer.Argument(metavar="REQUEST", help="What you want done, in plain words.")] = "",
    inputs: Annotated[
        list[Path] | None,
        typer.Option(
            "--input",
            "-i",
            metavar="FILE",
            help="An image, audio or video file; repeat for several. Plans can name it by its file name.",
        ),
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            metavar="PLAN.json",
            help="Run this plan (HuggingGPT, TaskBench or baton JSON) instead of planning.",
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="TASK=MODEL",
            help="Force a model for a task: TASK=MODEL, e.g. image-to-text=builtin/tesseract.",
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session", "-s", metavar="NAME", help="Continue (or start) the named session; a new one by default."
        ),
    ] = None,
    planner: Annotated[
        str,
        typer.Option(
            metavar="auto|local|llm",
            help="Who plans: auto (the local planner when it is sure, else the LLM; the local planner without "
            "an LLM), local or llm.",
        ),
    ] = "auto",
    select_mode: Annotated[
        str,
        typer.Option(
            "--select",
            metavar="rank|llm",
            help="How experts are chosen: ranked here (no LLM call), or by the LLM in one call for the whole plan.",
        ),
    ] = "rank",
    plan_select: Annotated[
        bool, typer.Option("--plan-select", help="Plan and choose experts in a single LLM call.")
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            metavar="plan|agent",
            help="plan: plan the whole graph, then run it. agent: the LLM calls one tool at a time (needs an LLM).",
        ),
    ] = "plan",
    memory: Annotated[
        str | None,
        typer.Option(
            metavar="DEVICE=SIZE,...",
            help="Memory budget for loaded models per device, e.g. cpu=8GB,cuda:0=20GB (default: half the free RAM).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Plan and run a request; print the answer and the paths of the files it made.

    With an LLM configured (BATON_LLM_MODEL, OPENAI_BASE_URL, OPENAI_API_KEY) the LLM answers, and
    plans when the local planner is not sure (BATON_ROUTER_THRESHOLD); the answer streams. Without
    one, the local planner and a template answer are used.

    Exit code: 0 when every task succeeded, 1 when a task failed or was skipped (or planning
    failed), 2 for bad input.
    """
    import asyncio

    _choice("--planner", planner, ("auto", "local", "llm"))
    _choice("--select", select_mode, ("rank", "llm"))
    _choice("--mode", mode, ("plan", "agent"))
    with _user_errors():
        from baton.assistant import Assistant
        from baton.plan import parse_plan
        from baton.select import parse_model_overrides

        plan = None
        if plan_file is not None:
            try:
                text = plan_file.read_text(encoding="utf-8-sig")  # JSON is UTF-8; tolerate a byte-order mark
            except OSError as exc:
                raise _fail(f"cannot read plan file '{plan_file}' ({exc.strerror}); check the path") from None
            except UnicodeDecodeError:
                raise _fail(f"plan file '{plan_file}' is not UTF-8 text; save it as UTF-8 JSON") from None
            plan = parse_plan(text)
        from baton.config import Settings

        settings = Settings.load(**({"memory": memory} if memory else {}))
        assistant = Assistant(settings, on_load=None if as_json else _print_load)
        try:
            overrides = parse_model_overrides(model or [], assistant.catalog)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        if plan is not None and mode == "agent":
            raise _fail("--plan and --mode agent do not go together: a given plan is run as it is")
        progress = _Progress(enabled=not as_json)
        streamed = _AnswerStream(enabled=not as_json, before=progress.stop)
        try:
            if mode == "agent":
                from baton.agent import run_agent

                work = run_agent(
                    assistant,
                    request,
                    inputs or [],
                    session=session,
                    models=overrides,
                    on_start=progress.start,
                    on_event=progress.update,
                    on_answer=streamed.write,
                )
            else:
                work = assistant.run(
                    request,
                    inputs or [],
                    plan=plan,
                    session=session,
                    models=overrides,
                    planner=planner,  # type: ignore[arg-type]
                    select_mode=select_mode,  # type: ignore[arg-type]
                    plan_select=plan_select,
                    on_start=progress.start,
                    on_event=progress.update,
                    on_answer=streamed.write,
                )
            result = asyncio.run(work)
        except KeyboardInterrupt:
            progress.stop()
            run_id = progress.run.id if progress.run else None
            _fail(f"interrupted; run {_esc(run_id)} is saved as interrupted" if run_id else "interrupted")
            # the run is saved: stop the experts' programs, and do not wait for their threads
            assistant.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        finally:
            progress.stop()
    if as_json:
        print(json.dumps(_result_json(result), ensure_ascii=False, indent=2))
    else:
        _print_result(result, streamed.used)
    raise typer.Exit(EXIT_OK if result.ok and result.run.status == "succeeded" else EXIT_TASK_FAILED)


def _print_load(event: LoadEvent) -> None:
    """Model loads and unloads, on stderr: they can take a while (offline builtin experts load at once)."""
    if event.model.startswith(("builtin/", "llm/")):
        return
    size = f"{event.bytes / 2**20:.0f} MB" if event.bytes else ""
    if event.action == "loading":
        message = f"loading {event.model} on {event.device}..."
    elif event.action == "loaded":
        message = f"loaded {event.model} on {event.device} in {event.seconds or 0:.1f} s ({size})"
    else:
        message = f"unloaded {event.model} from {event.device} ({size})"
    print(message, file=sys.stderr, flush=True)


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise _fail(f"{option} must be one of {', '.join(allowed)}, not '{value}'")


def _print_result(result: Result, streamed: bool) -> None:
    """The answer (unless it already streamed), the files it made, and notices."""
    out = _console()
    if streamed:
        out.print()
    else:
        out.print(result.run.answer, markup=False)
    artifacts = result.artifacts()
    if artifacts:
        out.print("\nFiles:", markup=False)
        for name, path in artifacts.items():
            out.print(f"  {name}  {path}", markup=False)
    err = _console(stderr=True)
    for notice in result.run.notices:
        err.print(f"[yellow]notice:[/] {_esc(notice)}")


class _AnswerStream:
    """Prints the LLM's answer to stdout as it arrives (after the progress display is done)."""

    def __init__(self, enabled: bool, before: Any) -> None:
        self.enabled, self.before, self.used = enabled, before, False

    def write(self, piece: str) -> None:
        if not self.enabled:
            return
        if not self.used:
            self.before()
            self.used = True
        sys.stdout.write(piece)
        sys.stdout.flush()


CHAT_HELP = """commands:
  /attach PATH   attach an image, audio or video file to your next message
  /files         list the files this session knows (use their names in requests)
  /help          show this help
  /quit          leave (Ctrl-D too); the session stays, resume it with --session NAME"""


@app.command()
def chat(
    session: Annotated[
        str | None,
        typer.Option("--session", "-s", metavar="NAME", help="The session to continue or start; a new one by default."),
    ] = None,
    mode: Annotated[
        str, typer.Option(metavar="plan|agent", help="plan: each message is planned and run; agent: tool calling.")
    ] = "plan",
    planner: Annotated[str, typer.Option(metavar="auto|local|llm", help="Who plans in plan mode.")] = "auto",
) -> None:
    """Talk with baton in one session: each message is planned and run, earlier files stay addressable.

    Type /help for the commands. The session is saved as you go; resume it with --session NAME.
    """
    import asyncio

    _choice("--mode", mode, ("plan", "agent"))
    _choice("--planner", planner, ("auto", "local", "llm"))
    with _user_errors():
        from baton.assistant import Assistant

        assistant = Assistant()
        if mode == "agent":
            assistant.require_llm("--mode agent")
    name = session or f"chat-{datetime.now():%Y%m%d-%H%M%S}"
    err = _console(stderr=True)
    conductor = f"LLM {assistant.llm.model}" if assistant.llm and planner != "local" else "the local planner"
    err.print(f"session [bold]{_esc(name)}[/] with {_esc(conductor)}; /help for commands, /quit to leave")
    attached: list[Path] = []
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            break
        if not line:
            continue
        if line.startswith("/"):
            command, _, argument = line.partition(" ")
            if command in ("/quit", "/exit"):
                break
            if command == "/help":
                print(CHAT_HELP)
            elif command == "/attach":
                _attach(argument.strip(), attached)
            elif command == "/files":
                _list_files(assistant, name)
            else:
                err.print(f"[red]error:[/] unknown command {_esc(command)}; /help lists the commands")
            continue
        progress = _Progress(enabled=True)
        streamed = _AnswerStream(enabled=True, before=progress.stop)
        try:
            with _chat_errors():
                if mode == "agent":
                    from baton.agent import run_agent

                    work = run_agent(
                        assistant, line, attached, session=name, on_start=progress.start,
                        on_event=progress.update, on_answer=streamed.write,
                    )  # fmt: skip
                else:
                    work = assistant.run(
                        line, attached, session=name, planner=planner, on_start=progress.start,  # type: ignore[arg-type]
                        on_event=progress.update, on_answer=streamed.write,
                    )  # fmt: skip
                result = asyncio.run(work)
                attached = []
                _print_result(result, streamed.used)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]; the run is saved as interrupted")
        finally:
            progress.stop()
    err.print(f"bye; resume with: baton chat --session {_esc(name)}")


@contextmanager
def _chat_errors() -> Iterator[None]:
    """In chat, a bad message prints its error and the conversation goes on."""
    try:
        with _user_errors():
            yield
    except typer.Exit:
        pass


def _attach(argument: str, attached: list[Path]) -> None:
    from baton.media import BadInput, check_media_file

    if not argument:
        _console(stderr=True).print("[red]error:[/] /attach needs a file path, e.g. /attach photo.png")
        return
    path = Path(argument).expanduser()
    try:
        kind = check_media_file(path)
    except BadInput as exc:
        _console(stderr=True).print(f"[red]error:[/] {_esc(exc)}")
        return
    attached.append(path)
    print(f"attached {path.name} ({kind}); it goes with your next message, which can call it {path.name}")


def _list_files(assistant: Any, session_name: str) -> None:
    found = assistant.store.find_session(session_name)
    files = assistant.store.files_of(found.id) if found else {}
    if not files:
        print("no files yet; /attach PATH adds one")
    for name, artifact in files.items():
        if name == artifact.name:
            label = f"  ({artifact.label})" if artifact.label else ""
            print(f"{name}{label}  {artifact.path}")


def _result_json(result: Result) -> dict[str, Any]:
    run = result.run
    return {
        "run_id": run.id,
        "session_id": run.session_id,
        "status": run.status,
        "answer": run.answer,
        "tasks": [
            {
                "id": task.id,
                "task": task.task,
                "model": task.model,
                "status": task.status,
                "outputs": task.outputs,
                "error": task.error,
                "seconds": task.seconds,
            }
            for task in run.tasks
        ],
        "artifacts": {name: str(path) for name, path in result.artifacts().items()},
        "planner": run.planner,
        "error": run.error,
        "notices": run.notices,
        "usage": run.usage,
    }


class _Progress:
    """A live table of tasks on a terminal; one line per finished task otherwise (both on stderr)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.console = _console(stderr=True)
        self.run: Run | None = None
        self.live: Any = None

    def start(self, run: Run) -> None:
        self.run = run
        if self.enabled and self.console.is_terminal and run.tasks:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=8, transient=False)
            self.live.start()

    def update(self, run: Run, event: Event) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.update(self._table())
        elif event.status != "running":
            task = run.task(event.task_id)
            took = f" in {task.seconds:.2f} s" if task.seconds is not None else ""
            reason = f": {task.error}" if task.error else ""
            print(
                f"task {task.id} {task.task} ({task.model or 'no model'}) {task.status}{took}{reason}", file=sys.stderr
            )

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()
            self.live = None

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("id", "task", "model", "status", "time"):
            table.add_column(column)
        assert self.run is not None
        for task in self.run.tasks:
            seconds = f"{task.seconds:.2f} s" if task.seconds is not None else ""
            table.add_row(str(task.id), task.task, _esc(task.model or "-"), _status(task.status), seconds)
        return table


_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "skipped": "yellow",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "dim",
    "interrupted": "yellow",
}


def _status(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


@app.command()
def tasks(
    group: Annotated[
        str | None,
        typer.Option(metavar="GROUP", help="Only this group: huggingface, controlnet, editing or multimedia."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every task baton knows, its typed inputs and outputs, and whether an expert can run it here."""
    from rich.table import Table

    from baton.catalog import load_catalog
    from baton.select import NoExpert, select
    from baton.tasks import all_tasks

    catalog = load_catalog()
    specs = [s for s in all_tasks() if group is None or s.group == group]
    if not specs:
        raise _fail(f"no task group '{group}'; use huggingface, controlnet, editing or multimedia")
    rows = []
    for spec in specs:
        try:
            runner, reason = select(spec.name, catalog).card.id, ""
        except NoExpert as exc:
            runner, reason = None, str(exc)
        rows.append((spec, runner, reason))
    if as_json:
        _print_json(
            [
                {
                    "name": spec.name,
                    "group": spec.group,
                    "description": spec.description,
                    "inputs": [{"name": p.name, "kind": p.kind, "optional": p.optional} for p in spec.inputs],
                    "outputs": [{"name": p.name, "kind": p.kind} for p in spec.outputs],
                    "aliases": list(spec.aliases),
                    "expert": runner,
                    "why_not": reason or None,
                }
                for spec, runner, reason in rows
            ]
        )
        return
    table = Table(title=f"{len(rows)} tasks ({sum(r[1] is not None for r in rows)} runnable here)")
    for column in ("task", "inputs", "outputs", "runs here with"):
        table.add_column(column)
    for spec, runner, _ in rows:
        inputs = ", ".join(f"{p.name}:{p.kind}{'?' if p.optional else ''}" for p in spec.inputs)
        outputs = ", ".join(p.kind for p in spec.outputs)
        table.add_row(spec.name, inputs, outputs, f"[green]{_esc(runner)}[/]" if runner else "[dim]no expert[/]")
    _console().print(table)


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(metavar="TASK", help="Only models for this task.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the model catalogue: each model's task, backend, memory, and whether it can run here (and why not)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from baton.catalog import load_catalog

    with _user_errors():
        from baton.tasks import resolve

        catalog = load_catalog()
        wanted = resolve(task) if task else None
    cards = [card for card in catalog if wanted is None or card.task == wanted]
    if as_json:
        _print_json([{**card.model_dump(mode="json"), "missing": card.missing()} for card in cards])
        return
    table = Table(title=f"{len(cards)} models")
    for column in ("model", "task", "backend", "memory", "available"):
        table.add_column(column)
    for card in cards:
        missing = card.missing()
        available = "[green]yes[/]" if not missing else "[red]no[/]: " + _esc("; ".join(missing))
        memory = f"{card.memory_mb} MB" + (f" ({card.memory_fp16_mb} fp16)" if card.memory_fp16_mb else "")
        table.add_row(_esc(card.id), card.task, card.backend, memory, available)
    _console().print(table)


@models_app.command("pull")
def models_pull(model_id: Annotated[str, typer.Argument(metavar="ID", help="A Hub model of the catalogue.")]) -> None:
    """Download a Hub model's weights into the Hugging Face cache (HF_HOME), with progress."""
    with _user_errors():
        from baton.catalog import load_catalog
        from baton.experts.hub import pull

        card = load_catalog().get(model_id)
        if card.backend not in ("transformers", "diffusers"):
            raise _fail(f"{card.id} is a {card.backend} model: it has no weights to download")
        folders = pull(card)
    for folder in folders:
        print(f"downloaded {folder}")


@models_app.command("add")
def models_add(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A folder written by save_pretrained.")],
    task: Annotated[str, typer.Option(metavar="TASK", help="The task this model does, e.g. image-to-text.")],
    model_id: Annotated[
        str | None, typer.Option("--id", metavar="NAME", help="The id to call it by; default local/FOLDER.")
    ] = None,
) -> None:
    """Register a local transformers or diffusers folder as a model for a task."""
    with _user_errors():
        from baton.config import Settings
        from baton.experts.hub import add_local_model

        entry = add_local_model(path, task, model_id, Settings.load())
    print(f"registered {entry['id']} ({entry['backend']}, {entry['task']}) from {entry['hub']['path']}")


@models_app.command("rm")
def models_rm(model_id: Annotated[str, typer.Argument(metavar="ID", help="A model registered with 'add'.")]) -> None:
    """Forget a model registered with 'baton models add' (its folder is left as it is)."""
    with _user_errors():
        from baton.config import Settings
        from baton.experts.hub import remove_local_model

        removed = remove_local_model(model_id, Settings.load())
    if not removed:
        raise _fail(f"no registered model '{model_id}'; 'baton models' lists them (ids from 'baton models add')")
    print(f"forgot {model_id}")


def _store() -> Any:
    from baton.config import Settings
    from baton.store import Store

    with _user_errors():
        return Store(Settings.load().home)


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(metavar="N", help="How many runs to list, newest first.")] = 20,
    search: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Only runs whose request or answer contains this text.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List past runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    found = _store().runs(limit=limit, search=search)
    if as_json:
        _print_json([run.model_dump(mode="json") for run in found])
        return
    table = Table(title=f"{len(found)} runs")
    for column in ("id", "when", "status", "tasks", "request"):
        table.add_column(column)
    for item in found:
        summary = " -> ".join(task.task for task in item.tasks) or "-"
        request = item.request if len(item.request) <= 60 else item.request[:59] + "…"
        table.add_row(item.id, _when(item.created), _status(item.status), summary, _esc(request))
    _console().print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id (a unique prefix is enough).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole run record as JSON.")] = False,
) -> None:
    """Show one run: its plan as a tree with each task's status, model, duration and outputs."""
    from rich.tree import Tree

    found = _store().run(run_id)
    if found is None:
        raise _fail(f"no run with id '{run_id}' (or the prefix matches several); list them with 'baton runs'")
    if as_json:
        _print_json(found.model_dump(mode="json"))
        return
    planner = _esc(found.planner or "-")
    tree = Tree(f"run {found.id} {_status(found.status)}  {_when(found.created)}  planner: {planner}")
    tree.add(f"request: {_esc(found.request or '(none)')}")
    by_id = {task.id: task for task in found.plan.tasks}
    for record in found.tasks:
        seconds = f"{record.seconds:.2f} s" if record.seconds is not None else "-"
        model = _esc(record.model or "-")
        node = tree.add(f"[{record.id}] {record.task}  {model}  {_status(record.status)}  {seconds}")
        planned = by_id.get(record.id)
        if planned is not None:
            node.add(_esc(f"args: {json.dumps(planned.args, ensure_ascii=False)}  dep: {planned.dep}"))
        for port, value in record.outputs.items():
            shown = value.get("artifact") or json.dumps(value.get("value"), ensure_ascii=False)
            node.add(_esc(f"{port}: {shown}"))
        if record.error:
            node.add(f"[red]error:[/] {_esc(record.error)}")
    if found.error:
        tree.add(f"[red]error:[/] {_esc(found.error)}")
    for notice in found.notices:
        tree.add(f"[yellow]notice:[/] {_esc(notice)}")
    if found.usage:
        node = tree.add("LLM use")
        for stage, counts in found.usage.items():
            node.add(
                f"{stage}: {counts['calls']} call{'s' if counts['calls'] != 1 else ''}, "
                f"{counts['prompt_tokens']} prompt + {counts['completion_tokens']} completion tokens"
            )
    console = _console()
    console.print(tree, soft_wrap=False)  # wrap long lines under the tree; soft wrap would crop them
    if found.answer:
        console.print("\nanswer:\n" + found.answer, markup=False)


@app.command()
def sessions(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List sessions, newest first, with their number of runs."""
    from rich.table import Table

    found = _store().sessions()
    if as_json:
        _print_json([s.model_dump(mode="json") for s in found])
        return
    table = Table(title=f"{len(found)} sessions")
    for column in ("name", "id", "created", "runs"):
        table.add_column(column)
    for item in found:
        table.add_row(_esc(item.name), item.id, _when(item.created), str(item.runs))
    _console().print(table)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on; any but loopback needs BATON_API_TOKEN.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", min=1, max=65535, help="Port to listen on.")] = 8000,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Serve the web UI at /ui (needs the 'ui' extra).")] = True,
    max_upload_mb: Annotated[
        float | None,
        typer.Option(metavar="MB", min=0.001, help="Largest file a request may upload (BATON_MAX_UPLOAD_MB)."),
    ] = None,
    request_timeout: Annotated[
        float | None, typer.Option(metavar="SECONDS", min=1, help="Longest a request may run (BATON_REQUEST_TIMEOUT).")
    ] = None,
    runs_at_once: Annotated[
        int | None, typer.Option("--runs", metavar="N", min=1, help="Runs at once; the rest wait (BATON_SERVER_RUNS).")
    ] = None,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="uvicorn's log level: info, warning, ...")] = "info",
) -> None:
    """Serve the OpenAI-compatible, HuggingGPT-compatible and native HTTP APIs and the web UI on one port.

    On an address other than loopback (127.0.0.1, ::1, localhost) BATON_API_TOKEN must be set; clients
    then send it as a bearer token, and a browser opens /ui?token=TOKEN once.
    """
    overrides = {"max_upload_mb": max_upload_mb, "request_timeout": request_timeout, "server_runs": runs_at_once}
    with _user_errors():
        from baton.config import Settings

        settings = Settings.load(**{key: value for key, value in overrides.items() if value is not None})
    try:
        import uvicorn

        from baton.server.app import ServerConfigError, create_app
    except ImportError as exc:
        raise _fail(
            f"the server needs the 'server' extra ({exc.name} is missing): pip install 'baton[server]'"
        ) from None
    with _user_errors():
        try:
            server_app = create_app(settings, host=host, ui=ui)
        except ServerConfigError as exc:
            raise _fail(str(exc)) from None
        except ImportError as exc:
            raise _fail(
                f"the web UI needs the 'ui' extra ({exc.name} is missing): pip install 'baton[ui]', or serve --no-ui"
            ) from None
    # requests run side by side, each task on one core: Tesseract's own threads would only contend
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    shown = f"[{host}]" if ":" in host else host
    err = _console(stderr=True)
    err.print(f"baton serves on http://{_esc(shown)}:{port}", markup=False)
    err.print("  OpenAI-compatible API: /v1   HuggingGPT: /hugginggpt /tasks /results   schema: /openapi.json")
    if ui:
        login = "?token=YOUR_TOKEN (once)" if settings.api_token else ""
        err.print(f"  web UI: http://{_esc(shown)}:{port}/ui/{login}", markup=False)
    uvicorn.run(server_app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


def _plan_lines(plan: Any) -> list[str]:
    """One line per task: '[id] task  port=value ...  (after ids)'."""
    lines = []
    for task in plan.tasks:
        items = task.args.items() if isinstance(task.args, dict) else enumerate(task.args)
        args = "  ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in items)
        after = f"  (after {', '.join(map(str, task.dep))})" if task.dep else ""
        lines.append(f"[{task.id}] {task.task}  {args}{after}")
    return lines


@app.command()
def plan(
    request: Annotated[str, typer.Argument(metavar="REQUEST", help="What you want done, in plain words.")] = "",
    inputs: Annotated[
        list[Path] | None,
        typer.Option("--input", "-i", metavar="FILE", help="An image, audio or video file; repeat for several."),
    ] = None,
    planner: Annotated[
        str,
        typer.Option(
            metavar="auto|local|llm",
            help="Who plans: auto (local when it is sure, else the LLM; local without an LLM), local or llm.",
        ),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON (baton's format).")] = False,
    batch: Annotated[
        Path | None,
        typer.Option(
            metavar="IN.jsonl",
            help="Plan every line of a JSONL file ({'id', 'user_request'} or 'instruction'; '-' for stdin) "
            "with the local planner; one output line per input line.",
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option("--format", metavar="taskbench|baton", help="Batch output: TaskBench predictions or baton plans."),
    ] = "taskbench",
    tools: Annotated[
        str | None,
        typer.Option(
            metavar="huggingface|multimedia|PATH",
            help="Batch: the tool list whose ids the TaskBench output uses (a tool_desc.json path for your own).",
        ),
    ] = None,
) -> None:
    """Plan a request and print the plan without running it; or plan a JSONL file in batch.

    Batch mode writes exactly one line per input line to stdout, in input order; a line that cannot be
    read gets an empty plan and an "error".
    """
    _choice("--planner", planner, ("auto", "local", "llm"))
    if batch is not None:
        _plan_batch(batch, output_format, tools, planner, request, inputs)
        return
    with _user_errors():
        from baton.assistant import Assistant
        from baton.config import Settings
        from baton.llm import LLM
        from baton.plan import validate
        from baton.planners import PlanContext, PlanningFailed
        from baton.planners.router import choose_planner

        if not request.strip():
            raise _fail(
                'the request is empty; say what you want, e.g. baton plan "read the text in this image aloud" -i photo.png'
            )
        settings = Settings.load()
        labels = Assistant.check_inputs(inputs or [])
        files = [(label, kind) for label, (_, kind) in labels.items()]
        planning = choose_planner(planner, settings, LLM(settings) if settings.llm_configured else None)
        try:
            found = planning.plan(request.strip(), files, PlanContext(known=dict(files)))
        except PlanningFailed as exc:
            raise _fail(f"planning failed: {exc}", EXIT_TASK_FAILED) from None
        validate(found, dict(files))
    confidence = getattr(planning, "confidence", None)
    if as_json:
        _print_json({"planner": planning.name, "confidence": confidence, **found.model_dump(mode="json")})
        return
    sure = f" (confidence {confidence:.2f})" if isinstance(confidence, float) else ""
    _console(stderr=True).print(f"planner: {planning.name}{sure}", markup=False)
    if not found.tasks:
        print("no task: the request needs no expert (or the planner found none)")
    for line in _plan_lines(found):
        print(line)


def _plan_batch(
    batch: Path, output_format: str, tools: str | None, planner: str, request: str, inputs: list[Path] | None
) -> None:
    _choice("--format", output_format, ("taskbench", "baton"))
    if request or inputs:
        raise _fail("--batch reads its requests from the file; give no REQUEST or -i with it")
    if planner == "llm":
        raise _fail("--batch plans with the local planner; --planner llm plans one request at a time")
    if output_format == "taskbench" and tools is None:
        raise _fail("--format taskbench needs --tools huggingface, multimedia or a tool_desc.json path")
    plan_line: Any = _baton_line
    if output_format == "taskbench":
        from baton.planners.batch import BatchPlanner

        try:
            plan_line = BatchPlanner.for_tools(tools or "").plan_line
        except (ValueError, FileNotFoundError) as exc:
            raise _fail(str(exc)) from None
    try:
        source = sys.stdin if str(batch) == "-" else batch.open(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise _fail(f"cannot read '{batch}' ({exc.strerror}); check the path") from None
    with source:
        for line in source:
            print(json.dumps(plan_line(line), ensure_ascii=False))
    sys.stdout.flush()


def _baton_line(line: str) -> dict[str, Any]:
    """One batch line planned by the local planner as a baton plan (never raises for bad input)."""
    from baton.planners import PlannerError
    from baton.planners.local import LocalPlanner

    try:
        record = json.loads(line) if line.strip() else None
    except json.JSONDecodeError as exc:
        return {"id": None, "plan": {"tasks": []}, "error": f"not JSON: {exc.msg}"}
    if not isinstance(record, dict):
        return {"id": None, "plan": {"tasks": []}, "error": "blank line" if record is None else "not a JSON object"}
    request = record.get("user_request", record.get("instruction"))
    if not isinstance(request, str) or not request.strip():
        return {"id": record.get("id"), "plan": {"tasks": []}, "error": "no user_request or instruction"}
    from baton.planners.model import FILE_NAME, media_kind

    files = [(name, kind) for name in FILE_NAME.findall(request) if (kind := media_kind(name))]
    try:
        found, confidence = LocalPlanner().plan_with_confidence(request, list(dict.fromkeys(files)))
    except PlannerError as exc:
        return {"id": record.get("id"), "plan": {"tasks": []}, "error": str(exc)}
    return {"id": record.get("id"), "plan": found.model_dump(mode="json"), "confidence": confidence}


eval_app = typer.Typer(help="Score plans against a benchmark's gold plans.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(help="Rebuild baton's trained artefacts.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@eval_app.command("taskbench")
def eval_taskbench(
    gold: Annotated[Path, typer.Option(metavar="GOLD.jsonl", help="TaskBench records (with task_nodes).")],
    pred: Annotated[Path, typer.Option(metavar="PRED.jsonl", help="Predictions: {'id', 'result': {...}} lines.")],
    tools: Annotated[
        str, typer.Option(metavar="huggingface|multimedia|PATH", help="The tool list (for types and tool ids).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Score TaskBench predictions: node-F1, edge-F1, t-F1, v-F1 and NED, overall and per type.

    TaskBench's definitions, except that a missing or unreadable prediction counts as an empty plan.
    """
    from baton.taskbench import evaluate, load_tools, read_jsonl, read_predictions

    try:
        tool_list = load_tools(tools)
        gold_records = [record for _, record in read_jsonl(gold) if isinstance(record, dict)]
        predictions = read_predictions(pred)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot read '{exc.filename}' ({exc.strerror}); check the path") from None
    if not gold_records:
        raise _fail(f"'{gold}' holds no TaskBench records")
    scores = evaluate(gold_records, predictions, tool_list)
    if as_json:
        _print_json({group: score.to_json() for group, score in scores.items()})
        return
    from rich.table import Table

    def shown(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    table = Table(title=f"TaskBench ({tool_list.name}): {scores['all'].records} records")
    for column in ("type", "records", "missing", "node-F1", "edge-F1", "t-F1", "v-F1", "NED"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for group, score in scores.items():
        table.add_row(
            group,
            str(score.records),
            str(score.missing),
            shown(score.n_f1),
            shown(score.e_f1),
            shown(score.t_f1),
            shown(score.v_f1),
            shown(score.ned, 4),
        )
    _console().print(table)


@train_app.command("planner")
def train_planner(
    domain: Annotated[
        list[str] | None,
        typer.Option(
            metavar="huggingface|multimedia|baton",
            help="Which model to train (repeatable; default all three). baton: both domains in baton's task names, "
            "the model the local planner uses.",
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(metavar="DIR", help="TaskBench's data folder (default: ../shared/taskbench).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Write here instead of over the shipped model (one domain).")
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed for every random choice.")] = 0,
    limit: Annotated[int | None, typer.Option(metavar="N", help="Train on the first N records only.")] = None,
) -> None:
    """Train the local planner's model from TaskBench's dev split; same data and seed give the same file."""
    from dataclasses import replace

    from baton.planners.model import MODEL_DOMAINS

    domains = domain or list(MODEL_DOMAINS)
    for name in domains:
        _choice("--domain", name, MODEL_DOMAINS)
    if out is not None and len(domains) != 1:
        raise _fail("--out writes one model; give one --domain with it")
    try:
        from baton.planners.training import TrainConfig, train_domain
    except ImportError as exc:
        raise _fail(f"training needs the 'text' extra ({exc.name} is missing): pip install 'baton[text]'") from None
    err = _console(stderr=True)
    for name in domains:
        err.print(f"{name}: training (about a minute on two cores) ...", markup=False)
        try:
            report = train_domain(name, data=data, out=out, config=replace(TrainConfig(), seed=seed), limit=limit)
        except FileNotFoundError as exc:
            raise _fail(f"cannot read TaskBench data: {exc.filename} is missing; give its folder with --data") from None
        except ValueError as exc:
            raise _fail(str(exc)) from None
        err.print(
            f"{name}: {report.records} records, {report.seconds:.1f} s -> {report.path} "
            f"({report.size / 1e6:.2f} MB, sha256 {report.sha256[:16]})",
            markup=False,
        )


def main() -> None:
    app(prog_name="baton")
