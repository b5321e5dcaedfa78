"""Changing videos with FFmpeg: speed, stabilization, a new soundtrack, a spoken voiceover."""

from __future__ import annotations

import re
from pathlib import Path

from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.video import (
    AAC,
    EVEN,
    H264,
    MediaInfo,
    check_output,
    ffmpeg,
    ffmpeg_card,
    probe,
    probe_input,
)
from baton.experts.process import run_program
from baton.media import Resource

__all__ = ["parse_speed"]

CARDS = [
    ffmpeg_card(
        "video-speed-changer",
        "ffmpeg-speed",
        "video_edit:SpeedChanger",
        "FFmpeg setpts + atempo: plays a video faster or slower, the sound kept in pitch. Reads the factor from "
        "the instruction ('2x', '0.5', 'twice as fast', 'slow down by half', 'speed up by 50%', '75%'); "
        "'speed up'/'faster' alone means 2x, 'slow down'/'slower' 0.5x, 'a little' 1.25x/0.75x, and an "
        "instruction with no speed in it 2x. Factors 0.1 to 10; frames are dropped or repeated, not interpolated.",
    ),
    ffmpeg_card(
        "video-stabilizer",
        "ffmpeg-vidstab",
        "video_edit:Stabilizer",
        "FFmpeg vid.stab (two passes: detect the camera shake, then smooth it; edges zoomed in slightly), "
        "falling back to FFmpeg's deshake filter. Same frames, length and sound; removes jitter and small "
        "shakes, not rolling shutter or big sweeps.",
    ),
    ffmpeg_card(
        "video-synchronization",
        "ffmpeg-mux",
        "video_edit:Synchronizer",
        "FFmpeg: puts the audio onto the video as its soundtrack (replacing any sound it had). The video keeps "
        "its length: shorter audio is padded with silence, longer audio is cut. Option match=audio keeps the "
        "audio's length instead (the last frame is held, or the video cut). No lip-sync or beat alignment.",
    ),
    ffmpeg_card(
        "video-voiceover",
        "espeak-ng-voiceover",
        "video_edit:Voiceover",
        "eSpeak NG + FFmpeg: speaks the script (robotic voice; options voice, speed as for text-to-speech) over "
        "the video, its own sound kept quietly underneath; when the speech is longer the last frame is held "
        "until it ends.",
        also=("espeak-ng",),
    ),
]

MIN_FACTOR, MAX_FACTOR = 0.1, 10.0
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_FREE = rf"(?<![\w.]){_NUMBER}"  # a number on its own, not part of a word or file name ("example.mp4")
_WORDS = {"two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0, "ten": 10.0}
_SLOW = re.compile(
    r"\b(slow\w*|reduc\w*|decreas\w*|lower\w*|decelerat\w*|less|down|slo-?mo|half[- ]speed|longer|stretch\w*)\b"
)
_FAST = re.compile(
    r"\b(fast\w*|quick\w*|speed(?:s|ing)? up|sped up|accelerat\w*|increas\w*|rapid\w*|boost\w*|hurr\w*|up|shorter|"
    r"time-?lapse)\b"
)


def _direction(said: str) -> str:
    slow, fast = _SLOW.search(said), _FAST.search(said)
    if slow and fast:  # "speed up ... not slow": the first one said wins
        return "down" if slow.start() < fast.start() else "up"
    return "down" if slow else "up" if fast else ""


def _multiplier(value: float, direction: str) -> float:
    """A number said with 'x' or 'times' (or alone), read in the light of the direction."""
    if direction == "down" and value > 1:
        return 1 / value  # "2x slower", "slow down 3 times"
    if direction == "up" and value < 1:
        return 1 + value  # "speed up by 0.5x"
    return value


def _percentage(value: float, direction: str, said: str, where: int) -> float:
    before = said[max(0, where - 12) : where]
    if re.search(r"\bto\s*$|\bat\s*$", before) or not direction:  # "to 75%", "75%": that share of the speed
        return value / 100
    if direction == "down":
        return 1 - value / 100 if value < 100 else 100 / value  # "slow down by 25%"
    return 1 + value / 100 if value <= 100 else value / 100  # "speed up by 50%", "increase to 150%"


def parse_speed(text: str) -> float:
    """The playback speed factor an instruction asks for (2.0 = twice as fast); see the card for the rules.

    In a long text (more than 8 words, e.g. an article handed on by an earlier task) numbers that make no
    sense as a speed are passed over, and the default applies when none does.
    """
    said = " ".join(text.lower().replace("×", "x").split())
    direction = _direction(said)
    for phrase, factor in [
        (r"\b(twice|double) (as fast|the speed|speed)\b", 2.0),
        (r"\b(thrice|triple)\b", 3.0),
        (r"\bquadruple\b", 4.0),
        (r"\bquarter[- ]speed\b", 0.25),
        (r"\bhalf (the )?speed\b|\bhalf as fast\b|\bhalve\b", 0.5),
        (r"\b(normal|original|same|regular) speed\b|\bunchanged\b", 1.0),
    ]:
        if re.search(phrase, said):
            return factor
    found: list[float] = []
    for match in re.finditer(r"\b(two|three|four|five|ten) times\b", said):
        found.append(_multiplier(_WORDS[match.group(1)], direction))
    for match in re.finditer(rf"{_FREE}\s*(?:x|times)\b|\bx\s*{_NUMBER}\b", said):
        found.append(_multiplier(float(match.group(1) or match.group(2)), direction))
    for match in re.finditer(rf"{_FREE}\s*(?:%|percent\b)", said):
        found.append(_percentage(float(match.group(1)), direction, said, match.start()))
    if re.search(r"\bby (a )?half\b", said):
        found.append(1.5 if direction == "up" else 0.5)
    for match in re.finditer(rf"\b(?:speed|rate|factor|tempo|pace)\s*(?:of|to|by|at|=|:)?\s*{_FREE}", said):
        found.append(_multiplier(float(match.group(1)), direction))
    short = len(said.split()) <= 8
    bare = re.search(_FREE, said) if short else None
    if bare:
        found.append(_multiplier(float(bare.group(1)), direction))
    for factor in found:
        if short or MIN_FACTOR <= factor <= MAX_FACTOR:
            return factor
    if re.search(r"\b(a (little|bit|tad)|slightly|somewhat|a touch)\b", said):
        return 0.75 if direction == "down" else 1.25
    return 0.5 if direction == "down" else 2.0


def _atempo(factor: float) -> str:
    """atempo filters whose product is ``factor``, each kept within 0.5..2 (the range all FFmpeg versions take)."""
    steps = []
    while factor > 2:
        steps.append(2.0)
        factor /= 2
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    steps.append(factor)
    return ",".join(f"atempo={step:.6f}" for step in steps)


class SpeedChanger(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        video = inputs["video"]
        info = probe_input(video, ctx)
        factor = parse_speed(inputs["instruction"].as_text())
        if not MIN_FACTOR <= factor <= MAX_FACTOR:
            raise ExpertError(
                f"a speed factor of {factor:g} is out of range; use {MIN_FACTOR:g} to {MAX_FACTOR:g} "
                "(e.g. '2x' to double the speed, '0.5x' to halve it)"
            )
        if abs(factor - 1) < 1e-3:
            return {"video": video}  # the same speed: the video as it is
        seconds = info.duration / factor
        if seconds > ctx.settings.max_media_seconds:
            raise ExpertError(
                f"slowing '{video.as_text()}' to {factor:g}x would make it {seconds:.0f} s long, over the limit of "
                f"{ctx.settings.max_media_seconds:g} s; slow it down less or cut it first"
            )
        fps = min(info.fps, 60) if info.fps > 0 else 25
        args = ["-i", str(video.path), "-map", "0:v:0", "-vf", f"setpts=PTS/{factor:.6f},fps={fps:.4f},{EVEN}"]
        if info.has_audio:
            args += ["-map", "0:a:0", "-af", _atempo(factor), *AAC]
        out = ctx.workdir / "speed.mp4"
        ffmpeg([*args, *H264, str(out)], ctx, f"change the speed to {factor:g}x")
        check_output(out, "change the speed")
        return {"video": Resource.media(ctx.save_file(out))}


def _filter_path(path: Path) -> str | None:
    """``path`` as a filter option value, or None when it holds characters filtergraphs would need escaped."""
    text = str(path)
    return text if re.fullmatch(r"[\w./+-]+", text) else None


class Stabilizer(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        video = inputs["video"]
        info = probe_input(video, ctx)
        out = ctx.workdir / "stable.mp4"
        keep = ["-map", "0:v:0", *(["-map", "0:a:0", *AAC] if info.has_audio else []), *H264]
        transforms = _filter_path(ctx.workdir / "transforms.trf")
        problem = "the work folder's path has characters FFmpeg filters cannot take"
        if transforms is not None:
            try:
                detect = f"vidstabdetect=shakiness=8:accuracy=15:result={transforms}"
                ffmpeg(["-i", str(video.path), "-map", "0:v:0", "-vf", detect, "-f", "null", "-"], ctx, "detect shake")
                smooth = f"vidstabtransform=input={transforms}:smoothing=15:optzoom=1:interpol=bicubic,{EVEN}"
                ffmpeg(["-i", str(video.path), "-vf", smooth, *keep, str(out)], ctx, "stabilize with vid.stab")
                check_output(out, "stabilize with vid.stab")
                return {"video": Resource.media(ctx.save_file(out))}
            except ExpertError as exc:  # e.g. an FFmpeg built without vid.stab: deshake is always there
                problem = str(exc)
                out.unlink(missing_ok=True)
        try:
            ffmpeg(["-i", str(video.path), "-vf", f"deshake,{EVEN}", *keep, str(out)], ctx, "stabilize with deshake")
        except ExpertError as exc:
            raise ExpertError(f"{exc} (vid.stab failed first: {problem})") from None
        check_output(out, "stabilize")
        return {"video": Resource.media(ctx.save_file(out))}


def _soundtrack(
    video: Path,
    info: MediaInfo,
    audio: Path,
    seconds: float,
    out: Path,
    ctx: ExpertContext,
    *,
    keep_original: float = 0.0,
) -> None:
    """Write ``out``: the video with ``audio`` as its sound, exactly ``seconds`` long.

    Audio shorter than that is padded with silence; a video shorter than that holds its last frame.
    ``keep_original`` > 0 mixes the video's own sound in at that volume.
    """
    extra = seconds - info.duration
    graph = []
    if extra > 0.01:
        graph.append(f"[0:v]tpad=stop_mode=clone:stop_duration={extra + 0.1:.3f},{EVEN}[v]")
        video_args = ["-map", "[v]", *H264]
    elif info.video_codec == "h264" and info.pix_fmt in ("yuv420p", "yuvj420p"):
        video_args = ["-map", "0:v:0", "-c:v", "copy"]  # H.264 already: copied as it is
    else:
        graph.append(f"[0:v]{EVEN}[v]")
        video_args = ["-map", "[v]", *H264]
    if keep_original > 0 and info.has_audio:
        graph.append(
            f"[0:a]volume={keep_original:g}[under];[1:a][under]amix=inputs=2:duration=longest:normalize=0,apad[a]"
        )
    else:
        graph.append("[1:a]apad[a]")
    args = ["-i", str(video), "-i", str(audio), "-filter_complex", ";".join(graph)]
    args += [*video_args, "-map", "[a]", *AAC, "-t", f"{seconds:.3f}", str(out)]
    ffmpeg(args, ctx, "put the sound onto the video")
    check_output(out, "put the sound onto the video")


class Synchronizer(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        video, audio = inputs["video"], inputs["audio"]
        info = probe_input(video, ctx)
        sound = probe_input(audio, ctx, kind="audio")
        match = (options.get("match") or "video").strip().lower()
        if match not in ("video", "audio"):
            raise ExpertError(f"match must be 'video' (keep the video's length) or 'audio', not '{match}'")
        seconds = info.duration if match == "video" else sound.audio_seconds
        out = ctx.workdir / "synchronized.mp4"
        _soundtrack(video.path, info, audio.path, seconds, out, ctx)
        return {"video": Resource.media(ctx.save_file(out))}


class Voiceover(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        video = inputs["video"]
        info = probe_input(video, ctx)
        script = inputs["script"].as_text().strip()
        if not script:
            raise ExpertError("the voiceover script is empty; give the text to speak")
        voice = (options.get("voice") or "en-us").strip()
        try:
            speed = int(options.get("speed") or "165")
        except ValueError:
            raise ExpertError(f"speed must be a number of words per minute, not '{options['speed']}'") from None
        if not 80 <= speed <= 450:
            raise ExpertError(f"speed {speed} is out of range; use 80 to 450 words per minute")
        speech = ctx.workdir / "speech.wav"
        done = run_program(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(speech), "--stdin"],
            input=script.encode(),
            timeout=ctx.settings.task_timeout,
        )
        if done.returncode != 0 or not speech.exists() or speech.stat().st_size <= 44:
            message = done.stderr.decode(errors="replace").strip() or "no audio was written"
            if "voice" in message.lower():
                message += "; list voices with: espeak-ng --voices"
            raise ExpertError(f"espeak-ng failed: {message}")
        spoken = probe(speech).duration
        seconds = max(info.duration, spoken + 0.3)
        if seconds > ctx.settings.max_media_seconds:
            raise ExpertError(
                f"the script takes {spoken:.0f} s to say, over the limit of {ctx.settings.max_media_seconds:g} s; "
                "shorten it"
            )
        out = ctx.workdir / "voiceover.mp4"
        _soundtrack(video.path, info, speech, seconds, out, ctx, keep_original=0.25)
        return {"video": Resource.media(ctx.save_file(out))}
