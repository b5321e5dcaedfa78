"""The web UI: a multimodal chat with live plan progress, run traces, sessions and LLM settings.

Built with Gradio and mounted on the server's app, so the UI and the API share one port and one
Assistant. Everything the page needs is served by baton itself: no fonts, scripts or analytics from
elsewhere (``GRADIO_ANALYTICS_ENABLED=False``; ``HF_HUB_OFFLINE=1`` unless network access is on).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.server.errors import ApiError
from baton.server.service import Endpoint, Job, Service

if TYPE_CHECKING:
    import gradio as gr
    from fastapi import FastAPI

    from baton.media import Artifact
    from baton.runs import Run

__all__ = ["build", "mount"]

CSS = """
#plan table { font-size: 0.85em; }
#run-status { min-height: 1.5em; }
"""
HEADERS = ["id", "task", "expert", "status", "time"]


def mount(app: FastAPI, service: Service, path: str = "/ui") -> None:
    """Mount the UI on ``app`` at ``path``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not service.settings.allow_network:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gradio as gr

    blocks = build(service)
    gr.mount_gradio_app(
        app,
        blocks,
        path=path,
        allowed_paths=[str(service.store.files)],  # produced media are shown from the store
        max_file_size=int(service.settings.max_upload_mb * 1024 * 1024),
        ssr_mode=False,
        footer_links=[],
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        theme=gr.themes.Default(),  # its fonts are bundled: nothing is fetched from font services
        css=CSS,
    )


def build(service: Service) -> gr.Blocks:
    import gradio as gr

    settings = service.settings
    ui = UI(service)
    # Gradio keeps a copy of each file it shows: those older than a day are deleted every hour
    with gr.Blocks(title="baton", analytics_enabled=False, delete_cache=(3600, 86400)) as blocks:
        session = gr.State(None)  # the current session's id; None until the first message
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=240):
                gr.Markdown("## baton\nPlan a request as tasks, run each with an expert, answer.")
                sessions = gr.Dropdown(label="Session", choices=ui.session_choices(), value=None, elem_id="sessions")
                new = gr.Button("New session", elem_id="new-session", size="sm")
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    planner = gr.Radio(
                        ["auto", "local", "llm"], value="auto", label="Planner", info="auto: the LLM when there is one"
                    )
                    mode = gr.Radio(["plan", "agent"], value="plan", label="Mode", info="agent: tool calling (LLM)")
                    base_url = gr.Textbox(
                        label="LLM endpoint",
                        placeholder=settings.llm_base_url or "none: the local planner and template answers",
                        info="An OpenAI-compatible base URL, e.g. http://localhost:11434/v1",
                    )
                    model = gr.Textbox(
                        label="LLM model", placeholder=settings.llm_model or "the endpoint's first model"
                    )
                    api_key = gr.Textbox(label="LLM API key", type="password", placeholder="only if it needs one")
            with gr.Column(scale=3, min_width=400):
                chat = gr.Chatbot(label="Conversation", elem_id="chat", height=560, buttons=["copy"])
                box = gr.MultimodalTextbox(
                    placeholder="Ask; attach images, audio or video, or record audio",
                    sources=["upload", "microphone"],
                    file_types=["image", "audio", "video"],
                    file_count="multiple",
                    show_label=False,
                    elem_id="request",
                )
            with gr.Column(scale=2, min_width=380):
                plan = gr.Dataframe(
                    headers=HEADERS,
                    value=[],
                    label="Plan",
                    interactive=False,
                    elem_id="plan",
                    wrap=True,
                    column_widths=["7%", "27%", "30%", "20%", "16%"],
                )
                status = gr.Markdown("", elem_id="run-status")
                runs = gr.Dropdown(label="Open a run's trace", choices=[], value=None, elem_id="runs")
                trace = gr.JSON(label="Trace", elem_id="trace")

        settings_inputs = [planner, mode, base_url, model, api_key]
        box.submit(
            ui.send,
            [box, chat, session, *settings_inputs],
            [box, chat, plan, status, session, sessions, runs, trace],
        )
        sessions.input(ui.open_session, [sessions], [chat, session, runs, plan, status, trace])
        new.click(ui.new_session, None, [chat, session, sessions, runs, plan, status, trace])
        runs.input(ui.open_trace, [runs], [trace, plan, status])
        blocks.load(ui.refresh_sessions, [session], [sessions])
    blocks.queue(default_concurrency_limit=settings.server_runs)
    built: gr.Blocks = blocks
    return built


class UI:
    """The handlers behind the page; each works on the shared Service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.store = service.store

    # sessions

    def session_choices(self) -> list[tuple[str, str]]:
        return [(f"{s.name} · {s.runs} run{'s' if s.runs != 1 else ''}", s.id) for s in self.store.sessions()]

    def refresh_sessions(self, session_id: str | None) -> Any:
        import gradio as gr

        return gr.Dropdown(choices=self.session_choices(), value=session_id)

    def new_session(self) -> tuple[Any, ...]:
        import gradio as gr

        return [], None, gr.Dropdown(choices=self.session_choices(), value=None), _runs_dropdown([], None), [], "", None

    def open_session(self, session_id: str | None) -> tuple[Any, ...]:
        """Resume a session: its conversation, its runs, the last run's plan."""
        if not session_id or self.store.session_by_id(session_id) is None:
            return [], None, _runs_dropdown([], None), [], "", None
        runs = list(reversed(self.store.runs(limit=100, session_id=session_id)))
        history: list[dict[str, Any]] = []
        for run in runs:
            history.append({"role": "user", "content": run.request or "(a given plan)"})
            history += self._answer_messages(run)
        last = runs[-1] if runs else None
        return (
            history,
            session_id,
            _runs_dropdown(runs, last.id if last else None),
            _rows(last.tasks if last else []),
            _summary(last) if last else "",
            self.service.trace(last) if last else None,
        )

    def open_trace(self, run_id: str | None) -> tuple[Any, ...]:
        found = self.service.run_record(run_id) if run_id else None
        if found is None:
            return None, [], ""
        return self.service.trace(found), _rows(found.tasks), _summary(found)

    # a message

    def send(
        self,
        message: dict[str, Any] | None,
        history: list[dict[str, Any]] | None,
        session_id: str | None,
        planner: str | None,
        mode: str | None,
        base_url: str | None,
        model: str | None,
        api_key: str | None,
    ) -> Iterator[tuple[Any, ...]]:
        """Run a message, streaming the plan's progress and the answer into the page."""
        import gradio as gr

        text = str((message or {}).get("text") or "").strip()
        files = [Path(_path_of(f)) for f in (message or {}).get("files") or []]
        history = list(history or [])
        if not text and not files:
            return
        for path in files:
            history.append({"role": "user", "content": _media(path)})
        if text:
            history.append({"role": "user", "content": text})
        answer: dict[str, Any] = {"role": "assistant", "content": ""}
        history.append(answer)
        busy = gr.MultimodalTextbox(value=None, interactive=False)
        keep = gr.skip()
        rows: list[list[str]] = []

        def frame(status: str, session: Any = keep, sessions: Any = keep, runs: Any = keep, trace: Any = keep) -> Any:
            return busy, history, rows, status, session, sessions, runs, trace

        try:
            endpoint = Endpoint(_text(base_url), _text(model), _text(api_key))
            live = self._start(text, files, session_id, planner or "auto", mode or "plan", endpoint)
        except ApiError as error:
            answer["content"] = f"**error:** {error.message}"
            yield gr.MultimodalTextbox(value=None, interactive=True), history, rows, "", keep, keep, keep, keep
            return
        yield frame("planning…")
        began = time.monotonic()
        for event in live.follow():
            kind = event["type"]
            if kind == "start":
                rows = _rows_json(event["run"]["tasks"])
                count = len(rows)
                yield frame(f"running {count} task{'s' if count != 1 else ''}…")
            elif kind == "task":
                task = event["task"]
                rows = [_row_json(task) if row[0] == str(task["id"]) else row for row in rows]
                yield frame(f"running… {time.monotonic() - began:.1f} s")
            elif kind == "answer":
                answer["content"] += event["delta"]
                yield frame("answering…")
            elif kind == "error":
                answer["content"] = f"**error:** {event['error']['message']}"
                done = gr.MultimodalTextbox(value=None, interactive=True)
                yield done, history, rows, "refused", keep, keep, keep, keep
                return
            elif kind == "done":
                found = self.service.run_record(event["run"]["id"])
                if found is None:  # deleted meanwhile
                    answer["content"] = event["run"]["answer"]
                else:
                    history.pop()
                    history += self._answer_messages(found)
                    rows = _rows(found.tasks)
                sid = event["run"]["session_id"]
                runs = list(reversed(self.store.runs(limit=100, session_id=sid)))
                done = gr.MultimodalTextbox(value=None, interactive=True)
                yield (
                    done,
                    history,
                    rows,
                    _summary(found) if found else "",
                    sid,
                    gr.Dropdown(choices=self.session_choices(), value=sid),
                    _runs_dropdown(runs, event["run"]["id"]),
                    event["run"],
                )
                return

    def _start(
        self, text: str, files: list[Path], session_id: str | None, planner: str, mode: str, endpoint: Endpoint
    ) -> Any:
        inputs = self.service.new_inputs()
        try:
            with tempfile.TemporaryDirectory(prefix="recording-") as scratch:
                for path in files:
                    inputs.add_path(_audio_recording(path, Path(scratch)))
            inputs.check()
            session = self.store.session_by_id(session_id) if session_id else None
            job = Job(
                request=text or " ".join(path.name for path in inputs.paths),  # a recording alone: its name
                inputs=inputs, session=session.name if session else None,
                session_id=session.id if session else None, planner=planner, mode=mode,  # type: ignore[arg-type]
                endpoint=endpoint,
            )  # fmt: skip
            return self.service.start(job)
        except BaseException:
            inputs.cleanup()
            raise

    def _answer_messages(self, run: Run) -> list[dict[str, Any]]:
        """The answer (files as links named by their artifact), then each produced medium inline."""
        messages: list[dict[str, Any]] = [
            {"role": "assistant", "content": self.service.answer_text(run, markdown=True) or "(no answer)"}
        ]
        for artifact in self.service.run_artifacts(run):
            messages.append({"role": "assistant", "content": _media(artifact.path, artifact)})
        return messages


def _audio_recording(path: Path, scratch: Path) -> Path:
    """The browser records the microphone as WebM, which baton reads as video: made a WAV when ffmpeg is here."""
    if path.name != "recording.webm" or shutil.which("ffmpeg") is None:
        return path
    from baton.experts.process import run_program

    target = scratch / "recording.wav"
    command = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(path), "-vn", "-ac", "1", str(target)]
    done = run_program(command, timeout=120)
    return target if done.returncode == 0 and target.exists() else path


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _path_of(file: Any) -> str:
    return str(file.get("path") if isinstance(file, dict) else file)


def _media(path: Path, artifact: Artifact | None = None) -> Any:
    import gradio as gr

    from baton.media import kind_of_filename

    kind = artifact.kind if artifact else kind_of_filename(path.name)
    label = artifact.name if artifact else path.name
    if kind == "image":
        return gr.Image(value=str(path), label=label)
    if kind == "audio":
        return gr.Audio(value=str(path), label=label)
    if kind == "video":
        return gr.Video(value=str(path), label=label)
    return gr.File(value=str(path), label=label)


def _row_json(task: dict[str, Any]) -> list[str]:
    seconds = f"{task['seconds']:.2f} s" if task.get("seconds") is not None else ""
    return [str(task["id"]), task["task"], task.get("model") or "-", task["status"], seconds]


def _rows_json(tasks: list[dict[str, Any]]) -> list[list[str]]:
    return [_row_json(task) for task in tasks]


def _rows(tasks: list[Any]) -> list[list[str]]:
    return [_row_json(task.model_dump()) for task in tasks]


def _summary(run: Run) -> str:
    took = f" in {run.finished - run.created:.2f} s" if run.finished else ""
    error = f" — {run.error}" if run.error else ""
    return f"run `{run.id}` **{run.status}**{took}{error}"


def _runs_dropdown(runs: list[Run], value: str | None) -> Any:
    import gradio as gr

    choices = [
        (f"{datetime.fromtimestamp(run.created):%H:%M:%S} {run.request[:40] or '(plan)'} · {run.status}", run.id)
        for run in runs
    ]
    return gr.Dropdown(choices=choices, value=value)
