"""object-detection with OpenCV's classical detectors: Haar cascades and the HOG people detector.

The cascades ship inside opencv-python-headless (``cv2.data.haarcascades``), so nothing is downloaded.
They find only a few kinds of object: frontal human faces, eyes (inside found faces), frontal cat
faces, Russian-style licence plates, and upright people (HOG). The module also holds the image helpers
the other builtin vision experts of this family share (``load_rgb``, ``shrink``, ``save_image``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.cards import OPENCV
from baton.media import MAX_IMAGE_PIXELS, Resource

if TYPE_CHECKING:
    from typing import TypeAlias

    RGB: TypeAlias = Any  # an (height, width, 3) uint8 numpy array

__all__ = ["CARDS", "ClassicalDetector", "load_rgb", "save_image", "shrink"]

KINDS = ("face", "eye", "person", "cat face", "licence plate")

CARDS = [
    ModelCard(
        id="builtin/opencv-detect",
        task="object-detection",
        backend="builtin",
        description="OpenCV classical detector: faces, eyes, people, cat faces, licence plates only "
        "(Haar cascades for frontal human faces, eyes inside them, frontal cat faces and Russian-style "
        "licence plates; HOG for upright people). It knows no other objects (no cars, dogs, furniture), "
        "misses turned or small faces and can make false detections; scores are heuristic confidences. "
        "Outputs the boxes as json and the image with labelled boxes. "
        "Option: kinds (comma-separated subset of: face, eye, person, cat face, licence plate).",
        factory="baton.experts.builtin.detect:ClassicalDetector",
        **OPENCV,
        memory_mb=80,
        python=("cv2", "numpy", "PIL"),
    )
]


# ---------------------------------------------------------------- shared image helpers


def load_rgb(path: Path) -> RGB:
    """The image at ``path`` as an RGB uint8 array (EXIF orientation applied, transparency on white).

    Raises ExpertError for an unreadable file or one over media.MAX_IMAGE_PIXELS.
    """
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow's own, larger limit: the check below says it better
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ExpertError(
                        f"the image is {width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS:,}; resize it first"
                    )
                image = ImageOps.exif_transpose(opened)
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    rgba = image.convert("RGBA")
                    image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ExpertError:
        raise
    except Image.DecompressionBombError:
        raise ExpertError(f"the image has far too many pixels (over {MAX_IMAGE_PIXELS:,}); resize it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ExpertError(f"'{path.name}' is not a readable image ({exc}); re-save it as PNG or JPEG") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise ExpertError(f"'{path.name}' holds no pixels; give a real image")
    return rgb


def shrink(rgb: RGB, max_side: int) -> tuple[RGB, float]:
    """The image scaled down so that its longer side is at most ``max_side``, and the scale used (<= 1)."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def save_image(ctx: ExpertContext, array: Any, name: str) -> Resource:
    """Write an RGB, RGBA or grey uint8 array as ``name`` (a .png) in the workdir and store it."""
    from PIL import Image

    path = ctx.workdir / name
    Image.fromarray(array).save(path, optimize=False)
    return Resource.media(ctx.save_file(path))


# ---------------------------------------------------------------- detection


@dataclass
class Found:
    label: str
    score: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the original image

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 3), "box": list(self.box)}


_COLOURS = {
    "face": (230, 25, 75),
    "eye": (60, 180, 75),
    "person": (0, 130, 200),
    "cat face": (245, 130, 48),
    "licence plate": (145, 30, 180),
}

_WORDS = (
    (re.compile(r"\beyes?\b"), "eye"),
    (re.compile(r"\b(cats?|kittens?|kitty)\b"), "cat face"),
    (re.compile(r"\b(plates?|licen[cs]e|number ?plates?|registration)\b"), "licence plate"),
    (re.compile(r"\bfaces?\b|\bheads?\b"), "face"),
    (
        re.compile(r"\b(persons?|people|pedestrians?|humans?|bod(y|ies)|m[ae]n|wom[ae]n|child(ren)?|figures?)\b"),
        "person",
    ),
)


def parse_kinds(text: str) -> list[str]:
    """The kinds named in an option such as 'faces, cats' or 'people and licence plates'."""
    wanted: list[str] = []
    for part in re.split(r",|;|/|\+|\band\b|\bor\b", text.lower()):
        part = part.strip()
        if not part or part in ("all", "any", "everything", "objects"):
            continue
        kind = next((k for pattern, k in _WORDS if pattern.search(part)), None)
        if kind is None:
            raise ExpertError(
                f"the classical detector cannot find '{part}': it knows only {', '.join(KINDS)}; "
                "pick from those in the kinds option, or use a Hub object-detection model for other objects"
            )
        if kind not in wanted:
            wanted.append(kind)
    return wanted or list(KINDS)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _suppress(found: list[Found], overlap: float = 0.3) -> list[Found]:
    """Greedy non-maximum suppression within each label, best score first."""
    kept: list[Found] = []
    for item in sorted(found, key=lambda f: -f.score):
        if all(k.label != item.label or _iou(k.box, item.box) < overlap for k in kept):
            kept.append(item)
    return kept


class ClassicalDetector(Expert):
    WORK_SIDE = 1024  # detection runs on the image scaled down to this longer side

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        kinds = parse_kinds(options.get("kinds", ""))
        rgb = load_rgb(inputs["image"].path)
        found = detect(rgb, kinds, self.WORK_SIDE)
        drawn = draw_boxes(rgb, found)
        result = {
            "objects": [f.to_json() for f in found],
            "searched": kinds,
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
        }
        return {"image": save_image(ctx, drawn, "detected.png"), "json": Resource.json_value(result)}


def _cascade(name: str) -> Any:
    import importlib

    import cv2

    folder = importlib.import_module("cv2.data").haarcascades  # the cascades inside opencv-python-headless
    classifier = cv2.CascadeClassifier(str(Path(folder) / name))
    if classifier.empty():
        raise ExpertError(
            f"OpenCV's cascade file {name} is missing or unreadable; reinstall it: pip install 'baton[vision]'"
        )
    return classifier


def _neighbour_score(neighbours: int) -> float:
    """A confidence in 0..1 from how many overlapping windows agreed on a cascade detection."""
    return neighbours / (neighbours + 4)


def detect(rgb: RGB, kinds: list[str], work_side: int = 1024) -> list[Found]:
    """Objects of the given kinds in the image, boxes in its own pixel coordinates, best first per kind."""
    import cv2
    import numpy as np

    small, scale = shrink(rgb, work_side)
    height, width = rgb.shape[:2]
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    equalised = cv2.equalizeHist(grey)
    min_side = max(20, min(grey.shape) // 30)
    found: list[Found] = []

    def to_box(x: float, y: float, w: float, h: float) -> tuple[int, int, int, int]:
        x0, y0 = max(0, round(x / scale)), max(0, round(y / scale))
        x1, y1 = min(width, round((x + w) / scale)), min(height, round((y + h) / scale))
        return x0, y0, x1, y1

    def cascade(name: str, image: Any, neighbours: int, **kwargs: Any) -> list[tuple[int, int, int, int, int]]:
        boxes, counts = _cascade(name).detectMultiScale2(image, minNeighbors=neighbours, **kwargs)
        return [(int(x), int(y), int(w), int(h), int(n)) for (x, y, w, h), n in zip(boxes, counts, strict=True)]

    if "face" in kinds or "eye" in kinds:
        faces = cascade("haarcascade_frontalface_alt2.xml", equalised, 5, scaleFactor=1.1, minSize=(min_side, min_side))
        for x, y, w, h, n in faces:
            if "face" in kinds:
                found.append(Found("face", _neighbour_score(n), to_box(x, y, w, h)))
            if "eye" in kinds:  # eyes only inside a face: alone the eye cascade fires on any dark spot
                top = equalised[y : y + int(h * 0.6), x : x + w]
                eye_min = max(8, w // 10)
                eyes = cascade(
                    "haarcascade_eye.xml",
                    top,
                    5,
                    scaleFactor=1.1,
                    minSize=(eye_min, eye_min),
                    maxSize=(w // 2, w // 2),
                )
                for ex, ey, ew, eh, en in sorted(eyes, key=lambda e: -e[4])[:2]:
                    found.append(Found("eye", _neighbour_score(en), to_box(x + ex, y + ey, ew, eh)))

    if "cat face" in kinds:
        cat = "haarcascade_frontalcatface_extended.xml"
        for x, y, w, h, n in cascade(cat, grey, 5, scaleFactor=1.1, minSize=(min_side, min_side)):
            found.append(Found("cat face", _neighbour_score(n), to_box(x, y, w, h)))
        found.extend(_cat_close_ups(grey, scale, width, height))

    if "licence plate" in kinds:
        plates = cascade("haarcascade_russian_plate_number.xml", grey, 5, scaleFactor=1.1, minSize=(min_side, 10))
        for x, y, w, h, n in plates:
            found.append(Found("licence plate", _neighbour_score(n), to_box(x, y, w, h)))

    if "person" in kinds and min(small.shape[:2]) >= 128:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))
        boxes, weights = hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        for (x, y, w, h), weight in zip(boxes, np.ravel(weights), strict=True):
            if weight >= 0.8:  # weaker SVM margins are mostly posts, trees and drawings
                score = float(1 / (1 + np.exp(-2.0 * (float(weight) - 0.5))))
                found.append(Found("person", score, to_box(float(x), float(y), float(w), float(h))))

    kept = _suppress(found)
    return sorted(kept, key=lambda f: (KINDS.index(f.label), -f.score))


def _cat_close_ups(grey: Any, scale: float, width: int, height: int) -> list[Found]:
    """Cat faces that fill the frame, ears cut off: found on small copies with a margin around them.

    The cat cascades are fragile at that scale, so both run on five sizes and a box counts only when
    at least two of those ten passes agree on it; its score is the share of passes that found it.
    """
    import cv2
    import numpy as np

    hits: list[tuple[float, float, float, float]] = []
    passes = 0
    for side in (96, 128, 160, 192, 224):
        close, close_scale = shrink(grey, side)
        pad = max(close.shape) // 2
        padded = cv2.copyMakeBorder(close, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        least = int(0.4 * side)
        for name in ("haarcascade_frontalcatface_extended.xml", "haarcascade_frontalcatface.xml"):
            passes += 1
            boxes, _ = _cascade(name).detectMultiScale2(
                padded, scaleFactor=1.03, minNeighbors=3, minSize=(least, least)
            )
            for x, y, w, h in boxes:
                factor = close_scale * scale
                x0, y0 = (x - pad) / factor, (y - pad) / factor
                hits.append((x0, y0, x0 + w / factor, y0 + h / factor))
    clusters: list[list[tuple[float, float, float, float]]] = []
    for hit in hits:
        home = next((c for c in clusters if _iou(_round(np.median(c, axis=0)), _round(hit)) >= 0.5), None)
        if home is None:
            clusters.append([hit])
        else:
            home.append(hit)
    found = []
    for cluster in clusters:
        if len(cluster) >= 2:
            x0, y0, x1, y1 = np.median(cluster, axis=0)
            box = (max(0, round(x0)), max(0, round(y0)), min(width, round(x1)), min(height, round(y1)))
            found.append(Found("cat face", len(cluster) / passes, box))
    return found


def _round(box: Any) -> tuple[int, int, int, int]:
    return round(box[0]), round(box[1]), round(box[2]), round(box[3])


def draw_boxes(rgb: RGB, found: list[Found]) -> RGB:
    """The image with each object's box and 'label score' drawn on it."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(rgb)
    pen = ImageDraw.Draw(image)
    side = min(image.size)
    line = max(2, side // 250)
    font = ImageFont.load_default(size=max(12, side // 40))
    for item in found:
        colour = _COLOURS.get(item.label, (255, 225, 25))
        x0, y0, x1, y1 = item.box
        pen.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        caption = f"{item.label} {item.score:.2f}"
        left, top, right, bottom = pen.textbbox((0, 0), caption, font=font)
        tw, th = right - left, bottom - top
        ty = y0 - th - 2 * line if y0 - th - 2 * line >= 0 else y0
        pen.rectangle((x0, ty, x0 + tw + 2 * line, ty + th + 2 * line), fill=colour)
        pen.text((x0 + line - left, ty + line - top), caption, fill=(255, 255, 255), font=font)
    return np.asarray(image)
