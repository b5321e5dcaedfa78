"""Audio experts built on FFmpeg and noisereduce: effects, voice changing, splicing and noise reduction.

Also the helpers the other audio modules share: probing a file with ffprobe (its duration is checked
against ``Settings.max_media_seconds``) and decoding it to WAV with ffmpeg.

Effects are read from a free-text instruction ("add a large hall reverb", "speed up 2x", "pitch up 3
semitones", "lower the volume by 6 dB", "fade out") by :func:`parse_effects`; what it understands is
listed in its docstring. Outputs are 16-bit PCM WAV files at the input's sample rate.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.process import run_program
from baton.media import Resource

__all__ = [
    "AudioEffects",
    "AudioInfo",
    "AudioNoiseReduction",
    "AudioSplicer",
    "Effect",
    "VoiceChanger",
    "check_audio",
    "decode_wav",
    "display_name",
    "ffmpeg",
    "parse_effects",
    "probe",
    "quietest",
]

_FFMPEG = {"binaries": ("ffmpeg", "ffprobe"), "apt": ("ffmpeg",)}
_FFMPEG_LICENCE = "GPL-2.0-or-later (Debian's FFmpeg build)"
_FFMPEG_STARS = {"popularity": 45_000, "popularity_source": "GitHub stars of FFmpeg/FFmpeg (approximate)"}

CARDS = [
    ModelCard(
        id="builtin/noisereduce",
        task="audio-noise-reduction",
        backend="builtin",
        description="Spectral gating (noisereduce): learns a steady noise profile per frequency from the "
        "quietest tenth of the recording (its pauses) and gates it out everywhere; good for hiss, hum and fan "
        "noise, weak on changing noise (babble, music, traffic) and on recordings without pauses. WAV out, "
        "same length, sample rate and channels.",
        factory="baton.experts.builtin.audio:AudioNoiseReduction",
        popularity=1_500,
        popularity_source="GitHub stars of timsainb/noisereduce (approximate)",
        memory_mb=300,  # the STFT of a long recording; short clips need far less
        licence="MIT",
        python=("noisereduce", "numpy", "soundfile"),
        extra="audio",
        **_FFMPEG,  # type: ignore[arg-type]
    ),
    ModelCard(
        id="builtin/ffmpeg-audio-effects",
        task="audio-effects",
        backend="builtin",
        description="FFmpeg filters chosen from the instruction: reverb (room/hall), echo, chorus, flanger, "
        "phaser, tremolo, vibrato, equalisation (bass/treble), low/high-pass, telephone, speed/tempo, pitch, "
        "volume/dB, normalise, fade in/out, reverse, denoise. With no effect recognised it adds a mild "
        "reverb. No music-aware effects (no autotune, no stem separation). WAV out.",
        factory="baton.experts.builtin.audio:AudioEffects",
        memory_mb=50,
        licence=_FFMPEG_LICENCE,
        **_FFMPEG_STARS,  # type: ignore[arg-type]
        **_FFMPEG,  # type: ignore[arg-type]
    ),
    ModelCard(
        id="builtin/ffmpeg-voice-changer",
        task="voice-changer",
        backend="builtin",
        description="FFmpeg voice effects from the instruction: higher/female/child/chipmunk or deeper/male/"
        "monster (pitch shift), robot, whisper, telephone, soft or bright tone, plus any audio effect "
        "(echo, reverb, speed, volume). Shifts pitch and formants together: no true voice conversion to "
        "another speaker. With no voice recognised it raises the pitch by 4 semitones. WAV out.",
        factory="baton.experts.builtin.audio:VoiceChanger",
        memory_mb=50,
        licence=_FFMPEG_LICENCE,
        **_FFMPEG_STARS,  # type: ignore[arg-type]
        **_FFMPEG,  # type: ignore[arg-type]
    ),
    ModelCard(
        id="builtin/ffmpeg-audio-splicer",
        task="audio-splicer",
        backend="builtin",
        description="FFmpeg concatenation: plays 'audio' then 'audio2' as one WAV file, resampling both to "
        "the higher sample rate and channel count (at most stereo). No crossfade, no mixing.",
        factory="baton.experts.builtin.audio:AudioSplicer",
        memory_mb=50,
        licence=_FFMPEG_LICENCE,
        **_FFMPEG_STARS,  # type: ignore[arg-type]
        **_FFMPEG,  # type: ignore[arg-type]
    ),
]


# ---------------------------------------------------------------------------------------------------------------
# shared helpers: probing and decoding with FFmpeg


@dataclass(frozen=True)
class AudioInfo:
    """What ffprobe says about a media file's first audio stream."""

    duration: float | None  # seconds; None when the container does not say
    sample_rate: int
    channels: int
    audio_streams: int
    video_streams: int


def display_name(resource: Resource) -> str:
    """The name a person knows a media input by: their file name, or the artifact name."""
    if resource.artifact is not None:
        return resource.artifact.label or resource.artifact.name
    return resource.kind


def _tail(stderr: bytes, lines: int = 2) -> str:
    text = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return " ".join(text[-lines:]) or "no error message"


def ffmpeg(args: list[str], what: str, timeout: float = 600) -> None:
    """Run ffmpeg quietly with ``args``; raises ExpertError saying it could not ``what``."""
    if shutil.which("ffmpeg") is None:
        raise ExpertError("ffmpeg is not installed: sudo apt-get install ffmpeg")
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    done = run_program(command, timeout=timeout)
    if done.returncode != 0:
        raise ExpertError(f"ffmpeg could not {what}: {_tail(done.stderr)}")


def probe(path: Path, name: str) -> AudioInfo:
    """ffprobe a media file; raises ExpertError when it is not readable media."""
    if shutil.which("ffprobe") is None:
        raise ExpertError("ffprobe is not installed: sudo apt-get install ffmpeg")
    command = ["ffprobe", "-v", "error", "-of", "json", "-show_entries"]
    command += ["format=duration:stream=codec_type,sample_rate,channels,duration", str(path)]
    done = run_program(command, timeout=60)
    if done.returncode != 0:
        problem = _tail(done.stderr, 1).replace(f"{path}: ", "")  # the store's path means nothing to a user
        raise ExpertError(
            f"'{name}' is not a readable audio or video file ({problem}); give a WAV, MP3, FLAC, OGG, M4A or MP4 file"
        )
    try:
        found = json.loads(done.stdout or b"{}")
    except ValueError:
        found = {}
    streams = found.get("streams") or []
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [s for s in streams if s.get("codec_type") == "video"]
    duration = _seconds((found.get("format") or {}).get("duration"))
    if duration is None and audio:
        duration = _seconds(audio[0].get("duration"))
    first = audio[0] if audio else {}
    return AudioInfo(
        duration=duration,
        sample_rate=int(_seconds(first.get("sample_rate")) or 0),
        channels=int(first.get("channels") or 0),
        audio_streams=len(audio),
        video_streams=len(video),
    )


def _seconds(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def check_audio(resource: Resource, ctx: ExpertContext, *, no_audio: str = "") -> AudioInfo:
    """Probe an audio (or video) input: it must have an audio track no longer than max_media_seconds."""
    name = display_name(resource)
    info = probe(resource.path, name)
    if not info.audio_streams:
        raise ExpertError(no_audio or f"'{name}' has no audio track; give an audio file (WAV, MP3, FLAC, OGG)")
    limit = ctx.settings.max_media_seconds
    if info.duration is not None and info.duration > limit:
        raise ExpertError(
            f"'{name}' is {info.duration:.0f} s long, over the limit of {limit:g} s; trim it first "
            f"(ffmpeg -i {name} -t {limit:g} short.wav) or raise BATON_MAX_MEDIA_SECONDS"
        )
    return info


def decode_wav(
    resource: Resource,
    ctx: ExpertContext,
    out: Path,
    *,
    rate: int | None = None,
    channels: int | None = None,
    codec: str = "pcm_s16le",
) -> Path:
    """Decode the first audio track of an input to a WAV file (optionally resampled / down-mixed).

    Decoding stops just past ``max_media_seconds``, so a file whose length ffprobe could not tell is
    still bounded; such a file that turns out too long is refused.
    """
    limit = ctx.settings.max_media_seconds
    args = ["-i", str(resource.path), "-map", "0:a:0", "-vn", "-sn", "-dn", "-t", f"{limit + 1:g}"]
    if rate:
        args += ["-ar", str(rate)]
    if channels:
        args += ["-ac", str(channels)]
    ffmpeg([*args, "-c:a", codec, str(out)], f"decode the audio of '{display_name(resource)}'")
    import wave

    if codec == "pcm_s16le":
        with wave.open(str(out), "rb") as wav:
            seconds = wav.getnframes() / wav.getframerate()
        if seconds > limit:
            raise ExpertError(
                f"'{display_name(resource)}' is over the limit of {limit:g} s of audio; trim it first "
                "or raise BATON_MAX_MEDIA_SECONDS"
            )
    return out


@cache
def _ffmpeg_filters() -> frozenset[str]:
    done = run_program(["ffmpeg", "-hide_banner", "-filters"], timeout=30)
    names = set()
    for line in done.stdout.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and "->" in parts[2]:
            names.add(parts[1])
    return frozenset(names)


def has_filter(name: str) -> bool:
    """Whether this FFmpeg build has a filter (Debian's has rubberband; others may not)."""
    try:
        return name in _ffmpeg_filters()
    except (OSError, ExpertError):
        return False


# ---------------------------------------------------------------------------------------------------------------
# noise reduction


class AudioNoiseReduction(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import noisereduce
        import numpy as np
        import soundfile

        source = inputs["audio"]
        check_audio(source, ctx)
        wav = decode_wav(source, ctx, ctx.workdir / "input.wav", codec="pcm_f32le")
        data, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)  # (frames, channels)
        if len(data) / rate > ctx.settings.max_media_seconds:
            raise ExpertError(f"'{display_name(source)}' is over the limit of {ctx.settings.max_media_seconds:g} s")
        n_fft = 1024 if rate <= 24_000 else 2048
        if len(data) >= 2 * n_fft and float(np.abs(data).max(initial=0.0)) > 0:
            cleaned = noisereduce.reduce_noise(
                y=data.T,
                sr=rate,
                y_noise=quietest(data.mean(axis=1), rate),
                stationary=True,  # one noise profile: steady hiss, hum, fans
                n_std_thresh_stationary=1.5,
                prop_decrease=1.0,
                n_fft=n_fft,
                n_jobs=1,
            )
            data = np.asarray(cleaned, dtype=np.float32).reshape(data.shape[1], -1).T[: len(data)]
        # else: too short to estimate a noise profile, or silent; it is returned as it is
        out = ctx.workdir / "denoised.wav"
        soundfile.write(str(out), np.clip(data, -1.0, 1.0), rate, subtype="PCM_16")
        return {"audio": Resource.media(ctx.save_file(out))}


def quietest(samples: Any, rate: int, share: float = 0.1, frame_seconds: float = 0.05) -> Any:
    """The quietest ``share`` of a recording's 50 ms frames, joined: its pauses, i.e. the noise alone.

    The noise profile comes from these rather than from the whole file, so that speech is not learnt as
    noise (measured on eSpeak speech with white noise at 0.03: clean speech comes back 100% instead of
    43%, the noise-only part drops 24 dB, the error against the clean speech falls from 41% to 29%).
    """
    import numpy as np

    size = max(1, int(rate * frame_seconds))
    count = len(samples) // size
    if count < 10:
        return samples
    frames = samples[: count * size].reshape(count, size)
    energy = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return frames[energy <= np.quantile(energy, share)].reshape(-1)


# ---------------------------------------------------------------------------------------------------------------
# effects


@dataclass(frozen=True)
class Effect:
    """One recognised effect: its kind and parameters, turned into FFmpeg filters by ``filters``."""

    kind: str  # reverb, echo, chorus, flanger, phaser, tremolo, vibrato, eq, filter, speed, pitch, volume, ...
    value: float = 0.0
    size: str = ""  # reverb size, eq band, voice style, fade direction, ...
    amount: float = 1.0

    def describe(self) -> str:
        if self.kind == "pitch":
            return f"pitch {self.value:+g} semitones"
        if self.kind == "speed":
            return f"speed x{self.value:g}"
        if self.kind == "volume":
            return f"volume {self.value:+g} dB"
        if self.kind == "fade":
            return f"fade {self.size} {self.value:g} s"
        return " ".join(part for part in (self.size, self.kind) if part)


_NUMBER = r"(\d+(?:\.\d+)?)"
_WORDS = {"half": 0.5, "double": 2.0, "twice": 2.0, "triple": 3.0, "thrice": 3.0, "quadruple": 4.0}
_UP = r"(?:up|raise[sd]?|rais(?:e|ing)|increase[sd]?|increasing|higher|high|boost(?:ed)?|more|lift|brighter|shift up)"
_DOWN = r"(?:down|lower(?:ed)?|low|decrease[sd]?|decreasing|reduce[sd]?|reducing|deeper|deep|drop(?:ped)?|less)"
_GAP = r"(?:[\s:\"'=]+(?:\w+[\s:\"'=]+){0,2})"  # a few words between, within one clause
_SMALL = r"\b(?:a (?:little )?bit|little|slight(?:ly)?|subtle|touch|mild|light|gentle|soft|small)\b"
_LARGE = r"\b(?:heavy|heavily|strong(?:ly)?|lots|lot of|very|extreme(?:ly)?|huge|massive|intense|big|deep)\b"

# voice characters and their pitch shift in semitones
_VOICES: list[tuple[str, float]] = [
    (r"\bchipmunks?\b|\bsqueaky\b|\bhelium\b|\bcartoon\b", 9),
    (r"\b(?:child(?:ren)?|kids?|baby|toddler|childlike|child-like)\b", 7),
    (r"\b(?:monster|demon(?:ic)?|giant|ogre|villain|darth|vader|beast|troll|evil)\b", -8),
    (r"\b(?:female|feminine|woman|women|girl|lady|soprano)\b", 4),
    (r"\b(?:male|masculine|man|men|guy|boy|manly|baritone|bass voice)\b", -4),
]
_VOICE_CONTEXT = r"\bvoice|\bvocal|\bsound(?:s|ing)? like\b|\bspeaker\b|\bgender\b"


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[,;!?\n{}()\[\]]+|(?<!\d)\.|\.(?!\d)|\bthen\b", text) if c.strip()]


def _amount(clause: str) -> float:
    if re.search(_SMALL, clause):
        return 0.6
    if re.search(_LARGE, clause):
        return 1.5
    return 1.0


def _percent(clause: str) -> float | None:
    found = re.search(_NUMBER + r"\s*(?:%|percent\b)", clause)
    return float(found.group(1)) / 100 if found else None


def _factor(clause: str) -> float | None:
    """A multiplier written as 2x, x2, 1.5 times, double, half."""
    found = re.search(_NUMBER + r"\s*(?:x|×|times)(?![a-z])", clause) or re.search(
        r"(?<![a-z])(?:x|×)\s*" + _NUMBER, clause
    )
    if found:
        return float(found.group(1))
    for word, value in _WORDS.items():
        if re.search(rf"\b{word}\b", clause):
            return value
    return None


def _seconds_in(clause: str) -> float | None:
    found = re.search(_NUMBER + r"\s*(?:s|sec|secs|seconds?)\b", clause)
    if found:
        return float(found.group(1))
    found = re.search(_NUMBER + r"\s*(?:ms|milliseconds?)\b", clause)
    return float(found.group(1)) / 1000 if found else None


def _db(clause: str) -> float | None:
    found = re.search(r"([+-]?\s*\d+(?:\.\d+)?)\s*(?:db|decibels?)\b", clause)
    return float(found.group(1).replace(" ", "")) if found else None


def _direction(clause: str, subject: str) -> int:
    """+1 / -1 when the clause says to raise / lower ``subject`` (a regex), else 0."""
    up_before, down_before = rf"\b{_UP}{_GAP}?{subject}", rf"\b{_DOWN}{_GAP}?{subject}"
    up = re.search(up_before, clause) or re.search(rf"{subject}{_GAP}?{_UP}\b", clause)
    if up and not re.search(down_before, clause):
        return 1
    if re.search(down_before, clause) or re.search(rf"{subject}{_GAP}?{_DOWN}\b", clause):
        return -1
    return 0


def parse_effects(instruction: str, *, voice: bool = False) -> list[Effect]:
    """The effects a free-text instruction asks for, in a fixed processing order.

    Understood (case-insensitive, per clause between commas/full stops; numbers belong to their clause):

    - reverb / reverberation / hall / room / cathedral / concert / ambience; size from small/room/studio or
      large/hall/concert/cathedral/church; amount from "50%" or a little/heavy
    - echo (delay from "300 ms" or "0.5 s", default 400 ms), chorus, flanger, phaser, tremolo, vibrato
    - equalisation: bass / low frequencies up or down, treble / high frequencies / brighten up or down,
      "6 dB" in that clause is the gain; plain "equalization" / "EQ" is a mild bass+treble lift
    - low-pass / high-pass (Hz), telephone / radio / phone (band-pass 300-3400 Hz), denoise
    - speed / tempo / faster / slower (keeps the pitch): "2x", "1.5 times", "150%", "double", "half";
      "speed up" alone is x1.5, "slow down" alone x0.75
    - pitch up / down ("3 semitones", "an octave", default 4 semitones); voices: female / woman / girl
      (+4), male / man / deep (-4), child (+7), chipmunk (+9), monster (-8), robot, whisper;
      tone: soft / warm / soothing (treble cut), bright / crisp / clear (treble lift)
    - volume: "-6 dB", "louder" / "increase the volume" (+6 dB), "quieter" / "lower the volume" (-6 dB),
      "50% volume", "double / half the volume", normalise, mute
    - fade in / fade out / fade ("3 seconds", default 2 s), reverse / backwards

    Returns an empty list when nothing is recognised; the experts then apply their documented default.
    """
    text = instruction.lower().replace("’", "'")
    effects: list[Effect] = []
    pitch_semitones: float | None = None  # explicit pitch direction or amount
    voice_semitones: float | None = None  # from a voice character (female, male, child, ...)
    for clause in _clauses(text):
        amount = _amount(clause)
        consumed_db = False
        # --- equalisation and filters (before volume: "boost bass by 6 dB" is not a volume change)
        bass = r"(?:bass|low(?:s|[- ]end| frequenc(?:y|ies)| tones?)\b|sub[- ]?bass)"
        treble = r"(?:treble|high(?:s|[- ]end| frequenc(?:y|ies))\b|highs)"
        for band, subject in (("bass", bass), ("treble", treble)):
            if re.search(subject, clause) and not re.search(r"\bbass voice\b", clause):
                sign = _direction(clause, subject) or (
                    1 if re.search(r"\b(?:boost|emphasi[sz]e|enhance|accentuate|add|more|bring out)", clause) else 0
                )
                if re.search(r"\b(?:cut|remove|reduce|less|decrease|tame|soften)\b", clause) and sign <= 0:
                    sign = -1
                if sign == 0:
                    sign = 1
                gain = _db(clause)
                consumed_db = consumed_db or gain is not None
                effects.append(Effect("eq", sign * abs(gain) if gain is not None else sign * 6 * amount, band))
        if re.search(r"\bbright(?:en|er|ness)?\b|\bcrisp(?:er)?\b|\bclar(?:ity|ify)\b|\bsharp(?:en|er)? tone", clause):
            effects.append(Effect("eq", 5 * amount, "treble"))
        if re.search(
            r"\b(?:soft|warm|warmer|smooth|soothing|mellow|gentle|calm|muffled?|dark(?:er)?) (?:tone|voice|sound)",
            clause,
        ) or re.search(r"\b(?:soothing|mellow|muffled?|warmer)\b", clause):
            effects.append(Effect("eq", -5, "treble"))
        if re.search(r"\b(?:equali[sz](?:e|er|ation|ing)|eq)\b", clause) and not any(e.kind == "eq" for e in effects):
            effects.append(Effect("eq", 3 * amount, "smile"))
        found = re.search(r"\blow[- ]?pass\b", clause)
        if found:
            hz = re.search(_NUMBER + r"\s*(k?hz)\b", clause)
            cutoff = (float(hz.group(1)) * (1000 if hz.group(2) == "khz" else 1)) if hz else 3000.0
            effects.append(Effect("filter", cutoff, "lowpass"))
        found = re.search(r"\bhigh[- ]?pass\b", clause)
        if found:
            hz = re.search(_NUMBER + r"\s*(k?hz)\b", clause)
            cutoff = (float(hz.group(1)) * (1000 if hz.group(2) == "khz" else 1)) if hz else 200.0
            effects.append(Effect("filter", cutoff, "highpass"))
        if re.search(r"\b(?:tele)?phone\b|\bradio\b|\bwalkie|\bintercom\b|\blo-?fi\b", clause):
            effects.append(Effect("filter", 0, "telephone"))
        if re.search(
            r"\bde-?nois|\b(?:remove|reduce|reduction of|less|clean(?: up)?)\b.*\bnoise\b", clause
        ) or re.search(r"\bnoise[- ]?(?:reduction|removal|free)\b", clause):
            effects.append(Effect("denoise"))
        # --- space
        if re.search(r"\breverb|\breverberat|\bhall\b|\bcathedral\b|\bchurch\b|\bconcert\b|\bambien|\barena\b", clause):
            if re.search(r"\b(?:large|big|huge|hall|concert|cathedral|church|arena|stadium|spacious|cave)\b", clause):
                size = "large"
            elif re.search(r"\b(?:small|room|studio|booth|bathroom|closet|tight|short)\b", clause):
                size = "small"
            else:
                size = "medium"
            wet = _percent(clause)
            effects.append(Effect("reverb", size=size, amount=min(1.0, wet) / 0.35 if wet is not None else amount))
        if re.search(r"\becho(?:es|ing|y)?\b|\bdelay effect\b", clause):
            delay = _seconds_in(clause)
            wet = _percent(clause)
            effects.append(
                Effect(
                    "echo",
                    min(max(delay, 0.02), 5.0) if delay else 0.4,
                    amount=min(1.0, wet) / 0.5 if wet is not None else amount,
                )
            )
        for name, pattern in (
            ("chorus", r"\bchorus"),
            ("flanger", r"\bflang"),
            ("phaser", r"\bphas(?:er|ing)\b"),
            ("tremolo", r"\btremolo\b"),
            ("vibrato", r"\bvibrato\b"),
        ):
            if re.search(pattern, clause):
                effects.append(Effect(name, amount=amount))
        # --- voices
        if re.search(r"\brobot|\bandroid\b|\bcyborg\b|\bdalek\b|\bmachine voice\b|\bmetallic\b|\bsynthetic\b", clause):
            effects.append(Effect("robot"))
        if re.search(r"\bwhisper", clause):
            effects.append(Effect("whisper"))
        if re.search(r"\balien\b|\bextraterrestrial\b", clause):
            effects.append(Effect("flanger", amount=1.5))
            voice_semitones = voice_semitones if voice_semitones is not None else 5
        # a voice-changer reads "female" alone; general effects need "voice"/"sound like" near it
        characters = _VOICES if voice or re.search(_VOICE_CONTEXT, clause) else []
        for pattern, shift in characters:
            if re.search(pattern, clause) and voice_semitones is None:
                voice_semitones = shift
                break
        if re.search(r"\bdeep(?:er)? (?:voice|tone|sound)|\bdeepen\b|\bdeeper\b", clause) and voice_semitones is None:
            voice_semitones = -4
        # --- pitch
        pitch_word = r"(?:pitch|tone|key|octave|voice|semitones?)"
        if re.search(r"\bpitch|\bsemitone|\boctave|\bhalf[- ]?steps?|\bkey\b", clause) or (
            re.search(r"\b(?:high|higher|low|lower)[- ](?:tone|voice|pitched)", clause)
        ):
            sign = _direction(clause, pitch_word)
            semis = re.search(r"([+-]?\s*\d+(?:\.\d+)?)\s*(?:semitones?|half[- ]?steps?|st)\b", clause)
            if semis:
                value = float(semis.group(1).replace(" ", ""))
                pitch_semitones = -abs(value) if sign < 0 else value
            elif re.search(r"\boctave", clause):
                pitch_semitones = -12.0 if sign < 0 else 12.0
            elif sign:
                pct = _percent(clause)
                if pct is not None:
                    ratio = 1 + pct if sign > 0 else max(0.25, 1 - pct)
                    pitch_semitones = 12 * math.log2(ratio)
                else:
                    pitch_semitones = sign * 4.0
        # --- speed
        speed_word = r"\b(?:speed|tempo|faster|slower|fast|slow|quicker|pace|playback|accelerat\w*|decelerat\w*)"
        if re.search(speed_word, clause) and not re.search(r"\bspeech rate\b", clause):
            slow = bool(re.search(r"\bslow|\bslower\b|\bdecelerat|\breduce the speed|\bdecrease the speed", clause))
            factor = _factor(clause)
            pct = _percent(clause)
            plain = re.search(
                r"\b(?:speed|tempo)\s*(?:of|to|=|:|at)?\s*" + _NUMBER + r"\b(?!\s*(?:%|db|s\b|sec|ms|hz))", clause
            )
            if factor is None and pct is None and plain and 0.1 <= float(plain.group(1)) <= 10:
                factor = float(plain.group(1))
            if factor is None and pct is not None:
                relative = re.search(r"\bby\s*" + _NUMBER + r"\s*%", clause)  # "by 50%" is x1.5, "50%" x0.5
                factor = (1 - pct if slow else 1 + pct) if relative else pct
            if factor is None:
                factor = 0.75 if slow else 1.5
            elif slow and factor > 1:
                factor = 1 / factor
            if not 0.1 <= factor <= 10:
                raise ExpertError(f"a speed factor of {factor:g} is out of range; use 0.1 (ten times slower) to 10")
            effects.append(Effect("speed", factor))
        # --- volume
        volume_word = r"(?:volume|loudness|gain|level|amplitude)"
        if re.search(r"\bnormali[sz]", clause):
            effects.append(Effect("normalize"))
        if re.search(r"\bmute\b|\bsilence it\b", clause):
            effects.append(Effect("volume", -120.0))
        elif not consumed_db and _db(clause) is not None and not re.search(r"\b(?:bass|treble)\b", clause):
            gain = _db(clause) or 0.0
            if re.search(rf"\b(?:lower|decrease|reduce|down|quieter|softer|attenuate|cut){_GAP}?", clause) and gain > 0:
                gain = -gain
            effects.append(Effect("volume", gain))
        elif re.search(rf"\b{volume_word}\b", clause) or re.search(r"\blouder\b|\bquieter\b|\bamplif", clause):
            factor = _factor(clause)
            pct = _percent(clause)
            sign = _direction(clause, volume_word)
            if re.search(r"\blouder\b|\bamplif|\bturn (?:it )?up\b", clause):
                sign = sign or 1
            if re.search(r"\bquieter\b|\bsofter\b|\bturn (?:it )?down\b|\battenuat", clause):
                sign = sign or -1
            if factor is not None and re.search(
                rf"\b(?:double|half|halve|twice)\b.*{volume_word}|{_NUMBER}\s*x", clause
            ):
                effects.append(Effect("volume", 20 * math.log10(factor)))
            elif re.search(r"\bhalve\b", clause):
                effects.append(Effect("volume", 20 * math.log10(0.5)))
            elif pct is not None and re.search(rf"{volume_word}", clause):
                if re.search(r"\bby\s*" + _NUMBER + r"\s*%", clause) and sign:
                    ratio = 1 + pct if sign > 0 else max(0.01, 1 - pct)
                else:
                    ratio = max(pct, 0.001)
                effects.append(Effect("volume", 20 * math.log10(ratio)))
            elif sign:
                effects.append(Effect("volume", sign * 6 * amount))
        # --- time
        fades = re.findall(r"\bfade[sd]?[- ]?(in|out|up|down)?\b|\bfading (in|out)\b", clause)
        for first, second in fades:
            direction = first or second
            length = _seconds_in(clause) or 2.0
            if direction in ("in", "up"):
                effects.append(Effect("fade", length, "in"))
            elif direction in ("out", "down"):
                effects.append(Effect("fade", length, "out"))
            else:
                effects += [Effect("fade", length, "in"), Effect("fade", length, "out")]
        if re.search(r"\bfade[sd]?[- ]?(?:in|out) and (?:fade[sd]?[- ]?)?(?:in|out)\b", clause):
            length = _seconds_in(clause) or 2.0
            effects += [Effect("fade", length, "in"), Effect("fade", length, "out")]
        if re.search(r"\brevers(?:e|ed|ing)\b|\bbackwards?\b", clause):
            effects.append(Effect("reverse"))
    semitones = pitch_semitones if pitch_semitones is not None else voice_semitones
    if semitones:
        effects.append(Effect("pitch", max(-24.0, min(24.0, semitones))))
    return _dedupe(effects)


_ORDER = [
    "denoise", "reverse", "speed", "pitch", "robot", "whisper", "filter", "eq", "chorus", "flanger",
    "phaser", "tremolo", "vibrato", "echo", "reverb", "normalize", "volume", "fade",
]  # fmt: skip


def _dedupe(effects: list[Effect]) -> list[Effect]:
    seen: dict[tuple[str, str], Effect] = {}
    for effect in effects:
        seen.setdefault((effect.kind, effect.size), effect)  # the first mention wins
    return sorted(seen.values(), key=lambda e: _ORDER.index(e.kind))


def _atempo(factor: float) -> list[str]:
    """atempo filters for any factor, each within 0.5..2 (the range every FFmpeg version accepts)."""
    filters = []
    while factor > 2.0:
        filters.append("atempo=2.0")
        factor /= 2.0
    while factor < 0.5:
        filters.append("atempo=0.5")
        factor /= 0.5
    if abs(factor - 1.0) > 1e-6:
        filters.append(f"atempo={factor:.6f}")
    return filters


_REVERBS = {  # delays (ms) and base decays of the aecho taps
    "small": ([13, 23, 37, 49, 61], 0.30),
    "medium": ([29, 47, 71, 97, 127, 163], 0.35),
    "large": ([47, 83, 127, 181, 241, 307, 379, 457], 0.42),
}


def _keep_power(decays: list[float]) -> float:
    """aecho's output gain that keeps the loudness: reflections add up in power, not in amplitude."""
    return min(1.0, 1.0 / math.sqrt(1.0 + sum(d * d for d in decays)))


def _filters(effect: Effect, rate: int) -> list[str]:
    kind = effect.kind
    if kind == "speed":
        return _atempo(effect.value)
    if kind == "pitch":
        ratio = 2 ** (effect.value / 12)
        if has_filter("rubberband"):
            return [f"rubberband=pitch={ratio:.6f}"]
        return [f"asetrate={round(rate * ratio)}", f"aresample={rate}", *_atempo(1 / ratio)]
    if kind == "reverb":
        delays, decay = _REVERBS[effect.size or "medium"]
        wet = min(2.0, max(0.2, effect.amount))
        decays = [min(0.95, decay * wet * 0.85**i) for i in range(len(delays))]
        taps = "|".join(str(d) for d in delays), "|".join(f"{d:.3f}" for d in decays)
        return [f"aecho=1:{_keep_power(decays):.3f}:{taps[0]}:{taps[1]}"]
    if kind == "echo":
        decay = min(0.9, 0.5 * max(0.2, effect.amount))
        ms = round(effect.value * 1000)
        return [f"aecho=1:{_keep_power([decay, decay * decay]):.3f}:{ms}|{2 * ms}:{decay:.3f}|{decay * decay:.3f}"]
    if kind == "chorus":
        return ["chorus=0.6:0.9:50|60|40:0.4|0.32|0.3:0.25|0.4|0.3:2|2.3|1.3"]
    if kind == "flanger":
        return [f"flanger=delay=2:depth={min(10, 3 * effect.amount):.1f}:regen=20:speed=0.5"]
    if kind == "phaser":
        return ["aphaser=type=t:speed=0.6:decay=0.5"]
    if kind == "tremolo":
        return [f"tremolo=f=5:d={min(1.0, 0.5 * effect.amount):.2f}"]
    if kind == "vibrato":
        return [f"vibrato=f=6:d={min(1.0, 0.4 * effect.amount):.2f}"]
    if kind == "eq":
        gain = max(-24.0, min(24.0, effect.value))
        if effect.size == "bass":
            return [f"bass=g={gain:.1f}:f=120"]
        if effect.size == "treble":
            return [f"treble=g={gain:.1f}:f=4000"]
        return [f"bass=g={gain:.1f}:f=100", f"treble=g={gain:.1f}:f=6000"]  # "smile" curve
    if kind == "filter":
        nyquist = rate / 2 - 1
        if effect.size == "lowpass":
            return [f"lowpass=f={min(effect.value, nyquist):g}"]
        if effect.size == "highpass":
            return [f"highpass=f={min(effect.value, nyquist):g}"]
        return ["highpass=f=300", f"lowpass=f={min(3400, nyquist):g}"]
    if kind == "denoise":
        return ["afftdn=nr=12"]
    if kind == "robot":  # keep magnitudes, zero the phases: a flat, buzzing monotone
        return ["afftfilt=real='hypot(re,im)':imag='0':win_size=512:overlap=0.75"]
    if kind == "whisper":  # keep magnitudes, random phases: the pitch turns into breath
        expr = "real='hypot(re,im)*cos((random(0)*2-1)*2*3.14)':imag='hypot(re,im)*sin((random(1)*2-1)*2*3.14)'"
        return [f"afftfilt={expr}:win_size=128:overlap=0.8"]
    if kind == "normalize":
        return ["loudnorm=I=-16:TP=-1.5:LRA=11", f"aresample={rate}"]
    if kind == "volume":
        return [f"volume={effect.value:.2f}dB"]
    if kind == "reverse":
        return ["areverse"]
    raise AssertionError(kind)  # fades are placed by _apply, which knows the final length


def _apply(effects: list[Effect], source: Resource, ctx: ExpertContext) -> Path:
    info = check_audio(source, ctx)
    rate = info.sample_rate or 44_100
    channels = min(info.channels or 1, 2)
    chain = [f for effect in effects if effect.kind != "fade" for f in _filters(effect, rate)]
    name = display_name(source)
    limit = ctx.settings.max_media_seconds
    out = ctx.workdir / "effects.wav"
    fades = [e for e in effects if e.kind == "fade"]
    fade_in = next((e for e in fades if e.size == "in"), None)
    fade_out = next((e for e in fades if e.size == "out"), None)
    if fade_in:
        chain.append(f"afade=t=in:st=0:d={fade_in.value:g}")
    args = ["-i", str(source.path), "-map", "0:a:0", "-vn", "-t", f"{limit + 1:g}"]
    codec = ["-c:a", "pcm_s16le", "-ar", str(rate), "-ac", str(channels)]
    ffmpeg([*args, *(["-af", ",".join(chain)] if chain else []), *codec, str(out)], f"apply effects to '{name}'")
    if fade_out:  # needs the final length, which speed and echo changed: a second, cheap pass
        import wave

        with wave.open(str(out), "rb") as wav:
            seconds = wav.getnframes() / wav.getframerate()
        length = min(fade_out.value, seconds)
        faded = ctx.workdir / "faded.wav"
        fade = f"afade=t=out:st={max(0.0, seconds - length):.3f}:d={length:.3f}"
        ffmpeg(["-i", str(out), "-af", fade, "-c:a", "pcm_s16le", str(faded)], f"fade out '{name}'")
        out = faded
    return out


class AudioEffects(Expert):
    """Effects from the instruction; with none recognised, a medium reverb (documented on the card)."""

    default: ClassVar[tuple[Effect, ...]] = (Effect("reverb", size="medium", amount=0.8),)
    voice: ClassVar[bool] = False

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        instruction = inputs["instruction"].as_text() if "instruction" in inputs else ""
        effects = parse_effects(instruction, voice=self.voice) or list(self.default)
        out = _apply(effects, inputs["audio"], ctx)
        return {"audio": Resource.media(ctx.save_file(out))}


class VoiceChanger(AudioEffects):
    """Voice effects from the instruction; with none recognised, the pitch goes up 4 semitones."""

    default = (Effect("pitch", 4.0),)
    voice = True


# ---------------------------------------------------------------------------------------------------------------
# splicing


class AudioSplicer(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        first, second = inputs["audio"], inputs["audio2"]
        infos = [check_audio(first, ctx), check_audio(second, ctx)]
        rate = max(info.sample_rate or 44_100 for info in infos)
        channels = max(min(info.channels or 1, 2) for info in infos)
        layout = "stereo" if channels == 2 else "mono"
        limit = ctx.settings.max_media_seconds
        graph = ";".join(
            f"[{i}:a:0]aresample={rate},aformat=sample_fmts=s16:sample_rates={rate}:channel_layouts={layout}[a{i}]"
            for i in range(2)
        )
        graph += ";[a0][a1]concat=n=2:v=0:a=1[out]"
        out = ctx.workdir / "spliced.wav"
        args = ["-t", f"{limit + 1:g}", "-i", str(first.path), "-t", f"{limit + 1:g}", "-i", str(second.path)]
        args += ["-filter_complex", graph, "-map", "[out]", "-c:a", "pcm_s16le", str(out)]
        ffmpeg(args, f"join '{display_name(first)}' and '{display_name(second)}'")
        return {"audio": Resource.media(ctx.save_file(out))}
