"""Offline experts that run on a CPU with no downloaded weights."""

from __future__ import annotations

from collections.abc import Callable

from baton.catalog import ModelCard

__all__ = ["register"]


def register(add: Callable[[ModelCard], None]) -> None:
    """Entry point of the ``baton.experts`` group for baton's own builtin experts."""
    add(
        ModelCard(
            id="builtin/tesseract",
            task="image-to-text",
            backend="builtin",
            description="Tesseract OCR: reads printed text in an image (not handwriting, no captions).",
            factory="baton.experts.builtin.ocr:TesseractOCR",
            popularity=60_000,
            popularity_source="GitHub stars of tesseract-ocr/tesseract",
            memory_mb=60,
            licence="Apache-2.0",
            python=("pytesseract", "PIL"),
            extra="vision",
            binaries=("tesseract",),
            apt=("tesseract-ocr",),
        )
    )
    add(
        ModelCard(
            id="builtin/espeak-ng",
            task="text-to-speech",
            backend="builtin",
            description="eSpeak NG formant speech synthesis: many languages, robotic voice; WAV out. "
            "Options: voice (e.g. en-us, fr), speed (words per minute, 80-450).",
            factory="baton.experts.builtin.speech:EspeakTTS",
            popularity=5_000,
            popularity_source="GitHub stars of espeak-ng/espeak-ng",
            memory_mb=10,
            licence="GPL-3.0",
            binaries=("espeak-ng",),
            apt=("espeak-ng",),
        )
    )
