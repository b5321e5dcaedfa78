"""The downloaders against a real HTTP server on 127.0.0.1 (the only network traffic these tests make).

Without network access they refuse; with it, loopback, private and link-local addresses are refused before
any connection unless private networks are allowed too. A test server then serves a PNG, a WAV, a video
and HTML pages, oversize and mislabelled bodies, and redirects.
"""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from baton.assistant import Assistant
from baton.catalog import load_catalog
from baton.experts import ExpertError
from baton.experts.builtin import download
from baton.media import Resource
from baton.plan import parse_plan
from baton.store import Store
from conftest import wav_info

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg is not installed"
)


def png_bytes(size: tuple[int, int] = (64, 48), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def wav_bytes(seconds: float = 0.5, rate: int = 16000) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


PAGE = """<!DOCTYPE html>
<html><head><title>Baton &amp; friends</title><style>body { color: red }</style>
<script>var secret = "do not show";</script></head>
<body><h1>Welcome</h1><p>First paragraph with <b>bold</b> text.</p>
<ul><li>one</li><li>two</li></ul><noscript>enable scripts</noscript><p>Caf\u00e9 cr\u00e8me</p></body></html>"""


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declare_length: bool = True
    pause: float = 0.0  # seconds before each of ``pieces`` parts of the body
    pieces: int = 1


@dataclass
class Server:
    base: str
    routes: dict[str, Route]
    hits: list[str]

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    routes: dict[str, Route] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            route = routes.get(self.path, Route(404, b"not found", {"Content-Type": "text/plain"}))
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.declare_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            size = max(1, math.ceil(len(route.body) / route.pieces))
            try:
                for start in range(0, len(route.body), size):
                    time.sleep(route.pause)
                    self.wfile.write(route.body[start : start + size])
                    self.wfile.flush()
            except OSError:
                pass  # the client gave up

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", routes, hits)
    httpd.shutdown()
    httpd.server_close()


def serve(server: Server, path: str, body: bytes, content_type: str | None, **extra: Any) -> str:
    headers = {"Content-Type": content_type} if content_type else {}
    server.routes[path] = Route(body=body, headers=headers, **extra)
    return server.url(path)


def redirect(server: Server, path: str, location: str, status: int = 302) -> str:
    server.routes[path] = Route(status=status, headers={"Location": location})
    return server.url(path)


@pytest.fixture
def local_ctx(expert_ctx: Any) -> Any:
    """The task context with network access and private addresses allowed (the test server is on 127.0.0.1)."""
    expert_ctx.settings = expert_ctx.settings.replace(allow_network=True, allow_private_network=True)
    return expert_ctx


def download_with(ctx: Any, kind: str, url: str) -> Resource:
    card = load_catalog().get(f"builtin/http-{kind}")
    assert card.missing() == [], card.missing()
    result = card.build().run({"url": Resource(kind="url", value=url)}, {}, ctx)
    assert set(result) == {kind}
    resource: Resource = result[kind]
    return resource


def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(httpx.Client, "send", refuse)


# refusals before any connection


@pytest.mark.parametrize("kind", ["image", "audio", "video", "text"])
def test_network_disabled_by_default(kind: str, expert_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    no_connections(monkeypatch)
    assert expert_ctx.settings.allow_network is False
    with pytest.raises(ExpertError, match=r"^network access is disabled; set BATON_ALLOW_NETWORK=1"):
        download_with(expert_ctx, kind, "https://example.com/file")


@pytest.mark.parametrize(
    ("url", "shown", "problem"),
    [
        ("http://10.0.0.1/secret.png", "10.0.0.1", "a private"),
        ("http://192.168.1.20:8080/cam.jpg", "192.168.1.20", "a private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "a link-local"),
        ("http://[::1]/x.png", "::1", "a loopback"),
        ("http://[::ffff:10.1.2.3]/x.png", "::ffff:10.1.2.3", "a private"),
        ("http://0.0.0.0/x.png", "0.0.0.0", "an unspecified"),
        ("http://2130706433/x.png", "2130706433 (127.0.0.1)", "a loopback"),  # 127.0.0.1 written as a number
        ("Please grab the picture from http://10.0.0.1/photo.jpg for me", "10.0.0.1", "a private"),
    ],
)
def test_private_addresses_are_refused_without_connecting(
    url: str, shown: str, problem: str, expert_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expert_ctx.settings = expert_ctx.settings.replace(allow_network=True)
    no_connections(monkeypatch)
    with pytest.raises(ExpertError) as failure:
        download_with(expert_ctx, "image", url)
    assert str(failure.value) == (
        f"refusing to download from {shown}: it is {problem} address, and baton fetches only public addresses; "
        "set BATON_ALLOW_PRIVATE_NETWORK=1 to allow local and private ones"
    )


def test_loopback_server_is_refused_and_never_reached(server: Server, expert_ctx: Any) -> None:
    expert_ctx.settings = expert_ctx.settings.replace(allow_network=True)
    serve(server, "/guarded.png", png_bytes(), "image/png")
    before = len(server.hits)
    port = server.base.rsplit(":", 1)[1]
    for url in (server.url("/guarded.png"), f"http://localhost:{port}/guarded.png", f"localhost:{port}/guarded.png"):
        with pytest.raises(ExpertError, match="is a loopback address"):
            download_with(expert_ctx, "image", url)
    assert len(server.hits) == before  # refused before connecting


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://files.example.com/picture.png", "only http and https addresses can be downloaded, not 'ftp'"),
        ("file:///etc/passwd", "only http and https addresses can be downloaded, not 'file'"),
        ("example.jpg", "'example.jpg' is a file name, not a URL; attach the file itself (-i example.jpg)"),
        ("a picture of a cat", "no URL in 'a picture of a cat'; give an http:// or https:// address"),
    ],
)
def test_inputs_without_an_http_url_are_refused(
    text: str, message: str, local_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_connections(monkeypatch)
    with pytest.raises(ExpertError) as failure:
        download_with(local_ctx, "image", text)
    assert message in str(failure.value)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:192.168.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
    ],
)
def test_address_policy(address: str, problem: str | None) -> None:
    assert download.address_problem(address) == problem


# real downloads from the local server (private addresses allowed)


def test_png_is_downloaded_as_a_png(server: Server, local_ctx: Any) -> None:
    url = serve(server, "/pictures/red.png", png_bytes((64, 48)), "image/png")
    image = download_with(local_ctx, "image", f"Can you download the image at {url}?")
    assert image.kind == "image" and image.path.suffix == ".png"
    with Image.open(image.path) as opened:
        assert opened.format == "PNG" and opened.size == (64, 48)
        assert opened.convert("RGB").getpixel((10, 10)) == (255, 0, 0)


def test_image_gets_the_extension_of_what_it_is(server: Server, local_ctx: Any) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), "blue").save(buffer, "JPEG")
    url = serve(server, "/photo.png", buffer.getvalue(), "image/png")  # misnamed and mislabelled JPEG
    assert download_with(local_ctx, "image", url).path.suffix == ".jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(buffer, "ICO")
    icon = download_with(local_ctx, "image", serve(server, "/favicon.ico", buffer.getvalue(), "image/x-icon"))
    assert icon.path.suffix == ".png"  # a format baton does not take is converted
    with Image.open(icon.path) as opened:
        assert opened.format == "PNG"


def test_wav_is_downloaded(server: Server, local_ctx: Any) -> None:
    url = serve(server, "/sound.wav", wav_bytes(0.5), "audio/wav")
    audio = download_with(local_ctx, "audio", url)
    assert audio.kind == "audio" and audio.path.suffix == ".wav"
    seconds, rate, channels, _, peak = wav_info(audio.path)
    assert seconds == pytest.approx(0.5) and rate == 16000 and channels == 1 and peak > 10000


def test_generic_content_type_is_sniffed(server: Server, local_ctx: Any) -> None:
    url = serve(server, "/download?id=7", wav_bytes(0.2), "application/octet-stream")
    assert download_with(local_ctx, "audio", url).path.suffix == ".wav"
    url = serve(server, "/blob", png_bytes(), None)
    assert download_with(local_ctx, "image", url).path.suffix == ".png"


@needs_ffmpeg
def test_mp4_video_is_downloaded_and_probed(server: Server, local_ctx: Any, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
         "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    video = download_with(local_ctx, "video", serve(server, "/clip", clip.read_bytes(), "video/mp4"))
    assert video.kind == "video" and video.path.suffix == ".mp4"
    assert video.path.read_bytes() == clip.read_bytes()
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(video.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(probe.stdout) == pytest.approx(1.0, abs=0.1)
    # the same bytes are not audio: no audio stream
    with pytest.raises(ExpertError, match="is not audio: it has no audio stream"):
        download_with(local_ctx, "audio", serve(server, "/clip-as-audio", clip.read_bytes(), "audio/mp4"))


def test_html_page_becomes_its_visible_text(server: Server, local_ctx: Any) -> None:
    url = serve(server, "/article", PAGE.encode("utf-8"), "text/html; charset=utf-8")
    text = download_with(local_ctx, "text", url)
    assert text.kind == "text"
    assert text.value == "Baton & friends\nWelcome\nFirst paragraph with bold text.\none\ntwo\nCafé crème"


def test_text_charsets(server: Server, local_ctx: Any) -> None:
    url = serve(server, "/latin1.txt", "Größe: 10 €".encode("cp1252"), "text/plain; charset=windows-1252")
    assert download_with(local_ctx, "text", url).value == "Größe: 10 €"
    page = '<html><head><meta charset="iso-8859-1"></head><body><p>Ça va très bien</p></body></html>'
    url = serve(server, "/meta.html", page.encode("latin-1"), "text/html")
    assert download_with(local_ctx, "text", url).value == "Ça va très bien"


# limits and mismatches


@pytest.mark.parametrize("declared", [True, False])
def test_oversize_content_is_refused(declared: bool, server: Server, local_ctx: Any) -> None:
    local_ctx.settings = local_ctx.settings.replace(max_download_mb=0.05)  # 50 KiB
    body = png_bytes((600, 600), "white") + b"\0" * 60_000
    url = serve(server, f"/big-{declared}.png", body, "image/png", declare_length=declared)
    with pytest.raises(ExpertError) as failure:
        download_with(local_ctx, "image", url)
    message = str(failure.value)
    assert "download limit of 0.05 MB" in message and "BATON_MAX_DOWNLOAD_MB" in message
    if declared:  # refused from the Content-Length header, before reading the body
        assert f"is {len(body) / 1024 / 1024:.3g} MB, over the download limit" in message
    else:  # counted while streaming
        assert "sent more than the download limit" in message


def test_slow_downloads_are_stopped(server: Server, local_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "TIME_LIMIT", 0.5)
    url = serve(server, "/trickle.png", png_bytes((300, 300)), "image/png", pause=0.15, pieces=8)
    began = time.monotonic()
    with pytest.raises(ExpertError, match="took too long and was stopped"):
        download_with(local_ctx, "image", url)
    assert time.monotonic() - began < 1.0


def test_a_silent_server_times_out(server: Server, local_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "READ_TIMEOUT", 0.3)
    url = serve(server, "/silent.png", png_bytes(), "image/png", pause=1.0)
    with pytest.raises(ExpertError, match=r"stopped sending data for 0.3 s"):
        download_with(local_ctx, "image", url)


def test_long_audio_is_refused(server: Server, local_ctx: Any) -> None:
    local_ctx.settings = local_ctx.settings.replace(max_media_seconds=0.3)
    url = serve(server, "/long.wav", wav_bytes(1.0), "audio/x-wav")
    with pytest.raises(ExpertError, match=r"is 1 s long, over the limit of 0.3 s; raise BATON_MAX_MEDIA_SECONDS"):
        download_with(local_ctx, "audio", url)


@pytest.mark.parametrize(
    ("kind", "body", "content_type", "message"),
    [
        ("image", PAGE.encode(), "text/html", "is text/html, not an image; give the address of the image itself"),
        ("audio", png_bytes(), "image/png", "is image/png, not audio"),
        ("video", wav_bytes(), "audio/wav", "is audio/wav, not a video"),
        ("text", png_bytes(), "image/png", "is image/png, not text or HTML"),
        ("image", PAGE.encode(), "image/png", "did not send a readable image"),
        ("audio", b"ID3 but not really an mp3 " * 20, "audio/mpeg", "did not send readable media"),
        ("text", b"\x00\x01\x02binary" * 100, "application/octet-stream", "sent binary data, not text"),
    ],
)
def test_wrong_content_is_refused(
    kind: str, body: bytes, content_type: str, message: str, server: Server, local_ctx: Any
) -> None:
    url = serve(server, f"/wrong-{kind}-{abs(hash(message))}", body, content_type)
    with pytest.raises(ExpertError) as failure:
        download_with(local_ctx, kind, url)
    assert message in str(failure.value)


def test_http_errors_are_reported(server: Server, local_ctx: Any) -> None:
    with pytest.raises(ExpertError, match=r"answered HTTP 404 Not Found; check the address"):
        download_with(local_ctx, "image", server.url("/no-such-file.png"))


# redirects


def test_redirects_are_followed(server: Server, local_ctx: Any) -> None:
    serve(server, "/final.png", png_bytes((30, 20)), "image/png")
    redirect(server, "/hop2", "/final.png", 301)
    redirect(server, "/hop1", server.url("/hop2"), 307)
    image = download_with(local_ctx, "image", server.url("/hop1"))
    with Image.open(image.path) as opened:
        assert opened.size == (30, 20)


def test_redirect_loops_stop_after_five_hops(server: Server, local_ctx: Any) -> None:
    redirect(server, "/loop", "/loop")
    before = server.hits.count("/loop")
    with pytest.raises(ExpertError, match="redirected more than 5 times; give the final address"):
        download_with(local_ctx, "image", server.url("/loop"))
    assert server.hits.count("/loop") - before == 6  # the first request and five redirects


@pytest.mark.parametrize(
    ("location", "shown", "problem"),
    [
        ("http://10.0.0.1/secret.png", "10.0.0.1", "private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://[::1]:9/x.png", "::1", "loopback"),
    ],
)
def test_redirect_to_a_private_address_is_refused(
    location: str, shown: str, problem: str, server: Server, expert_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the test server stands in for a public site: 127.0.0.1 passes the check, every other address as usual
    checked: list[str] = []
    real = download.address_problem

    def problem_of(address: str) -> str | None:
        checked.append(address)
        return None if address == "127.0.0.1" else real(address)

    monkeypatch.setattr(download, "address_problem", problem_of)
    expert_ctx.settings = expert_ctx.settings.replace(allow_network=True)
    url = redirect(server, f"/to-{problem}", location)
    with pytest.raises(ExpertError) as failure:
        download_with(expert_ctx, "image", url)
    assert str(failure.value).startswith(f"refusing to download from a redirect to {shown}: it is a {problem} address")
    assert checked[0] == "127.0.0.1" and checked[-1] != "127.0.0.1"


# in a plan: the URL extractor's url output feeds a downloader's url input


def test_url_extractor_feeds_downloaders_in_a_plan(server: Server, tmp_path: Path) -> None:
    from baton.config import Settings

    serve(server, "/plan.png", png_bytes((32, 32), "yellow"), "image/png")
    serve(server, "/plan.html", b"<html><body><p>Hello from the page.</p></body></html>", "text/html")
    settings = Settings(home=tmp_path / "home", allow_network=True, allow_private_network=True)
    plan = parse_plan(
        {
            "task_nodes": [
                {"task": "URL Extractor", "arguments": [f"My friend sent me this: {server.url('/plan.png')} !"]},
                {"task": "Image Downloader", "arguments": ["<node-0>"]},
                {"task": "Text Downloader", "arguments": [f"Get the page at {server.url('/plan.html')}"]},
            ]
        }
    )
    store = Store(settings.home)
    assistant = Assistant(settings, store=store)
    try:
        import asyncio

        result = asyncio.run(assistant.run("", plan=plan))
    finally:
        assistant.close()
    assert result.ok, result.run.answer
    assert result.outputs[0]["url"] == Resource(kind="url", value=server.url("/plan.png"))
    image = result.outputs[1]["image"]
    with Image.open(image.path) as opened:
        assert opened.size == (32, 32)
    assert result.outputs[2]["text"].value == "Hello from the page."


# https: the connection goes to the checked address, with the host name for SNI and certificate checks


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str | None]]]:
    """An https server on 127.0.0.1 with a self-signed certificate for 'baton.test'; records the SNI names."""
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=baton.test",
         "-addext", "subjectAltName=DNS:baton.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    names: list[str | None] = []
    body = png_bytes((12, 34), "purple")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,unused-ignore]

    class Quiet(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client refusing the self-signed certificate is expected here

    httpd = Quiet(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://baton.test:{httpd.server_address[1]}/picture.png", cert, names
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def baton_test_resolves_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """'baton.test' resolves to 127.0.0.1; every name looked up is recorded."""
    looked_up: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        assert host == "baton.test", host
        return ["127.0.0.1"]

    monkeypatch.setattr(download, "_resolve", resolve)
    return looked_up


def test_https_uses_the_host_name_for_sni_and_trusted_certificates(
    tls_server: tuple[str, Path, list[str | None]],
    baton_test_resolves_here: list[str],
    local_ctx: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ssl

    url, cert, names = tls_server
    monkeypatch.setattr(download, "TLS_VERIFY", ssl.create_default_context(cafile=str(cert)))
    image = download_with(local_ctx, "image", url)
    with Image.open(image.path) as opened:
        assert opened.size == (12, 34)
    assert names[-1] == "baton.test"  # SNI names the host though the connection went to 127.0.0.1
    assert baton_test_resolves_here == ["baton.test"]  # resolved once, by baton, before connecting


def test_https_with_an_untrusted_certificate_is_refused(
    tls_server: tuple[str, Path, list[str | None]], baton_test_resolves_here: list[str], local_ctx: Any
) -> None:
    url, _, names = tls_server
    with pytest.raises(ExpertError, match="has an untrusted TLS certificate"):
        download_with(local_ctx, "image", url)  # self-signed: not in the system's trust store
    assert names[-1] == "baton.test"
