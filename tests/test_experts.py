"""The builtin experts run for real: Tesseract reads drawn text, eSpeak NG writes real WAV files."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from baton.catalog import ModelCard, load_catalog
from baton.config import Settings
from baton.experts import ExpertError
from baton.experts.builtin.ocr import TesseractOCR
from baton.experts.builtin.speech import EspeakTTS
from baton.media import Artifact, Resource, kind_of_filename
from conftest import EXAMPLE_IMAGE, wav_info

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


class Context:
    """An ExpertContext: a scratch folder, and a store that keeps files under their sha256."""

    def __init__(self, root: Path) -> None:
        self.workdir = root / "work"
        self.store = root / "store"
        self.workdir.mkdir(parents=True)
        self.store.mkdir()
        self.saved: list[Artifact] = []
        self.settings = Settings(home=root)

    def save_file(self, path: Path) -> Artifact:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        kind = kind_of_filename(path.name)
        assert kind is not None, path
        target = self.store / f"{sha}{path.suffix}"
        shutil.copyfile(path, target)
        artifact = Artifact(name=f"{kind}/{sha[:8]}{path.suffix}", sha256=sha, kind=kind, path=target)
        self.saved.append(artifact)
        return artifact

    def save_bytes(self, data: bytes, ext: str) -> Artifact:
        path = self.workdir / f"data{ext}"
        path.write_bytes(data)
        return self.save_file(path)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(tmp_path / "ctx")


def card(model_id: str) -> ModelCard:
    return load_catalog().get(model_id)


def draw(
    text: str, size: int = 40, mode: str = "RGB", background: object = "white", ink: object = "black"
) -> Image.Image:
    """Printed text on a plain background, drawn the way examples/make_example.py draws the sign."""
    font = ImageFont.load_default(size=size)
    lines = text.split("\n")
    boxes = [font.getbbox(line) for line in lines]
    width = max(right - left for left, _, right, _ in boxes)
    line_height = max(bottom - top for _, top, _, bottom in boxes)
    pad = size
    image = Image.new(mode, (width + 2 * pad, len(lines) * line_height * 2 + 2 * pad), background)  # type: ignore[arg-type]
    pen = ImageDraw.Draw(image)
    for number, (line, (left, top, _, _)) in enumerate(zip(lines, boxes, strict=True)):
        pen.text((pad - left, pad - top + number * line_height * 2), line, fill=ink, font=font)  # type: ignore[arg-type]
    return image


def image_resource(path: Path) -> Resource:
    kind = kind_of_filename(path.name)
    assert kind == "image"
    return Resource.media(Artifact(name=f"image/{path.name}", sha256="0" * 64, kind=kind, path=path, label=path.name))


def read(image: Image.Image, tmp_path: Path, ctx: Context, name: str = "picture.png", **options: str) -> str:
    path = tmp_path / name
    image.save(path)
    result = TesseractOCR(card("builtin/tesseract")).run({"image": image_resource(path)}, options, ctx)
    assert set(result) == {"text"}
    assert result["text"].kind == "text"
    value = result["text"].value
    assert isinstance(value, str)
    return value


def speak(ctx: Context, text: str, **options: str) -> Resource:
    result = EspeakTTS(card("builtin/espeak-ng")).run({"text": Resource.text(text)}, options, ctx)
    assert set(result) == {"audio"}
    return result["audio"]


# Tesseract OCR


@needs_tesseract
@pytest.mark.parametrize(
    "phrase",
    ["Welcome to the baton demo", "Quick brown foxes jump high", "Invoice 2024 total 318 euros"],
)
def test_ocr_reads_back_drawn_text(phrase: str, tmp_path: Path, ctx: Context) -> None:
    assert read(draw(phrase), tmp_path, ctx) == phrase


@needs_tesseract
def test_ocr_reads_the_bundled_example(ctx: Context) -> None:
    result = TesseractOCR(card("builtin/tesseract")).run({"image": image_resource(EXAMPLE_IMAGE)}, {}, ctx)
    assert result["text"].value == "Welcome to the baton demo"


@needs_tesseract
@pytest.mark.parametrize("phrase", ["Small print reads fine", "Open daily from nine"])
def test_ocr_upscales_small_images(phrase: str, tmp_path: Path, ctx: Context) -> None:
    # at this size Tesseract misreads the raw pixels ('small print', 'dally'); upscaled it reads them right
    image = draw(phrase, size=12)
    assert min(image.size) < 100
    assert read(image, tmp_path, ctx) == phrase


@needs_tesseract
def test_ocr_keeps_lines_and_collapses_spaces(tmp_path: Path, ctx: Context) -> None:
    text = read(draw("First line   of the sign\nSecond line below it"), tmp_path, ctx)
    assert text == "First line of the sign\nSecond line below it"


@needs_tesseract
def test_ocr_of_a_blank_image_is_empty(tmp_path: Path, ctx: Context) -> None:
    assert read(Image.new("RGB", (400, 300), "white"), tmp_path, ctx) == ""


@needs_tesseract
@pytest.mark.parametrize(
    ("background", "label"),
    [((255, 255, 255, 255), "opaque"), ((0, 0, 0, 0), "transparent black"), ((255, 255, 255, 0), "transparent white")],
)
def test_ocr_reads_rgba_images(background: tuple[int, ...], label: str, tmp_path: Path, ctx: Context) -> None:
    # a transparent background is usually stored as (0, 0, 0, 0): dropping alpha would make it black like the ink
    image = draw("Transparent labels work", mode="RGBA", background=background, ink=(0, 0, 0, 255))
    assert read(image, tmp_path, ctx) == "Transparent labels work", label


@needs_tesseract
def test_ocr_reads_grayscale_and_palette_images(tmp_path: Path, ctx: Context) -> None:
    assert read(draw("Grey scale text", mode="L", background=255, ink=0), tmp_path, ctx) == "Grey scale text"
    assert read(draw("Palette image text").convert("P"), tmp_path, ctx, name="palette.gif") == "Palette image text"


@needs_tesseract
def test_ocr_reads_a_gif_with_a_transparent_background(tmp_path: Path, ctx: Context) -> None:
    image = draw("Transparent gif text", mode="RGBA", background=(0, 0, 0, 0), ink=(0, 0, 0, 255))
    path = tmp_path / "logo.gif"
    image.save(path)  # a palette image whose transparent colour is black
    with Image.open(path) as saved:
        assert saved.mode == "P" and "transparency" in saved.info
    result = TesseractOCR(card("builtin/tesseract")).run({"image": image_resource(path)}, {}, ctx)
    assert result["text"].value == "Transparent gif text"


@needs_tesseract
def test_ocr_follows_exif_orientation(tmp_path: Path, ctx: Context) -> None:
    # a phone photo: pixels stored sideways, EXIF orientation 6 says "rotate 90° clockwise to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    draw("Rotated phone photo").rotate(90, expand=True).save(path, exif=exif, quality=95)
    result = TesseractOCR(card("builtin/tesseract")).run({"image": image_resource(path)}, {}, ctx)
    assert result["text"].value == "Rotated phone photo"


@needs_tesseract
def test_ocr_accepts_several_installed_languages(tmp_path: Path, ctx: Context) -> None:
    # Tesseract reads "eng+osd" as both languages; only uninstalled ones are an error
    assert read(draw("Several languages"), tmp_path, ctx, lang="eng+osd") == "Several languages"


@needs_tesseract
@pytest.mark.parametrize(
    ("lang", "absent", "package"),
    [
        ("xyz", "xyz", "tesseract-ocr-xyz"),
        ("chi_sim", "chi_sim", "tesseract-ocr-chi-sim"),  # Debian's package names use '-'
        ("eng+qqq", "qqq", "tesseract-ocr-qqq"),  # only the uninstalled one is named
    ],
)
def test_ocr_language_not_installed_names_the_apt_package(
    lang: str, absent: str, package: str, tmp_path: Path, ctx: Context
) -> None:
    with pytest.raises(ExpertError) as failure:
        read(draw("Hello"), tmp_path, ctx, lang=lang)
    message = str(failure.value)
    assert f"Tesseract has no '{absent}' language data" in message
    assert message.endswith(f"install it with: sudo apt-get install {package}")
    assert "eng" in message.partition("(installed: ")[2]  # and says what is there


# eSpeak NG text-to-speech


@needs_espeak
def test_tts_writes_a_real_wav(ctx: Context) -> None:
    audio = speak(ctx, "Hello world, this is baton speaking.")
    assert audio.kind == "audio"
    assert audio.artifact is not None and audio.artifact in ctx.saved
    assert audio.path.suffix == ".wav" and audio.path.is_file()
    seconds, rate, channels, width, peak = wav_info(audio.path)
    assert 0.8 < seconds < 10
    assert 8000 <= rate <= 48000
    assert channels == 1
    assert width == 2
    assert peak > 1000  # speech, not silence


@needs_espeak
def test_tts_longer_text_gives_longer_audio(ctx: Context) -> None:
    short = wav_info(speak(ctx, "Hello world.").path)[0]
    long = wav_info(
        speak(ctx, "Hello world. This sentence is a good deal longer and takes much more time to say out loud.").path
    )[0]
    assert long > 2.5 * short > 0


@needs_espeak
def test_tts_slower_speed_gives_longer_audio(ctx: Context) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    slow = wav_info(speak(ctx, text, speed="80").path)[0]
    normal = wav_info(speak(ctx, text).path)[0]
    fast = wav_info(speak(ctx, text, speed="400").path)[0]
    assert slow > 1.5 * normal
    assert normal > 1.5 * fast > 0


@needs_espeak
def test_tts_other_voices_and_non_ascii_text(ctx: Context) -> None:
    for text, voice in [("Bonjour tout le monde", "fr"), ("Grüße aus Köln, schöne Straße", "de")]:
        seconds, _, _, _, peak = wav_info(speak(ctx, text, voice=voice).path)
        assert seconds > 0.5 and peak > 1000, voice


@needs_espeak
def test_tts_text_that_looks_like_options_is_spoken(ctx: Context) -> None:
    # the text goes in on stdin, so it can never be read as espeak-ng's own command-line options
    seconds, _, _, _, peak = wav_info(speak(ctx, "-v zz --help").path)
    assert seconds > 0.3 and peak > 1000


@needs_espeak
@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_tts_empty_text_is_an_error(text: str, ctx: Context) -> None:
    with pytest.raises(ExpertError, match="no text to speak"):
        speak(ctx, text)
    assert ctx.saved == []


@needs_espeak
@pytest.mark.parametrize(
    ("speed", "expected"),
    [
        ("fast", "speed must be a number of words per minute, not 'fast'"),
        ("", "speed must be a number of words per minute"),
        ("79", "speed 79 is out of range; use 80 to 450"),
        ("451", "speed 451 is out of range; use 80 to 450"),
        ("-5", "out of range"),
    ],
)
def test_tts_bad_speed_is_an_error(speed: str, expected: str, ctx: Context) -> None:
    with pytest.raises(ExpertError) as failure:
        speak(ctx, "Hello", speed=speed)
    assert expected in str(failure.value)
    assert ctx.saved == []


@needs_espeak
def test_tts_unknown_voice_is_an_error_that_says_how_to_list_voices(ctx: Context) -> None:
    with pytest.raises(ExpertError) as failure:
        speak(ctx, "Hello", voice="zz-no-such-voice")
    message = str(failure.value)
    assert message.startswith("espeak-ng failed:")
    assert "voice does not exist" in message
    assert "espeak-ng --voices" in message
    assert ctx.saved == []


@needs_espeak
def test_tts_empty_voice_means_the_default(ctx: Context) -> None:
    default = speak(ctx, "Hello there").artifact
    empty = speak(ctx, "Hello there", voice="").artifact
    assert default is not None and empty is not None
    assert empty.sha256 == default.sha256  # the same en-us recording


# ModelCard.missing(): what stops a model from running here, with the fix


def fake_card(**needs: object) -> ModelCard:
    return ModelCard(
        id="test/fake", task="image-to-text", backend="builtin", description="a test card", factory="x:Y", **needs
    )  # type: ignore[arg-type]


def test_missing_program_names_the_apt_package() -> None:
    reasons = fake_card(binaries=("baton-test-no-such-program",), apt=("baton-test-package",)).missing()
    assert reasons == ["program baton-test-no-such-program is not installed: sudo apt-get install baton-test-package"]


def test_missing_program_without_apt_names_the_program() -> None:
    reasons = fake_card(binaries=("sh", "baton-test-no-such-program")).missing()
    assert reasons == [
        "program baton-test-no-such-program is not installed: sudo apt-get install baton-test-no-such-program"
    ]


def test_missing_module_names_the_pip_extra() -> None:
    reasons = fake_card(python=("json", "baton_test_no_such_module"), extra="vision").missing()
    assert reasons == ["Python module baton_test_no_such_module is not installed: pip install 'baton[vision]'"]


def test_missing_module_without_extra_names_the_module() -> None:
    reasons = fake_card(python=("baton_test_no_such_module",)).missing()
    assert reasons == [
        "Python module baton_test_no_such_module is not installed: pip install baton_test_no_such_module"
    ]


def test_missing_module_and_program_are_both_reported() -> None:
    reasons = fake_card(
        python=("baton_test_no_such_module",), extra="audio", binaries=("baton-test-no-such-program",), apt=("pkg-a",)
    ).missing()
    assert len(reasons) == 2
    assert "pip install 'baton[audio]'" in reasons[0]
    assert "sudo apt-get install pkg-a" in reasons[1]


def test_card_with_everything_present_is_runnable() -> None:
    assert fake_card(python=("json",), binaries=("sh",)).missing() == []


@needs_tesseract
@needs_espeak
def test_builtin_cards_are_runnable_here_and_build_their_experts() -> None:
    catalog = load_catalog()
    for model_id, expert_class in [("builtin/tesseract", TesseractOCR), ("builtin/espeak-ng", EspeakTTS)]:
        found = catalog.get(model_id)
        assert found.missing() == [], model_id
        expert = found.build()
        assert isinstance(expert, expert_class)
        assert expert.card is found
        assert not expert.loaded
