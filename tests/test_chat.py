"""`baton chat`: an interactive loop over one session that survives restarts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from baton.testing import Script, ScriptedLLM
from conftest import baton_command, baton_env


def chat(
    home: Path, lines: list[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*baton_command(), "chat", *args],
        input="\n".join(lines) + "\n",
        env={**baton_env(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def runs(home: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*baton_command(), "runs", "--json"], env=baton_env(home), capture_output=True, text=True, timeout=60
    )
    return json.loads(done.stdout)


def test_attach_ask_and_resume_after_a_restart(baton_home: Path, sign_image: Path) -> None:
    first = chat(
        baton_home,
        ["/help", f"/attach {sign_image}", "read the text in this image aloud", "/files", "/quit"],
        "--session",
        "desk",
    )
    assert first.returncode == 0, first.stderr
    assert "/attach PATH" in first.stdout  # the help
    assert f"attached {sign_image.name} (image)" in first.stdout
    assert "Welcome to the baton demo" in first.stdout
    assert "sign.png" in first.stdout and "audio/" in first.stdout  # /files lists the input and the speech
    assert "resume with: baton chat --session desk" in first.stderr
    assert "Traceback" not in first.stderr

    # a new process, the same session: the image is still addressable by its name
    second = chat(baton_home, ["read the text in sign.png aloud"], "--session", "desk")  # ends at end of input
    assert second.returncode == 0, second.stderr
    assert "Welcome to the baton demo" in second.stdout
    sessions = {run["session_id"] for run in runs(baton_home)}
    assert len(sessions) == 1
    assert [run["status"] for run in runs(baton_home)] == ["succeeded", "succeeded"]


def test_bad_lines_print_an_error_and_the_conversation_goes_on(baton_home: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not media")
    done = chat(baton_home, ["/attach", f"/attach {notes}", "/frobnicate", "say 'still here'", "/quit"])
    assert done.returncode == 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors[0] == "error: /attach needs a file path, e.g. /attach photo.png"
    assert "unsupported file type '.txt'" in errors[1]
    assert errors[2] == "error: unknown command /frobnicate; /help lists the commands"
    assert "1 of 1 task succeeded" in done.stdout  # the request after the errors still ran
    assert "Traceback" not in done.stderr


def test_with_an_llm_the_history_reaches_the_planner_and_answers_stream(baton_home: Path) -> None:
    replies: list[Script | str] = [
        '{"tasks": []}',
        "Hello! I am baton.",
        '{"tasks": []}',
        "You said hello before.",
    ]
    with ScriptedLLM(replies) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "BATON_LLM_MODEL": "scripted-model"}
        done = chat(baton_home, ["hello there", "what did I say?"], "--session", "talk", env=env)
        second_plan = server.requests[2]["messages"][-1]["content"]
    assert done.returncode == 0, done.stderr
    assert "Hello! I am baton." in done.stdout and "You said hello before." in done.stdout
    assert "Earlier in this conversation:" in second_plan
    assert "user: hello there" in second_plan and "baton: Hello! I am baton." in second_plan
    assert "session talk with LLM scripted-model" in done.stderr


def test_agent_mode_without_an_llm_is_refused(baton_home: Path) -> None:
    done = chat(baton_home, ["hello"], "--mode", "agent")
    assert done.returncode == 2
    assert "--mode agent needs an LLM" in done.stderr
