"""Video basics with FFmpeg: probing, the audio track, a still frame, and a slideshow of two images.

The helpers here (``probe``, ``probe_input``, ``ffmpeg``, the encoder settings) are shared with
``video_edit``, which changes videos (speed, stabilization, soundtrack, voiceover).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.process import run_program
from baton.media import MAX_IMAGE_PIXELS, Resource

__all__ = ["MediaInfo", "ffmpeg", "ffmpeg_card", "parse_time", "probe", "probe_input"]

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
AAC = ["-c:a", "aac", "-b:a", "128k"]
EVEN = "crop=trunc(iw/2)*2:trunc(ih/2)*2"  # H.264 in yuv420p needs even width and height
LAST = -1.0  # parse_time's answer for "the last frame"


def ffmpeg_card(task: str, name: str, cls: str, description: str, *, also: tuple[str, ...] = ()) -> ModelCard:
    """The ModelCard of a builtin expert running FFmpeg (and the Debian-packaged programs in ``also``)."""
    return ModelCard(
        id=f"builtin/{name}",
        task=task,
        backend="builtin",
        description=description,
        factory=f"baton.experts.builtin.{cls}",
        popularity=45_000,
        popularity_source="GitHub stars of FFmpeg/FFmpeg",
        memory_mb=150,
        licence="GPL-2.0-or-later",
        binaries=("ffmpeg", "ffprobe", *also),
        apt=("ffmpeg", *also),
    )


CARDS = [
    ffmpeg_card(
        "video-to-audio",
        "ffmpeg-extract-audio",
        "video:ExtractAudio",
        "FFmpeg: the first audio track of a video as a WAV file (original sample rate and channels). "
        "A video without sound is an error.",
    ),
    ffmpeg_card(
        "video-to-image",
        "ffmpeg-frame",
        "video:ExtractFrame",
        "FFmpeg: one frame of a video as PNG, the middle one by default. Option time: seconds ('3', '3.5 s'), "
        "'mm:ss', a percentage, 'frame 12', 'first frame', 'last frame' or 'middle'.",
    ),
    ffmpeg_card(
        "image-to-video",
        "ffmpeg-slideshow",
        "video:Slideshow",
        "FFmpeg: a silent slideshow MP4 (H.264, 24 fps) showing the first image, then the second, each for "
        "2.5 s (option seconds); images keep their aspect ratio, letterboxed in black to the first image's size "
        "(at most 1280 px). No transitions, motion or generated content.",
    ),
]


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a media file."""

    duration: float  # seconds
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    frames: int = 0  # from the container's header, or estimated as duration x fps
    video_codec: str = ""
    pix_fmt: str = ""
    audio_seconds: float = 0.0  # the audio stream's own duration (the format's when unknown)


def _number(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def _rate(value: object) -> float:
    top, _, bottom = str(value).partition("/")
    denominator = _number(bottom or "1")
    return _number(top) / denominator if denominator else 0.0


def probe(path: Path, label: str = "") -> MediaInfo:
    """Duration and streams of a media file; ExpertError when ffprobe cannot read it."""
    label = label or path.name
    done = run_program(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)], timeout=60
    )
    try:
        found = json.loads(done.stdout or b"{}") if done.returncode == 0 else {}
    except json.JSONDecodeError:
        found = {}
    streams = [s for s in found.get("streams", []) if isinstance(s, dict)]
    if done.returncode != 0 or not streams:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["it has no audio or video streams"]
        raise ExpertError(
            f"'{label}' is not a readable video or audio file ({reason[0]}); "
            f"convert it first, e.g. ffmpeg -i {path.name} out.mp4"
        )
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    durations = [_number(found.get("format", {}).get("duration"))] + [_number(s.get("duration")) for s in streams]
    duration = durations[0] or max(durations)
    if duration <= 0:
        raise ExpertError(f"'{label}' has no known duration; re-encode it first, e.g. ffmpeg -i {path.name} out.mp4")
    audio_seconds = (_number(audio.get("duration")) or duration) if audio else 0.0
    if video is None:
        return MediaInfo(duration=duration, has_video=False, has_audio=audio is not None, audio_seconds=audio_seconds)
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    frames = int(_number(video.get("nb_frames"))) or round(duration * fps)
    return MediaInfo(
        duration=duration,
        has_video=True,
        has_audio=audio is not None,
        width=int(_number(video.get("width"))),
        height=int(_number(video.get("height"))),
        fps=fps,
        frames=frames,
        video_codec=str(video.get("codec_name", "")),
        pix_fmt=str(video.get("pix_fmt", "")),
        audio_seconds=audio_seconds,
    )


def probe_input(resource: Resource, ctx: ExpertContext, kind: str = "video") -> MediaInfo:
    """Probe an input and check it: readable, the stream its kind needs, no longer than the settings allow."""
    label = resource.as_text()
    info = probe(resource.path, label)
    if kind == "video" and not info.has_video:
        raise ExpertError(f"'{label}' has no video stream; give a video file (MP4, WebM, MOV, ...)")
    if kind == "audio" and not info.has_audio:
        raise ExpertError(f"'{label}' has no audio stream; give an audio file (WAV, MP3, ...) or a video with sound")
    limit = ctx.settings.max_media_seconds
    if info.duration > limit:
        raise ExpertError(
            f"'{label}' lasts {info.duration:.1f} s, over the limit of {limit:g} s; cut it shorter first "
            f"(e.g. ffmpeg -i in.mp4 -t {limit:g} out.mp4) or raise BATON_MAX_MEDIA_SECONDS"
        )
    if info.has_video and info.width * info.height > MAX_IMAGE_PIXELS:
        raise ExpertError(f"'{label}' is {info.width}x{info.height} pixels, too large a frame; scale it down first")
    return info


def ffmpeg(args: list[str], ctx: ExpertContext, what: str) -> None:
    """Run ffmpeg with ``args`` (after the common flags); ExpertError saying what failed and why."""
    done = run_program([*FFMPEG, *args], timeout=ctx.settings.task_timeout)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise ExpertError(f"ffmpeg could not {what}: {' / '.join(lines[-3:]) or f'exit status {done.returncode}'}")


def check_output(path: Path, what: str) -> None:
    if not path.exists() or path.stat().st_size == 0:
        raise ExpertError(f"ffmpeg could not {what}: it wrote no output")


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT = re.compile(
    r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|milliseconds?|ms|seconds?|secs?|s)(?![a-z])", re.IGNORECASE
)


def parse_time(text: str, duration: float, fps: float) -> float:
    """Seconds into the video named by ``text``; ``LAST`` for its last frame; the middle when empty."""
    said = text.strip().lower()
    if not said:
        return duration / 2
    clock = re.search(r"(\d+):(\d{1,2})(?::(\d{1,2}))?(\.\d+)?", said)
    if clock:
        parts = [int(p) for p in clock.groups()[:3] if p is not None]
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds + _number(clock.group(4) or "0")
    units = _UNIT.findall(said)
    if units:
        total = 0.0
        for value, unit in units:
            key = unit.lower()
            key = "ms" if key.startswith("mil") or key == "ms" else key[0]
            total += float(value) * _UNITS[key]
        return total
    frame = re.search(r"frame\s*(?:number|no\.?|#)?\s*(\d+)|(\d+)\s*(?:st|nd|rd|th)?\s+frame", said)
    if frame:
        number = int(frame.group(1) or frame.group(2))
        return max(number - 1, 0) / (fps or 25)
    percent = re.search(r"(\d+(?:\.\d+)?)\s*(?:%|percent)", said)
    if percent:
        return duration * min(float(percent.group(1)), 100) / 100
    if re.search(r"\b(last|final|end|ending|closing)\b", said):
        return LAST
    if re.search(r"\b(first|start|starting|beginning|opening|initial)\b", said):
        return 0.0
    if re.search(r"\b(middle|mid|center|centre|half ?way|midpoint)\b", said):
        return duration / 2
    plain = re.search(r"\d+(?:\.\d+)?", said)
    if plain:
        return float(plain.group())
    raise ExpertError(
        f"cannot tell which frame '{text}' means; give a time such as '3' (seconds), '0:03', '50%', "
        "'frame 12', 'first frame', 'middle' or 'last frame'"
    )


class ExtractAudio(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        video = inputs["video"]
        info = probe_input(video, ctx)
        if not info.has_audio:
            raise ExpertError(
                f"'{video.as_text()}' has no audio track (the video is silent); there is nothing to extract"
            )
        out = ctx.workdir / "audio.wav"
        ffmpeg(["-i", str(video.path), "-map", "0:a:0", "-vn", "-c:a", "pcm_s16le", str(out)], ctx, "extract the audio")
        check_output(out, "extract the audio")
        return {"audio": Resource.media(ctx.save_file(out))}


class ExtractFrame(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        video = inputs["video"]
        info = probe_input(video, ctx)
        at = parse_time(options.get("time", ""), info.duration, info.fps)
        frame_seconds = 1 / info.fps if info.fps else 0.04
        if at != LAST and at > info.duration + 0.5:
            raise ExpertError(
                f"{at:g} s is past the end of '{video.as_text()}', which lasts {info.duration:.2f} s; "
                f"give a time from 0 to {info.duration:.2f} s or 'last frame'"
            )
        out = ctx.workdir / "frame.png"
        if at != LAST and at < info.duration - frame_seconds:
            seek = ["-ss", f"{at:.3f}", "-i", str(video.path), "-frames:v", "1"]
            ffmpeg([*seek, "-map", "0:v:0", "-an", str(out)], ctx, "extract the frame")
        if not out.exists() or out.stat().st_size == 0:  # the last frame: decode the final seconds, keep the last
            tail = f"-{min(3.0, info.duration):.3f}"
            seek = ["-sseof", tail, "-i", str(video.path), "-update", "1"]
            ffmpeg([*seek, "-map", "0:v:0", "-an", str(out)], ctx, "extract the last frame")
        check_output(out, "extract the frame")
        return {"image": Resource.media(ctx.save_file(out))}


MAX_SIDE = 1280
FPS = 24


def _seconds_option(value: str) -> float:
    found = re.search(r"\d+(?:\.\d+)?", value)
    if found is None:
        raise ExpertError(f"seconds must be a number of seconds per image, such as 2.5, not '{value}'")
    seconds = float(found.group())
    if not 0.1 <= seconds <= 60:
        raise ExpertError(f"seconds {seconds:g} is out of range; show each image for 0.1 to 60 seconds")
    return seconds


class Slideshow(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        from PIL import Image, ImageOps, UnidentifiedImageError

        seconds = _seconds_option(options["seconds"]) if options.get("seconds", "").strip() else 2.5
        if 2 * seconds > ctx.settings.max_media_seconds:
            raise ExpertError(
                f"two images at {seconds:g} s each is over the limit of {ctx.settings.max_media_seconds:g} s"
            )
        pictures = []
        for port in ("image", "image2"):
            resource = inputs[port]
            try:
                with Image.open(resource.path) as opened:
                    if opened.width * opened.height > MAX_IMAGE_PIXELS:
                        raise ExpertError(
                            f"'{resource.as_text()}' is {opened.width}x{opened.height} pixels, over the limit of "
                            f"{MAX_IMAGE_PIXELS:,}; resize it first"
                        )
                    picture = ImageOps.exif_transpose(opened)
                    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
                        rgba = picture.convert("RGBA")
                        picture = Image.alpha_composite(Image.new("RGBA", rgba.size, "black"), rgba)
                    pictures.append(picture.convert("RGB"))
            except (UnidentifiedImageError, OSError) as exc:
                raise ExpertError(
                    f"'{resource.as_text()}' is not a readable image ({exc}); give a PNG or JPEG"
                ) from None
        first = pictures[0]
        scale = min(1.0, MAX_SIDE / max(first.size))
        if max(first.size) * scale < 64:  # tiny images: enlarge so the video is watchable and encodable
            scale = 64 / max(first.size)
        width, height = (max(2, round(side * scale) // 2 * 2) for side in first.size)
        args: list[str] = []
        for number, picture in enumerate(pictures):
            path = ctx.workdir / f"slide{number}.png"
            ImageOps.pad(picture, (width, height), method=Image.Resampling.LANCZOS, color="black").save(path)
            args += ["-loop", "1", "-framerate", str(FPS), "-i", str(path)]
        out = ctx.workdir / "slideshow.mp4"
        count = max(1, int(seconds * FPS + 0.5))  # frames per image
        each = f"trim=end_frame={count},setsar=1"
        graph = f"[0:v]{each}[a];[1:v]{each}[b];[a][b]concat=n=2:v=1:a=0,format=yuv420p[v]"
        args += ["-filter_complex", graph, "-map", "[v]", *H264, "-tune", "stillimage", "-r", str(FPS), str(out)]
        ffmpeg(args, ctx, "make the slideshow")
        check_output(out, "make the slideshow")
        return {"video": Resource.media(ctx.save_file(out))}
