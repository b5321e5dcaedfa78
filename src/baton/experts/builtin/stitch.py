"""image-stitcher with OpenCV's Stitcher; a side-by-side collage when the two images do not overlap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.cards import OPENCV
from baton.experts.builtin.imagestyle import Picture, fit_pixels, read_picture
from baton.media import MAX_IMAGE_PIXELS, Resource

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CARDS", "Stitcher", "collage", "stitch"]

MODES = ("auto", "scans", "panorama", "collage")
STITCH_PIXELS = 8_000_000  # each input is scaled down to this before stitching, to bound time and memory
MIN_COLLAGE_HEIGHT = 256

CARDS = [
    ModelCard(
        id="builtin/opencv-stitcher",
        task="image-stitcher",
        backend="builtin",
        description="OpenCV Stitcher: joins two overlapping photos into one wider image (feature matching, "
        "SCANS mode for flat scans and shifted shots, PANORAMA mode for a turning camera). When the images do not "
        "overlap, show the same view, or stitching fails, it lays them side by side instead (the shorter height, "
        "at least 256 px) and says so in the PNG's Description. Option: mode (auto, scans, panorama, collage).",
        factory="baton.experts.builtin.stitch:Stitcher",
        **OPENCV,
        memory_mb=400,
        python=("cv2", "numpy", "PIL"),
    )
]


def stitch(first: np.ndarray, second: np.ndarray, mode: str) -> np.ndarray | None:
    """The two BGR images stitched in 'scans' or 'panorama' mode, or None when they do not make a wider view."""
    import cv2
    import numpy as np

    first, second = fit_pixels(first, STITCH_PIXELS), fit_pixels(second, STITCH_PIXELS)
    stitcher = cv2.Stitcher.create(cv2.Stitcher_SCANS if mode == "scans" else cv2.Stitcher_PANORAMA)
    try:
        status, result = stitcher.stitch([first, second])
    except cv2.error:
        return None
    if status != cv2.Stitcher_OK or result is None or result.size == 0:
        return None
    area = result.shape[0] * result.shape[1]
    areas = [image.shape[0] * image.shape[1] for image in (first, second)]
    if area < 1.05 * max(areas):
        return None  # one image holds (nearly) all of the other: a panorama would just repeat it
    if area > 1.6 * sum(areas) or area > MAX_IMAGE_PIXELS:
        return None  # a wild warp from a false match, not a panorama
    stitched = np.asarray(result)
    if float((stitched.max(axis=2) == 0).mean()) > 0.4:
        return None  # mostly empty canvas around a thin warped strip
    return stitched


def collage(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The two images side by side at one height: the shorter one's, but at least 256 px (or the taller's)."""
    import cv2
    import numpy as np

    heights = [first.shape[0], second.shape[0]]
    height = min(max(heights), max(min(heights), MIN_COLLAGE_HEIGHT))
    parts = []
    for image in (first, second):
        if image.shape[0] != height:
            width = max(1, round(image.shape[1] * height / image.shape[0]))
            shrink = height < image.shape[0]
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        parts.append(image)
    return fit_pixels(np.hstack(parts), MAX_IMAGE_PIXELS)


class Stitcher(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        from baton.tasks import get_task

        mode = (options.get("mode") or "auto").strip().lower()
        if mode not in MODES:
            raise ExpertError(f"unknown stitching mode '{mode}'; use one of: {', '.join(MODES)}")
        first = read_picture(inputs["image"], "first image")
        second = read_picture(inputs["image2"], "second image")
        result = None
        if mode != "collage":
            for attempt in ("scans", "panorama") if mode == "auto" else (mode,):
                result = stitch(first.flattened(), second.flattened(), attempt)
                if result is not None:
                    note = (
                        f"Stitched the two images ({first.width}x{first.height} and {second.width}x{second.height}) "
                        f"into one {result.shape[1]}x{result.shape[0]} image ({attempt} mode)."
                    )
                    break
        if result is None:
            result = collage(first.flattened(), second.flattened())
            why = "collage was asked for" if mode == "collage" else "the images do not overlap enough to stitch"
            note = (
                f"Side-by-side collage, not a panorama: {why}. The two images "
                f"({first.width}x{first.height} and {second.width}x{second.height}) are placed next to each other "
                f"at one height ({result.shape[1]}x{result.shape[0]})."
            )
        outputs = {"image": Picture(result, None, ".png").save(ctx, "stitched", png=True, description=note)}
        text_port = next((p for p in get_task("image-stitcher").outputs if p.kind == "text"), None)
        if text_port is not None:  # the task declares a text output: the note goes there too
            outputs[text_port.name] = Resource.text(note)
        return outputs
