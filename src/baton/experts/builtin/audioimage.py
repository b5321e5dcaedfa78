"""audio-to-image: a picture of a sound, its waveform above its spectrogram (numpy FFT, Pillow drawing).

Layout of the PNG (``WIDTH`` x ``HEIGHT`` pixels): rows ``0 .. WAVE_HEIGHT - 1`` are the waveform
(min/max of the samples in each column, scaled to the peak), rows ``SPEC_TOP .. HEIGHT - 1`` the
spectrogram: time runs left to right over the whole file, frequency linearly from the Nyquist
frequency at row ``SPEC_TOP`` down to 0 Hz at the bottom row, brightness the level in dB (80 dB range
below the loudest point, an inferno-like colour scale). Stereo is mixed down to mono.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext
from baton.experts.builtin.audio import check_audio, decode_wav
from baton.media import Resource

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["HEIGHT", "SPEC_HEIGHT", "SPEC_TOP", "WAVE_HEIGHT", "WIDTH", "AudioToImage", "frequency_row"]

WIDTH = 1024
WAVE_HEIGHT = 200
SPEC_TOP = 202  # a 2-pixel rule separates the panels
SPEC_HEIGHT = 400
HEIGHT = SPEC_TOP + SPEC_HEIGHT
MAX_RATE = 48_000
DYNAMIC_RANGE_DB = 80.0

CARDS = [
    ModelCard(
        id="builtin/spectrogram",
        task="audio-to-image",
        backend="builtin",
        description=f"Draws audio as a {WIDTH}x{HEIGHT} PNG: the waveform above a linear-frequency spectrogram "
        "(numpy FFT, Pillow). A technical picture of the sound, not an illustration of what it depicts.",
        factory="baton.experts.builtin.audioimage:AudioToImage",
        popularity=28_000,
        popularity_source="GitHub stars of numpy/numpy (approximate)",
        memory_mb=60,
        licence="MIT",
        python=("numpy", "PIL"),
        extra="audio",
        binaries=("ffmpeg", "ffprobe"),
        apt=("ffmpeg",),
    )
]

_INFERNO = [
    (0.0, (0, 0, 4)),
    (0.25, (87, 16, 110)),
    (0.5, (188, 55, 84)),
    (0.75, (249, 142, 9)),
    (1.0, (252, 255, 164)),
]


def frequency_row(frequency: float, sample_rate: int) -> float:
    """The image row (from the top of the picture) where ``frequency`` is drawn."""
    return SPEC_TOP + (1 - frequency / (sample_rate / 2)) * SPEC_HEIGHT - 0.5


class AudioToImage(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import wave

        import numpy as np

        source = inputs["audio"]
        info = check_audio(source, ctx)
        rate = min(info.sample_rate or 44_100, MAX_RATE)
        wav = decode_wav(source, ctx, ctx.workdir / "mono.wav", rate=rate, channels=1)
        with wave.open(str(wav), "rb") as opened:
            rate = opened.getframerate()
            samples = np.frombuffer(opened.readframes(opened.getnframes()), dtype="<i2").astype(np.float32) / 32768
        image = draw(samples, rate)
        out = ctx.workdir / "audio.png"
        image.save(out)
        return {"image": Resource.media(ctx.save_file(out))}


def draw(samples: Any, rate: int) -> Image.Image:
    """The picture of mono float samples in -1..1 at ``rate`` Hz."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (WIDTH, HEIGHT), (18, 18, 26))
    image.paste(Image.fromarray(_spectrogram(samples, rate)), (0, SPEC_TOP))
    pen = ImageDraw.Draw(image)
    pen.rectangle((0, WAVE_HEIGHT, WIDTH - 1, SPEC_TOP - 1), fill=(70, 70, 90))
    peak = _waveform(pen, samples)
    font = ImageFont.load_default(size=12)
    seconds = len(samples) / rate if rate else 0.0
    level = f"peak {20 * math.log10(peak):.1f} dBFS" if peak > 0 else "silent"
    pen.text((6, 4), f"waveform  {seconds:.2f} s, {rate} Hz, {level}", fill=(200, 200, 210), font=font)
    pen.text(
        (6, SPEC_TOP + 4), f"spectrogram  0-{rate // 2} Hz (linear), 0-{seconds:.2f} s", fill=(230, 230, 230), font=font
    )
    return image


def _waveform(pen: Any, samples: Any) -> float:
    import numpy as np

    middle = WAVE_HEIGHT // 2
    pen.line((0, middle, WIDTH - 1, middle), fill=(60, 60, 80))
    if len(samples) == 0:
        return 0.0
    peak = float(np.abs(samples).max())
    starts = (np.arange(WIDTH) * len(samples)) // WIDTH
    lows, highs = np.minimum.reduceat(samples, starts), np.maximum.reduceat(samples, starts)
    scale = (WAVE_HEIGHT / 2 - 4) / peak if peak > 0 else 0.0
    for x, (low, high) in enumerate(zip(lows, highs, strict=True)):
        top, bottom = middle - high * scale, middle - low * scale
        pen.line((x, round(top), x, round(bottom)), fill=(110, 190, 255))
    return peak


def _spectrogram(samples: Any, rate: int) -> Any:
    """SPEC_HEIGHT x WIDTH x 3 uint8: one Hann-windowed FFT centred on each column's time."""
    import numpy as np

    n_fft = 2048 if rate > 24_000 else 1024
    count = len(samples)
    padded = np.concatenate([np.zeros(n_fft, np.float32), samples, np.zeros(n_fft, np.float32)])
    centres = n_fft + ((np.arange(WIDTH) + 0.5) * count / WIDTH).astype(np.int64)
    levels = np.empty((WIDTH, n_fft // 2 + 1), np.float32)
    window = np.hanning(n_fft).astype(np.float32)
    offsets = np.arange(n_fft) - n_fft // 2
    for start in range(0, WIDTH, 128):  # in blocks, to bound memory
        block = padded[centres[start : start + 128, None] + offsets[None, :]] * window
        levels[start : start + 128] = np.abs(np.fft.rfft(block, axis=1))
    decibels = 20 * np.log10(levels + 1e-9)
    top = float(decibels.max())
    if top <= -150:  # digital silence: nothing to show
        normalised = np.zeros_like(decibels)
    else:
        normalised = np.clip((decibels - (top - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0, 1)
    # rows: frequency bins pooled by maximum (a thin tone stays visible), highest frequency on top
    edges = np.linspace(0, normalised.shape[1], SPEC_HEIGHT + 1).astype(np.int64)[:-1]
    rows = np.maximum.reduceat(normalised, edges, axis=1)[:, ::-1].T  # (SPEC_HEIGHT, WIDTH)
    stops = [stop for stop, _ in _INFERNO]
    channels = [np.interp(rows, stops, [colour[i] for _, colour in _INFERNO]) for i in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)
