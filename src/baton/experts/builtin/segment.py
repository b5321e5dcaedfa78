"""image-segmentation by colour regions, and background-removal with GrabCut.

Segmentation: SLIC superpixels (scikit-image) merged greedily by mean Lab colour into a few connected
regions; the output is a coloured label map and per-segment stats. It groups pixels by colour and
place, not by meaning: it does not know what the regions are.

Background removal: OpenCV's GrabCut, started from a rectangle a little inside the image border
(the border is taken as background), gives an RGBA PNG whose background is transparent.
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.cards import OPENCV
from baton.experts.builtin.detect import load_rgb, save_image, shrink
from baton.media import Resource

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["CARDS", "ColourSegmenter", "GrabCutCutout", "Regions", "colour_name", "segment_regions"]

CARDS = [
    ModelCard(
        id="builtin/slic-segment",
        task="image-segmentation",
        backend="builtin",
        description="Colour-region segmentation: SLIC superpixels (scikit-image) merged by colour into a few "
        "connected regions; a coloured label map and json stats per segment (area, share, mean colour, box). "
        "Groups pixels by colour, not by meaning: it does not name objects (no 'person' or 'car' classes). "
        "Option: segments (the most segments to keep, 1-50; default: as many as the colours call for, up to 12).",
        factory="baton.experts.builtin.segment:ColourSegmenter",
        popularity=6_000,
        popularity_source="GitHub stars of scikit-image/scikit-image",
        memory_mb=150,
        licence="BSD-3-Clause",
        python=("skimage", "cv2", "numpy", "PIL"),
        extra="vision",
    ),
    ModelCard(
        id="builtin/grabcut",
        task="background-removal",
        backend="builtin",
        description="OpenCV GrabCut cut-out: the image as an RGBA PNG with a transparent background. It assumes "
        "the subject sits inside the frame and the image border is background; subjects touching the edges, "
        "busy backgrounds or colours like the background's give rough or wrong cut-outs.",
        factory="baton.experts.builtin.segment:GrabCutCutout",
        **OPENCV,
        memory_mb=150,
        python=("cv2", "numpy", "PIL"),
    ),
]

# the ADE20K palette (mmsegmentation's order, duplicates dropped): distinct colours for label maps
PALETTE: tuple[tuple[int, int, int], ...] = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (250, 10, 15), (20, 255, 0),
)  # fmt: skip

# 20 easily told apart colours (Sasha Trubetskoy's list) for the image-segmentation label map
DISTINCT: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
    (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip

WORK_SIDE = 384  # segmentation runs on the image scaled to this longer side; labels are scaled back
MAX_SEGMENTS = 50
DEFAULT_SEGMENTS = 12
MERGE_DISTANCE = 12.0  # Lab distance under which neighbouring regions always merge
WARD = True
SMALL_SHARE = 0.004  # regions under this share of the image are merged into their closest neighbour


@dataclass
class Regions:
    """A segmentation: labels 0..n-1 per pixel of the original image, largest segment first."""

    labels: NDArray[np.int32]
    count: int


def parse_segments(text: str) -> int | None:
    """The number in a 'segments' option such as '5' or 'five segments'; None when not given."""
    text = text.strip().lower()
    if not text:
        return None
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
    words |= {"ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20}
    match = re.search(r"\d+", text)
    number = int(match.group()) if match else next((v for k, v in words.items() if re.search(rf"\b{k}\b", text)), None)
    if number is None or not 1 <= number <= MAX_SEGMENTS:
        raise ExpertError(f"segments must be a whole number from 1 to {MAX_SEGMENTS}, not '{text}'")
    return number


def segment_regions(rgb: Any, max_segments: int | None = None) -> Regions:
    """Split an RGB image into connected colour regions (at most ``max_segments``, default up to 12)."""
    import cv2
    import numpy as np
    from skimage.color import rgb2lab
    from skimage.segmentation import slic

    height, width = rgb.shape[:2]
    small, _ = shrink(rgb, WORK_SIDE)
    lab = rgb2lab(small).reshape(-1, 3)
    superpixels = slic(small, n_segments=300, compactness=10, start_label=0, convert2lab=True).astype(np.int64)
    n = int(superpixels.max()) + 1
    flat = superpixels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=lab[:, c], minlength=n) for c in range(3)], axis=1)

    pairs = np.concatenate(
        [
            np.stack([superpixels[:, :-1].ravel(), superpixels[:, 1:].ravel()], axis=1),
            np.stack([superpixels[:-1, :].ravel(), superpixels[1:, :].ravel()], axis=1),
        ]
    )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    neighbours: dict[int, set[int]] = {i: set() for i in range(n) if area[i] > 0}
    for a, b in np.unique(np.sort(pairs, axis=1), axis=0).tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    parent = list(range(n))
    total = float(area.sum())
    limit = max_segments or DEFAULT_SEGMENTS
    sizes: list[float] = area.tolist()
    colours: list[list[float]] = sums.tolist()
    version = [0] * n

    def distance(a: int, b: int) -> float:
        return math.dist([v / sizes[a] for v in colours[a]], [v / sizes[b] for v in colours[b]])

    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int) -> None:  # Ward's cost: how much merging a and b adds to the colour variance
        for b in neighbours[a]:
            d = distance(a, b)
            cost = d * d * sizes[a] * sizes[b] / (sizes[a] + sizes[b]) if WARD else d
            heapq.heappush(heap, (cost, a, b, version[a], version[b]))

    def merge(keep: int, gone: int) -> None:
        sizes[keep] += sizes[gone]
        colours[keep] = [x + y for x, y in zip(colours[keep], colours[gone], strict=True)]
        parent[gone] = keep
        version[keep] += 1
        version[gone] += 1
        for other in neighbours.pop(gone):
            neighbours[other].discard(gone)
            if other != keep:
                neighbours[other].add(keep)
                neighbours[keep].add(other)
        push(keep)

    for a in neighbours:
        push(a)
    while len(neighbours) > 1 and heap:
        _, a, b, version_a, version_b = heapq.heappop(heap)
        if a not in neighbours or b not in neighbours or version[a] != version_a or version[b] != version_b:
            continue  # stale: one of the two has merged since
        if len(neighbours) <= limit and distance(a, b) > MERGE_DISTANCE:
            if not WARD:
                break
            continue
        merge(a, b) if sizes[a] >= sizes[b] else merge(b, a)

    while len(neighbours) > 1:  # specks: fold each region under SMALL_SHARE into its most similar neighbour
        specks = [r for r in neighbours if sizes[r] / total < SMALL_SHARE and neighbours[r]]
        if not specks:
            break
        r = min(specks, key=lambda i: sizes[i])
        merge(min(neighbours[r], key=lambda o: distance(r, o)), r)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    roots = sorted(neighbours, key=lambda r: -sizes[r])
    rank = {r: index for index, r in enumerate(roots)}
    lookup = np.array([rank.get(root(i), 0) for i in range(n)], dtype=np.uint16)
    labels_small = lookup[superpixels]
    labels = cv2.resize(labels_small, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.int32)
    return Regions(labels=labels, count=len(roots))


def region_stats(rgb: Any, regions: Regions) -> list[dict[str, Any]]:
    """Per segment: label, area in pixels, share of the image, mean colour (RGB, hex, name), box."""
    import numpy as np
    from scipy import ndimage

    flat = regions.labels.ravel()
    total = flat.size
    area = np.bincount(flat, minlength=regions.count)
    means = (
        np.stack([np.bincount(flat, weights=rgb[..., c].ravel(), minlength=regions.count) for c in range(3)], axis=1)
        / np.maximum(area, 1)[:, None]
    )
    boxes = ndimage.find_objects(regions.labels + 1, max_label=regions.count)
    stats = []
    for index in range(regions.count):
        if area[index] == 0 or boxes[index] is None:
            continue
        rows, cols = boxes[index]
        colour = tuple(round(float(v)) for v in means[index])
        stats.append(
            {
                "label": f"segment {index + 1}",
                "area": int(area[index]),
                "share": round(float(area[index]) / total, 4),
                "mean_colour": list(colour),
                "hex": "#{:02x}{:02x}{:02x}".format(*colour),
                "colour_name": colour_name(colour),
                "box": [int(cols.start), int(rows.start), int(cols.stop), int(rows.stop)],
            }
        )
    return stats


def paint(regions: Regions, palette: tuple[tuple[int, int, int], ...] = DISTINCT) -> Any:
    """The label map as an RGB image, segment i in palette colour i (wrapping round the palette)."""
    import numpy as np

    colours = np.array(palette, dtype=np.uint8)
    return colours[regions.labels % len(palette)]


def colour_name(rgb: tuple[int, ...]) -> str:
    """A plain name for a colour: 'dark blue', 'light grey', 'orange', ..."""
    import colorsys

    r, g, b = (v / 255 for v in rgb[:3])
    hue, lightness, _ = colorsys.rgb_to_hls(r, g, b)
    chroma = max(r, g, b) - min(r, g, b)
    if lightness < 0.12:
        return "black"
    if chroma < 0.08:
        if lightness > 0.88:
            return "white"
        return "dark grey" if lightness < 0.4 else "light grey" if lightness > 0.7 else "grey"
    degrees = hue * 360
    names = (
        (15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (255, "blue"),
        (290, "purple"), (335, "pink"), (360, "red"),
    )  # fmt: skip
    name = next(n for limit, n in names if degrees < limit)
    warm = name in ("red", "orange", "yellow")
    if chroma < 0.25:  # washed-out colours: skin, wood, sand, stone
        if warm:
            return "beige" if lightness > 0.55 else "brown"
        return f"greyish {name}"
    if name == "orange" and lightness < 0.35:
        name = "brown"
    if lightness > 0.9:
        return "white"
    if lightness < 0.3:
        return f"dark {name}"
    if lightness > 0.75:
        return f"light {name}"
    return name


class ColourSegmenter(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        wanted = parse_segments(options.get("segments", ""))
        rgb = load_rgb(inputs["image"].path)
        regions = segment_regions(rgb, wanted)
        stats = region_stats(rgb, regions)
        result = {"segments": stats, "count": len(stats), "width": int(rgb.shape[1]), "height": int(rgb.shape[0])}
        return {"image": save_image(ctx, paint(regions), "segments.png"), "json": Resource.json_value(result)}


GRABCUT_SIDE = 512  # GrabCut runs on the image scaled to this longer side; the mask is scaled back
MARGIN = 0.04  # share of each side taken as sure background around the starting rectangle


def cut_out(rgb: Any) -> Any:
    """The foreground alpha mask (uint8, 0 or 255 with a soft edge) of an RGB image, by GrabCut."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    if min(height, width) < 16:
        raise ExpertError(f"the image is {width}x{height} pixels, too small to cut out; give one at least 16 pixels")
    small, _ = shrink(rgb, GRABCUT_SIDE)
    h, w = small.shape[:2]
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    mx, my = max(2, round(w * MARGIN)), max(2, round(h * MARGIN))
    mask = np.zeros((h, w), np.uint8)
    bg_model, fg_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(bgr, mask, (mx, my, w - 2 * mx, h - 2 * my), bg_model, fg_model, 5, cv2.GC_INIT_WITH_RECT)
    foreground = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    # keep the larger blobs only: GrabCut leaves crumbs of background that match the subject's colours
    count, blobs, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    if count > 1:
        biggest = int(stats[1:, cv2.CC_STAT_AREA].max())
        keep = np.zeros(count, np.uint8)
        keep[1:] = np.where(stats[1:, cv2.CC_STAT_AREA] >= max(0.05 * biggest, 0.001 * h * w), 255, 0)
        foreground = keep[blobs]
    if int(np.count_nonzero(foreground)) < 0.002 * h * w:
        raise ExpertError(
            "no foreground subject stands out from the background here (the image looks uniform); "
            "background removal needs a subject inside the frame that differs from the image border"
        )
    alpha = cv2.resize(foreground, (width, height), interpolation=cv2.INTER_LINEAR)
    blur = max(1, round(max(height, width) / 512)) * 2 + 1
    return cv2.GaussianBlur(alpha, (blur, blur), 0)


class GrabCutCutout(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import numpy as np

        rgb = load_rgb(inputs["image"].path)
        alpha = cut_out(rgb)
        rgba = np.dstack([rgb, alpha])
        return {"image": save_image(ctx, rgba, "cutout.png")}
