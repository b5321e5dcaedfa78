"""image-to-text by optical character recognition with Tesseract."""

from __future__ import annotations

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.media import Resource

CARDS = [
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
]


class TesseractOCR(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import pytesseract
        from PIL import Image, ImageOps

        lang = options.get("lang") or "eng"
        available = set(pytesseract.get_languages(config=""))
        absent = [code for code in lang.split("+") if code not in available]  # "eng+fra" reads both
        if absent:
            packages = " ".join(f"tesseract-ocr-{code.lower().replace('_', '-')}" for code in absent)
            raise ExpertError(
                f"Tesseract has no '{', '.join(absent)}' language data (installed: {', '.join(sorted(available))}); "
                f"install it with: sudo apt-get install {packages}"
            )
        with Image.open(inputs["image"].path) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                # flatten onto white: transparent pixels often hide black, which would swallow dark text
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
            elif image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            if min(image.size) < 300:  # Tesseract reads small glyphs poorly; upscale first
                scale = 300 / min(image.size)
                image = image.resize((round(image.width * scale), round(image.height * scale)))
            text = pytesseract.image_to_string(image, lang=lang)
        lines = [" ".join(line.split()) for line in text.splitlines()]
        return {"text": Resource.text("\n".join(line for line in lines if line))}
