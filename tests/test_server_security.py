"""Access and limits: the token off loopback, upload limits, artifact names, session isolation.

Every refused request must leave the store exactly as it was.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from baton.server.app import ServerConfigError, create_app, is_loopback
from server_helpers import READ_ALOUD, SIGN, Live, server_settings, serving, store_snapshot

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Live]:
    """A server built for a non-loopback address, with its token (served on 127.0.0.1 for the test)."""
    with serving(server_settings(tmp_path / "home", api_token=TOKEN), host="0.0.0.0") as running:
        yield running


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Live]:
    """A loopback server with small limits: 50 KB per upload, 10,000 pixels per image."""
    with serving(server_settings(tmp_path / "home", max_upload_mb=0.05, max_image_pixels=10_000)) as running:
        yield running


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# the token


def test_non_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.com"):
        with pytest.raises(ServerConfigError, match="BATON_API_TOKEN"):
            create_app(server_settings(tmp_path / "home"), host=host, ui=False)
    with pytest.raises(ServerConfigError, match="too short"):
        create_app(server_settings(tmp_path / "home", api_token="short"), host="0.0.0.0", ui=False)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "::", "example.com", "127.0.0.1.nip.io"))


def test_serve_command_refuses_a_public_address_without_a_token(baton: Any) -> None:
    done = baton("serve", "--host", "0.0.0.0", "--no-ui")
    assert done.code == 2, done
    assert "refusing to listen on 0.0.0.0 without an API token" in done.stderr and "BATON_API_TOKEN" in done.stderr


def test_requests_without_the_token_get_401_and_change_nothing(guarded: Live) -> None:
    before = store_snapshot(guarded.settings.home)
    body = {"model": "baton", "messages": [{"role": "user", "content": "say 'hello'"}]}
    attempts = [
        httpx.post(guarded.url + "/v1/chat/completions", json=body),
        httpx.post(guarded.url + "/v1/chat/completions", json=body, headers=bearer("wrong-token-0123456789")),
        httpx.post(guarded.url + "/sessions", json={"name": "intruder"}),
        httpx.post(guarded.url + "/hugginggpt", json={"messages": body["messages"]}),
        httpx.get(guarded.url + "/sessions"),
        httpx.get(guarded.url + "/v1/models", headers={"Authorization": TOKEN}),  # not a bearer token
    ]
    for response in attempts:
        assert response.status_code == 401, response.text
        assert error_of(response)["code"] == "invalid_api_key" and response.headers["www-authenticate"] == "Bearer"
    assert store_snapshot(guarded.settings.home) == before
    assert httpx.get(guarded.url + "/health").status_code == 200  # liveness needs no token
    assert httpx.get(guarded.url + "/openapi.json").status_code == 200


def test_the_token_opens_the_api_and_the_openai_client_sends_it(guarded: Live) -> None:
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=guarded.url + "/v1", api_key=TOKEN)
    completion = client.chat.completions.create(model="baton", messages=[{"role": "user", "content": "say 'hello'"}])
    assert (completion.model_extra or {})["baton"]["status"] == "succeeded"
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=guarded.url + "/v1", api_key="wrong-token-0123456789", max_retries=0).models.list()
    # a browser opens ?token= once: a strict cookie, and the address without the token
    with httpx.Client(base_url=guarded.url) as browser:
        first = browser.get("/sessions?token=" + TOKEN + "&x=1")
        assert first.status_code == 303 and first.headers["location"] == "/sessions?x=1"
        assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
        assert browser.get("/sessions").status_code == 200  # the cookie now stands for the token
    assert httpx.get(guarded.url + "/sessions?token=wrong-token-0123456789").status_code == 401


def test_tokenless_loopback_refuses_other_hosts_and_web_origins(tmp_path: Path) -> None:
    with serving(server_settings(tmp_path / "home")) as running:
        rebound = httpx.get(running.url + "/v1/models", headers={"Host": "attacker.example"})
        assert rebound.status_code == 403 and error_of(rebound)["code"] == "bad_host"
        cross_site = httpx.post(
            running.url + "/sessions", json={"name": "csrf"}, headers={"Origin": "https://attacker.example"}
        )
        assert cross_site.status_code == 403 and error_of(cross_site)["code"] == "bad_origin"
        same = httpx.get(running.url + "/v1/models", headers={"Origin": running.url})
        assert same.status_code == 200
        assert running.service.store.sessions() == []


# limits


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 64).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_oversize_uploads_get_413_and_change_nothing(limited: Live, tmp_path: Path) -> None:
    home = limited.settings.home
    session = httpx.post(limited.url + "/sessions").json()
    before = store_snapshot(home)
    messages_url = f"{limited.url}/sessions/{session['id']}/messages"
    key = {"X-Session-Key": session["key"]}

    big = png_bytes(700, 700)  # over 1 MB of noise: over the whole-body limit of 50 KB x 1.4 + 1 MB
    declared = httpx.post(messages_url, data={"text": READ_ALOUD}, files={"files": ("big.png", big)}, headers=key)
    assert declared.status_code == 413 and "BATON_MAX_UPLOAD_MB" in error_of(declared)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off as soon as the body passes the limit
        yield b'{"model": "baton", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 64_000
        yield b'"}]}'

    chunked = httpx.post(
        limited.url + "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413, chunked.text

    medium = png_bytes(200, 200)  # about 120 KB: the body passes, the file does not
    assert 50 * 1024 < len(medium) < 1024 * 1024
    per_file = httpx.post(messages_url, data={"text": READ_ALOUD}, files={"files": ("m.png", medium)}, headers=key)
    assert (
        per_file.status_code == 413 and "'m.png' is over the upload limit of 0.05 MB" in error_of(per_file)["message"]
    )
    inline = httpx.post(
        limited.url + "/v1/chat/completions",
        json={
            "model": "baton",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url_of(medium)}}]}
            ],
        },
    )
    assert inline.status_code == 413 and error_of(inline)["code"] == "file_too_large"

    wide = png_bytes(200, 60)  # 12,000 pixels: small in bytes, over the pixel limit
    pixels = httpx.post(messages_url, data={"text": READ_ALOUD}, files={"files": ("wide.png", wide)}, headers=key)
    assert pixels.status_code == 413, pixels.text
    assert "200x60 = 12,000 pixels, over the server's limit of 10,000" in error_of(pixels)["message"]
    assert store_snapshot(home) == before


def data_url_of(data: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_malformed_uploads_get_400_with_the_reason_and_change_nothing(live_small: Live) -> None:
    home = live_small.settings.home
    session = httpx.post(live_small.url + "/sessions").json()
    before = store_snapshot(home)
    url = f"{live_small.url}/sessions/{session['id']}/messages"
    key = {"X-Session-Key": session["key"]}
    cases = [
        ({"files": ("fake.png", b"this is not a picture")}, "'fake.png' is not a readable image"),
        ({"files": ("notes.txt", b"plain text")}, "unsupported file type '.txt'"),
        ({"files": ("empty.wav", b"")}, "is empty"),
        ({"files": ("broken.wav", b"RIFF....WAVEjunk")}, "'broken.wav' is not a readable WAV file"),
    ]
    for files, expected in cases:
        response = httpx.post(url, data={"text": READ_ALOUD}, files=files, headers=key)
        assert response.status_code == 400, response.text
        assert expected in error_of(response)["message"]
        assert str(home) not in error_of(response)["message"]  # no server paths in messages
    garbled = httpx.post(
        url,
        content=b'--XYZ\r\nContent-Disposition: form-data; name="text"\r\n\r\nhello',
        headers={**key, "content-type": "multipart/form-data"},  # no boundary: the parts cannot be found
    )
    assert garbled.status_code == 400 and "malformed" in error_of(garbled)["message"]
    not_json = httpx.post(
        live_small.url + "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    inline_fake = httpx.post(
        live_small.url + "/v1/chat/completions",
        json={
            "model": "baton",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url_of(b"GIF")}}]}
            ],
        },
    )
    assert inline_fake.status_code == 400 and "not a readable image" in error_of(inline_fake)["message"]
    assert store_snapshot(home) == before


@pytest.fixture
def live_small(tmp_path: Path) -> Iterator[Live]:
    with serving(server_settings(tmp_path / "home")) as running:
        yield running


# artifacts and sessions


def run_in_new_session(live: Live, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    session = httpx.post(live.url + "/sessions").json()
    run = httpx.post(
        f"{live.url}/sessions/{session['id']}/messages",
        data={"text": text},
        files={"files": ("sign.png", SIGN.read_bytes())},
        headers={"X-Session-Key": session["key"]},
        timeout=60,
    ).json()
    return session, run


def test_artifact_names_outside_the_session_are_404(live_small: Live) -> None:
    mine, run = run_in_new_session(live_small, READ_ALOUD)
    theirs, _ = run_in_new_session(live_small, "read the text in this image")
    audio = run["artifacts"][0]["name"]
    url = live_small.url + "/artifacts/"
    own = {"session": mine["id"], "key": mine["key"]}
    assert httpx.get(url + audio, params=own).status_code == 200
    before = store_snapshot(live_small.settings.home)
    refused = [
        httpx.get(url + audio, params={"session": theirs["id"], "key": theirs["key"]}),  # another session's file
        httpx.get(url + audio, params={"session": mine["id"], "key": theirs["key"]}),  # another session's key
        httpx.get(url + audio, params={"session": mine["id"]}),  # no key
        httpx.get(url + "..%2F..%2Fbaton.db", params=own),
        httpx.get(url + "audio%2F..%2F..%2Fserver.secret", params=own),
        httpx.get(url + "%2E%2E/%2E%2E/baton.db", params=own),
        httpx.get(url + "sign.png", params=own),  # a label is not an artifact name
        httpx.get(url + "..", params={"session": "../../etc", "key": "x"}),
    ]
    for response in refused:
        assert response.status_code == 404, (response.request.url, response.text)
        assert error_of(response)["type"] == "not_found_error"
    raw = httpx.Client(base_url=live_small.url).build_request("GET", "/artifacts/x", params=own)
    raw.url = raw.url.copy_with(raw_path=b"/artifacts/audio/../../baton.db?" + raw.url.query)
    with httpx.Client() as client:
        assert client.send(raw).status_code == 404
    assert store_snapshot(live_small.settings.home) == before


def test_one_session_cannot_read_another(live_small: Live) -> None:
    mine, run = run_in_new_session(live_small, READ_ALOUD)
    theirs, _ = run_in_new_session(live_small, READ_ALOUD)
    before = store_snapshot(live_small.settings.home)
    other_key = {"key": theirs["key"]}
    for response in (
        httpx.get(f"{live_small.url}/sessions/{mine['id']}", params=other_key),
        httpx.get(f"{live_small.url}/runs/{run['id']}", params=other_key),
        httpx.get(f"{live_small.url}/runs/{run['id']}/events", params=other_key),
        httpx.get(f"{live_small.url}/runs/{run['id'][:6]}", params={"key": mine["key"]}),  # no id prefixes
        httpx.delete(f"{live_small.url}/sessions/{mine['id']}", params=other_key),
        httpx.post(
            f"{live_small.url}/sessions/{mine['id']}/messages", data={"text": "say 'hi'"}, headers={"X-Session-Key": ""}
        ),
        httpx.post(
            live_small.url + "/v1/chat/completions",
            json={
                "model": "baton",
                "messages": [{"role": "user", "content": "say 'hi'"}],
                "session": mine["id"],
                "session_key": theirs["key"],
            },
        ),
    ):
        assert response.status_code == 404, (response.request.url, response.text)
    assert store_snapshot(live_small.settings.home) == before
    # with its own key, the openai client continues the session
    continued = httpx.post(
        live_small.url + "/v1/chat/completions",
        json={
            "model": "baton",
            "messages": [{"role": "user", "content": "say 'again'"}],
            "session": mine["id"],
            "session_key": mine["key"],
        },
        timeout=60,
    )
    assert continued.json()["baton"]["session_id"] == mine["id"]


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, baton_home: Path) -> None:
    from baton.config import Settings
    from baton.media import BadInput

    monkeypatch.setenv("BATON_MAX_UPLOAD_MB", "7.5")
    monkeypatch.setenv("BATON_MAX_IMAGE_PIXELS", "1000000")
    monkeypatch.setenv("BATON_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("BATON_SERVER_RUNS", "3")
    monkeypatch.setenv("BATON_API_TOKEN", TOKEN)
    settings = Settings.load()
    assert (settings.max_upload_mb, settings.max_image_pixels, settings.request_timeout) == (7.5, 1_000_000, 30)
    assert settings.server_runs == 3 and settings.api_token == TOKEN
    assert TOKEN not in repr(settings)
    monkeypatch.setenv("BATON_MAX_UPLOAD_MB", "lots")
    with pytest.raises(BadInput, match="BATON_MAX_UPLOAD_MB"):
        Settings.load()


def test_http_image_urls_are_fetched_only_when_network_access_is_on(tmp_path: Path) -> None:
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    files = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(SIGN.parent)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    image_url = f"http://127.0.0.1:{files.server_address[1]}/sign.png"
    body = {
        "model": "baton",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": READ_ALOUD},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            }
        ],
    }
    try:
        for allow_private, expected in ((False, 400), (True, 200)):
            settings = server_settings(
                tmp_path / f"home-{allow_private}", allow_network=True, allow_private_network=allow_private
            )
            with serving(settings) as running:
                got = httpx.post(running.url + "/v1/chat/completions", json=body, timeout=60)
            assert got.status_code == expected, got.text
            if expected == 400:  # loopback is refused unless private addresses are allowed
                assert "BATON_ALLOW_PRIVATE_NETWORK" in error_of(got)["message"]
            else:
                assert "Welcome to the baton demo" in got.json()["choices"][0]["message"]["content"]
    finally:
        files.shutdown()
        files.server_close()
