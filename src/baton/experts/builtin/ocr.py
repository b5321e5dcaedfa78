"""image-to-text by optical character recognition with Tesseract."""

from __future__ import annotations

from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import Resource


class TesseractOCR(Expert):
    def run(
        self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext
    ) -> dict[str, Resource]:
        import pytesseract
        from PIL import Image, ImageOps

        lang = options.get("lang", "eng")
        available = set(pytesseract.get_languages(config=""))
        if lang not in available:
            raise ExpertError(
                f"Tesseract has no '{lang}' language data (installed: {', '.join(sorted(available))}); "
                f"install it with: sudo apt-get install tesseract-ocr-{lang}"
            )
        with Image.open(inputs["image"].path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            if min(image.size) < 300:  # Tesseract reads small glyphs poorly; upscale first
                scale = 300 / min(image.size)
                image = image.resize((round(image.width * scale), round(image.height * scale)))
            text = pytesseract.image_to_string(image, lang=lang)
        lines = [" ".join(line.split()) for line in text.splitlines()]
        return {"text": Resource.text("\n".join(line for line in lines if line))}
