"""The files a request brings: uploads, data URLs, base64 audio and (when allowed) http URLs.

Each file is saved under a private folder with a safe name, sized against the upload limit while it
is written, then checked (pixel limit, the media it claims to be) before anything touches the store,
so a refused request changes nothing. Plain Python: the web framework stays in ``app.py``.
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes, urlparse

from baton.config import Settings
from baton.media import EXTENSIONS, BadInput, check_media_file, kind_of_filename

from .errors import ApiError

__all__ = ["MIME_TYPES", "Inputs", "mime_type"]

MIME_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".opus": "audio/opus",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".m4v": "video/x-m4v",
}
EXTENSION_OF: dict[str, str] = {
    **{mime: ext for ext, mime in reversed(MIME_TYPES.items())},
    "image/jpg": ".jpg",
    "image/x-png": ".png",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/vnd.wave": ".wav",
    "audio/mp3": ".mp3",
    "audio/x-flac": ".flac",
    "audio/x-m4a": ".m4a",
    "audio/m4a": ".m4a",
}
DATA_URL = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,(?P<data>.*)",
    re.DOTALL | re.IGNORECASE,
)
EMBEDDED_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[^;,\s]*)*;base64,[A-Za-z0-9+/=]+")
MB = 1024 * 1024


def mime_type(name: str) -> str:
    return MIME_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")


class _FetchContext:
    """What the downloader needs from an expert context: a scratch folder and the settings."""

    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.workdir, self.settings = workdir, settings
        self.llm = self.usage = None


class Inputs:
    """The files of one request, in a folder of their own until the run has stored them."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder = folder
        self.settings = settings
        self.paths: list[Path] = []
        self._numbers: dict[str, int] = {}
        folder.mkdir(parents=True, exist_ok=False)

    @property
    def limit(self) -> int:
        return int(self.settings.max_upload_mb * MB)

    def too_large(self, name: str, size: float | None = None) -> ApiError:
        shown = f" is {size / MB:.3g} MB," if size else " is"
        return ApiError(
            413,
            f"'{name}'{shown} over the upload limit of {self.settings.max_upload_mb:g} MB; "
            "send a smaller file, or raise BATON_MAX_UPLOAD_MB on the server",
            code="file_too_large",
        )

    # naming

    def _target(self, name: str) -> Path:
        """A free path for ``name`` in the folder: the user's name, made unique within the request."""
        path = self.folder / name
        stem, suffix, n = path.stem, path.suffix, 2
        while path.exists():
            path = self.folder / f"{stem}-{n}{suffix}"
            n += 1
        return path

    def _generated(self, ext: str) -> str:
        kind = kind_of_filename(f"x{ext}") or "file"
        self._numbers[kind] = self._numbers.get(kind, 0) + 1
        return f"{kind}-{self._numbers[kind]}{ext}"

    @staticmethod
    def safe_name(name: str | None, param: str = "file") -> str:
        """The user's file name without folders or odd characters; it must name a media type."""
        base = PurePosixPath((name or "").replace("\\", "/")).name
        base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")[-100:]
        if kind_of_filename(base) is None:
            known = " ".join(sorted(EXTENSIONS))
            suffix = PurePosixPath(base).suffix or "(none)"
            raise ApiError(
                400,
                f"'{name or ''}' has an unsupported file type '{suffix}'; send an image, audio or video file "
                f"named with one of: {known}",
                code="unsupported_file_type",
                param=param,
            )
        return base

    # adding files

    def add_bytes(self, data: bytes, name: str) -> Path:
        if len(data) > self.limit:
            raise self.too_large(name, len(data))
        path = self._target(name)
        path.write_bytes(data)
        self.paths.append(path)
        return path

    def add_stream(self, stream: BinaryIO, name: str) -> Path:
        """Copy an uploaded file, stopping as soon as it passes the limit."""
        path = self._target(name)
        size = 0
        with path.open("wb") as out:
            for block in iter(lambda: stream.read(1 << 20), b""):
                size += len(block)
                if size > self.limit:
                    out.close()
                    path.unlink()
                    raise self.too_large(name)
                out.write(block)
        self.paths.append(path)
        return path

    def add_path(self, source: Path, name: str | None = None) -> Path:
        with source.open("rb") as stream:
            return self.add_stream(stream, self.safe_name(name or source.name))

    def add_data_url(self, url: str, param: str, name: str | None = None) -> str:
        """A ``data:`` URL (base64 or percent-encoded); returns the file name it is known by."""
        match = DATA_URL.fullmatch(url.strip())
        if match is None:
            raise ApiError(400, f"{param} is not a valid data: URL; write data:MIME;base64,DATA", param=param)
        mime = (match["mime"] or "").lower()
        ext = EXTENSION_OF.get(mime)
        if ext is None:
            raise ApiError(
                400,
                f"{param} is a data: URL of type '{mime or 'none'}', which is not an image, audio or video type "
                f"baton reads; use one of {', '.join(sorted(set(EXTENSION_OF)))}",
                code="unsupported_file_type",
                param=param,
            )
        return self._decoded(match["data"], bool(match["b64"]), ext, param, name)

    def add_base64(self, data: str, fmt: str, param: str) -> str:
        """OpenAI's ``input_audio``: base64 data and a format such as wav or mp3."""
        ext = "." + fmt.lower().lstrip(".")
        if kind_of_filename(f"x{ext}") != "audio":
            audio = sorted(e.lstrip(".") for e, k in EXTENSIONS.items() if k == "audio")
            raise ApiError(
                400, f"{param}: audio format '{fmt}' is not supported; use one of {', '.join(audio)}", param=param
            )
        return self._decoded(data, True, ext, param, None)

    def _decoded(self, data: str, is_base64: bool, ext: str, param: str, name: str | None) -> str:
        final = self.safe_name(name, param) if name else self._generated(ext)
        if is_base64:
            compact = re.sub(r"\s+", "", data)
            if len(compact) * 3 // 4 > self.limit + 2:
                raise self.too_large(final, len(compact) * 3 / 4)
            try:
                raw = base64.b64decode(compact, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(
                    400, f"{param}: the base64 data is malformed; encode the file with standard base64", param=param
                ) from None
        else:
            raw = unquote_to_bytes(data)
        if not raw:
            raise ApiError(400, f"{param}: the file is empty; send a file with content", param=param)
        return self.add_bytes(raw, final).name

    def add_url(self, url: str, kind: str, param: str) -> str:
        """Fetch an http(s) URL under the downloader's rules, only when the server allows network access."""
        scheme = urlparse(url).scheme.lower()
        if scheme == "data":
            return self.add_data_url(url, param)
        if scheme not in ("http", "https"):
            raise ApiError(400, f"{param}: '{url[:80]}' is neither a data: URL nor an http(s) URL", param=param)
        if not self.settings.allow_network:
            raise ApiError(
                400,
                f"{param}: this server does not fetch URLs (network access is off); send the file inline as a "
                "data: URL, or start the server with BATON_ALLOW_NETWORK=1",
                code="network_disabled",
                param=param,
            )
        from baton.experts import ExpertError
        from baton.experts.builtin.download import fetch

        workdir = self.folder / f".fetch-{len(self.paths)}"
        workdir.mkdir()
        settings = self.settings.replace(
            max_download_mb=min(self.settings.max_download_mb, self.settings.max_upload_mb)
        )
        try:
            fetched = fetch(url, kind, _FetchContext(workdir, settings))  # type: ignore[arg-type]
        except ExpertError as exc:
            raise ApiError(400, f"{param}: {exc}", param=param) from None
        url_name = PurePosixPath(urlparse(fetched.url).path).name
        if kind_of_filename(url_name) == kind:
            final = self.safe_name(url_name, param)
        else:
            ext = EXTENSION_OF.get(fetched.content_type.split(";")[0].strip().lower()) or _sniff_image(fetched.path)
            if ext is None or kind_of_filename(f"x{ext}") != kind:
                raise ApiError(400, f"{param}: {url[:80]} is not {kind} baton can read", param=param)
            final = self._generated(ext)
        path = self._target(final)
        shutil.move(fetched.path, path)
        shutil.rmtree(workdir, ignore_errors=True)
        self.paths.append(path)
        return path.name

    # checks

    def check(self) -> None:
        """Every file is within the pixel limit and is the media its name says (400/413 otherwise)."""
        for path in self.paths:
            if kind_of_filename(path.name) == "image":
                self._check_pixels(path)
            try:
                check_media_file(path)
            except BadInput as exc:
                raise ApiError(400, str(exc).replace(f"{self.folder}/", ""), code="invalid_file") from None

    def _check_pixels(self, path: Path) -> None:
        from PIL import Image, UnidentifiedImageError

        limit = self.settings.max_image_pixels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    width, height = image.size
        except Image.DecompressionBombError:
            width, height = limit + 1, 1
        except (UnidentifiedImageError, OSError, ValueError):
            return  # check_media_file says what is wrong with it
        if width * height > limit:
            raise ApiError(
                413,
                f"'{path.name}' is {width}x{height} = {width * height:,} pixels, over the server's limit of "
                f"{limit:,}; resize it, or raise BATON_MAX_IMAGE_PIXELS on the server",
                code="image_too_large",
            )

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _sniff_image(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    formats = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff"}
    try:
        with Image.open(path) as image:
            return formats.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


# chat messages (OpenAI's Chat Completions and Microsoft JARVIS's {"messages": [...]})


def read_messages(messages: Sequence[Mapping[str, Any]], inputs: Inputs) -> str:
    """The request (the last user message's text); the media of every user message becomes an input.

    Content is a string (data: URLs inside it are taken out as files, as JARVIS clients send them) or
    OpenAI content parts: text, image_url, input_audio, video_url, audio_url and file (file_data).
    """
    if not messages:
        raise ApiError(400, "messages is empty; send at least one user message", param="messages")
    last = messages[-1]
    if last.get("role") != "user":
        raise ApiError(400, "the last message must be the user's (role 'user'): it is the request", param="messages")
    request = ""
    for index, message in enumerate(messages):
        if message.get("role") != "user":
            continue
        text = _read_content(message.get("content"), f"messages[{index}].content", inputs)
        if index == len(messages) - 1:
            request = text
    return request


def _read_content(content: Any, param: str, inputs: Inputs) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return _take_embedded(content, param, inputs)
    if not isinstance(content, list):
        raise ApiError(400, f"{param} must be a string or a list of content parts", param=param)
    texts: list[str] = []
    for number, part in enumerate(content):
        where = f"{param}[{number}]"
        if not isinstance(part, dict):
            raise ApiError(400, f"{where} must be an object with a 'type'", param=where)
        kind = part.get("type")
        if kind == "text":
            texts.append(_take_embedded(str(part.get("text") or ""), where, inputs))
        elif kind in ("image_url", "video_url", "audio_url"):
            value = part.get(kind)
            url = value.get("url") if isinstance(value, dict) else value
            if not isinstance(url, str) or not url:
                raise ApiError(400, f"{where}.{kind}.url is missing", param=f"{where}.{kind}")
            inputs.add_url(url, kind.removesuffix("_url"), f"{where}.{kind}")
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                raise ApiError(400, f"{where}.input_audio needs 'data' (base64) and 'format'", param=where)
            inputs.add_base64(audio["data"], str(audio.get("format") or "wav"), f"{where}.input_audio")
        elif kind == "file":
            file = part.get("file")
            data = file.get("file_data") if isinstance(file, dict) else None
            if not isinstance(data, str):
                raise ApiError(
                    400, f"{where}.file needs 'file_data' as a data: URL (file ids are not kept)", param=where
                )
            name = file.get("filename") if isinstance(file, dict) else None
            if data.startswith("data:"):
                inputs.add_data_url(data, f"{where}.file", name)
            else:
                inputs.add_bytes(_b64(data, f"{where}.file"), inputs.safe_name(name, f"{where}.file"))
        else:
            raise ApiError(
                400,
                f"{where} has type '{kind}'; baton reads text, image_url, input_audio, video_url, audio_url and file",
                param=f"{where}.type",
            )
    return "\n".join(text for text in texts if text)


def _take_embedded(text: str, param: str, inputs: Inputs) -> str:
    """Data URLs written inside text become files; the text names them instead."""
    return EMBEDDED_DATA_URL.sub(lambda match: inputs.add_data_url(match.group(0), param), text)


def _b64(data: str, param: str) -> bytes:
    try:
        return base64.b64decode(re.sub(r"\s+", "", data), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param}: the base64 data is malformed", param=param) from None
