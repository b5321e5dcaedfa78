"""text-to-speech with eSpeak NG, written as a WAV file."""

from __future__ import annotations

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.process import run_program
from baton.media import Resource

CARDS = [
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
]


class EspeakTTS(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        text = inputs["text"].as_text().strip()
        if not text:
            raise ExpertError("there is no text to speak: the input text is empty")
        voice = options.get("voice") or "en-us"
        try:
            speed = int(options.get("speed", "165"))
        except ValueError:
            raise ExpertError(f"speed must be a number of words per minute, not '{options['speed']}'") from None
        if not 80 <= speed <= 450:
            raise ExpertError(f"speed {speed} is out of range; use 80 to 450 words per minute")
        out = ctx.workdir / "speech.wav"
        command = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), "--stdin"]
        done = run_program(command, input=text.encode())
        if done.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
            message = done.stderr.decode(errors="replace").strip() or "no audio was written"
            if "voice" in message.lower():
                message += "; list voices with: espeak-ng --voices"
            raise ExpertError(f"espeak-ng failed: {message}")
        return {"audio": Resource.media(ctx.save_file(out))}
