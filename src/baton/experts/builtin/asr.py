"""Speech recognition with PocketSphinx 5 (CMU Sphinx) and its bundled US-English model.

Audio (or a video's audio track) is converted with ffmpeg to 16 kHz mono 16-bit PCM, cut into speech
segments by PocketSphinx's voice-activity detector (silence gives an empty transcript), and each
segment is decoded:

- free-form with the bundled language model, by default;
- against a grammar when the ``grammar`` option is given: a JSGF grammar (text starting with
  ``#JSGF``), or a list of phrases separated by ``|``, ``,``, ``;`` or new lines ("yes|no|stop|go",
  "turn on the light, turn off the light"); the speech is read as a sequence of those phrases. The
  ``keywords`` option takes the same kind of phrase list. Every word must be in the CMU pronouncing
  dictionary (spell numbers out: "two", not "2").
"""

from __future__ import annotations

import io
import re
import wave
from pathlib import Path
from typing import Any, ClassVar

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.audio import check_audio, decode_wav, display_name
from baton.media import Resource

__all__ = ["PocketSphinxASR", "PocketSphinxVideoToText", "grammar_phrases", "jsgf_words"]

_NEEDS: dict[str, Any] = {
    "popularity": 4_000,
    "popularity_source": "GitHub stars of cmusphinx/pocketsphinx (approximate)",
    "memory_mb": 150,
    "licence": "BSD-2-Clause",
    "python": ("pocketsphinx",),
    "extra": "audio",
    "binaries": ("ffmpeg", "ffprobe"),
    "apt": ("ffmpeg",),
}
_HONEST = (
    "US English only; free-form accuracy is modest (clear, close-up speech; roughly half the words of "
    "synthetic or noisy speech), far better with a 'grammar' of the expected phrases (e.g. 'yes|no|stop|go' "
    "or a JSGF grammar). Silence gives an empty transcript; music and noise may give stray words."
)

CARDS = [
    ModelCard(
        id="builtin/pocketsphinx",
        task="automatic-speech-recognition",
        backend="builtin",
        description="PocketSphinx 5 speech recognition with its bundled en-US model. " + _HONEST,
        factory="baton.experts.builtin.asr:PocketSphinxASR",
        **_NEEDS,
    ),
    ModelCard(
        id="builtin/pocketsphinx-video",
        task="video-to-text",
        backend="builtin",
        description="Transcribes a video's audio track (extracted with ffmpeg) with PocketSphinx 5; a video "
        "without sound is refused. " + _HONEST,
        factory="baton.experts.builtin.asr:PocketSphinxVideoToText",
        **_NEEDS,
    ),
]

RATE = 16_000
PRIME_SECONDS = 30


def grammar_phrases(text: str) -> list[str]:
    """A phrase list option ("yes|no, stop; go") as normalised phrases: lower case, letters and apostrophes."""
    phrases = []
    for part in re.split(r"[|,;\n]+", text):
        words = re.findall(r"[a-z0-9']+", part.lower().replace("’", "'"))
        phrase = " ".join(word.strip("'") for word in words if word.strip("'"))
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return phrases


def jsgf_words(grammar: str) -> list[str]:
    """The words of a JSGF grammar (rule names, tags, weights, operators and header lines removed)."""
    body = re.sub(r"//[^\n]*|/\*.*?\*/", " ", grammar, flags=re.S)  # comments
    body = "\n".join(
        line for line in body.splitlines() if not re.match(r"\s*(#JSGF|grammar\s|import\s)", line, flags=re.I)
    )
    body = re.sub(r"\{[^}]*\}|/[\d.eE+-]+/|<[^>]*>|\bpublic\b", " ", body)  # tags, weights, rules
    words = re.findall(r"[^\s=;|()\[\]*+]+", body)
    return list(dict.fromkeys(word.lower() for word in words))


def _jsgf_for(phrases: list[str]) -> str:
    alternatives = " | ".join(phrases)
    return f"#JSGF V1.0;\ngrammar baton;\npublic <phrases> = ( {alternatives} )+;\n"


class PocketSphinxASR(Expert):
    """Transcribes the ``audio`` input; see the module docstring for the options."""

    port: ClassVar[str] = "audio"
    no_audio: ClassVar[str] = ""

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self._decoder: Any = None

    def load(self) -> None:
        from pocketsphinx import Decoder

        if self._decoder is None:
            self._decoder = Decoder(loglevel="FATAL", samprate=RATE)
        self.loaded = True

    def unload(self) -> None:
        self._decoder = None
        self.loaded = False

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        self.load()
        source = inputs[self.port]
        decoder = self._grammar_decoder(options, ctx.workdir) or self._decoder
        check_audio(source, ctx, no_audio=self.no_audio.format(name=display_name(source)))
        wav = decode_wav(source, ctx, ctx.workdir / "speech-16k.wav", rate=RATE, channels=1)
        with wave.open(str(wav), "rb") as opened:
            pcm = opened.readframes(opened.getnframes())
        return {"text": Resource.text(transcribe(decoder, pcm))}

    def _grammar_decoder(self, options: dict[str, str], workdir: Path) -> Any:
        """A decoder for the grammar/keywords options, or None for free-form recognition."""
        from pocketsphinx import Decoder

        grammar = (options.get("grammar") or "").strip()
        keywords = (options.get("keywords") or "").strip()
        if not grammar and not keywords:
            return None
        if grammar.upper().startswith("#JSGF") or re.search(r"\bpublic\s*<", grammar):
            if keywords:
                raise ExpertError("give either a JSGF 'grammar' or a 'keywords' list, not both")
            source, words = grammar, jsgf_words(grammar)
        else:
            phrases = list(dict.fromkeys(grammar_phrases(grammar) + grammar_phrases(keywords)))
            if not phrases:
                raise ExpertError(
                    "the grammar has no phrases; give them separated by '|' (e.g. 'yes|no|stop|go') or a JSGF grammar"
                )
            source, words = _jsgf_for(phrases), list(dict.fromkeys(w for p in phrases for w in p.split()))
        unknown = [word for word in words if self._decoder.lookup_word(word) is None]
        if unknown:
            hint = "; spell numbers out ('two', not '2')" if any(any(c.isdigit() for c in w) for w in unknown) else ""
            raise ExpertError(
                f"these grammar words are not in PocketSphinx's English dictionary: {', '.join(unknown[:20])}; "
                f"use common English words{hint}"
            )
        path = workdir / "grammar.jsgf"
        path.write_text(source, encoding="utf-8")
        try:
            return Decoder(loglevel="FATAL", samprate=RATE, jsgf=str(path))
        except (RuntimeError, ValueError) as exc:
            raise ExpertError(
                f"PocketSphinx could not load the grammar ({exc}); check the JSGF syntax: a header "
                "'#JSGF V1.0;', a 'grammar name;' line and a 'public <rule> = ...;' rule"
            ) from None


class PocketSphinxVideoToText(PocketSphinxASR):
    """Transcribes the audio track of the ``video`` input."""

    port = "video"
    no_audio = (
        "'{name}' has no audio track, so there is no speech to transcribe; give a video with sound "
        "(to read text shown in the video, extract a frame and use image-to-text)"
    )


def transcribe(decoder: Any, pcm: bytes) -> str:
    """Decode 16 kHz mono 16-bit PCM: each speech segment found by the VAD, joined with spaces."""
    from pocketsphinx import Segmenter

    # trailing silence lets the detector close a segment still open at the end (it drops one otherwise)
    padded = pcm + bytes(2 * RATE)
    segments = list(Segmenter(sample_rate=RATE).segment(io.BytesIO(padded)))
    if not segments:
        return ""
    # a first pass without search over (up to 30 s of) the speech sets the cepstral mean from this
    # recording itself; the live estimate starts from a generic mean and takes many seconds to settle,
    # and until then the words come out wrong (measured on eSpeak speech: free-form words 46% -> 54%
    # right, command phrases 65 of 84 exactly right)
    speech = b"".join(segment.pcm for segment in segments)[: 2 * RATE * PRIME_SECONDS]
    decoder.start_utt()
    decoder.process_raw(speech, True, True)  # no search, whole utterance: the batch mean
    decoder.end_utt()
    texts = []
    for segment in segments:
        decoder.start_utt()
        decoder.process_raw(segment.pcm, False, False)  # streaming (live CMN) decodes better than full_utt
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is not None and hypothesis.hypstr.strip():
            texts.append(" ".join(hypothesis.hypstr.split()))
    return " ".join(texts)
