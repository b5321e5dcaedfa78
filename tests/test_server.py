"""The HTTP server against a live uvicorn on 127.0.0.1: the openai client, the native API, JARVIS's API."""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.catalog import Catalog, ModelCard
from baton.experts import Expert, ExpertContext
from baton.media import Resource
from baton.store import Store
from baton.testing import ScriptedLLM
from server_helpers import READ_ALOUD, SIGN, Live, data_url, server_settings, serving


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the tests that do not change its settings."""
    with serving(server_settings(tmp_path_factory.mktemp("server") / "home")) as running:
        yield running


def read_aloud_message(text: str = READ_ALOUD) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": data_url()}}],
        }
    ]


def is_wav(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, data) of each server-sent event; comments are left out."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = "message", None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])
        if data is not None:
            events.append((name, data))
    return events


# the OpenAI-compatible API, through the official client


def test_openai_client_lists_the_planner_modes_as_models(live: Live) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=live.url + "/v1", api_key="not-needed-on-loopback")
    assert [model.id for model in client.models.list()] == ["baton", "baton-local"]
    assert client.models.retrieve("baton-local").owned_by == "baton"


def test_openai_client_gets_the_answer_and_the_audio_it_made(live: Live) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=live.url + "/v1", api_key="unused")
    completion = client.chat.completions.create(model="baton", messages=read_aloud_message())  # type: ignore[arg-type]
    answer = completion.choices[0].message.content or ""
    extra = (completion.model_extra or {})["baton"]
    assert completion.choices[0].finish_reason == "stop"
    assert "Welcome to the baton demo" in answer
    assert extra["status"] == "succeeded" and [t["task"] for t in extra["tasks"]] == ["image-to-text", "text-to-speech"]
    [audio] = extra["artifacts"]
    assert audio["kind"] == "audio" and audio["mime_type"] == "audio/wav"
    assert audio["url"] in answer  # the answer links the file instead of a server path
    assert str(live.settings.home) not in answer
    got = httpx.get(audio["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav" and is_wav(got.content)


def test_openai_client_streams_chunks_ending_with_done(live: Live) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=live.url + "/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="baton-local",
        messages=read_aloud_message(),  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert "Welcome to the baton demo" in text
    assert len(finishing) == 1 and (finishing[0].model_extra or {})["baton"]["status"] == "succeeded"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    # the raw stream: progress as SSE comments, then chunks, then [DONE]
    body = {"model": "baton", "messages": read_aloud_message(), "stream": True}
    raw = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=60)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert ": task 0 image-to-text (builtin/tesseract) succeeded" in raw.text
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_openai_client_streams_an_llm_answer_piece_by_piece(tmp_path: Path) -> None:
    plan = {
        "tasks": [
            {"id": 0, "task": "image-to-text", "args": {"image": "image-1.png"}, "dep": []},
            {"id": 1, "task": "text-to-speech", "args": {"text": "<GENERATED>-0"}, "dep": [0]},
        ]
    }
    answer = "The sign says: Welcome to the baton demo. I read it aloud for you."
    with ScriptedLLM([json.dumps(plan), answer], chunk_size=5) as llm:
        settings = server_settings(tmp_path / "home", llm_base_url=llm.base_url, llm_model="scripted-model")
        with serving(settings) as running:
            from openai import OpenAI

            client = OpenAI(base_url=running.url + "/v1", api_key="unused")
            assert [m.id for m in client.models.list()] == ["baton", "baton-local", "baton-llm", "baton-agent"]
            stream = client.chat.completions.create(
                model="baton-llm",
                messages=read_aloud_message(),  # type: ignore[arg-type]
                stream=True,
            )
            pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    text = "".join(pieces)
    assert text.startswith(answer) and len(pieces) > 5  # streamed as the LLM wrote it
    assert "/artifacts/audio/" in text.split(answer, 1)[1]  # then the file it made, as a URL


def test_openai_errors_have_openais_shape_and_status(live: Live) -> None:
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found" and "baton-local" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as unplannable:
        client.chat.completions.create(model="baton", messages=[{"role": "user", "content": READ_ALOUD}])
    assert "image" in unplannable.value.message
    with pytest.raises(openai.BadRequestError) as streamed_refusal:  # refused before the stream starts: a 400
        client.chat.completions.create(model="baton", messages=[{"role": "user", "content": ""}], stream=True)
    assert "empty" in streamed_refusal.value.message
    url = live.url + "/v1/chat/completions"
    cases: list[tuple[Any, str]] = [
        ({"model": "baton"}, "messages: Field required"),
        ({"model": "baton", "messages": []}, "messages"),
        ({"model": "baton", "messages": [{"role": "assistant", "content": "hi"}]}, "the last message must be the user's"),
        (
            {"model": "baton", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}]}]},
            "base64 data is malformed",
        ),
        (
            {"model": "baton", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
            "BATON_ALLOW_NETWORK=1",
        ),
        (
            {"model": "baton", "messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
            "has type 'hologram'",
        ),
    ]  # fmt: skip
    for body, expected in cases:
        response = httpx.post(url, json=body)
        error = response.json()["error"]
        assert response.status_code == 400, (body, response.text)
        assert expected in error["message"] and error["type"] == "invalid_request_error"
        assert set(error) == {"message", "type", "param", "code"}
    broken = httpx.post(url, content=b'{"model": "baton", "messages": [', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    missing = httpx.get(live.url + "/v1/nothing-here")
    assert missing.status_code == 404 and "no such endpoint" in missing.json()["error"]["message"]


def test_input_audio_parts_become_inputs(live: Live, tmp_path: Path) -> None:
    import base64

    from openai import OpenAI

    client = OpenAI(base_url=live.url + "/v1", api_key="unused")
    spoken = client.chat.completions.create(model="baton", messages=[{"role": "user", "content": "say 'good morning'"}])
    [audio] = (spoken.model_extra or {})["baton"]["artifacts"]
    wav = httpx.get(audio["url"]).content
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}
    pictured = client.chat.completions.create(
        model="baton",
        messages=[{"role": "user", "content": [{"type": "text", "text": "run audio-to-image on this audio"}, part]}],  # type: ignore[list-item]
    )
    extra = (pictured.model_extra or {})["baton"]
    assert [(t["task"], t["status"]) for t in extra["tasks"]] == [("audio-to-image", "succeeded")], extra
    assert extra["artifacts"][0]["mime_type"] == "image/png"


# the native API


def new_session(live: Live, name: str | None = None) -> dict[str, Any]:
    created = httpx.post(live.url + "/sessions", json={"name": name} if name else None)
    assert created.status_code == 201, created.text
    return dict(created.json())


def post_message(live: Live, session: dict[str, Any], text: str, *files: Path, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{live.url}/sessions/{session['id']}/messages",
        data={"text": text, **fields},
        files=[("files", (path.name, path.read_bytes())) for path in files],
        headers={"X-Session-Key": session["key"]},
        timeout=60,
    )


def test_sessions_messages_history_runs_and_deletion(live: Live) -> None:
    session = new_session(live, "native-test")
    assert httpx.post(live.url + "/sessions", json={"name": "native-test"}).status_code == 409
    first = post_message(live, session, READ_ALOUD, SIGN)
    assert first.status_code == 200, first.text
    run = first.json()
    assert run["status"] == "succeeded" and run["session_id"] == session["id"]
    assert [t["task"] for t in run["tasks"]] == ["image-to-text", "text-to-speech"]
    assert all(t["model"] and t["seconds"] is not None for t in run["tasks"])
    assert "Welcome to the baton demo" in run["answer"]
    # a second message names the file the first one made
    audio = run["artifacts"][0]["name"]
    second = post_message(live, session, f"run audio-to-image on {audio}")
    assert second.status_code == 200 and second.json()["status"] == "succeeded", second.text

    key = {"key": session["key"]}
    listed = httpx.get(live.url + "/sessions").json()
    assert any(s["id"] == session["id"] and s["runs"] == 2 and s["key"] is None for s in listed)
    got = httpx.get(f"{live.url}/sessions/{session['id']}", params=key).json()
    assert [r["request"] for r in got["history"]] == [READ_ALOUD, f"run audio-to-image on {audio}"]
    assert {f["label"] for f in got["files"]} >= {"sign.png"}
    trace = httpx.get(f"{live.url}/runs/{run['id']}", params=key).json()
    assert trace["plan"]["tasks"][1]["args"] == {"text": "<GENERATED>-0"}
    assert trace["tasks"][0]["outputs"]["text"]["value"].startswith("Welcome to the baton demo")
    finished = httpx.get(f"{live.url}/runs/{run['id']}/events", params=key)
    assert [name for name, _ in sse_events(finished.text)] == ["done"]

    deleted = httpx.delete(f"{live.url}/sessions/{session['id']}", params=key)
    assert deleted.status_code == 204
    assert httpx.get(f"{live.url}/sessions/{session['id']}", params=key).status_code == 404
    assert httpx.get(f"{live.url}/runs/{run['id']}", params=key).status_code == 404


def test_progress_streams_as_server_sent_events(live: Live) -> None:
    session = new_session(live)
    streamed = post_message(live, session, READ_ALOUD, SIGN, stream="true")
    events = sse_events(streamed.text)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    statuses = [(data["task"]["id"], data["task"]["status"]) for name, data in events if name == "task"]
    assert statuses.index((0, "succeeded")) < statuses.index((1, "running")) < statuses.index((1, "succeeded"))
    done = events[-1][1]["run"]
    assert done["artifacts"][0]["url"].startswith(live.url + "/artifacts/audio/")

    # wait=false: 202 with the run's id once planned, then its events from the start
    accepted = post_message(live, session, "say 'one two three'", wait="false")
    assert accepted.status_code in (200, 202), accepted.text
    events = sse_events(httpx.get(accepted.json()["events"], timeout=60).text)
    assert events[-1][0] == "done" and events[-1][1]["run"]["status"] == "succeeded"


def test_artifacts_have_their_mime_type_and_byte_ranges(live: Live) -> None:
    session = new_session(live)
    run = post_message(live, session, "say 'ranges for audio'").json()
    url = run["artifacts"][0]["url"]
    whole = httpx.get(url)
    assert whole.headers["content-type"] == "audio/wav" and whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers={"Range": "bytes=0-43"})
    assert part.status_code == 206 and part.content == whole.content[:44]
    assert part.headers["content-range"] == f"bytes 0-43/{len(whole.content)}"
    assert struct.unpack("<4sI4s", part.content[:12])[0::2] == (b"RIFF", b"WAVE")
    assert httpx.head(url).status_code == 200
    upload = httpx.get(live.url + "/artifacts/" + run["artifacts"][0]["name"], params={"session": session["id"]})
    assert upload.status_code == 404  # no key: no file


# Microsoft JARVIS's API


def jarvis_body(content: str) -> dict[str, Any]:
    # as JARVIS's clients send it: the conversation, and the OpenAI settings JARVIS needed (ignored here)
    return {
        "messages": [{"role": "user", "content": content}],
        "api_key": "sk-not-used",
        "api_type": "openai",
        "api_endpoint": "https://api.openai.com/v1",
    }


def test_jarvis_tasks_results_and_answer_in_jarvis_shapes(live: Live) -> None:
    content = f"Please read the text in this image aloud: ![]({data_url()})"
    tasks = httpx.post(live.url + "/tasks", json=jarvis_body(content), timeout=60)
    assert tasks.status_code == 200, tasks.text
    assert tasks.json() == [
        {"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "image-1.png"}},
        {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
    ]
    results = httpx.post(live.url + "/results", json=jarvis_body(content), timeout=60).json()
    assert set(results) == {"0", "1"}
    ocr, speech = results["0"], results["1"]
    assert set(ocr) == {"task", "inference result", "choose model result"}
    assert ocr["task"]["task"] == "image-to-text" and ocr["task"]["dep"] == [-1]
    assert ocr["inference result"]["generated text"].startswith("Welcome to the baton demo")
    assert ocr["choose model result"]["id"] == "builtin/tesseract" and ocr["choose model result"]["reason"]
    assert is_wav(httpx.get(speech["inference result"]["generated audio"]).content)
    answer = httpx.post(live.url + "/hugginggpt", json=jarvis_body(content), timeout=60).json()
    assert list(answer) == ["message"] and "Welcome to the baton demo" in answer["message"]
    assert "/artifacts/audio/" in answer["message"]


def test_jarvis_requests_without_a_plan_get_a_message(live: Live) -> None:
    for endpoint in ("/tasks", "/results", "/hugginggpt"):
        got = httpx.post(live.url + endpoint, json=jarvis_body("read the text in this image aloud"), timeout=60)
        assert got.status_code == 200 and list(got.json()) == ["message"] and "image" in got.json()["message"]
    nothing = httpx.post(live.url + "/tasks", json=jarvis_body("how are you?")).json()
    assert list(nothing) == ["message"] and "no task" in nothing["message"]
    bad = httpx.post(live.url + "/hugginggpt", json={"conversation": []})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"


# the rest of the app


def test_health_and_openapi_schema(live: Live) -> None:
    health = httpx.get(live.url + "/health").json()
    assert health["status"] == "ok" and health["ui"] is False
    schema = httpx.get(live.url + "/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/v1/chat/completions", "/v1/models", "/hugginggpt", "/tasks", "/results", "/sessions"} <= paths
    assert {"/sessions/{session_id}/messages", "/runs/{run_id}/events", "/artifacts/{name}", "/health"} <= paths
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_many_concurrent_requests_share_one_assistant(live: Live) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live.url, timeout=120) as client:
            requests = [
                client.post(
                    "/v1/chat/completions",
                    json={"model": "baton", "messages": [{"role": "user", "content": f"say 'request {n}'"}]},
                )
                for n in range(24)
            ]
            return await asyncio.gather(*requests)

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 24
    runs = [r.json()["baton"] for r in responses]
    assert all(run["status"] == "succeeded" for run in runs)
    assert len({run["session_id"] for run in runs}) == 24
    for run in runs[:3]:
        assert is_wav(httpx.get(run["artifacts"][0]["url"]).content)


class SlowSpeaker(Expert):
    """Speaks only when released (or after 20 s): a run that outlasts the request timeout."""

    release = threading.Event()

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        self.release.wait(20)
        return {"audio": Resource.media(ctx.save_file(SIGN))}


SLOW_SPEAKER = ModelCard(
    id="test/slow-speaker", task="text-to-speech", backend="builtin", description="slow",
    factory=f"{__name__}:SlowSpeaker",
)  # fmt: skip


def test_a_request_over_the_timeout_is_stopped_and_recorded(tmp_path: Path) -> None:
    SlowSpeaker.release.clear()
    settings = server_settings(tmp_path / "home", request_timeout=0.5)
    with serving(settings, catalog=Catalog([SLOW_SPEAKER])) as running:
        try:
            stopped = httpx.post(
                running.url + "/v1/chat/completions",
                json={"model": "baton", "messages": [{"role": "user", "content": "say 'too slow'"}]},
                timeout=60,
            )
        finally:
            SlowSpeaker.release.set()
        assert stopped.status_code == 504, stopped.text
        assert "BATON_REQUEST_TIMEOUT" in stopped.json()["error"]["message"]
        [run] = running.service.store.runs()
    assert run.status == "interrupted" and "request timeout of 0.5 s" in (run.error or "")
    assert run.tasks[0].status == "cancelled"


def test_closing_the_server_stops_its_runs_and_says_why(tmp_path: Path) -> None:
    from baton.assistant import Assistant
    from baton.server.service import Job, Service

    SlowSpeaker.release.clear()
    settings = server_settings(tmp_path / "home", server_runs=1)
    assistant = Assistant(settings, catalog=Catalog([SLOW_SPEAKER]))
    service = Service(settings, assistant)
    try:
        running = service.start(Job("say 'first'"))
        waiting = service.start(Job("say 'second'"))  # one worker: this one waits
        events = running.follow()
        assert next(events)["type"] == "start"
        service.close(wait=10)
        *_, stopped = events
        *_, never = waiting.follow()
    finally:
        SlowSpeaker.release.set()
        assistant.close()
    assert stopped["status"] == 503 and "the server is shutting down" in stopped["error"]["message"]
    assert never["status"] == 503 and "cancelled before it started" in never["error"]["message"]
    assert service.active == 0
    store = Store(settings.home)
    [run] = store.runs()
    store.close()
    assert run.status == "interrupted" and run.error == "cancelled: the server is shutting down"
    assert run.tasks[0].status == "cancelled"


def test_serve_starts_from_the_command_line(baton_home: Path) -> None:
    import socket
    import subprocess

    from conftest import baton_command, baton_env

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [*baton_command(), "serve", "--port", str(port), "--no-ui", "--log-level", "warning"]
    process = subprocess.Popen(command, env=baton_env(baton_home), stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()  # printed just before uvicorn starts
        assert f"baton serves on http://127.0.0.1:{port}" in banner
        with httpx.Client(transport=httpx.HTTPTransport(retries=20)) as client:
            health = client.get(f"http://127.0.0.1:{port}/health", timeout=30)
        assert health.json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(20)


def test_baton_help_does_not_import_the_server() -> None:
    import subprocess

    code = "import sys, baton.cli; assert not {'fastapi', 'gradio', 'uvicorn'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)
