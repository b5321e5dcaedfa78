"""instruct-image-editing from a small grammar of whole-image edits, and remove-object by OpenCV inpainting.

The editor reads a free sentence ("rotate it 90 degrees to the left, then make it black and white"),
splits it into clauses and applies each understood edit in order. A clause it does not understand
("make the sky blue") stops the whole edit with an error that names the clause, lists what the
builtin editor understands and says that a diffusion editor (instruct-pix2pix) is needed: an edit is
never silently skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.builtin.cards import OPENCV
from baton.experts.builtin.imagestyle import Picture, read_picture
from baton.media import MAX_IMAGE_PIXELS, Resource

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CARDS", "Edit", "ImageEditor", "ObjectRemover", "parse_edits"]

UNDERSTOOD = (
    "rotate (90/180/any degrees, left/right, clockwise/counterclockwise), "
    "flip or mirror (horizontal/vertical), "
    "crop (to the center, the left/right/top/bottom half or third, a corner quarter, a square, WxH, "
    "N%, or a box x0,y0,x1,y1 in pixels or fractions), "
    "resize/scale (to WxH, to N pixels wide/high, by N%, Nx, half/double size, smaller/bigger), "
    "grayscale/black and white, blur (N pixels, slightly/strongly), sharpen, "
    "brightness/contrast/saturation up or down (by N%), invert"
)
DIFFUSION = "a diffusion editor such as instruct-pix2pix (timbrooks/instruct-pix2pix)"

CARDS = [
    ModelCard(
        id="builtin/opencv-image-editor",
        task="instruct-image-editing",
        backend="builtin",
        description=f"Whole-image edits from a written instruction, applied in order: {UNDERSTOOD}. "
        "'rotate 90' turns clockwise. Cannot change objects, colours of parts, backgrounds or styles "
        f"('make the car red'): those are refused and need {DIFFUSION}.",
        factory="baton.experts.builtin.imageedit:ImageEditor",
        **OPENCV,
        memory_mb=150,
        python=("cv2", "numpy", "PIL"),
    ),
    ModelCard(
        id="builtin/opencv-inpaint",
        task="remove-object",
        backend="builtin",
        description="Removes what a box or a colour marks and fills the gap by OpenCV inpainting (Telea): "
        "give a box 'x0,y0,x1,y1' (pixels, or fractions 0-1) or a uniformly coloured object ('the red circle' "
        "removes every sizeable red area). Cannot find objects by name ('the dog' needs a segmentation model); "
        "large gaps come out smeared.",
        factory="baton.experts.builtin.imageedit:ObjectRemover",
        **OPENCV,
        memory_mb=150,
        python=("cv2", "numpy", "PIL"),
    ),
]


# parsing the instruction


@dataclass(frozen=True)
class Edit:
    """One understood edit: what it does and the words of the clause it came from."""

    op: str
    clause: str


_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"

# phrases rewritten before splitting, so that "black and white" is not cut at "and"
_NORMALISE = [
    (r"\bblack\s*(?:and|&|n)\s*white\b|\bb\s*[&/]\s*w\b", "grayscale"),
    (r"\bgr[ae]y[\s-]*scale\b", "grayscale"),
    (r"\bflip\w*\s+(?:\w+\s+){0,3}?upside[\s-]*down\b", "flip vertically"),
    (r"\bupside[\s-]*down\b", "rotate 180 degrees"),
    (r"\bmirror[\s-]*image\b", "flip horizontally"),
    (r"\b(?:enhance|bring out|boost)\s+(?:the\s+)?(?:fine\s+)?details?\b", "sharpen"),
    (r"\b(\d+)\s*per\s*cent\b|\b(\d+)\s*percent\b", r"\1\2%"),
    (r"\bbrightness\s+(?:and|&)\s+contrast\b", "brightness, contrast"),
]

_SPLIT = re.compile(
    r"[;!?\n]|\.(?=\s|$)|:\s|,(?!\s*\d)|\b(?:and\s+then|and\s+also|and|then|afterwards|after\s+that|finally|next|also)\b",
    re.IGNORECASE,
)

_OPS: dict[str, str] = {
    "rotate": r"\brotat\w*|\bturn\w*\s+(?:it\s+|the\s+\w+\s+)?(?:\d+|left|right|clockwise|counter|anti|ccw|cw)\b",
    "flip": r"\bflip\w*|\bmirror\w*|\breflect\w*",
    "crop": r"\bcrop\w*|\btrim\w*|\bcut\s+(?:out\s+|off\s+)?(?:the\s+)?(?:center|centre|middle|left|right|top|bottom)",
    "resize": r"\bresiz\w*|\b(?:re|up|down)?scal(?:e|ed|ing)\b|\bshrink\w*|\benlarg\w*|\bdownsiz\w*|\bsmaller\b"
    r"|\bbigger\b|\blarger\b|\b(?:half|double|twice|quarter)\s+(?:the\s+)?size\b"
    r"|\b(?:reduce|decrease|increase|change|adjust|set|lower)\s+(?:the\s+)?(?:image\s+)?(?:size|resolution|dimensions)\b"
    r"|\b\d+\s*(?:px|pixels?)?\s*(?:wide|high|tall)\b|\b(?:width|height)\b",
    "grayscale": r"\bgrayscale\b|\bgr[ae]y\b|\bmonochrom\w*|\bdesaturat\w*|\bcolou?rless\b"
    r"|\bremove\s+(?:the\s+|all\s+)?colou?rs?\b|\bno\s+colou?rs?\b|\bdecolou?ri[sz]\w*",
    "blur": r"\bblur\w*|\bsoften\w*|\bsmooth\w*|\bdefocus\w*|\bgaussian\b",
    "sharpen": r"\bsharp\w*|\bcrisp\w*|\bunsharp\b|\bclarity\b|\blegib\w*|\bdefinition\b",
    "brightness": r"\bbright\w*|\blight(?:en|er)\w*|\bdark(?:en|er)\w*|\bdim(?:s|med|mer|ming)?\b|\bexposure\b"
    r"|\bluminosity\b",
    "contrast": r"\bcontrast\w*",
    "saturation": r"\bsaturat\w*",
    "invert": r"\binver[st]\w*|\bnegative\b",
}

_FILLER = frozenset(
    re.findall(
        r"\w+",
        """
        please pls kindly can could would will you u i we me my our us the a an this that these those it its image
        images picture pictures photo photos photograph pic pics file img to of in on at for with by from and also
        just help want wanted need like make let lets here is are be been some edit modify change apply do done now
        so then using use given provided thanks thank hi hello hey result output final version looks look get give
        new same whole entire all everything one ok okay sure step first firstly second secondly lastly after
        afterwards next there
        """,
    )
)

_REGION = re.compile(
    r"\b(?:background|foreground|sky|subject|object|objects|person|people|face|faces|eyes|hair|car|cars|tree|trees|"
    r"building|buildings|wall|walls|animal|animals|cat|dog|sofa|table|chair|except)\b"
)
_COLOURS = re.compile(
    r"\b(?:red|green|blue|yellow|orange|purple|pink|violet|magenta|cyan|brown|gold|golden|sepia|teal|turquoise)"
    r"(?:d?ish|er|s)?\b"
)


def _refuse(clause: str, why: str = "") -> ExpertError:
    reason = why or "the builtin editor only makes whole-image edits"
    return ExpertError(
        f"cannot do '{clause.strip()}': {reason}; this edit needs {DIFFUSION}. "
        f"The builtin editor understands: {UNDERSTOOD}."
    )


def _clauses(instruction: str) -> list[str]:
    # file and artifact names and plan references are not words of the instruction
    text = re.sub(
        r"\S+\.(?:png|jpe?g|gif|bmp|webp|tiff?)\b|<[^>]*>|\b(?:image|audio|video)/\S+", " ", instruction.lower()
    )
    for pattern, replacement in _NORMALISE:
        text = re.sub(pattern, replacement, text)
    return [part.strip() for part in _SPLIT.split(text) if part and part.strip()]


def _is_filler(clause: str) -> bool:
    words = re.findall(r"[^\s,]+", clause)
    meaningful = [
        w
        for w in words
        if w.strip("'\"()[]{}`").lower() not in _FILLER
        and not re.search(r"[./<>]", w)  # file names, artifact names, <node-0>
        and re.search(r"[a-z]", w)  # a bare number ("step 1") says nothing
    ]
    return not meaningful


def parse_edits(instruction: str) -> list[Edit]:
    """The edits a sentence asks for, in order; ExpertError for anything outside the grammar."""
    edits: list[Edit] = []
    for clause in _clauses(instruction):
        found = sorted(
            (match.start(), op) for op, pattern in _OPS.items() for match in [re.search(pattern, clause)] if match
        )
        if not found:
            if _is_filler(clause):
                continue
            raise _refuse(clause, "it is not one of the edits the builtin editor knows")
        region = _REGION.search(clause)
        if region:
            raise _refuse(clause, f"the builtin editor edits the whole image and cannot find '{region.group(0)}'")
        colour = _COLOURS.search(clause)
        if colour:
            raise _refuse(clause, f"the builtin editor cannot change colours to '{colour.group(0)}'")
        # several edits in one clause ("rotate left flip vertically"): each takes the words up to the next
        starts = [start for start, _ in found]
        for number, (start, op) in enumerate(found):
            end = starts[number + 1] if number + 1 < len(starts) else len(clause)
            words = clause[:end] if number == 0 else clause[start:end]  # the first also takes the words before it
            edits.append(Edit(op, words))
    if not edits:
        raise _refuse(instruction, "it asks for no edit the builtin editor knows")
    return edits


# the edits


def _percent(text: str) -> float | None:
    match = re.search(_NUMBER + r"\s*%", text)
    return float(match.group(1)) / 100 if match else None


def _lowers(text: str) -> bool:
    return bool(
        re.search(
            r"\b(?:decreas\w*|reduc\w*|lower\w*|less|down|darken\w*|darker|dim\w*|drop\w*|minus|weaken\w*|tone)\b",
            text,
        )
    )


def _rotate(image: np.ndarray, text: str) -> np.ndarray:
    import cv2
    import numpy as np

    verb = re.search(_OPS["rotate"], text)
    after = text[verb.start() :] if verb else text  # "step 1 rotate 90": the number after the verb
    match = re.search(r"(-?" + _NUMBER[1:-1] + r")\s*(?:°|deg\w*)", text) or re.search(r"(-?\d+(?:\.\d+)?)", after)
    angle = float(match.group(1)) if match else 90.0
    if re.search(r"counter[\s-]*clockwise|anti[\s-]*clockwise|\bccw\b|\bleft\b", text):
        angle = -abs(angle)
    elif re.search(r"clockwise|\bcw\b|\bright\b", text):
        angle = abs(angle)
    angle %= 360  # clockwise degrees, as in ImageMagick's -rotate
    if angle == 0:
        return image
    if angle % 90 == 0:
        return np.ascontiguousarray(np.rot90(image, k=-int(angle // 90)))
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = round(height * sin + width * cos), round(height * cos + width * sin)
    if new_width * new_height > MAX_IMAGE_PIXELS:
        raise ExpertError(f"rotating by {angle:g} degrees would make the image larger than {MAX_IMAGE_PIXELS:,} pixels")
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    return cv2.warpAffine(
        image, matrix, (new_width, new_height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def _flip(image: np.ndarray, text: str) -> np.ndarray:
    import numpy as np

    vertical = re.search(r"vertic\w*|top[\s-]*(?:to|and)[\s-]*bottom|up[\s-]*(?:and[\s-]*)?down|upside", text)
    return np.ascontiguousarray(np.flip(image, axis=0 if vertical else 1))


def _box(text: str, width: int, height: int) -> tuple[int, int, int, int] | None:
    """A box 'x0,y0,x1,y1' in the text, in pixels (or fractions 0-1 of the size), clamped to the image."""
    numbers = re.findall(_NUMBER, text)
    if len(numbers) < 4:
        return None
    x0, y0, x1, y1 = (float(n) for n in numbers[:4])
    if max(x0, y0, x1, y1) <= 1 and not re.search(r"\bpx\b|pixel", text):
        x0, x1, y0, y1 = x0 * width, x1 * width, y0 * height, y1 * height
    box = (max(0, round(x0)), max(0, round(y0)), min(width, round(x1)), min(height, round(y1)))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ExpertError(
            f"the box {', '.join(numbers[:4])} is empty inside the {width}x{height} image; "
            "give it as x0,y0,x1,y1 with x0 < x1 and y0 < y1"
        )
    return box


def _crop(image: np.ndarray, text: str) -> np.ndarray:
    height, width = image.shape[:2]
    box = _box(text, width, height)
    if box is None:
        size = re.search(r"(\d+)\s*(?:x|×|\*|by)\s*(\d+)", text)
        percent = _percent(text)
        if size:
            w, h = min(width, int(size.group(1))), min(height, int(size.group(2)))
            box = ((width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h)
        elif percent is not None:
            if re.search(r"\b(?:off|from|each\s+side|edges?|borders?|margins?|sides?)\b", text):
                percent = 1 - 2 * percent  # "trim 10% off each side" keeps the middle 80%
            if not 0 < percent <= 1:
                raise ExpertError(f"cannot crop to {percent:.0%} of the image; give a percentage from 1 to 100")
            w, h = max(1, round(width * percent)), max(1, round(height * percent))
            box = ((width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h)
        elif re.search(r"\bsquare\b", text):
            side = min(width, height)
            box = ((width - side) // 2, (height - side) // 2, (width - side) // 2 + side, (height - side) // 2 + side)
        else:
            box = _region(text, width, height)
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1].copy()


def _region(text: str, width: int, height: int) -> tuple[int, int, int, int]:
    """'the left half', 'top right quarter', 'the center' (middle half of each side); default the central 80%."""
    horizontal = re.search(r"\b(left|right)\b", text)
    vertical = re.search(r"\b(top|upper|bottom|lower)\b", text)
    centre = re.search(r"\b(?:center|centre|middle|central)\b", text)
    fraction = 0.5
    if re.search(r"two[\s-]*thirds", text):
        fraction = 2 / 3
    elif re.search(r"\bthirds?\b", text):
        fraction = 1 / 3
    elif re.search(r"\bquarter\b|\bcorner\b", text):
        fraction = 0.5 if horizontal and vertical else 0.25
    if not (horizontal or vertical or centre):
        fraction = 0.8  # plain "crop it": trim a tenth off each side

    def span(size: int, side: str | None) -> tuple[int, int]:
        keep = max(1, round(size * fraction))
        if side in ("left", "top", "upper"):
            return 0, keep
        if side in ("right", "bottom", "lower"):
            return size - keep, size
        if side is None and (horizontal or vertical) and not centre:
            return 0, size  # "the left half": all of the height
        return (size - keep) // 2, (size - keep) // 2 + keep

    x0, x1 = span(width, horizontal.group(1) if horizontal else None)
    y0, y1 = span(height, vertical.group(1) if vertical else None)
    return x0, y0, x1, y1


def _resize(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    size = re.search(r"(\d+)\s*(?:x|×|\*|by)\s*(\d+)(?!\s*%)", text)
    wide = re.search(r"(\d+)\s*(?:px|pixels?)?\s*(?:wide|in width|width)\b|\bwidth\s*(?:of|to|=|:)?\s*(\d+)", text)
    high = re.search(
        r"(\d+)\s*(?:px|pixels?)?\s*(?:high|tall|in height|height)\b|\bheight\s*(?:of|to|=|:)?\s*(\d+)", text
    )
    factor_match = re.search(_NUMBER + r"\s*(?:x|×|times)(?!\s*\d)|factor\s+of\s+" + _NUMBER, text)
    percent = _percent(text)
    shrink = re.search(r"\b(?:smaller|shrink\w*|reduc\w*|decreas\w*|downscal\w*|downsiz\w*|lower)\b", text)
    grow = re.search(r"\b(?:bigger|larger|enlarg\w*|increas\w*|upscal\w*|grow)\b", text)
    if size:
        new_width, new_height = int(size.group(1)), int(size.group(2))
    elif wide or high:
        if wide:
            new_width = int(wide.group(1) or wide.group(2))
            new_height = round(height * new_width / width)
        if high:
            new_height = int(high.group(1) or high.group(2))
            new_width = new_width if wide else round(width * new_height / height)
    else:
        if percent is not None:
            factor = percent
            if re.search(r"\bby\s+" + _NUMBER + r"\s*%", text) and (shrink or grow):
                factor = 1 - percent if shrink else 1 + percent
        elif factor_match:
            factor = float(factor_match.group(1) or factor_match.group(2))
        elif re.search(r"\bhalf\b|\bhalve\w*", text):
            factor = 0.5
        elif re.search(r"\bquarter\b", text):
            factor = 0.25
        elif re.search(r"\bthird\b", text):
            factor = 1 / 3
        elif re.search(r"\bdouble\w*|\btwice\b", text):
            factor = 2.0
        elif re.search(r"\btripl\w*", text):
            factor = 3.0
        elif (longest := re.search(r"(\d+)\s*(?:px|pixels?)?", text)) and int(longest.group(1)) > 8:
            factor = int(longest.group(1)) / max(width, height)  # "resize to 800": the longer side
        elif shrink:
            factor = 0.5
        elif grow:
            factor = 2.0
        else:
            raise ExpertError(
                f"'{text.strip()}' gives no size; say e.g. 'resize to 800x600', 'scale to 50%', 'half size' "
                "or 'make it 640 pixels wide'"
            )
        if factor <= 0:
            raise ExpertError(f"cannot scale by {factor:g}; give a positive size")
        new_width, new_height = round(width * factor), round(height * factor)
    new_width, new_height = max(1, new_width), max(1, new_height)
    if new_width * new_height > MAX_IMAGE_PIXELS:
        raise ExpertError(
            f"resizing to {new_width}x{new_height} would exceed the limit of {MAX_IMAGE_PIXELS:,} pixels; "
            "ask for a smaller size"
        )
    smaller = new_width * new_height < width * height
    return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA if smaller else cv2.INTER_CUBIC)


def _colour(image: np.ndarray, change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a change to the colour planes only, keeping any alpha plane as it is."""
    import numpy as np

    out = image.copy()
    out[..., :3] = np.clip(np.rint(change(image[..., :3].astype(np.float32))), 0, 255).astype(np.uint8)
    return out


def _grayscale(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    def grey(bgr: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)

    return _colour(image, grey)


def _sigma(text: str, longest: int) -> float:
    number = re.search(r"(?<![\w.])" + _NUMBER + r"(?!\s*%)", text)
    if number:
        return max(0.3, float(number.group(1)))
    if re.search(r"slight\w*|little|bit|light\w*|subtl\w*|gentl\w*|soft\b", text):
        return max(1.0, longest * 0.002)
    if re.search(r"heav\w*|strong\w*|lot\b|very|much|more|extreme\w*|intens\w*", text):
        return max(3.0, longest * 0.012)
    return max(2.0, longest * 0.005)


def _blur(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    sigma = _sigma(text, max(image.shape[:2]))
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _sharpen(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    percent = _percent(text)
    number = re.search(r"(?<![\w.])" + _NUMBER + r"(?!\s*%)", text)
    amount = percent if percent is not None else float(number.group(1)) if number else 1.0
    if re.search(r"slight\w*|little|bit|subtl\w*|gentl\w*", text) and percent is None and not number:
        amount = 0.5
    radius = max(1.0, max(image.shape[:2]) / 600)

    def unsharp(bgr: np.ndarray) -> np.ndarray:
        return bgr * (1 + amount) - cv2.GaussianBlur(bgr, (0, 0), radius) * amount

    return _colour(image, unsharp)


def _factor(text: str, lower: bool) -> float:
    """The factor of 'up by 30%' (1.3), 'down 20%' (0.8), 'to 150%' (1.5); 20% when no amount is given."""
    to = re.search(r"\bto\s+" + _NUMBER + r"\s*%", text)
    if to:
        return float(to.group(1)) / 100
    percent = _percent(text)
    if percent is None:
        number = re.search(r"(?<![\w.])" + _NUMBER + r"\s*(?:x|times)\b", text)
        if number:
            return float(number.group(1))
        percent = 0.4 if re.search(r"\b(?:much|lot|very|significant\w*|strong\w*|greatly)\b", text) else 0.2
    return max(0.0, 1 - percent) if lower else 1 + percent


def _brightness(image: np.ndarray, text: str) -> np.ndarray:
    factor = _factor(text, _lowers(text))
    return _colour(image, lambda bgr: bgr * factor)


def _contrast(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    factor = _factor(text, _lowers(text))

    def stretch(bgr: np.ndarray) -> np.ndarray:
        mean = float(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).mean())
        return (bgr - mean) * factor + mean

    return _colour(image, stretch)


def _saturation(image: np.ndarray, text: str) -> np.ndarray:
    import cv2
    import numpy as np

    factor = _factor(text, _lowers(text) or bool(re.search(r"\bdesaturat", text)))

    def saturate(bgr: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(bgr / 255, cv2.COLOR_BGR2HSV)
        hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 1)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255

    return _colour(image, saturate)


def _invert(image: np.ndarray, text: str) -> np.ndarray:
    return _colour(image, lambda bgr: 255 - bgr)


_APPLY: dict[str, Callable[[np.ndarray, str], np.ndarray]] = {
    "rotate": _rotate,
    "flip": _flip,
    "crop": _crop,
    "resize": _resize,
    "grayscale": _grayscale,
    "blur": _blur,
    "sharpen": _sharpen,
    "brightness": _brightness,
    "contrast": _contrast,
    "saturation": _saturation,
    "invert": _invert,
}


def apply_edits(image: np.ndarray, edits: list[Edit]) -> np.ndarray:
    """The image (BGR or BGRA, uint8) after each edit in turn."""
    for edit in edits:
        image = _APPLY[edit.op](image, edit.clause)
    return image


class ImageEditor(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import numpy as np

        instruction = inputs["instruction"].as_text()
        if not instruction.strip():
            raise ExpertError(f"the instruction is empty; say what to do, e.g. 'rotate 90 degrees'. {UNDERSTOOD}")
        edits = parse_edits(instruction)
        picture = read_picture(inputs["image"])
        image = picture.bgr if picture.alpha is None else np.dstack([picture.bgr, picture.alpha])
        edited = apply_edits(image, edits)
        alpha = np.ascontiguousarray(edited[..., 3]) if edited.shape[2] == 4 else None
        result = Picture(np.ascontiguousarray(edited[..., :3]), alpha, picture.suffix)
        return {"image": result.save(ctx, "edited")}


# remove-object

# OpenCV hue is 0-180; chromatic colours need some saturation and light, the greys are told by value alone
_HUES: dict[str, list[tuple[int, int]]] = {
    "red": [(0, 8), (170, 180)],
    "orange": [(8, 20)],
    "yellow": [(20, 34)],
    "green": [(34, 85)],
    "cyan": [(85, 100)],
    "turquoise": [(80, 100)],
    "teal": [(80, 100)],
    "blue": [(100, 130)],
    "purple": [(130, 155)],
    "violet": [(130, 155)],
    "magenta": [(145, 170)],
    "pink": [(150, 175)],
}
_GREYS = ("white", "black", "gray", "grey")


def colour_mask(bgr: np.ndarray, colour: str) -> np.ndarray:
    """255 where a pixel looks like the named colour, 0 elsewhere."""
    import cv2
    import numpy as np

    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    if colour == "white":
        mask = (saturation < 40) & (value > 200)
    elif colour == "black":
        mask = value < 50
    elif colour in ("gray", "grey"):
        mask = (saturation < 40) & (value >= 60) & (value <= 200)
    elif colour == "brown":
        mask = (hue >= 5) & (hue < 25) & (saturation > 80) & (value > 40) & (value < 170)
    else:
        mask = np.zeros(hue.shape, bool)
        for low, high in _HUES[colour]:
            mask |= (hue >= low) & (hue < high)
        mask &= (saturation > 90) & (value > 60)
    return mask.astype(np.uint8) * 255


def _object_mask(text: str, bgr: np.ndarray) -> tuple[np.ndarray, str]:
    import cv2
    import numpy as np

    height, width = bgr.shape[:2]
    box = _box(text, width, height)
    if box is not None:
        mask = np.zeros((height, width), np.uint8)
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = 255
        return mask, f"the box {x0},{y0},{x1},{y1}"
    words = re.findall(r"[a-z]+", text.lower())
    colour = next((w for w in words if w in _HUES or w in _GREYS or w == "brown"), None)
    if colour is None:
        raise ExpertError(
            f"cannot find '{text.strip()}' in the image: finding an object by name needs a segmentation model "
            "(e.g. a Segment Anything or Grounded-SAM remover). The builtin remover takes a box 'x0,y0,x1,y1' "
            "(pixels, or fractions 0-1 of the size) or a uniformly coloured object such as 'the red circle'"
        )
    mask = colour_mask(bgr, colour)
    # keep the sizeable areas of that colour: single stray pixels are noise, not an object
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    least = max(16, int(height * width * 0.0005))
    keep = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= least]
    if not keep:
        raise ExpertError(
            f"found no {colour} area in the image to remove; name the object's colour as it looks, or give a box "
            "'x0,y0,x1,y1'"
        )
    mask = np.isin(labels, keep).astype(np.uint8) * 255
    return mask, f"every {colour} area"


class ObjectRemover(Expert):
    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import cv2

        text = inputs["object"].as_text()
        if not text.strip():
            raise ExpertError("say what to remove: a box 'x0,y0,x1,y1' or a colour such as 'the red circle'")
        picture = read_picture(inputs["image"])
        mask, what = _object_mask(text, picture.bgr)
        covered = float((mask > 0).mean())
        if covered > 0.5:
            raise ExpertError(
                f"{what} covers {covered:.0%} of the image: inpainting can only fill smaller gaps; "
                "give a tighter box or remove it with a segmentation-based model"
            )
        # grow the mask past anti-aliased rims, whose mixed colours would otherwise bleed into the fill
        grow = max(2, round(max(picture.width, picture.height) / 200))
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
        filled = cv2.inpaint(picture.bgr, mask, max(3, grow * 2), cv2.INPAINT_TELEA)
        return {"image": Picture(filled, picture.alpha, picture.suffix).save(ctx, "object-removed")}
