"""The builtin audio experts run for real: PocketSphinx hears eSpeak NG, FFmpeg effects change measurable things."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from baton.catalog import load_catalog
from baton.experts import ExpertError, TaskContext
from baton.experts.builtin.audio import parse_effects
from baton.experts.builtin.audioimage import HEIGHT, SPEC_HEIGHT, SPEC_TOP, WAVE_HEIGHT, WIDTH, frequency_row
from baton.media import Resource
from baton.tasks import get_task
from conftest import wav_info

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg is not installed"
)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


# helpers


def run(model_id: str, ctx: TaskContext, options: dict[str, str] | None = None, **inputs: Resource) -> Resource:
    card = load_catalog().get(model_id)
    spec = get_task(card.task)
    assert {p.name for p in spec.inputs if not p.optional} <= set(inputs) <= {p.name for p in spec.inputs}
    assert set(options or {}) <= set(spec.options)
    result = card.build().run(inputs, options or {}, ctx)
    assert set(result) == {p.name for p in spec.outputs}
    (value,) = result.values()
    return value


def media(ctx: TaskContext, path: Path) -> Resource:
    """A user's input file: stored in the session and known by its own file name."""
    return Resource.media(ctx.save_file(path).model_copy(update={"label": path.name}))


def write_wav(path: Path, samples: Any, rate: int) -> Path:
    """Float samples in -1..1, shape (frames,) or (frames, channels), as 16-bit PCM."""
    data = np.asarray(samples, dtype=np.float64)
    data = data[:, None] if data.ndim == 1 else data
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(data.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(data, -1, 1) * 32767).round().astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[Any, int]:
    """(float samples of the first channel, sample rate)."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return data.reshape(-1, channels)[:, 0], rate


def sine(path: Path, frequency: float = 440.0, seconds: float = 2.0, rate: int = 16_000, level: float = 0.5) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    return write_wav(path, level * np.sin(2 * np.pi * frequency * t), rate)


def dominant_frequency(samples: Any, rate: int) -> float:
    middle = samples[len(samples) // 4 : 3 * len(samples) // 4]  # away from edge effects
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    return float(np.argmax(spectrum) * rate / len(middle))


def rms(samples: Any) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0


def speak(tmp_path: Path, text: str, name: str = "speech.wav", speed: int = 150) -> Path:
    out = tmp_path / name
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(out), text], check=True)
    return out


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True)


def words_heard(reference: str, heard: str) -> float:
    expected = reference.lower().replace(".", "").replace(",", "").split()
    said = set(heard.split())
    return sum(word in said for word in expected) / len(expected)


# the catalogue


def test_audio_cards_are_registered_and_runnable_here() -> None:
    catalog = load_catalog()
    tasks = {
        "builtin/pocketsphinx": "automatic-speech-recognition",
        "builtin/pocketsphinx-video": "video-to-text",
        "builtin/noisereduce": "audio-noise-reduction",
        "builtin/ffmpeg-audio-effects": "audio-effects",
        "builtin/ffmpeg-voice-changer": "voice-changer",
        "builtin/ffmpeg-audio-splicer": "audio-splicer",
        "builtin/spectrogram": "audio-to-image",
    }
    for model_id, task in tasks.items():
        card = catalog.get(model_id)
        assert card.task == task and card.backend == "builtin"
        assert "ffmpeg" in card.binaries and card.apt == ("ffmpeg",)
        assert card.missing() == [], card.missing()
    assert get_task("automatic-speech-recognition").options == ("grammar", "keywords")
    assert get_task("Video-to-Text").options == ("grammar", "keywords")


# automatic-speech-recognition


@needs_espeak
@pytest.mark.parametrize("phrase", ["open the door", "turn on the kitchen light", "stop"])
def test_asr_with_a_grammar_recognises_the_phrase_exactly(phrase: str, tmp_path: Path, expert_ctx: TaskContext) -> None:
    grammar = "yes|no|stop|go|open the door|close the window|turn on the kitchen light|turn off the kitchen light"
    audio = media(expert_ctx, speak(tmp_path, phrase))
    assert run("builtin/pocketsphinx", expert_ctx, {"grammar": grammar}, audio=audio).value == phrase


@needs_espeak
def test_asr_grammar_reads_a_sequence_of_commands(tmp_path: Path, expert_ctx: TaskContext) -> None:
    audio = media(expert_ctx, speak(tmp_path, "yes. no. stop."))
    options = {"keywords": "Yes, No, Stop, Go, Left, Right"}  # any case and separator
    assert run("builtin/pocketsphinx", expert_ctx, options, audio=audio).value == "yes no stop"


@needs_espeak
def test_asr_decodes_compressed_audio(tmp_path: Path, expert_ctx: TaskContext) -> None:
    ffmpeg("-i", speak(tmp_path, "open the door"), tmp_path / "door.mp3")
    audio = media(expert_ctx, tmp_path / "door.mp3")
    heard = run("builtin/pocketsphinx", expert_ctx, {"grammar": "open the door|close the window"}, audio=audio)
    assert heard.value == "open the door"


@needs_espeak
def test_asr_accepts_a_jsgf_grammar(tmp_path: Path, expert_ctx: TaskContext) -> None:
    jsgf = (
        "#JSGF V1.0;\ngrammar lights;\n"
        "public <command> = (turn | switch) (on | off) the <room> light;\n<room> = kitchen | bedroom | garden;\n"
    )
    audio = media(expert_ctx, speak(tmp_path, "switch off the garden light"))
    assert (
        run("builtin/pocketsphinx", expert_ctx, {"grammar": jsgf}, audio=audio).value == "switch off the garden light"
    )


@needs_espeak
@pytest.mark.slow
def test_asr_free_form_hears_most_words(tmp_path: Path, expert_ctx: TaskContext) -> None:
    text = "I would like to order a pizza. Please open the door and close the window."
    heard = run("builtin/pocketsphinx", expert_ctx, audio=media(expert_ctx, speak(tmp_path, text))).value
    assert isinstance(heard, str) and heard == heard.lower()
    assert words_heard(text, heard) >= 0.5, heard  # measured: 11 of 15 words (synthetic speech is hard for it)


def test_asr_of_silence_is_empty(tmp_path: Path, expert_ctx: TaskContext) -> None:
    silence = write_wav(tmp_path / "silence.wav", np.zeros(3 * 16_000), 16_000)
    assert run("builtin/pocketsphinx", expert_ctx, audio=media(expert_ctx, silence)).value == ""
    hiss = np.random.default_rng(3).normal(0, 0.01, 3 * 16_000)  # a quiet room, -40 dBFS: no speech either
    room = write_wav(tmp_path / "room.wav", hiss, 16_000)
    assert run("builtin/pocketsphinx", expert_ctx, {"grammar": "yes|no"}, audio=media(expert_ctx, room)).value == ""


@pytest.mark.parametrize(
    ("grammar", "named"),
    [
        ("yes|no|flibbertigibbetzz", "flibbertigibbetzz"),
        ("turn on light 2", r"2; use common English words; spell numbers out \('two', not '2'\)"),
    ],
)
def test_asr_grammar_words_must_be_in_the_dictionary(
    grammar: str, named: str, tmp_path: Path, expert_ctx: TaskContext
) -> None:
    audio = media(expert_ctx, sine(tmp_path / "tone.wav", seconds=0.5))
    with pytest.raises(ExpertError, match="not in PocketSphinx's English dictionary: " + named):
        run("builtin/pocketsphinx", expert_ctx, {"grammar": grammar}, audio=audio)


def test_asr_rejects_a_broken_jsgf_grammar_and_an_empty_list(tmp_path: Path, expert_ctx: TaskContext) -> None:
    audio = media(expert_ctx, sine(tmp_path / "tone.wav", seconds=0.5))
    with pytest.raises(ExpertError, match="check the JSGF syntax"):
        run("builtin/pocketsphinx", expert_ctx, {"grammar": "#JSGF V1.0;\npublic <a> = ( yes | ;"}, audio=audio)
    with pytest.raises(ExpertError, match="the grammar has no phrases"):
        run("builtin/pocketsphinx", expert_ctx, {"grammar": " | ; ,"}, audio=audio)


def test_asr_refuses_audio_over_the_length_limit(tmp_path: Path, expert_ctx: TaskContext) -> None:
    expert_ctx.settings = dataclasses.replace(expert_ctx.settings, max_media_seconds=1.5)
    audio = media(expert_ctx, sine(tmp_path / "long.wav", seconds=3.0))
    with pytest.raises(ExpertError, match=r"'long.wav' is 3 s long, over the limit of 1.5 s; trim it first"):
        run("builtin/pocketsphinx", expert_ctx, audio=audio)


def test_asr_refuses_a_file_that_is_not_audio(tmp_path: Path, expert_ctx: TaskContext) -> None:
    fake = tmp_path / "notes.wav"
    fake.write_text("these are not samples")
    with pytest.raises(ExpertError, match=r"'notes.wav' is not a readable audio or video file"):
        run("builtin/pocketsphinx", expert_ctx, audio=media(expert_ctx, fake))


# video-to-text


def make_video(tmp_path: Path, audio: Path | None, name: str = "clip.mp4") -> Path:
    frame = tmp_path / "frame.png"
    Image.new("RGB", (320, 240), (40, 90, 160)).save(frame)
    out = tmp_path / name
    if audio is None:
        ffmpeg("-loop", "1", "-i", frame, "-t", "1", "-r", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", out)
    else:
        ffmpeg(
            "-loop", "1", "-i", frame, "-i", audio, "-shortest", "-r", "10",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", out,
        )  # fmt: skip
    return out


@needs_espeak
@pytest.mark.slow
def test_video_to_text_transcribes_the_audio_track(tmp_path: Path, expert_ctx: TaskContext) -> None:
    text = "I would like to order a pizza. Please open the door and close the window."
    video = media(expert_ctx, make_video(tmp_path, speak(tmp_path, text)))
    assert video.kind == "video"
    heard = run("builtin/pocketsphinx-video", expert_ctx, video=video).value
    assert words_heard(text, heard) >= 0.5, heard
    command = media(expert_ctx, make_video(tmp_path, speak(tmp_path, "close the window", "cmd.wav"), "cmd.mp4"))
    options = {"grammar": "open the door|close the window|stop"}
    assert run("builtin/pocketsphinx-video", expert_ctx, options, video=command).value == "close the window"


def test_video_without_audio_is_a_clear_error(tmp_path: Path, expert_ctx: TaskContext) -> None:
    video = media(expert_ctx, make_video(tmp_path, None, "silent.mp4"))
    with pytest.raises(ExpertError, match=r"'silent\.mp4' has no audio track, so there is no speech"):
        run("builtin/pocketsphinx-video", expert_ctx, video=video)


# audio-noise-reduction


@needs_espeak
def test_noise_reduction_quietens_the_noise_and_keeps_speech_and_length(
    tmp_path: Path, expert_ctx: TaskContext
) -> None:
    speech, rate = read_wav(speak(tmp_path, "The quick brown fox jumps over the lazy dog."))
    clean = np.concatenate([np.zeros(rate), 0.8 * speech])  # one second of noise only, then speech
    noisy = clean + np.random.default_rng(7).normal(0, 0.03, len(clean))
    path = write_wav(tmp_path / "noisy.wav", noisy, rate)
    out = run("builtin/noisereduce", expert_ctx, audio=media(expert_ctx, path))
    denoised, out_rate = read_wav(out.path)
    assert out_rate == rate and len(denoised) == len(noisy)  # same duration to the sample
    assert rms(denoised[:rate]) < rms(noisy[:rate]) / 10  # measured: 0.030 -> 0.0017 (-25 dB)
    assert rms(denoised[rate:]) > 0.6 * rms(clean[rate:])  # the speech is still there (measured: 76%)
    # and closer to the clean speech than the noisy input was (measured: 41% -> 30% error)
    assert rms(denoised[rate:] - clean[rate:]) < 0.85 * rms(noisy[rate:] - clean[rate:])


@needs_espeak
def test_noise_reduction_leaves_clean_speech_alone(tmp_path: Path, expert_ctx: TaskContext) -> None:
    path = speak(tmp_path, "Clean speech has no noise to take away.")
    clean, _ = read_wav(path)
    out, _ = read_wav(run("builtin/noisereduce", expert_ctx, audio=media(expert_ctx, path)).path)
    assert rms(out - clean) < 0.1 * rms(clean)


def test_noise_reduction_keeps_stereo_and_passes_tiny_clips(tmp_path: Path, expert_ctx: TaskContext) -> None:
    rng = np.random.default_rng(1)
    stereo = write_wav(tmp_path / "stereo.wav", rng.normal(0, 0.05, (32_000, 2)), 16_000)
    seconds, rate, channels, width, _ = wav_info(
        run("builtin/noisereduce", expert_ctx, audio=media(expert_ctx, stereo)).path
    )
    assert (round(seconds, 3), rate, channels, width) == (2.0, 16_000, 2, 2)
    tiny = write_wav(tmp_path / "tiny.wav", rng.normal(0, 0.05, 200), 16_000)
    out, _ = read_wav(run("builtin/noisereduce", expert_ctx, audio=media(expert_ctx, tiny)).path)
    assert len(out) == 200


# audio-effects and voice-changer


def effect(ctx: TaskContext, source: Path, instruction: str, model: str = "builtin/ffmpeg-audio-effects") -> Path:
    out = run(model, ctx, audio=media(ctx, source), instruction=Resource.text(instruction))
    assert out.kind == "audio" and out.path.suffix == ".wav"
    return out.path


@pytest.mark.parametrize(
    ("instruction", "factor"),
    [("Can you speed up this audio by 2x?", 0.5), ("slow down to half speed", 2.0), ("play it 3 times faster", 1 / 3)],
)
def test_speed_changes_the_duration(instruction: str, factor: float, tmp_path: Path, expert_ctx: TaskContext) -> None:
    source = sine(tmp_path / "tone.wav", seconds=2.0)
    seconds, rate, *_ = wav_info(effect(expert_ctx, source, instruction))
    assert rate == 16_000
    assert seconds == pytest.approx(2.0 * factor, rel=0.04)


def test_speed_keeps_the_pitch(tmp_path: Path, expert_ctx: TaskContext) -> None:
    samples, rate = read_wav(effect(expert_ctx, sine(tmp_path / "tone.wav", 440, 3.0), "speed up 2x"))
    assert dominant_frequency(samples, rate) == pytest.approx(440, rel=0.02)


def test_echo_lengthens_and_changes_the_signal(tmp_path: Path, expert_ctx: TaskContext) -> None:
    rate = 16_000
    click = np.zeros(rate)
    click[1000:1160] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(160) / rate)  # a 10 ms beep, then silence
    source = write_wav(tmp_path / "beep.wav", click, rate)
    out, _ = read_wav(effect(expert_ctx, source, "add an echo with a 300 ms delay"))
    assert len(out) / rate == pytest.approx(1.0 + 0.6, abs=0.02)  # two repeats: 300 and 600 ms later
    delay = 1000 + int(0.3 * rate)
    assert rms(out[delay : delay + 160]) > 0.1 and rms(click[delay : delay + 160]) == 0  # the beep, again


@pytest.mark.parametrize(
    ("instruction", "semitones"),
    [("pitch up", 4), ("raise the pitch by 3 semitones", 3), ("lower the pitch by an octave", -12)],
)
def test_pitch_moves_the_dominant_frequency(
    instruction: str, semitones: int, tmp_path: Path, expert_ctx: TaskContext
) -> None:
    source = sine(tmp_path / "tone.wav", 440, 2.0)
    samples, rate = read_wav(effect(expert_ctx, source, instruction))
    assert dominant_frequency(samples, rate) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.02)
    assert len(samples) / rate == pytest.approx(2.0, abs=0.1)  # and keeps the duration


@pytest.mark.parametrize(
    ("instruction", "ratio"), [("volume -6 dB", 0.5), ("lower the volume by 12 dB", 0.25), ("make it louder", 2.0)]
)
def test_volume_scales_the_amplitude(instruction: str, ratio: float, tmp_path: Path, expert_ctx: TaskContext) -> None:
    source = sine(tmp_path / "tone.wav", level=0.4)
    before, after = wav_info(source)[4], wav_info(effect(expert_ctx, source, instruction))[4]
    assert after / before == pytest.approx(ratio, rel=0.03)


def test_fades_shape_the_start_and_the_end(tmp_path: Path, expert_ctx: TaskContext) -> None:
    source = sine(tmp_path / "tone.wav", seconds=4.0)
    out, rate = read_wav(effect(expert_ctx, source, "fade in over 1 second, then fade out over 1 second"))
    assert len(out) == 4 * rate
    middle = rms(out[2 * rate - 1000 : 2 * rate + 1000])
    assert middle == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    assert rms(out[:800]) < 0.1 * middle and rms(out[-800:]) < 0.1 * middle
    assert 0.2 * middle < rms(out[rate // 2 - 400 : rate // 2 + 400]) < 0.8 * middle  # halfway up the ramp


def test_unrecognised_instructions_get_the_documented_mild_reverb(tmp_path: Path, expert_ctx: TaskContext) -> None:
    source = sine(tmp_path / "tone.wav", seconds=1.0)
    plain, _ = read_wav(source)
    out, rate = read_wav(effect(expert_ctx, source, "<node-1>"))
    assert 1.1 < len(out) / rate < 1.3  # the reverb's tail
    assert not np.allclose(out[: len(plain)], plain, atol=0.01)
    assert "reverb" in load_catalog().get("builtin/ffmpeg-audio-effects").description


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("Apply reverb effect", ["medium reverb"]),
        ("Please add a reverb effect to make it sound like a concert hall: <node-0>", ["large reverb"]),
        ("Apply equalization to boost bass frequencies", ["bass eq"]),
        (
            "Add a bit of reverb, touch of chorus and include some equalization tweaks",
            ["smile eq", "chorus", "medium reverb"],
        ),
        ("slow down by 25%", ["speed x0.75"]),
        ("set tempo to 0.8", ["speed x0.8"]),
        ("fade in and out", ["fade in 2 s", "fade out 2 s"]),
        ("double the volume", ["volume +6.0206 dB"]),
        ("boost the bass by 8 dB", ["bass eq"]),
        ("telephone effect, reversed", ["reverse", "telephone filter"]),
        ("text-to-audio-output", []),
    ],
)
def test_effects_are_read_from_free_text(instruction: str, expected: list[str]) -> None:
    assert [e.describe() for e in parse_effects(instruction)] == expected


@pytest.mark.parametrize(
    ("instruction", "semitones"),
    [
        ("female", 4),
        ("Alter the voice to sound feminine and increase the pitch.", 4),
        ("higher pitch, male tone", 4),  # an explicit pitch wins over the character
        ('{"voice": "female", "pitch": "lower"}', -4),
        ("deep, masculine voice", -4),
        ("increase pitch, decrease tone, female voice", 4),
        ("make it sound like a chipmunk", 9),
        ("pitch: increase", 4),
    ],
)
def test_voice_changer_reads_the_pitch_from_free_text(instruction: str, semitones: int) -> None:
    pitches = [e.value for e in parse_effects(instruction, voice=True) if e.kind == "pitch"]
    assert pitches == [semitones]


@pytest.mark.parametrize(
    ("instruction", "semitones"),
    [("female voice", 4), ("deep, masculine voice", -4), ("Alter the tone, pitch, and gender", 4)],  # last: the default
)
def test_voice_changer_shifts_the_pitch(
    instruction: str, semitones: int, tmp_path: Path, expert_ctx: TaskContext
) -> None:
    source = sine(tmp_path / "voice.wav", 220, 2.0)
    samples, rate = read_wav(effect(expert_ctx, source, instruction, "builtin/ffmpeg-voice-changer"))
    assert dominant_frequency(samples, rate) == pytest.approx(220 * 2 ** (semitones / 12), rel=0.02)


@pytest.mark.parametrize("instruction", ["robot voice", "whisper"])
def test_voice_changer_robot_and_whisper_change_the_sound_not_the_length(
    instruction: str, tmp_path: Path, expert_ctx: TaskContext
) -> None:
    rate = 16_000
    t = np.arange(2 * rate) / rate
    glide = 0.5 * np.sin(2 * np.pi * (200 * t + 50 * t**2))  # a rising tone, 200 -> 400 Hz
    source = write_wav(tmp_path / "glide.wav", glide, rate)
    out, out_rate = read_wav(effect(expert_ctx, source, instruction, "builtin/ffmpeg-voice-changer"))
    assert out_rate == rate and len(out) == pytest.approx(len(glide), abs=rate * 0.02)
    assert rms(out) > 0.01  # not silenced
    assert abs(np.corrcoef(out[: len(glide)], glide[: len(out)])[0, 1]) < 0.5  # but no longer the same waveform


# audio-splicer


def test_splicer_plays_one_after_the_other_with_resampling(tmp_path: Path, expert_ctx: TaskContext) -> None:
    first = sine(tmp_path / "first.wav", 440, 1.0, rate=16_000)
    t = np.arange(22_050) / 44_100
    second = write_wav(tmp_path / "second.wav", np.stack([0.3 * np.sin(2 * np.pi * 880 * t)] * 2, axis=1), 44_100)
    out = run(
        "builtin/ffmpeg-audio-splicer", expert_ctx, audio=media(expert_ctx, first), audio2=media(expert_ctx, second)
    )
    seconds, rate, channels, width, _ = wav_info(out.path)
    assert (rate, channels, width) == (44_100, 2, 2)
    assert seconds == pytest.approx(1.5, abs=0.01)
    samples, _ = read_wav(out.path)
    assert dominant_frequency(samples[:rate], rate) == pytest.approx(440, rel=0.02)  # first comes first
    assert dominant_frequency(samples[rate:], rate) == pytest.approx(880, rel=0.02)


def test_splicer_refuses_an_input_without_audio(tmp_path: Path, expert_ctx: TaskContext) -> None:
    video = media(expert_ctx, make_video(tmp_path, None, "mute.mp4"))
    with pytest.raises(ExpertError, match="has no audio track"):
        run("builtin/ffmpeg-audio-splicer", expert_ctx, audio=media(expert_ctx, sine(tmp_path / "a.wav")), audio2=video)


# audio-to-image


@pytest.mark.parametrize("frequency", [1000.0, 3000.0])
def test_audio_to_image_draws_a_tone_as_a_bright_band(
    frequency: float, tmp_path: Path, expert_ctx: TaskContext
) -> None:
    source = sine(tmp_path / "tone.wav", frequency, 2.0, rate=16_000, level=0.8)
    out = run("builtin/spectrogram", expert_ctx, audio=media(expert_ctx, source))
    assert out.kind == "image" and out.path.suffix == ".png"
    with Image.open(out.path) as opened:
        assert opened.size == (WIDTH, HEIGHT)
        pixels = np.asarray(opened.convert("L"), dtype=np.float64)
    assert pixels.std() > 10  # not blank
    band = pixels[SPEC_TOP + 20 :, 100:-100].mean(axis=1)  # below the label, away from the edges
    brightest = SPEC_TOP + 20 + int(np.argmax(band))
    assert abs(brightest - frequency_row(frequency, 16_000)) <= 3
    assert band.max() > 200 and np.median(band) < 60  # one bright line on a dark field
    waveform = pixels[20:WAVE_HEIGHT, 100:-100]
    assert (waveform > 120).mean() > 0.5  # a loud tone fills the waveform panel


def test_audio_to_image_of_silence_is_a_dark_spectrogram(tmp_path: Path, expert_ctx: TaskContext) -> None:
    source = write_wav(tmp_path / "silence.wav", np.zeros(8000), 16_000)
    out = run("builtin/spectrogram", expert_ctx, audio=media(expert_ctx, source))
    with Image.open(out.path) as opened:
        pixels = np.asarray(opened.convert("L"), dtype=np.float64)
    assert pixels[SPEC_TOP + 20 :].max() < 30
    assert SPEC_TOP + SPEC_HEIGHT == HEIGHT


@pytest.mark.parametrize("instruction", ["speed up 50x", "slow down to 0.05x"])
def test_speed_factors_out_of_range_are_refused(instruction: str) -> None:
    with pytest.raises(ExpertError, match=r"out of range; use 0\.1 .* to 10"):
        parse_effects(instruction)
