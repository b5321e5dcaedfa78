"""ControlNet conditions drawn with classical image processing: Canny edges, straight lines, scribbles
and colour-region maps. Each keeps the input's size and draws white on black (the region map in colour),
the way ControlNet's own annotators do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext
from baton.experts.builtin.detect import load_rgb, save_image, shrink
from baton.media import Resource

if TYPE_CHECKING:
    from typing import TypeAlias

    Grey: TypeAlias = Any  # a (height, width) uint8 numpy array, 255 where something is drawn

__all__ = ["CARDS", "CannyControl", "LineControl", "ScribbleControl", "SegControl", "auto_canny", "line_segments"]


def _card(cond: str, name: str, cls: str, description: str, python: tuple[str, ...] = ("cv2", "numpy", "PIL")) -> Any:
    return ModelCard(
        id=f"builtin/{name}",
        task=f"{cond}-control",
        backend="builtin",
        description=description,
        factory=f"baton.experts.builtin.controlnet:{cls}",
        popularity=80_000 if "skimage" not in python else 6_000,
        popularity_source="GitHub stars of opencv/opencv"
        if "skimage" not in python
        else "GitHub stars of scikit-image/scikit-image",
        memory_mb=80,
        licence="Apache-2.0" if "skimage" not in python else "BSD-3-Clause",
        python=python,
        extra="vision",
    )


CARDS = [
    _card(
        "canny",
        "opencv-canny",
        "CannyControl",
        "OpenCV Canny edge map for ControlNet: white edges on black, same size as the input; thresholds set "
        "automatically from the image's median brightness.",
    ),
    _card(
        "mlsd",
        "opencv-lsd",
        "LineControl",
        "Straight-line map for ControlNet (M-LSD style) from OpenCV's LSD line segment detector: white line "
        "segments on black. Classical, not the learned M-LSD wireframe model: it also draws straight edges of "
        "textures and small objects, and curved outlines are left out.",
    ),
    _card(
        "scribble",
        "opencv-scribble",
        "ScribbleControl",
        "Scribble map for ControlNet: the image's main edges (Canny on a smoothed copy, specks dropped) "
        "thickened into white strokes on black. Traces outlines; it does not simplify a scene the way a "
        "person's sketch would.",
    ),
    _card(
        "seg",
        "slic-seg-control",
        "SegControl",
        "Segmentation map for ControlNet: colour regions (SLIC superpixels merged by colour) painted in "
        "ADE20K palette colours, largest region first. The colours mark regions, not ADE20K classes: "
        "a region painted the 'sky' colour is not known to be sky.",
        python=("skimage", "cv2", "numpy", "PIL"),
    ),
]


def _grey(rgb: Any) -> Grey:
    import cv2

    grey: Grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return grey


def auto_canny(grey: Grey, sigma: float = 0.33) -> Grey:
    """Canny edges (255 on 0) with thresholds around the median brightness, clamped to sane bounds."""
    import cv2
    import numpy as np

    blurred = cv2.GaussianBlur(grey, (5, 5), 0)
    median = float(np.median(blurred))
    low = int(min(150, max(20, (1 - sigma) * median)))
    high = int(min(250, max(low + 30, (1 + sigma) * median)))
    edges: Grey = cv2.Canny(blurred, low, high)
    return edges


def _rgb_of(mask: Grey) -> Any:
    import numpy as np

    return np.dstack([mask, mask, mask])


class CannyControl(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        rgb = load_rgb(inputs["image"].path)
        return {"image": save_image(ctx, _rgb_of(auto_canny(_grey(rgb))), "canny.png")}


def line_segments(grey: Grey, min_length: float | None = None) -> list[tuple[float, float, float, float]]:
    """Straight segments (x0, y0, x1, y1) in ``grey``'s pixels, at least ``min_length`` long.

    LSD runs on the image scaled to 1024 pixels at most; HoughLinesP on Canny edges stands in where an
    OpenCV build lacks LSD. The default minimum length is 3% of the image's diagonal (at least 8 pixels).
    """
    import math

    import cv2
    import numpy as np

    height, width = grey.shape[:2]
    if min_length is None:
        min_length = max(8.0, 0.03 * math.hypot(width, height))
    small, scale = shrink(grey, 1024)
    found: list[tuple[float, float, float, float]] = []
    try:
        detector = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
        lines: Any = detector.detect(small)[0]
    except cv2.error:
        edges = auto_canny(small)
        reach = max(8, int(min_length * scale))
        lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(10, reach // 2), minLineLength=reach, maxLineGap=3)
    if lines is None:
        return found
    for x0, y0, x1, y1 in np.asarray(lines, dtype=np.float64).reshape(-1, 4):
        segment = (float(x0) / scale, float(y0) / scale, float(x1) / scale, float(y1) / scale)
        if math.hypot(segment[2] - segment[0], segment[3] - segment[1]) >= min_length:
            found.append(segment)
    return found


class LineControl(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import cv2
        import numpy as np

        rgb = load_rgb(inputs["image"].path)
        grey = _grey(rgb)
        canvas = np.zeros_like(grey)
        thickness = max(1, round(max(grey.shape) / 512))
        for x0, y0, x1, y1 in line_segments(grey):
            cv2.line(canvas, (round(x0), round(y0)), (round(x1), round(y1)), 255, thickness, cv2.LINE_8)
        return {"image": save_image(ctx, _rgb_of(canvas), "lines.png")}


def scribble(rgb: Any) -> Grey:
    """Thick white strokes on black along the image's main edges."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    small, _ = shrink(rgb, 768)
    smooth = cv2.bilateralFilter(small, 9, 60, 9)
    edges = auto_canny(_grey(cv2.medianBlur(smooth, 5)))
    count, blobs, stats, _ = cv2.connectedComponentsWithStats(edges, connectivity=8)
    if count > 1:  # drop specks: edge pieces shorter than 2% of the longer side
        least = max(6, int(0.02 * max(small.shape[:2])))
        keep = np.zeros(count, np.uint8)
        keep[1:] = np.where(stats[1:, cv2.CC_STAT_AREA] >= least, 255, 0)
        edges = keep[blobs]
    size = max(3, round(max(small.shape[:2]) / 150)) | 1
    strokes = cv2.dilate(edges, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    full = cv2.resize(strokes, (width, height), interpolation=cv2.INTER_LINEAR)
    result: Grey = np.where(full >= 128, 255, 0).astype(np.uint8)
    return result


class ScribbleControl(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        rgb = load_rgb(inputs["image"].path)
        return {"image": save_image(ctx, _rgb_of(scribble(rgb)), "scribble.png")}


class SegControl(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        from baton.experts.builtin.segment import PALETTE, paint, segment_regions

        rgb = load_rgb(inputs["image"].path)
        return {"image": save_image(ctx, paint(segment_regions(rgb), PALETTE), "seg.png")}
