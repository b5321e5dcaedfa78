"""Downloaders: an image, audio, video or the text of a web page from an http(s) URL, fetched safely.

Off unless ``allow_network`` is set. Before each connection (the first and every redirect hop) the
host is resolved and every address checked: loopback, private, link-local, multicast, reserved,
unspecified and other non-public addresses are refused unless ``allow_private_network`` is set, and
the connection then goes to an address that was checked (the name is not resolved a second time, so
a DNS answer cannot change in between). Redirects are followed by hand, at most five. The body is
streamed to disk under a size limit (``max_download_mb``) and a time limit, its Content-Type must
match the kind, and the bytes are checked to really be that kind (Pillow for images, ffprobe for
audio and video) before the file is saved with the extension of what it is.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.textscan import find_urls
from baton.experts.process import run_program
from baton.media import MAX_IMAGE_PIXELS, BadInput, Resource, check_media_file, kind_of_filename

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_REDIRECTS", "address_problem", "fetch", "html_to_text"]

MAX_REDIRECTS = 5
TIME_LIMIT = 120.0  # seconds for a whole download, redirects included (capped by the task timeout)
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0  # seconds of silence from the server
USER_AGENT = "baton-downloader/0.1"
TLS_VERIFY: ssl.SSLContext | bool = True  # certificates are checked against the host name (tests trust their own)

_COMMON = (
    "Needs network access (BATON_ALLOW_NETWORK=1); refuses loopback, private and link-local addresses unless "
    "BATON_ALLOW_PRIVATE_NETWORK=1; at most BATON_MAX_DOWNLOAD_MB, 5 redirects and 2 minutes. The input may be a "
    "sentence: its first URL is used."
)


def _card(kind: str, description: str, binaries: tuple[str, ...] = ()) -> ModelCard:
    return ModelCard(
        id=f"builtin/http-{kind}",
        task=f"{kind}-downloader",
        backend="builtin",
        description=f"{description} {_COMMON}",
        factory=f"baton.experts.builtin.download:{kind.capitalize()}Downloader",
        popularity=13_000,
        popularity_source="GitHub stars of encode/httpx",
        memory_mb=40,
        licence="BSD-3-Clause",
        python=("httpx",),
        extra="net",
        binaries=binaries,
        apt=("ffmpeg",) if binaries else (),
    )


CARDS = [
    _card(
        "image",
        "HTTP(S) download of an image (image/* content, checked with Pillow; PNG, JPEG, GIF, WebP, BMP, TIFF kept, "
        "other formats converted to PNG). Not a web page's images: give the image's own address.",
    ),
    _card(
        "audio",
        "HTTP(S) download of an audio file (audio/* content, checked with ffprobe; WAV, MP3, FLAC, Ogg, Opus, M4A, "
        "AAC kept, other formats converted to WAV). Not streaming sites or playlists.",
        ("ffprobe", "ffmpeg"),
    ),
    _card(
        "video",
        "HTTP(S) download of a video file (video/* content, checked with ffprobe; MP4, MOV, WebM, MKV, AVI kept, "
        "other containers copied into MKV). Not streaming sites (YouTube and the like) or playlists.",
        ("ffprobe", "ffmpeg"),
    ),
    _card(
        "text",
        "HTTP(S) download of a web page's text: HTML is reduced to its visible text (title, headings, paragraphs; "
        "no scripts or styles), plain text, JSON and XML come back as they are. No JavaScript is run.",
    ),
]


# addresses


def address_problem(address: str) -> str | None:
    """Why baton will not connect to an IP address by default ('loopback', 'private', ...), or None if public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    for attribute, word in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attribute):
            return word
    return None if ip.is_global else "non-public"


def _resolve(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ExpertError(f"cannot resolve the host '{host}' ({exc}); check the address and the connection") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def _checked_addresses(host: str, port: int, allow_private: bool, hop: str) -> list[str]:
    addresses = _resolve(host, port)
    if not addresses:
        raise ExpertError(f"the host '{host}' has no address; check the address")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem is not None:
                shown = host if host == address else f"{host} ({address})"
                article = "an" if problem[0] in "aeiou" else "a"
                raise ExpertError(
                    f"refusing to download from {hop}{shown}: it is {article} {problem} address, and baton fetches "
                    "only public addresses; set BATON_ALLOW_PRIVATE_NETWORK=1 to allow local and private ones"
                )
    return addresses


# content types

_GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/binary", "application/download"}
_ALSO = {
    "audio": {"application/ogg", "application/x-ogg"},
    "video": {"application/mp4", "application/x-matroska", "application/ogg", "application/vnd.apple.mpegurl"},
    "text": {
        "application/xhtml+xml",
        "application/json",
        "application/ld+json",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/javascript",
    },
    "image": set(),
}


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _type_matches(kind: str, media_type: str) -> bool | None:
    """True if the Content-Type fits the kind, False if it names something else, None if it says nothing."""
    if media_type in _GENERIC:
        return None
    return media_type.startswith(f"{kind}/") or media_type in _ALSO[kind]


_WANTED = {"image": "an image", "audio": "audio", "video": "a video", "text": "text or HTML"}


@dataclass(frozen=True)
class Fetched:
    path: Path
    url: str  # the final address, after redirects
    content_type: str


def _pick_url(text: str) -> str:
    urls = find_urls(text)
    if urls:
        return urls[0]
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 80 else shown[:79] + "…"
    scheme = re.search(r"\b([a-z][a-z0-9+.-]*):(?://|[^\s]*@)", text, re.IGNORECASE)
    if scheme:
        raise ExpertError(
            f"only http and https addresses can be downloaded, not '{scheme.group(1).lower()}' ('{shown}')"
        )
    if kind_of_filename(shown) is not None:
        raise ExpertError(
            f"'{shown}' is a file name, not a URL; attach the file itself (-i {shown}) instead of downloading it"
        )
    raise ExpertError(f"no URL in '{shown}'; give an http:// or https:// address to download")


def fetch(text: str, kind: str, ctx: ExpertContext) -> Fetched:
    """Download the first URL in ``text`` to ``ctx.workdir`` under every rule in this module's docstring."""
    settings = ctx.settings
    if not settings.allow_network:
        raise ExpertError(
            "network access is disabled; set BATON_ALLOW_NETWORK=1 (or allow_network = true in config.toml) "
            "to let baton download"
        )
    import httpx

    first = url = _pick_url(text)
    limit = int(settings.max_download_mb * 1024 * 1024)
    deadline = time.monotonic() + min(TIME_LIMIT, settings.task_timeout)
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    # trust_env=False: no proxy from the environment, so the checked address is the one connected to
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout, verify=TLS_VERIFY) as client:
        for hop in range(MAX_REDIRECTS + 1):
            via = f"{url} (redirected from {first})" if hop else url
            if time.monotonic() > deadline:
                raise ExpertError(f"downloading {first} took too long and was stopped; try again later")
            response = _open(client, url, kind, settings.allow_private_network, "a redirect to " if hop else "")
            try:
                if response.status_code in (301, 302, 303, 307, 308):
                    location = response.headers.get("location", "").strip()
                    if not location:
                        raise ExpertError(f"{via} redirects (HTTP {response.status_code}) but says not where")
                    if hop == MAX_REDIRECTS:
                        raise ExpertError(
                            f"{first} redirected more than {MAX_REDIRECTS} times; give the final address instead"
                        )
                    url = str(httpx.URL(url).join(location))
                    continue
                if response.status_code >= 400:
                    raise ExpertError(
                        f"{via} answered HTTP {response.status_code} {response.reason_phrase}; check the address"
                    )
                if not 200 <= response.status_code < 300:
                    raise ExpertError(f"{via} answered HTTP {response.status_code}, which is not a file to download")
                content_type = response.headers.get("content-type", "")
                media_type = _media_type(content_type)
                if _type_matches(kind, media_type) is False:
                    raise ExpertError(
                        f"{via} is {media_type}, not {_WANTED[kind]}; give the address of the {kind} itself"
                    )
                path = _save_body(response, ctx.workdir / "download.part", limit, deadline, via)
                return Fetched(path=path, url=url, content_type=content_type)
            finally:
                response.close()
    raise AssertionError("unreachable")  # the loop returns or raises


def _open(client: httpx.Client, url: str, kind: str, allow_private: bool, hop: str) -> httpx.Response:
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ExpertError(f"'{url}' is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise ExpertError(f"only http and https addresses can be downloaded, not '{parsed.scheme}' ({hop}{url})")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ExpertError(f"'{url}' has no host name; write it as https://host/path")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _checked_addresses(host, port, allow_private, hop)
    accept = {"text": "text/html, text/plain;q=0.9, */*;q=0.5"}.get(kind, f"{kind}/*, */*;q=0.5")
    # identity: no compressed bodies, so the size limit counts what is stored and nothing can inflate in memory
    headers = {"Host": parsed.netloc.decode("ascii"), "User-Agent": USER_AGENT, "Accept": accept}
    headers["Accept-Encoding"] = "identity"
    failure: Exception | None = None
    for address in addresses:  # connect to a checked address, never to the name again
        pinned = parsed.copy_with(host=address.split("%", 1)[0])
        extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
        request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
        try:
            return client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc
        except httpx.HTTPError as exc:
            raise ExpertError(f"downloading {url} failed: {exc or type(exc).__name__}") from None
    reason = str(failure) or type(failure).__name__
    if "CERTIFICATE" in reason.upper():
        raise ExpertError(f"{url} has an untrusted TLS certificate ({reason}); refusing to download")
    raise ExpertError(f"cannot connect to {url} ({reason}); check the address and the connection")


def _save_body(response: httpx.Response, target: Path, limit: int, deadline: float, via: str) -> Path:
    import httpx

    megabytes = f"{limit / 1024 / 1024:.3g} MB"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ExpertError(
            f"{via} is {int(declared) / 1024 / 1024:.3g} MB, over the download limit of {megabytes}; "
            "raise BATON_MAX_DOWNLOAD_MB to allow it"
        )
    size = 0
    try:
        with target.open("wb") as out:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ExpertError(
                        f"{via} sent more than the download limit of {megabytes}; raise BATON_MAX_DOWNLOAD_MB to allow it"
                    )
                if time.monotonic() > deadline:
                    raise ExpertError(f"downloading {via} took too long and was stopped; try a smaller file")
                out.write(chunk)
    except httpx.TimeoutException:
        raise ExpertError(f"{via} stopped sending data for {READ_TIMEOUT:g} s; try again later") from None
    except httpx.HTTPError as exc:
        raise ExpertError(f"downloading {via} failed: {exc or type(exc).__name__}") from None
    if size == 0:
        raise ExpertError(f"{via} sent an empty file")
    return target


# kinds


def _final(path: Path, ext: str) -> Path:
    final = path.with_name(f"download{ext}")
    path.replace(final)
    return final


_IMAGE_FORMATS = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tiff",
}


def _image(fetched: Fetched) -> Path:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fetched.path) as image:
                fmt = image.format or ""
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ExpertError(
                        f"{fetched.url} is a {width}x{height} image, over the limit of {MAX_IMAGE_PIXELS:,} pixels"
                    )
                if fmt not in _IMAGE_FORMATS:  # ICO, PPM, ...: keep the pixels as PNG
                    image.load()
                    converted = fetched.path.with_name("download.png")
                    image.save(converted)
                    fetched.path.unlink()
                    return converted
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ExpertError(f"{fetched.url} did not send a readable image ({exc})") from None
    return _final(fetched.path, _IMAGE_FORMATS[fmt])


def _probe(path: Path, url: str) -> dict[str, object]:
    done = run_program(
        ["ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_type,codec_name:"
         "stream_disposition=attached_pic", "-of", "json", str(path)],
        timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ExpertError(f"{url} did not send readable media ({message[-1] if message else 'ffprobe failed'})")
    info: dict[str, object] = json.loads(done.stdout or b"{}")
    return info


_AUDIO_FORMATS = {"wav": ".wav", "mp3": ".mp3", "flac": ".flac", "aac": ".aac"}


def _media(fetched: Fetched, kind: str, ctx: ExpertContext) -> Path:
    info = _probe(fetched.path, fetched.url)
    fmt = info.get("format")
    fmt = fmt if isinstance(fmt, dict) else {}
    streams = info.get("streams")
    streams = [s for s in streams if isinstance(s, dict)] if isinstance(streams, list) else []
    name = str(fmt.get("format_name", ""))
    try:
        duration = float(str(fmt.get("duration", "")))
    except ValueError:
        duration = 0.0

    def real_video(stream: dict[str, object]) -> bool:
        disposition = stream.get("disposition")
        cover = isinstance(disposition, dict) and disposition.get("attached_pic") == 1
        return stream.get("codec_type") == "video" and not cover

    if kind == "video" and not any(real_video(s) for s in streams):
        raise ExpertError(f"{fetched.url} is not a video: it has no video stream")
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if kind == "audio" and not audio:
        raise ExpertError(f"{fetched.url} is not audio: it has no audio stream")
    limit = ctx.settings.max_media_seconds
    if duration > limit:
        raise ExpertError(
            f"{fetched.url} is {duration:.0f} s long, over the limit of {limit:g} s; raise BATON_MAX_MEDIA_SECONDS "
            "to allow it"
        )
    if kind == "audio":
        codecs = {str(s.get("codec_name")) for s in audio}
        if name in _AUDIO_FORMATS:
            return _final(fetched.path, _AUDIO_FORMATS[name])
        if name == "ogg":
            return _final(fetched.path, ".opus" if codecs == {"opus"} else ".ogg")
        if "mp4" in name.split(",") or "m4a" in name.split(","):
            return _final(fetched.path, ".m4a")
        return _convert(fetched, ["-vn", "-map", "0:a:0"], ".wav")
    with fetched.path.open("rb") as file:
        head = file.read(64)
    if "mp4" in name.split(","):
        return _final(fetched.path, ".mov" if head[8:12] == b"qt  " else ".mp4")
    if "webm" in name.split(",") and b"webm" in head:
        return _final(fetched.path, ".webm")
    if "matroska" in name.split(","):
        return _final(fetched.path, ".mkv")
    if name == "avi":
        return _final(fetched.path, ".avi")
    return _convert(fetched, ["-map", "0", "-c", "copy"], ".mkv")


def _convert(fetched: Fetched, arguments: list[str], ext: str) -> Path:
    out = fetched.path.with_name(f"converted{ext}")
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(fetched.path)]
    done = run_program([*command, *arguments, str(out)], timeout=300)
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ExpertError(f"{fetched.url} could not be converted to {ext} ({message[-1] if message else 'no output'})")
    fetched.path.unlink()
    return out


# text

_SKIP = {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "head"}
_BLOCK = {
    "p", "div", "br", "hr", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article", "header",
    "footer", "nav", "aside", "main", "blockquote", "pre", "figure", "figcaption", "form", "address",
    "h1", "h2", "h3", "h4", "h5", "h6", "title", "td", "th",
}  # fmt: skip


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP:
            self._skipping.append(tag)
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP and tag in self._skipping:
            while self._skipping and self._skipping.pop() != tag:
                pass
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML page: its title, then one line per block; scripts and styles dropped."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    title = " ".join("".join(parser.title).split())
    body = [line for line in lines if line]
    if title and (not body or body[0] != title):
        body.insert(0, title)
    return "\n".join(body)


def _charset(content_type: str, head: bytes) -> str | None:
    """The charset the Content-Type names, else the one an HTML <meta> tag names, else None."""
    declared = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    if declared is not None:
        return declared.group(1)
    meta = re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", head, re.IGNORECASE)
    return meta.group(1).decode("ascii") if meta is not None else None


def _text(fetched: Fetched) -> str:
    data = fetched.path.read_bytes()
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExpertError(f"{fetched.url} sent binary data, not text")
    charset = _charset(fetched.content_type, data[:2048])
    text: str | None = None
    for encoding in (charset, "utf-8-sig", "cp1252"):
        if encoding is None:
            continue
        try:
            text = data.decode(encoding)
            break
        except (LookupError, UnicodeDecodeError):
            continue
    if text is None:
        text = data.decode("latin-1")
    media_type = _media_type(fetched.content_type)
    sniffed = text.lstrip()[:200].lower()
    if media_type in ("text/html", "application/xhtml+xml") or sniffed.startswith(("<!doctype html", "<html")):
        text = html_to_text(text)
    else:
        text = text.replace("\r\n", "\n").strip()
    if not text.strip():
        raise ExpertError(f"{fetched.url} has no text")
    return text


# experts


class _Downloader(Expert):
    kind: ClassVar[str]

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        fetched = fetch(inputs["url"].as_text(), self.kind, ctx)
        if self.kind == "text":
            return {"text": Resource.text(_text(fetched))}
        path = _image(fetched) if self.kind == "image" else _media(fetched, self.kind, ctx)
        try:
            found = check_media_file(path)
        except BadInput as exc:
            raise ExpertError(f"{fetched.url}: {exc}") from None
        if found != self.kind:
            raise ExpertError(f"{fetched.url} is {found}, not {self.kind}")
        return {self.kind: Resource.media(ctx.save_file(path))}


class ImageDownloader(_Downloader):
    kind = "image"


class AudioDownloader(_Downloader):
    kind = "audio"


class VideoDownloader(_Downloader):
    kind = "video"


class TextDownloader(_Downloader):
    kind = "text"
