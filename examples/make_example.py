"""Draw the bundled example: a small sign with printed text (run from the repository root)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TEXT = "Welcome to the baton demo"


def draw(path: Path, text: str = TEXT) -> Path:
    font = ImageFont.load_default(size=40)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right - left + 80, bottom - top + 60), "white")
    ImageDraw.Draw(image).text((40 - left, 30 - top), text, fill="black", font=font)
    image.save(path, optimize=True)
    return path


if __name__ == "__main__":
    print(draw(Path(__file__).with_name("sign.png")))
