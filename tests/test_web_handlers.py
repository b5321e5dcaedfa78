"""The web UI's handlers without a browser: LLM settings per message, sessions, traces, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.server.service import Service
from baton.testing import ScriptedLLM
from server_helpers import READ_ALOUD, SIGN, server_settings


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Any]:
    pytest.importorskip("gradio")
    from baton.web.ui import UI

    service = Service(server_settings(tmp_path / "home"))
    yield UI(service)
    service.close()


def last(frames: Iterator[tuple[Any, ...]]) -> tuple[Any, ...]:
    *_, final = frames
    return final


def texts(history: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in history if isinstance(m["content"], str)]


def test_a_message_runs_and_streams_its_plan(ui: Any) -> None:
    message = {"text": READ_ALOUD, "files": [{"path": str(SIGN)}]}
    frames = list(ui.send(message, [], None, "auto", "plan", "", "", ""))
    plans = [frame[2] for frame in frames]
    assert any(row[3] == "running" for rows in plans for row in rows)  # the plan shows progress as it runs
    _, history, rows, status, session_id, _, _, trace = frames[-1]
    assert [row[3] for row in rows] == ["succeeded", "succeeded"]
    assert "succeeded" in status and trace["status"] == "succeeded"
    assert any("Welcome to the baton demo" in text for text in texts(history))
    assert any(type(m["content"]).__name__ == "Audio" for m in history)
    # the session resumes with its conversation and media
    chat, resumed, _, rows, _, trace = ui.open_session(session_id)
    assert resumed == session_id and texts(chat)[0] == READ_ALOUD and trace["id"] == frames[-1][7]["id"]
    assert any(type(m["content"]).__name__ == "Audio" for m in chat)
    assert ui.open_trace(trace["id"])[0]["tasks"][1]["task"] == "text-to-speech"
    assert ui.new_session()[1] is None


def test_the_llm_endpoint_set_in_the_page_plans_and_answers(ui: Any) -> None:
    plan = {"tasks": [{"id": 0, "task": "text-to-speech", "args": {"text": "hello from the page"}, "dep": []}]}
    with ScriptedLLM([json.dumps(plan), "I said hello for you."]) as llm:
        final = last(
            ui.send({"text": "greet me", "files": []}, [], None, "llm", "plan", llm.base_url, "scripted-model", "")
        )
        assert llm.calls == 2 and llm.requests[0]["model"] == "scripted-model"
    history = final[1]
    assert any(text.startswith("I said hello for you.") for text in texts(history))
    assert ui.service.assistant.llm is None  # the server's own Assistant is unchanged


def test_refusals_are_shown_in_the_conversation(ui: Any, tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    final = last(ui.send({"text": READ_ALOUD, "files": [{"path": str(fake)}]}, [], None, "auto", "plan", "", "", ""))
    assert texts(final[1])[-1].startswith("**error:** 'fake.png' is not a readable image")
    final = last(ui.send({"text": READ_ALOUD, "files": []}, [], None, "auto", "plan", "", "", ""))
    assert "image" in texts(final[1])[-1] and texts(final[1])[-1].startswith("**error:**")
    final = last(ui.send({"text": "hello", "files": []}, [], None, "llm", "plan", "", "", ""))
    assert "needs an LLM" in texts(final[1])[-1]
    assert ui.store.sessions() == []


def test_a_microphone_recording_becomes_a_wav_input(ui: Any, tmp_path: Path) -> None:
    import subprocess

    recording = tmp_path / "gradio" / "recording.webm"  # what the browser's recorder uploads
    recording.parent.mkdir()
    tone = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
    subprocess.run([*tone, "-c:a", "libopus", str(recording)], check=True)
    final = last(ui.send({"text": "", "files": [{"path": str(recording)}]}, [], None, "auto", "plan", "", "", ""))
    files = ui.store.files_of(final[4])
    assert files["recording.wav"].kind == "audio"
    assert final[7]["tasks"][0]["task"] == "automatic-speech-recognition"
