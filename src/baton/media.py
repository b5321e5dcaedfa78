"""Resources and artifacts: the typed values that flow between tasks.

A :class:`Resource` is what one task hands to the next. Text, URLs and JSON travel inline; images,
audio and video are stored once as an :class:`Artifact` (a file named by its sha256) and are shown
to people and LLMs by a short session-scoped name such as ``image/3f9c2a1b.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

__all__ = [
    "MEDIA_KINDS",
    "Artifact",
    "BadInput",
    "Kind",
    "MediaKind",
    "Resource",
    "check_media_file",
    "kind_of_filename",
]

Kind = Literal["text", "image", "audio", "video", "url", "json"]
MediaKind = Literal["image", "audio", "video"]
KINDS: tuple[str, ...] = get_args(Kind)
MEDIA_KINDS: tuple[str, ...] = get_args(MediaKind)

EXTENSIONS: dict[str, MediaKind] = {
    **dict.fromkeys([".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"], "image"),
    **dict.fromkeys([".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus"], "audio"),
    **dict.fromkeys([".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"], "video"),
}

MAX_IMAGE_PIXELS = 64_000_000


class BadInput(ValueError):
    """Input a person gave that baton cannot use; the message names the problem and the fix."""


class Artifact(BaseModel):
    """A media file stored once under its sha256 and known to a session by ``name``."""

    model_config = ConfigDict(frozen=True)

    name: str  # session-scoped, e.g. "image/3f9c2a1b.png"
    sha256: str
    kind: MediaKind
    path: Path  # the file in the store
    label: str = ""  # the user's own file name when it was an input, e.g. "example.jpg"


class Resource(BaseModel):
    """A typed value flowing between tasks: inline text/url/json, or an artifact for media."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    value: Any = None  # str for text and url, any JSON value for json
    artifact: Artifact | None = None

    @classmethod
    def text(cls, value: str) -> Resource:
        return cls(kind="text", value=value)

    @classmethod
    def json_value(cls, value: Any) -> Resource:
        return cls(kind="json", value=value)

    @classmethod
    def media(cls, artifact: Artifact) -> Resource:
        return cls(kind=artifact.kind, artifact=artifact)

    @property
    def path(self) -> Path:
        if self.artifact is None:
            raise TypeError(f"a {self.kind} resource has no file")
        return self.artifact.path

    def as_text(self) -> str:
        """The value as text for a text port: artifact names stand in for media."""
        if self.artifact is not None:
            return self.artifact.name
        if self.kind == "json":
            import json

            return json.dumps(self.value, ensure_ascii=False)
        return str(self.value)

    def describe(self, limit: int = 0) -> str:
        """A one-line human description: the text itself, or the artifact's file path."""
        if self.artifact is not None:
            return str(self.artifact.path)
        text = self.as_text()
        if limit and len(text) > limit:
            return text[: limit - 1] + "…"
        return text

    def to_record(self) -> dict[str, Any]:
        """What the run record stores: media by artifact name, values inline."""
        if self.artifact is not None:
            return {"kind": self.kind, "artifact": self.artifact.name}
        return {"kind": self.kind, "value": self.value}


def kind_of_filename(name: str) -> MediaKind | None:
    """The media kind a file name's extension announces, or None."""
    return EXTENSIONS.get(Path(name).suffix.lower())


def check_media_file(path: Path) -> MediaKind:
    """Check that a user's file exists and really is the media its extension says.

    Raises BadInput with the problem and the fix; never returns for a file baton cannot use.
    """
    if not path.exists():
        raise BadInput(f"file '{path}' does not exist; check the path")
    if not path.is_file():
        raise BadInput(f"'{path}' is not a file; give the path of an image, audio or video file")
    kind = kind_of_filename(path.name)
    if kind is None:
        known = " ".join(sorted(EXTENSIONS))
        raise BadInput(f"'{path.name}' has an unsupported file type '{path.suffix or '(none)'}'; use one of: {known}")
    if path.stat().st_size == 0:
        raise BadInput(f"'{path}' is empty; give a file with content")
    if kind == "image":
        _check_image(path)
    elif kind == "audio" and path.suffix.lower() == ".wav":
        _check_wav(path)
    return kind


def _check_image(path: Path) -> None:
    import warnings

    from PIL import Image, UnidentifiedImageError

    def too_large(size: str) -> BadInput:
        return BadInput(f"'{path.name}' {size}, over the limit of {MAX_IMAGE_PIXELS:,} pixels; resize it first")

    try:
        with warnings.catch_warnings():  # Pillow's own, larger limit: baton's check below says it better
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise too_large(f"is {width}x{height} pixels")
                image.verify()
        with Image.open(path) as image:
            image.load()
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise too_large("has far too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"'{path.name}' is not a readable image ({exc}); re-save it as PNG or JPEG") from None


def _check_wav(path: Path) -> None:
    import wave

    try:
        with wave.open(str(path), "rb") as wav:
            wav.getnframes()
    except (wave.Error, EOFError, OSError) as exc:
        raise BadInput(
            f"'{path.name}' is not a readable WAV file ({exc}); convert it with 'ffmpeg -i {path.name} out.wav'"
        ) from None
