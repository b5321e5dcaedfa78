"""The ``baton`` command with an LLM: a subprocess pointed at a scripted OpenAI-compatible server in this process."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.testing import Script, ScriptedLLM
from conftest import REPO, Done, baton_command, baton_env

SUMMARY_REQUEST = "summarize: The harbour was quiet at dawn. Boats slept at their moorings. Gulls circled overhead."
SUMMARY_PLAN = json.dumps(
    {
        "tasks": [
            {
                "id": 0,
                "task": "summarization",
                "args": {
                    "text": "The harbour was quiet at dawn. Boats slept at their moorings. Gulls circled overhead."
                },
                "dep": [],
            }
        ]
    }
)
SUMMARY = "A quiet harbour at dawn, with sleeping boats and circling gulls."
ANSWER = "Here is the summary: a quiet harbour at dawn, with sleeping boats and circling gulls."
FORCE_LLM = ("--model", "summarization=llm/summarization")  # the LLM expert, whatever builtin summarizers exist


def conductor(plan: str = SUMMARY_PLAN, answer: str | Script = ANSWER, tool: Script | None = None) -> Any:
    """A producer answering each stage by what the request is: planning, agent step, text task, or answer."""

    def produce(body: dict[str, Any]) -> Script | str:
        first = body["messages"][0]["content"]
        if first.startswith("You are the planner"):
            return plan
        if body.get("tools"):  # tool-calling mode: call the tool once, then answer
            told = any(m["role"] == "tool" for m in body["messages"])
            return answer if told or tool is None else tool
        if first.startswith("You are baton"):
            return answer
        if first.startswith("Summarize the text below"):
            return Script(SUMMARY, prompt_tokens=80, completion_tokens=15)
        return Script(status=500, error=f"unexpected request: {first[:80]}")

    return produce


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "baton-home"


LLMBaton = Callable[..., Done]


@pytest.fixture
def baton_llm(home: Path) -> LLMBaton:
    """baton_llm(server_or_url, *args, env=...) runs ``baton`` with OPENAI_BASE_URL and BATON_LLM_MODEL set."""

    def run(server: ScriptedLLM | str | None, *args: str | Path, env: dict[str, str] | None = None) -> Done:
        environment = baton_env(home)
        if server is not None:
            url = server if isinstance(server, str) else server.base_url
            environment.update(OPENAI_BASE_URL=url, BATON_LLM_MODEL="scripted-model", BATON_LLM_MAX_RETRIES="1")
        environment.update(BATON_ROUTER_THRESHOLD="1")  # --planner auto: the LLM plans, these tests are about it
        environment.update(env or {})
        strings = tuple(str(a) for a in args)
        done = subprocess.run(
            [*baton_command(), *strings],
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        return Done(strings, done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(conductor()) as scripted:
        yield scripted


def last_run_id(baton_llm: LLMBaton) -> str:
    runs = baton_llm(None, "runs", "--json")
    assert runs.code == 0, runs
    return str(runs.json()[0]["id"])


def test_run_plans_with_the_llm_and_streams_the_answer(baton_llm: LLMBaton) -> None:
    with ScriptedLLM(conductor(answer=Script(ANSWER, prompt_tokens=300, completion_tokens=25))) as server:
        done = baton_llm(server, "run", SUMMARY_REQUEST, *FORCE_LLM)
    assert done.code == 0, done
    assert "Traceback" not in done.stderr
    assert done.stdout.strip() == ANSWER  # streamed once, not printed again
    assert "task 0 summarization (llm/summarization) succeeded" in done.stderr
    assert server.calls == 3  # plan, the LLM summarizer, answer
    assert server.requests[0]["messages"][-1]["content"].endswith(SUMMARY_REQUEST)
    assert server.requests[2]["stream"] is True

    shown = baton_llm(None, "runs", "show", last_run_id(baton_llm))
    assert shown.code == 0, shown
    assert "planner: llm" in shown.stdout
    assert "LLM use" in shown.stdout
    assert "plan: 1 call, 50 prompt + 20 completion tokens" in shown.stdout
    assert "task: 1 call, 80 prompt + 15 completion tokens" in shown.stdout
    assert "answer: 1 call, 300 prompt + 25 completion tokens" in shown.stdout
    assert f'text: "{SUMMARY}"' in shown.stdout
    assert shown.stdout.rstrip().endswith("answer:\n" + ANSWER)


def test_json_output_carries_usage_and_notices(baton_llm: LLMBaton, server: ScriptedLLM) -> None:
    done = baton_llm(server, "run", SUMMARY_REQUEST, *FORCE_LLM, "--json")
    assert done.code == 0, done
    result = done.json()  # nothing streamed into the JSON
    assert result["answer"] == ANSWER and result["planner"] == "llm"
    assert result["tasks"][0]["outputs"] == {"text": {"kind": "text", "value": SUMMARY}}
    assert set(result["usage"]) == {"plan", "task", "answer"}
    assert all(stage["calls"] == 1 for stage in result["usage"].values())


def test_a_stream_cut_midway_is_asked_again_and_the_answer_completes(baton_llm: LLMBaton) -> None:
    answers: Iterator[Script | str] = iter([Script(ANSWER, cut_after=4), ANSWER])
    others = conductor(answer="never sent")

    def produce(body: dict[str, Any]) -> Script | str:
        return next(answers) if body["messages"][0]["content"].startswith("You are baton") else others(body)

    with ScriptedLLM(produce) as server:
        done = baton_llm(server, "run", SUMMARY_REQUEST, *FORCE_LLM)
    assert done.code == 0, done
    partial, _, rest = done.stdout.partition("\n[the answer was cut off; asking again]\n")
    assert partial and ANSWER.startswith(partial) and partial != ANSWER  # the cut piece was shown as it came
    assert rest.strip() == ANSWER
    assert "notice: the LLM's streamed answer was cut off; asked again" in done.stderr
    shown = baton_llm(None, "runs", "show", last_run_id(baton_llm))
    assert shown.stdout.rstrip().endswith("answer:\n" + ANSWER)


def test_a_plan_invalid_after_the_re_ask_fails_the_run_with_exit_1(baton_llm: LLMBaton) -> None:
    bad = json.dumps({"tasks": [{"id": 0, "task": "image-to-text", "args": {"image": "holiday.jpg"}, "dep": []}]})
    problem = (
        "task 0 (image-to-text), argument 'image': the file 'holiday.jpg' is not known to this session; "
        "attach it with -i holiday.jpg"
    )
    with ScriptedLLM(conductor(plan=bad)) as server:
        done = baton_llm(server, "run", "describe holiday.jpg")
    assert done.code == 1, done
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("I could not plan this request: the LLM's plan could not run")
    assert problem in done.stdout
    assert server.calls == 2
    assert problem in server.requests[1]["messages"][-1]["content"]

    shown = baton_llm(None, "runs", "show", last_run_id(baton_llm))
    assert shown.code == 0, shown
    assert "failed" in shown.stdout.splitlines()[0]
    # the whole error, fix included, even where it is longer than the terminal is wide
    words = " ".join(shown.stdout.replace("│", " ").split())
    assert (
        f"error: planning failed: the LLM's plan could not run, even after it was shown the problems: {problem}"
        in (words.partition("answer:")[0])
    )
    assert "plan: 2 calls" in shown.stdout


def test_an_empty_plan_is_answered_directly(baton_llm: LLMBaton) -> None:
    with ScriptedLLM(conductor(plan='{"tasks": []}', answer="Hello! I am baton.")) as server:
        done = baton_llm(server, "run", "hello, who are you?")
    assert done.code == 0, done
    assert done.stdout.strip() == "Hello! I am baton."
    assert server.calls == 2


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        (Script(status=401, error="Incorrect API key provided"), "check OPENAI_API_KEY"),
        (Script(status=404, error="model 'scripted-model' not found"), "set BATON_LLM_MODEL to a model it serves"),
        (None, "check OPENAI_BASE_URL and that the server is running"),
    ],
    ids=["wrong key", "unknown model", "unreachable"],
)
def test_llm_errors_are_one_clear_failed_run(baton_llm: LLMBaton, script: Script | None, fragment: str) -> None:
    if script is None:
        no_retry = {"BATON_LLM_MAX_RETRIES": "0"}
        done = baton_llm(f"http://127.0.0.1:{closed_port()}/v1", "run", SUMMARY_REQUEST, env=no_retry)
    else:
        with ScriptedLLM([script]) as server:
            done = baton_llm(server, "run", SUMMARY_REQUEST)
    assert done.code == 1, done
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.startswith("I could not plan this request: ")
    assert fragment in done.stdout


def test_the_old_openai_api_base_works_with_a_notice(baton_llm: LLMBaton, server: ScriptedLLM) -> None:
    env = {"OPENAI_API_BASE": server.base_url, "BATON_LLM_MODEL": "scripted-model"}
    done = baton_llm(None, "run", SUMMARY_REQUEST, *FORCE_LLM, env=env)
    assert done.code == 0, done
    assert done.stdout.strip() == ANSWER
    assert "notice: OPENAI_API_BASE is the old name; set OPENAI_BASE_URL instead" in done.stderr
    assert server.calls == 3


def test_llm_text_experts_are_available_only_with_an_llm(baton_llm: LLMBaton) -> None:
    def llm_models(done: Done) -> dict[str, list[str]]:
        assert done.code == 0, done
        return {card["id"]: card["missing"] for card in done.json() if card["backend"] == "llm"}

    without = llm_models(baton_llm(None, "models", "--json"))
    assert {"llm/summarization", "llm/translation", "llm/paraphrase", "llm/grammar-check"} <= set(without)
    assert all(any("no LLM is configured" in m for m in missing) for missing in without.values())
    with_llm = llm_models(baton_llm("http://127.0.0.1:9/v1", "models", "--json"))
    assert set(with_llm) == set(without)
    assert all(missing == [] for missing in with_llm.values())


def test_select_llm_and_plan_select_without_an_llm_are_bad_input(baton_llm: LLMBaton) -> None:
    for option, named in (("--select=llm", "--select llm"), ("--plan-select", "--plan-select")):
        done = baton_llm(None, "run", SUMMARY_REQUEST, option)
        assert done.code == 2, done
        assert done.stderr.startswith(f"error: {named} needs an LLM, and none is configured: set BATON_LLM_MODEL"), done


def test_plan_select_asks_for_the_models_in_the_planning_call(baton_llm: LLMBaton) -> None:
    plan = json.loads(SUMMARY_PLAN)
    plan["tasks"][0]["model"] = "llm/summarization"
    with ScriptedLLM(conductor(plan=json.dumps(plan))) as server:
        done = baton_llm(server, "run", SUMMARY_REQUEST, "--plan-select", "--json")
    assert done.code == 0, done
    assert done.json()["tasks"][0]["model"] == "llm/summarization"
    assert "llm/summarization (summarization by the configured LLM" in server.requests[0]["messages"][0]["content"]
    assert server.calls == 3 and "select" not in done.json()["usage"]  # planning and choice were one call


def test_agent_mode_calls_a_tool_and_streams_the_answer(baton_llm: LLMBaton) -> None:
    text = "The harbour was quiet at dawn. Boats slept at their moorings. Gulls circled overhead."
    tool = Script(tool_calls=[("summarization", json.dumps({"text": text}))])
    with ScriptedLLM(conductor(tool=tool)) as server:
        done = baton_llm(server, "run", SUMMARY_REQUEST, "--mode", "agent", *FORCE_LLM)
    assert done.code == 0, done
    assert done.stdout.strip() == ANSWER
    assert "task 0 summarization (llm/summarization) succeeded" in done.stderr
    assert server.calls == 3  # tool call, the LLM summarizer, answer
    told = [m for m in server.requests[2]["messages"] if m["role"] == "tool"]
    assert json.loads(told[0]["content"]) == {"status": "succeeded", "outputs": {"text": SUMMARY}}


def test_agent_mode_without_tool_support_falls_back_to_planning(baton_llm: LLMBaton) -> None:
    with ScriptedLLM(conductor(), tools=False) as server:
        done = baton_llm(server, "run", SUMMARY_REQUEST, "--mode", "agent", *FORCE_LLM)
    assert done.code == 0, done
    assert done.stdout.strip() == ANSWER
    assert "notice: the LLM server does not support tool calls; used planning mode" in done.stderr
    assert server.calls == 4  # the refused tool call, plan, summarizer, answer
