"""image-to-image styles with OpenCV's photo module, and style-transfer by Reinhard colour matching.

Also the image reading and writing that the other builtin image modules (imageedit, stitch) share:
EXIF orientation applied, the pixel limit enforced, transparency kept apart as an alpha plane.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.cards import OPENCV
from baton.media import MAX_IMAGE_PIXELS, Resource

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CARDS", "ColourTransfer", "Picture", "StyleFilter", "fit_pixels", "pick_style", "read_picture"]

STYLES = ("painting", "sketch", "color-sketch", "cartoon", "enhance")
DEFAULT_STYLE = "painting"
WORK_PIXELS = 4_000_000  # the styles run at most at this size and are scaled back: stylization costs ~1 s/Mpx

CARDS = [
    ModelCard(
        id="builtin/opencv-stylize",
        task="image-to-image",
        backend="builtin",
        description="OpenCV non-photorealistic filters picked by the instruction: painting (cv2.stylization; "
        "also for 'watercolor', 'artistic', 'oil'), pencil sketch in grey ('sketch', 'pencil', 'drawing') or colour "
        "('color sketch'), cartoon (bilateral smoothing + adaptive-threshold edges), detail enhancement ('enhance', "
        "'sharpen details'). An instruction naming no known style gets the painting look. Cannot follow "
        "free-form prompts or imitate a named artist (that needs a diffusion model). Option: style.",
        factory="baton.experts.builtin.imagestyle:StyleFilter",
        **OPENCV,
        memory_mb=200,
        python=("cv2", "numpy", "PIL"),
    ),
    ModelCard(
        id="builtin/reinhard-color-transfer",
        task="style-transfer",
        backend="builtin",
        description="Reinhard colour transfer: gives the content image the style image's palette and tone by "
        "matching the mean and spread of each Lab channel; shapes and edges stay. Moves colours only: no brush "
        "strokes or textures (that needs a neural style-transfer model). Option: strength (0-1, default 1).",
        factory="baton.experts.builtin.imagestyle:ColourTransfer",
        **OPENCV,
        memory_mb=150,
        python=("cv2", "numpy", "PIL"),
    ),
]


# reading and writing images, shared with imageedit and stitch


class Picture:
    """An image as OpenCV likes it: BGR uint8 pixels, the alpha plane apart (None when opaque)."""

    def __init__(self, bgr: np.ndarray, alpha: np.ndarray | None, suffix: str) -> None:
        self.bgr, self.alpha, self.suffix = bgr, alpha, suffix

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])

    def flattened(self) -> np.ndarray:
        """The BGR pixels laid over white where the image is transparent."""
        import numpy as np

        if self.alpha is None:
            return self.bgr
        weight = self.alpha[..., None].astype(np.float32) / 255
        return np.rint(self.bgr * weight + 255 * (1 - weight)).astype(np.uint8)

    def save(self, ctx: ExpertContext, stem: str, *, png: bool = False, description: str = "") -> Resource:
        """Store the image: JPEG (quality 95) when the input was a JPEG and stays opaque, PNG otherwise."""
        import numpy as np
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        rgb = np.ascontiguousarray(self.bgr[..., ::-1])
        if self.alpha is not None:
            image = Image.fromarray(np.dstack([rgb, self.alpha]), "RGBA")
        else:
            image = Image.fromarray(rgb, "RGB")
        if self.alpha is None and not png and not description and self.suffix in (".jpg", ".jpeg"):
            path = ctx.workdir / f"{stem}.jpg"
            image.save(path, quality=95)
        else:
            path = ctx.workdir / f"{stem}.png"
            info = PngInfo()
            if description:
                info.add_text("Description", description)
            image.save(path, pnginfo=info)
        return Resource.media(ctx.save_file(path))


def read_picture(resource: Resource, role: str = "image") -> Picture:
    """The image of an input port, upright (EXIF), within MAX_IMAGE_PIXELS; ExpertError when unusable."""
    import warnings

    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        path = resource.path
    except TypeError:
        raise ExpertError(f"the {role} input is {resource.kind} '{resource.describe(60)}', not an image") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_IMAGE_PIXELS:
                    raise ExpertError(
                        f"the {role} is {opened.width}x{opened.height} pixels, over the limit of "
                        f"{MAX_IMAGE_PIXELS:,}; resize it first"
                    )
                image = ImageOps.exif_transpose(opened)
                image.load()
    except ExpertError:
        raise
    except Image.DecompressionBombError:
        raise ExpertError(f"the {role} has far too many pixels; resize it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ExpertError(f"the {role} '{Path(path).name}' is not a readable image ({exc}); use PNG or JPEG") from None
    alpha = None
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        rgb, alpha = rgba[..., :3], np.ascontiguousarray(rgba[..., 3])
        if alpha.min() == 255:
            alpha = None
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float greys: stretch to 8 bits
        grey = np.asarray(image, dtype=np.float64)
        top = grey.max()
        grey = grey / top * 255 if top > 255 else grey
        rgb = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    else:
        rgb = np.asarray(image.convert("RGB"))
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    return Picture(bgr, alpha, Path(path).suffix.lower())


def fit_pixels(array: np.ndarray, max_pixels: int) -> np.ndarray:
    """The array scaled down (area interpolation) so that it has at most ``max_pixels`` pixels."""
    import cv2

    height, width = array.shape[:2]
    if height * width <= max_pixels:
        return array
    scale = (max_pixels / (height * width)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


# image-to-image styles

_STYLE_WORDS: list[tuple[str, str]] = [
    ("color-sketch", r"colou?r(?:ed)?[\s-]*(?:pencil|sketch|drawing)|pencil[\s-]*colou?r"),
    ("cartoon", r"cartoon|comic|anime|manga|toon|cel[\s-]*shad|pop[\s-]*art|animated|caricature"),
    ("sketch", r"sketch|pencil|drawing|drawn|draw\b|charcoal|line[\s-]*art|blueprint|graphite|ink\b"),
    ("enhance", r"enhanc|detail|sharpen|sharper|hdr|clarity|crisp|improve|quality|upscal|resolution|vivid"),
    ("painting", r"paint|styli[sz]|watercolou?r|oil\b|artistic|\bart\b|impressionis|van\s*gogh|monet|brush"),
]


def pick_style(text: str) -> str | None:
    """The style a free sentence asks for ('make it a pencil sketch' -> 'sketch'), or None."""
    lowered = text.lower()
    if lowered.strip() in STYLES:
        return lowered.strip()
    for style, pattern in _STYLE_WORDS:
        if re.search(pattern, lowered):
            return style
    return None


def _stylize(bgr: np.ndarray, style: str) -> np.ndarray:
    import cv2

    if style == "painting":
        return cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)
    if style == "enhance":
        return cv2.detailEnhance(bgr, sigma_s=10, sigma_r=0.15)
    if style in ("sketch", "color-sketch"):
        grey, colour = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
        return colour if style == "color-sketch" else cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    return _cartoon(bgr)


def _cartoon(bgr: np.ndarray, colours: int = 12) -> np.ndarray:
    """Flat areas of a few colours (bilateral smoothing, then k-means) inside dark adaptive-threshold edges."""
    import cv2
    import numpy as np

    height, width = bgr.shape[:2]
    small = cv2.pyrDown(bgr) if min(height, width) >= 128 else bgr.copy()
    for _ in range(6):
        small = cv2.bilateralFilter(small, 9, 40, 7)
    pixels = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).reshape(-1, 3).astype(np.float32)
    sample = pixels[np.random.default_rng(0).choice(len(pixels), min(len(pixels), 20_000), replace=False)]
    k = min(colours, len(np.unique(sample, axis=0)))
    flat = pixels.copy()
    if k >= 2:
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
        _, _, centres = cv2.kmeans(sample, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
        for start in range(0, len(pixels), 1_000_000):  # nearest centre, a million pixels at a time
            chunk = pixels[start : start + 1_000_000]
            nearest = (-2 * chunk @ centres.T + (centres**2).sum(axis=1)).argmin(axis=1)
            flat[start : start + 1_000_000] = centres[nearest]
    colour = flat.reshape(height, width, 3).astype(np.uint8)
    grey = cv2.medianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 7)
    block = max(3, (min(height, width) // 60) | 1)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 4)
    return cv2.bitwise_and(colour, colour, mask=edges)


class StyleFilter(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import cv2

        chosen = (options.get("style") or "").strip()
        if chosen:
            style = pick_style(chosen)
            if style is None:
                raise ExpertError(f"unknown style '{chosen}'; use one of: {', '.join(STYLES)}")
        else:
            instruction = inputs["instruction"].as_text() if "instruction" in inputs else ""
            style = pick_style(instruction) or DEFAULT_STYLE
        picture = read_picture(inputs["image"])
        work = fit_pixels(picture.bgr, WORK_PIXELS)
        styled = _stylize(work, style)
        if styled.shape[:2] != picture.bgr.shape[:2]:
            styled = cv2.resize(styled, (picture.width, picture.height), interpolation=cv2.INTER_CUBIC)
        return {"image": Picture(styled, picture.alpha, picture.suffix).save(ctx, style)}


# style-transfer


def _lab_stats(bgr: np.ndarray) -> tuple[Any, Any]:
    import cv2
    import numpy as np

    lab = cv2.cvtColor(fit_pixels(bgr, 1_000_000).astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
    return lab.reshape(-1, 3).mean(axis=0), lab.reshape(-1, 3).std(axis=0)


def transfer_colour(content: np.ndarray, style: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Reinhard et al. (2001): shift and scale each Lab channel of ``content`` to the style's mean and spread."""
    import cv2
    import numpy as np

    lab = cv2.cvtColor(content.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
    content_mean, content_std = _lab_stats(content)
    style_mean, style_std = _lab_stats(style)
    # a flat channel (a grey image's a/b) has no spread to scale: it takes the style's mean, no amplified noise
    ratio = np.where(content_std > 0.5, style_std / np.maximum(content_std, 1e-6), 0.0)
    ratio = np.minimum(ratio, 4.0)
    moved = (lab - content_mean) * ratio + style_mean
    moved[..., 0] = np.clip(moved[..., 0], 0, 100)
    result: np.ndarray = cv2.cvtColor(moved.astype(np.float32), cv2.COLOR_LAB2BGR) * 255
    if strength < 1:
        result = strength * result + (1 - strength) * content
    out: np.ndarray = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    return out


class ColourTransfer(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        raw = (options.get("strength") or "1").strip().rstrip("%")
        try:
            strength = float(raw)
        except ValueError:
            raise ExpertError(f"strength must be a number from 0 to 1, not '{options['strength']}'") from None
        if options.get("strength", "").strip().endswith("%") or 1 < strength <= 100:
            strength /= 100
        if not 0 <= strength <= 1:
            raise ExpertError(f"strength {raw} is out of range; use 0 (no change) to 1 (full style colours)")
        content = read_picture(inputs["image"], "content image")
        style = read_picture(inputs["style"], "style image")
        result = transfer_colour(content.bgr, style.bgr, strength)
        return {"image": Picture(result, content.alpha, content.suffix).save(ctx, "style-transfer")}
