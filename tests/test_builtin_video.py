"""The FFmpeg video experts on tiny generated videos: durations, frame counts, streams and pixels checked with ffprobe."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from baton.catalog import load_catalog
from baton.experts import ExpertError, TaskContext
from baton.experts.builtin import video_edit
from baton.experts.builtin.video import ExtractAudio, ExtractFrame, Slideshow, parse_time, probe
from baton.experts.builtin.video_edit import SpeedChanger, Stabilizer, Synchronizer, Voiceover, parse_speed
from baton.media import Artifact, Resource, kind_of_filename
from baton.tasks import get_task
from conftest import wav_info

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg is not installed"
)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def make(path: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args, str(path)], check=True)
    return path


def media(path: Path) -> Resource:
    kind = kind_of_filename(path.name)
    assert kind is not None
    return Resource.media(Artifact(name=f"{kind}/{path.name}", sha256="0" * 64, kind=kind, path=path, label=path.name))


def ffprobe(path: Path) -> dict[str, Any]:
    """Streams (frames counted by decoding) and format, straight from ffprobe."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
            str(path),
        ],
        capture_output=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def stream(path: Path, kind: str) -> dict[str, Any] | None:
    return next((s for s in ffprobe(path)["streams"] if s["codec_type"] == kind), None)


def seconds(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def frames(path: Path) -> int:
    video = stream(path, "video")
    assert video is not None
    return int(video["nb_read_frames"])


def soundtrack(path: Path, tmp_path: Path) -> tuple[float, int]:
    """(seconds, peak sample) of a video's audio track, decoded to WAV."""
    wav = make(tmp_path / f"{path.stem}-track.wav", "-i", str(path), "-map", "0:a:0", "-c:a", "pcm_s16le")
    info = wav_info(wav)
    return info[0], info[4]


TESTSRC = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10"]
SINE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"]
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """2 s test pattern with a 440 Hz tone; the same without sound; 3 s of red, green then blue (1 s each)."""
    folder = tmp_path_factory.mktemp("videos")
    colours = []
    for colour in ("red", "green", "blue"):
        colours += ["-f", "lavfi", "-i", f"color=c={colour}:size=64x48:rate=10:duration=1"]
    return {
        "clip": make(folder / "clip.mp4", *TESTSRC, *SINE, "-t", "2", *H264, "-c:a", "aac"),
        "silent": make(folder / "silent.mp4", *TESTSRC, "-t", "2", *H264),
        "colours": make(folder / "colours.mp4", *colours, "-filter_complex", "concat=n=3:v=1:a=0", *H264),
        "tone": make(folder / "tone.wav", *SINE, "-t", "1"),
        "long_tone": make(folder / "long-tone.wav", *SINE, "-t", "3"),
    }


# probing


def test_probe_reads_duration_size_rate_frames_and_streams(videos: dict[str, Path]) -> None:
    info = probe(videos["clip"])
    assert info.duration == pytest.approx(2, abs=0.1)
    assert (info.width, info.height, info.fps, info.frames) == (160, 120, 10, 20)
    assert info.has_video and info.has_audio
    silent = probe(videos["silent"])
    assert silent.has_video and not silent.has_audio
    tone = probe(videos["tone"])
    assert not tone.has_video and tone.has_audio and tone.duration == pytest.approx(1, abs=0.05)


def test_unreadable_file_is_a_clear_error(tmp_path: Path, expert_ctx: TaskContext) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video at all")
    with pytest.raises(ExpertError, match=r"'video/notes.mp4' is not a readable video or audio file .*convert it"):
        ExtractFrame(load_catalog().get("builtin/ffmpeg-frame")).run({"video": media(fake)}, {}, expert_ctx)


def test_videos_longer_than_the_limit_are_refused(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    expert_ctx.settings = expert_ctx.settings.replace(max_media_seconds=1.5)
    with pytest.raises(ExpertError, match=r"lasts 2.0 s, over the limit of 1.5 s.*BATON_MAX_MEDIA_SECONDS"):
        ExtractAudio(load_catalog().get("builtin/ffmpeg-extract-audio")).run(
            {"video": media(videos["clip"])}, {}, expert_ctx
        )


def test_an_audio_file_is_not_a_video(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    with pytest.raises(ExpertError, match=re.escape("'audio/tone.wav' has no video stream")):
        ExtractFrame(load_catalog().get("builtin/ffmpeg-frame")).run({"video": media(videos["tone"])}, {}, expert_ctx)


# video-to-audio


def test_extract_audio_gives_the_soundtrack_as_wav(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    expert = ExtractAudio(load_catalog().get("builtin/ffmpeg-extract-audio"))
    audio = expert.run({"video": media(videos["clip"])}, {}, expert_ctx)["audio"]
    assert audio.kind == "audio" and audio.path.suffix == ".wav"
    duration, rate, _, width, peak = wav_info(audio.path)
    assert duration == pytest.approx(2, abs=0.1)
    assert (rate, width) == (22050, 2)
    assert peak > 1000  # the tone, not silence


def test_extract_audio_of_a_silent_video_is_an_error(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    expert = ExtractAudio(load_catalog().get("builtin/ffmpeg-extract-audio"))
    with pytest.raises(ExpertError, match=re.escape("'video/silent.mp4' has no audio track")):
        expert.run({"video": media(videos["silent"])}, {}, expert_ctx)


# video-to-image


def colour_of(image: Path) -> str:
    with Image.open(image) as opened:
        assert opened.size == (64, 48)
        red, green, blue = opened.convert("RGB").getpixel((32, 24))  # type: ignore[misc]
    return max([("red", red), ("green", green), ("blue", blue)], key=lambda pair: pair[1])[0]


@pytest.mark.parametrize(
    ("time", "colour"),
    [
        ("", "green"),  # the middle of 3 s
        ("the frame at 2.5 seconds", "blue"),
        ("0.5", "red"),
        ("first frame", "red"),
        ("last frame", "blue"),
        ("0:01.5", "green"),
        ("frame 25", "blue"),
        ("90%", "blue"),
        ("3", "blue"),  # exactly the end: the last frame
    ],
)
def test_extract_frame_at_the_time_asked(
    time: str, colour: str, videos: dict[str, Path], expert_ctx: TaskContext
) -> None:
    expert = ExtractFrame(load_catalog().get("builtin/ffmpeg-frame"))
    image = expert.run({"video": media(videos["colours"])}, {"time": time} if time else {}, expert_ctx)["image"]
    assert image.kind == "image" and image.path.suffix == ".png"
    assert colour_of(image.path) == colour


@pytest.mark.parametrize(
    ("time", "message"),
    [("whenever you like", "cannot tell which frame"), ("30 seconds", "30 s is past the end")],
)
def test_extract_frame_bad_times(time: str, message: str, videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    with pytest.raises(ExpertError, match=message):
        ExtractFrame(load_catalog().get("builtin/ffmpeg-frame")).run(
            {"video": media(videos["colours"])}, {"time": time}, expert_ctx
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1m30s", 90), ("2 minutes", 120), ("1:02:03", 3723), ("500 ms", 0.5), ("middle", 5), ("10th frame", 0.36)],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, duration=10, fps=25) == pytest.approx(expected)


# image-to-video


def slideshow(ctx: TaskContext, first: Path, second: Path, **options: str) -> Path:
    expert = Slideshow(load_catalog().get("builtin/ffmpeg-slideshow"))
    video = expert.run({"image": media(first), "image2": media(second)}, options, ctx)["video"]
    assert video.kind == "video" and video.path.suffix == ".mp4"
    return video.path


def frame_at(video: Path, at: float, tmp_path: Path) -> Image.Image:
    png = make(tmp_path / f"at-{at}.png", "-ss", str(at), "-i", str(video), "-frames:v", "1")
    with Image.open(png) as opened:
        return opened.convert("RGB")


def test_slideshow_shows_each_image_in_turn_at_a_common_size(tmp_path: Path, expert_ctx: TaskContext) -> None:
    first, second = tmp_path / "wide.png", tmp_path / "tall.png"
    Image.new("RGB", (200, 100), "red").save(first)
    Image.new("RGBA", (50, 80), (0, 0, 255, 255)).save(second)
    video = slideshow(expert_ctx, first, second)
    info = stream(video, "video")
    assert info is not None
    assert (info["codec_name"], info["pix_fmt"], info["width"], info["height"]) == ("h264", "yuv420p", 200, 100)
    assert seconds(video) == pytest.approx(5, abs=0.1)  # 2.5 s each
    assert frames(video) == 120  # 24 fps
    assert stream(video, "audio") is None
    shown = frame_at(video, 1, tmp_path)
    assert shown.getpixel((100, 50))[0] > 200  # type: ignore[index]
    later = frame_at(video, 4, tmp_path)
    assert later.getpixel((100, 50))[2] > 200  # type: ignore[index]  # the blue image, letterboxed:
    assert max(later.getpixel((5, 50))) < 30  # type: ignore[arg-type]  # black bars at its sides


def test_slideshow_seconds_option_and_odd_sizes(tmp_path: Path, expert_ctx: TaskContext) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGB", (101, 51), "white").save(first)
    Image.new("L", (30, 30), 128).save(second)
    video = slideshow(expert_ctx, first, second, seconds="1 second")
    info = stream(video, "video")
    assert info is not None and (info["width"], info["height"]) == (100, 50)
    assert seconds(video) == pytest.approx(2, abs=0.1)
    with pytest.raises(ExpertError, match="seconds must be a number"):
        slideshow(expert_ctx, first, second, seconds="long")
    with pytest.raises(ExpertError, match="out of range"):
        slideshow(expert_ctx, first, second, seconds="600")


def test_slideshow_of_a_non_image_is_an_error(tmp_path: Path, expert_ctx: TaskContext) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (64, 64), "white").save(good)
    bad.write_text("not a picture")
    with pytest.raises(ExpertError, match=re.escape("'image/bad.png' is not a readable image")):
        slideshow(expert_ctx, good, bad)


# video-speed-changer


@pytest.mark.parametrize(
    ("instruction", "factor"),
    [
        ("2x", 2),
        ("1.5x", 1.5),
        ("Can you speed up this video by 2x?", 2),
        ("twice as fast", 2),
        ("slow down by half", 0.5),
        ("Decrease by 0.5x", 0.5),
        ("slow down by 0.5x", 0.5),
        ("slow down by 50%", 0.5),
        ("speed up by 50%", 1.5),
        ("Increase speed to 1.5x", 1.5),
        ("increase by 1.5x", 1.5),
        ("make it 3 times slower", 1 / 3),
        ("2 times", 2),
        ("0.75", 0.75),
        ("2", 2),
        ("75%", 0.75),
        ("faster", 2),
        ("reduce speed", 0.5),
        ("Reduce the speed", 0.5),
        ("reduce", 0.5),
        ("a little slower", 0.75),
        ("1.0", 1),
        ("customized speed", 2),  # nothing to go by: the documented default
        ("user-guided adjustment", 2),
        ("quarter speed", 0.25),
        ('{"label": "positive", "score": 0.98}', 0.98),
        ("The exhibition runs from December 1st to 15th; tickets cost $50, call 123-456-7890.", 2),
        ("example.mp4", 2),  # a file name's digits are no speed
        ("x2", 2),
        ("slow it down 2x", 0.5),
        ("set the playback rate to 1.25 please", 1.25),
        ("Visitors grew 5000% and 300x over the last ten years, the museum says in its annual report.", 2),
    ],
)
def test_parse_speed(instruction: str, factor: float) -> None:
    assert parse_speed(instruction) == pytest.approx(factor)


def change_speed(ctx: TaskContext, video: Path, instruction: str) -> Resource:
    expert = SpeedChanger(load_catalog().get("builtin/ffmpeg-speed"))
    return expert.run({"video": media(video), "instruction": Resource.text(instruction)}, {}, ctx)["video"]


@pytest.mark.parametrize(
    ("instruction", "length"), [("2x", 1), ("slow down by half", 4), ("make it 4 times faster", 0.5)]
)
def test_speed_change_scales_video_and_sound(
    instruction: str, length: float, videos: dict[str, Path], expert_ctx: TaskContext, tmp_path: Path
) -> None:
    video = change_speed(expert_ctx, videos["clip"], instruction).path
    assert seconds(video) == pytest.approx(length, abs=0.15)
    track, peak = soundtrack(video, tmp_path)
    assert track == pytest.approx(length, abs=0.15)
    assert peak > 1000
    assert frames(video) == pytest.approx(length * 10, abs=2)  # the frame rate stays 10 fps


def test_speed_change_chains_atempo_beyond_half(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    video = change_speed(expert_ctx, videos["clip"], "0.25x").path
    assert seconds(video) == pytest.approx(8, abs=0.2)
    audio = stream(video, "audio")
    assert audio is not None and float(audio["duration"]) == pytest.approx(8, abs=0.2)


def test_speed_change_of_a_silent_video(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    video = change_speed(expert_ctx, videos["silent"], "faster").path
    assert seconds(video) == pytest.approx(1, abs=0.15)
    assert stream(video, "audio") is None


def test_speed_change_edge_cases(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    same = change_speed(expert_ctx, videos["clip"], "keep the normal speed")
    assert same.path == videos["clip"]
    with pytest.raises(ExpertError, match="a speed factor of 50 is out of range"):
        change_speed(expert_ctx, videos["clip"], "50x")
    expert_ctx.settings = expert_ctx.settings.replace(max_media_seconds=3)
    with pytest.raises(ExpertError, match="would make it 4 s long, over the limit of 3 s"):
        change_speed(expert_ctx, videos["clip"], "half speed")


# video-stabilizer


def jittery_video(path: Path, count: int = 30) -> Path:
    """A still, textured scene seen through a camera that jumps a few pixels every frame."""
    import numpy as np

    random = np.random.default_rng(7)
    scene = np.kron(random.integers(0, 256, (60, 80, 3), dtype=np.uint8), np.ones((4, 4, 1), dtype=np.uint8))
    offsets = random.integers(-6, 7, (count, 2))
    frames = [scene[20 + dy : 20 + dy + 160, 40 + dx : 40 + dx + 240] for dy, dx in offsets]
    raw = np.stack(frames).tobytes()
    command = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "240x160", "-r", "10"]
    subprocess.run([*command, "-i", "-", *H264, "-crf", "12", str(path)], input=raw, check=True)
    return path


def motion(path: Path) -> float:
    """Mean absolute change between consecutive frames, in the middle of the picture (grey levels)."""
    import numpy as np

    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    video = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 160, 240).astype(float)[:, 40:120, 60:180]
    return float(np.abs(np.diff(video, axis=0)).mean())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["vidstab", "deshake"])
def test_stabilizer_keeps_frames_and_reduces_motion(
    method: str, tmp_path: Path, expert_ctx: TaskContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    if method == "deshake":  # as when vid.stab cannot be used
        monkeypatch.setattr(video_edit, "_filter_path", lambda path: None)
    shaky = jittery_video(tmp_path / "shaky.mp4")
    expert = Stabilizer(load_catalog().get("builtin/ffmpeg-vidstab"))
    steady = expert.run({"video": media(shaky)}, {}, expert_ctx)["video"].path
    assert frames(steady) == frames(shaky) == 30
    assert seconds(steady) == pytest.approx(seconds(shaky), abs=0.05)
    before, after = motion(shaky), motion(steady)
    # measured: 58 -> 2.6 grey levels with vid.stab, 58 -> 27 with deshake
    assert after < (0.2 if method == "vidstab" else 0.7) * before, (before, after)


@pytest.mark.slow
def test_stabilizer_keeps_the_sound(videos: dict[str, Path], expert_ctx: TaskContext, tmp_path: Path) -> None:
    expert = Stabilizer(load_catalog().get("builtin/ffmpeg-vidstab"))
    steady = expert.run({"video": media(videos["clip"])}, {}, expert_ctx)["video"].path
    assert frames(steady) == 20
    track, peak = soundtrack(steady, tmp_path)
    assert track == pytest.approx(2, abs=0.1) and peak > 1000


# video-synchronization


def synchronize(ctx: TaskContext, video: Path, audio: Path, **options: str) -> Path:
    expert = Synchronizer(load_catalog().get("builtin/ffmpeg-mux"))
    return expert.run({"video": media(video), "audio": media(audio)}, options, ctx)["video"].path


@pytest.mark.parametrize("sound", ["tone", "long_tone"])
def test_synchronization_keeps_the_video_length(
    sound: str, videos: dict[str, Path], expert_ctx: TaskContext, tmp_path: Path
) -> None:
    video = synchronize(expert_ctx, videos["silent"], videos[sound])
    assert seconds(video) == pytest.approx(2, abs=0.1)
    assert frames(video) == 20
    track, peak = soundtrack(video, tmp_path)
    assert track == pytest.approx(2, abs=0.1)  # padded with silence, or cut
    assert peak > 1000


def test_synchronization_can_keep_the_audio_length(
    videos: dict[str, Path], expert_ctx: TaskContext, tmp_path: Path
) -> None:
    video = synchronize(expert_ctx, videos["silent"], videos["long_tone"], match="audio")
    assert seconds(video) == pytest.approx(3, abs=0.15)
    assert frames(video) == pytest.approx(30, abs=2)  # the last frame held
    assert soundtrack(video, tmp_path)[0] == pytest.approx(3, abs=0.15)


def test_synchronization_errors(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    with pytest.raises(ExpertError, match="match must be 'video'"):
        synchronize(expert_ctx, videos["silent"], videos["tone"], match="both")
    with pytest.raises(ExpertError, match=re.escape("'video/silent.mp4' has no audio stream")):
        synchronize(expert_ctx, videos["clip"], videos["silent"])


# video-voiceover


def voiceover(ctx: TaskContext, video: Path, script: str, **options: str) -> Path:
    expert = Voiceover(load_catalog().get("builtin/espeak-ng-voiceover"))
    return expert.run({"video": media(video), "script": Resource.text(script)}, options, ctx)["video"].path


@needs_espeak
def test_voiceover_longer_than_the_video_holds_the_last_frame(
    videos: dict[str, Path], expert_ctx: TaskContext, tmp_path: Path
) -> None:
    script = "Welcome to our tutorial. In this video we will show you how to use the application, step by step."
    speech = tmp_path / "speech.wav"  # the same speech the expert makes (its default voice and speed)
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(speech), script], check=True)
    spoken = wav_info(speech)[0]
    assert spoken > 4
    video = voiceover(expert_ctx, videos["silent"], script)
    track, peak = soundtrack(video, tmp_path)
    assert track >= spoken and seconds(video) >= spoken
    assert frames(video) >= spoken * 10 - 1  # the picture lasts as long
    assert peak > 1000


@needs_espeak
def test_voiceover_shorter_than_the_video_keeps_its_length_and_sound(
    videos: dict[str, Path], expert_ctx: TaskContext, tmp_path: Path
) -> None:
    video = voiceover(expert_ctx, videos["clip"], "Hi there.")
    assert seconds(video) == pytest.approx(2, abs=0.1)
    assert frames(video) == 20
    track, peak = soundtrack(video, tmp_path)
    assert track == pytest.approx(2, abs=0.1) and peak > 1000


@needs_espeak
def test_voiceover_errors(videos: dict[str, Path], expert_ctx: TaskContext) -> None:
    with pytest.raises(ExpertError, match="script is empty"):
        voiceover(expert_ctx, videos["clip"], "  ")
    with pytest.raises(ExpertError, match="list voices with"):
        voiceover(expert_ctx, videos["clip"], "Hello", voice="zz-no-such-voice")
    with pytest.raises(ExpertError, match="speed 20 is out of range"):
        voiceover(expert_ctx, videos["clip"], "Hello", speed="20")


# the catalogue


def test_cards_are_runnable_here_and_options_are_declared() -> None:
    catalog = load_catalog()
    for model_id, task in [
        ("builtin/ffmpeg-extract-audio", "video-to-audio"),
        ("builtin/ffmpeg-frame", "video-to-image"),
        ("builtin/ffmpeg-slideshow", "image-to-video"),
        ("builtin/ffmpeg-speed", "video-speed-changer"),
        ("builtin/ffmpeg-vidstab", "video-stabilizer"),
        ("builtin/ffmpeg-mux", "video-synchronization"),
        ("builtin/espeak-ng-voiceover", "video-voiceover"),
    ]:
        card = catalog.get(model_id)
        assert card.task == task and card.backend == "builtin"
        if shutil.which("espeak-ng"):
            assert card.missing() == []
        assert card.build().card is card
    assert get_task("Image-to-Video").options == ("seconds",)
    assert get_task("Video-to-Image").options == ("time",)
    assert get_task("video-synchronization").options == ("match",)
    assert get_task("Video Voiceover").options == ("voice", "speed")
