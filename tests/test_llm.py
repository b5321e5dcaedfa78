"""The LLM client against a scripted OpenAI-compatible server: real HTTP through the real ``openai`` SDK."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.config import Settings
from baton.llm import LLM, LLMError, Usage
from baton.media import BadInput
from baton.testing import Script, ScriptedLLM

HELLO = [{"role": "user", "content": "hello"}]
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "summarization",
            "description": "summarize a text",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        },
    }
]


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as scripted:
        yield scripted


def client(server: ScriptedLLM | str, tmp_path: Path, **settings: Any) -> LLM:
    base_url = server if isinstance(server, str) else server.base_url
    values: dict[str, Any] = {"llm_model": "scripted-model", "llm_max_retries": 0, **settings}
    return LLM(Settings(home=tmp_path, llm_base_url=base_url, **values))


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def formats(server: ScriptedLLM) -> list[str | None]:
    """The response_format type of each request the server received (None: prompt only)."""
    return [(body.get("response_format") or {}).get("type") for body in server.requests]


# plain calls, usage, JSON modes


def test_a_chat_sends_the_model_and_messages_and_counts_usage_per_stage(server: ScriptedLLM, tmp_path: Path) -> None:
    server.add(Script("Hi there!", prompt_tokens=11, completion_tokens=3), Script("Bye.", prompt_tokens=7))
    llm, usage = client(server, tmp_path), Usage()
    first = llm.chat(HELLO, stage="plan", usage=usage)
    second = llm.chat([{"role": "user", "content": "bye"}], stage="answer", usage=usage, max_tokens=50)

    assert (first.content, first.finish_reason, first.complete) == ("Hi there!", "stop", True)
    assert second.content == "Bye."
    assert [body["model"] for body in server.requests] == ["scripted-model", "scripted-model"]
    assert server.requests[0]["messages"] == HELLO
    assert "max_tokens" not in server.requests[0] and server.requests[1]["max_tokens"] == 50
    assert "stream" not in server.requests[0]
    assert usage.stages == {
        "plan": {"calls": 1, "prompt_tokens": 11, "completion_tokens": 3},
        "answer": {"calls": 1, "prompt_tokens": 7, "completion_tokens": 20},
    }
    assert usage.calls == 2


def test_without_a_model_the_servers_first_model_is_used_with_a_notice(tmp_path: Path) -> None:
    with ScriptedLLM(["ok"], models=("llama3:8b", "other")) as server:
        llm = client(server, tmp_path, llm_model=None)
        assert llm.chat(HELLO, stage="plan").content == "ok"
    assert server.requests[0]["model"] == "llama3:8b"
    assert any("BATON_LLM_MODEL is not set" in n and "llama3:8b" in n for n in llm.notices)


def test_a_server_listing_no_models_needs_baton_llm_model(tmp_path: Path) -> None:
    with ScriptedLLM(["ok"], models=()) as server:
        with pytest.raises(LLMError, match="lists no models; set BATON_LLM_MODEL"):
            client(server, tmp_path, llm_model=None).chat(HELLO, stage="plan")
        assert server.calls == 0


def test_json_output_asks_for_the_schema_when_the_server_takes_it(server: ScriptedLLM, tmp_path: Path) -> None:
    server.add('{"answer": "yes"}')
    llm = client(server, tmp_path)
    reply = llm.chat(HELLO, stage="plan", json_schema=SCHEMA)
    assert reply.content == '{"answer": "yes"}'
    assert server.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA},
    }
    assert llm.notices == []


def test_json_schema_unsupported_falls_back_to_json_mode_and_remembers_it(tmp_path: Path) -> None:
    with ScriptedLLM(['{"answer": "one"}', '{"answer": "two"}'], json_schema=False) as server:
        llm = client(server, tmp_path)
        assert llm.chat(HELLO, stage="plan", json_schema=SCHEMA).content == '{"answer": "one"}'
        assert llm.chat(HELLO, stage="plan", json_schema=SCHEMA).content == '{"answer": "two"}'
    # one rejected request, then json_object for this call and the next: the fallback is not re-learned
    assert formats(server) == ["json_schema", "json_object", "json_object"]
    assert llm.notices == ["the LLM server does not take that response_format; using JSON mode 'json_object'"]


def test_a_server_without_any_json_mode_gets_the_prompt_alone(tmp_path: Path) -> None:
    with ScriptedLLM(['{"answer": "yes"}'], json_schema=False, json_object=False) as server:
        llm, usage = client(server, tmp_path), Usage()
        assert llm.chat(HELLO, stage="plan", usage=usage, json_schema=SCHEMA).content == '{"answer": "yes"}'
    assert formats(server) == ["json_schema", "json_object", None]
    assert [n.rsplit(" ", 1)[-1] for n in llm.notices] == ["'json_object'", "'prompt'"]
    assert usage.stages["plan"]["calls"] == 1  # rejected requests are not counted as calls


@pytest.mark.parametrize(("mode", "sent"), [("json_object", "json_object"), ("prompt", None)])
def test_a_configured_json_mode_is_used_from_the_first_call(tmp_path: Path, mode: str, sent: str | None) -> None:
    with ScriptedLLM(['{"answer": "yes"}']) as server:
        client(server, tmp_path, llm_json_mode=mode).chat(HELLO, stage="plan", json_schema=SCHEMA)
    assert formats(server) == [sent]


def test_a_configured_json_mode_the_server_rejects_is_an_error_not_a_silent_downgrade(tmp_path: Path) -> None:
    with ScriptedLLM(['{"answer": "yes"}'], json_schema=False) as server:
        llm = client(server, tmp_path, llm_json_mode="json_schema")
        with pytest.raises(LLMError, match="answered 400: response_format type 'json_schema' is not supported"):
            llm.chat(HELLO, stage="plan", json_schema=SCHEMA)
    assert server.calls == 1


# streaming


def test_streaming_passes_each_piece_on_and_gathers_the_whole_reply(tmp_path: Path) -> None:
    text = "The sign says STOP. It is red and octagonal."
    with ScriptedLLM([Script(text, prompt_tokens=30, completion_tokens=12)], chunk_size=5) as server:
        pieces: list[str] = []
        usage = Usage()
        reply = client(server, tmp_path).chat(HELLO, stage="answer", usage=usage, on_delta=pieces.append)
    assert server.requests[0]["stream"] is True
    assert len(pieces) == 9 and "".join(pieces) == text
    assert (reply.content, reply.finish_reason) == (text, "stop")
    assert usage.stages["answer"] == {"calls": 1, "prompt_tokens": 30, "completion_tokens": 12}


def test_a_stream_cut_midway_returns_what_arrived_marked_incomplete(tmp_path: Path) -> None:
    with ScriptedLLM([Script("The sign says STOP, and more.", cut_after=3)], chunk_size=5) as server:
        pieces: list[str] = []
        reply = client(server, tmp_path).chat(HELLO, stage="answer", on_delta=pieces.append)
    assert reply.content == "The sign s" == "".join(pieces)
    assert not reply.complete and reply.finish_reason is None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_calls_come_back_with_their_arguments_as_written(tmp_path: Path, stream: bool) -> None:
    calls = [("summarization", '{"text": "a long story about boats"}'), ("summarization", '{"text": "oops"')]
    with ScriptedLLM([Script(tool_calls=calls)], chunk_size=4) as server:
        on_delta = (lambda _: None) if stream else None
        reply = client(server, tmp_path).chat(HELLO, stage="agent", tools=TOOLS, on_delta=on_delta)
    assert server.requests[0]["tools"] == TOOLS
    assert [(c.name, c.arguments) for c in reply.tool_calls] == calls  # malformed JSON is kept for the caller
    assert [c.id for c in reply.tool_calls] == ["call_0", "call_1"]
    assert reply.finish_reason == "tool_calls" and reply.content == ""


# retries and errors


@pytest.mark.parametrize(
    ("status", "message"), [(429, "Rate limit reached for requests"), (503, "The server is overloaded")]
)
def test_a_429_or_5xx_is_retried_by_the_sdk_with_a_short_backoff(tmp_path: Path, status: int, message: str) -> None:
    with ScriptedLLM([Script(status=status, error=message), "fine now"]) as server:
        usage = Usage()
        started = time.monotonic()
        reply = client(server, tmp_path, llm_max_retries=1).chat(HELLO, stage="plan", usage=usage)
        took = time.monotonic() - started
    assert reply.content == "fine now"
    assert server.calls == 2
    assert took < 5
    assert usage.stages["plan"]["calls"] == 1


def test_a_429_that_lasts_says_rate_limited_after_the_retries(tmp_path: Path) -> None:
    with ScriptedLLM([Script(status=429, error="Rate limit reached")] * 3) as server, pytest.raises(LLMError) as caught:
        client(server, tmp_path, llm_max_retries=1).chat(HELLO, stage="plan")
    assert server.calls == 2
    message = str(caught.value)
    assert "rate-limiting (429: Rate limit reached) after 1 retries; wait and try again" in message
    assert caught.value.status == 429


def test_a_lasting_5xx_names_the_status_and_the_servers_message(tmp_path: Path) -> None:
    with ScriptedLLM([Script(status=500, error="CUDA out of memory")]) as server:
        with pytest.raises(LLMError) as caught:
            client(server, tmp_path).chat(HELLO, stage="plan")
        assert str(caught.value) == f"the LLM server at {server.base_url} answered 500: CUDA out of memory"
    assert caught.value.status == 500


def test_a_wrong_key_names_openai_api_key_and_is_not_retried(tmp_path: Path) -> None:
    wrong_key = Script(status=401, error="Incorrect API key provided: sk-abc***")
    with ScriptedLLM([wrong_key] * 3) as server, pytest.raises(LLMError) as caught:
        client(server, tmp_path, llm_max_retries=2).chat(HELLO, stage="plan")
    assert server.calls == 1
    assert "refused the API key" in str(caught.value) and "check OPENAI_API_KEY" in str(caught.value)
    assert "Incorrect API key provided" in str(caught.value)
    assert caught.value.status == 401


def test_an_unknown_model_names_the_model_and_baton_llm_model(tmp_path: Path) -> None:
    unknown = Script(status=404, error="The model `gpt-7` does not exist")
    with ScriptedLLM([unknown]) as server, pytest.raises(LLMError) as caught:
        client(server, tmp_path, llm_model="gpt-7").chat(HELLO, stage="plan")
    message = str(caught.value)
    assert "does not know model 'gpt-7'" in message and "set BATON_LLM_MODEL" in message
    assert caught.value.status == 404


def test_an_unreachable_server_names_openai_base_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        client(url, tmp_path).chat(HELLO, stage="plan")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"cannot reach the LLM server at {url}")
    assert "check OPENAI_BASE_URL" in message
    assert caught.value.status is None


@pytest.mark.parametrize("schema", [None, SCHEMA], ids=["text", "json"])
def test_a_context_overflow_says_the_request_is_too_long(tmp_path: Path, schema: dict[str, Any] | None) -> None:
    overflow = (
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9312 tokens. "
        "Please reduce the length of the messages."
    )
    with ScriptedLLM([Script(status=400, error=overflow, error_code="context_length_exceeded")] * 3) as server:
        llm = client(server, tmp_path)
        with pytest.raises(LLMError) as caught:
            llm.chat(HELLO, stage="plan", json_schema=schema)
    # a JSON request too long is not mistaken for a server that rejects response_format
    assert server.calls == 1 and llm.notices == []
    message = str(caught.value)
    assert "too long for model scripted-model's context window" in message
    assert "maximum context length is 8192 tokens" in message
    assert "shorten the request" in message
    assert caught.value.status == 400


def test_a_slow_server_hits_the_timeout_and_names_baton_llm_timeout(tmp_path: Path) -> None:
    def slow(body: dict[str, Any]) -> str:
        time.sleep(1.0)
        return "too late"

    with ScriptedLLM(slow) as server:
        started = time.monotonic()
        with pytest.raises(LLMError, match=r"did not answer within 0.3 s; raise BATON_LLM_TIMEOUT"):
            client(server, tmp_path, llm_timeout=0.3).chat(HELLO, stage="plan")
        assert time.monotonic() - started < 1.0


# settings


def test_settings_read_the_llm_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path))
    assert not Settings.load().llm_configured
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("BATON_LLM_MODEL", "qwen2.5")
    monkeypatch.setenv("BATON_LLM_JSON_MODE", "json_object")
    monkeypatch.setenv("BATON_LLM_TIMEOUT", "7.5")
    monkeypatch.setenv("BATON_LLM_MAX_RETRIES", "0")
    settings = Settings.load()
    assert settings.llm_configured
    assert (settings.llm_base_url, settings.llm_api_key, settings.llm_model) == (
        "http://127.0.0.1:8000/v1",
        "sk-test",
        "qwen2.5",
    )
    assert (settings.llm_json_mode, settings.llm_timeout, settings.llm_max_retries) == ("json_object", 7.5, 0)
    assert settings.notices == ()


def test_the_old_openai_api_base_still_works_with_a_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:8001/v1")
    settings = Settings.load()
    assert settings.llm_base_url == "http://127.0.0.1:8001/v1" and settings.llm_configured
    assert settings.notices == ("OPENAI_API_BASE is the old name; set OPENAI_BASE_URL instead",)
    assert LLM(settings).notices == list(settings.notices)  # the notice reaches the runs that use the LLM
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8002/v1")
    settings = Settings.load()
    assert settings.llm_base_url == "http://127.0.0.1:8002/v1" and settings.notices == ()


def test_the_config_file_sets_the_llm_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text(
        '[llm]\nbase_url = "http://127.0.0.1:9000/v1"\nmodel = "from-file"\njson_mode = "prompt"\nmax_retries = 1\n'
    )
    settings = Settings.load()
    assert (settings.llm_base_url, settings.llm_model, settings.llm_json_mode, settings.llm_max_retries) == (
        "http://127.0.0.1:9000/v1",
        "from-file",
        "prompt",
        1,
    )
    assert settings.llm_api_key is None  # a local server needs no key
    monkeypatch.setenv("BATON_LLM_MODEL", "from-env")
    assert Settings.load().llm_model == "from-env"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("BATON_LLM_JSON_MODE", "xml", "BATON_LLM_JSON_MODE must be one of auto, json_schema, json_object, prompt"),
        ("BATON_LLM_TIMEOUT", "soon", "BATON_LLM_TIMEOUT (or 'timeout' in config.toml) must be a number"),
        ("BATON_LLM_MAX_RETRIES", "-1", "BATON_LLM_MAX_RETRIES (or 'max_retries' in config.toml) must be zero or more"),
    ],
)
def test_bad_llm_settings_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv("BATON_HOME", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(BadInput) as caught:
        Settings.load()
    assert fragment in str(caught.value)
