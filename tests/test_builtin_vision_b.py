"""Builtin image experts run for real: OpenCV styles, Reinhard colour transfer, the grammar editor,
inpainting and the stitcher, on drawn images and scikit-image's sample photos."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from baton.catalog import load_catalog
from baton.experts import ExpertError
from baton.experts.builtin.imageedit import ImageEditor, ObjectRemover, parse_edits
from baton.experts.builtin.imagestyle import ColourTransfer, StyleFilter, pick_style
from baton.experts.builtin.stitch import Stitcher
from baton.media import Resource

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

CARDS = {
    "builtin/opencv-stylize": ("image-to-image", StyleFilter),
    "builtin/reinhard-color-transfer": ("style-transfer", ColourTransfer),
    "builtin/opencv-image-editor": ("instruct-image-editing", ImageEditor),
    "builtin/opencv-inpaint": ("remove-object", ObjectRemover),
    "builtin/opencv-stitcher": ("image-stitcher", Stitcher),
}


def expert(model_id: str) -> Any:
    return load_catalog().get(model_id).build()


def media(ctx: Any, pixels: np.ndarray, name: str = "input.png") -> Resource:
    """An image input stored in the session, as the executor would hand it over."""
    path = ctx.workdir / "inputs" / name
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)
    return Resource.media(ctx.save_file(path))


def pixels_of(resource: Resource) -> np.ndarray:
    assert resource.kind == "image" and resource.artifact is not None
    with Image.open(resource.path) as image:
        return np.asarray(image.convert("RGBA" if image.mode in ("RGBA", "LA") else "RGB"))


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY), dtype=np.float32)


def local_contrast(rgb: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(grey(rgb), cv2.CV_32F)).mean())


def marked(width: int = 60, height: int = 40) -> np.ndarray:
    """A grey picture with a red block in its top-left corner and a blue one at the right middle."""
    image = np.full((height, width, 3), 128, np.uint8)
    image[:5, :5] = (255, 0, 0)
    image[height // 2 - 2 : height // 2 + 2, -4:] = (0, 0, 255)
    return image


def red_at(image: np.ndarray) -> tuple[float, float]:
    """The centre (x, y) of the pure red pixels, as fractions of the width and height."""
    ys, xs = np.nonzero((image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60))
    assert len(xs), "no red pixels left"
    return float(xs.mean() + 0.5) / image.shape[1], float(ys.mean() + 0.5) / image.shape[0]


# the cards


def test_cards_are_registered_runnable_and_build_their_experts() -> None:
    catalog = load_catalog()
    for model_id, (task, expert_class) in CARDS.items():
        card = catalog.get(model_id)
        assert card.task == task
        assert card.backend == "builtin" and card.extra == "vision" and "cv2" in card.python
        assert card.missing() == [], model_id
        built = card.build()
        assert isinstance(built, expert_class) and not built.loaded


# image-to-image styles


@pytest.mark.parametrize(
    ("instruction", "style"),
    [
        ("Sketch-style", "sketch"),
        ("Apply a hand-drawn style to the image", "sketch"),
        ("turn it into a pencil drawing", "sketch"),
        ("a coloured pencil sketch please", "color-sketch"),
        ("make it look like a cartoon", "cartoon"),
        ("Watercolor", "painting"),
        ("Van Gogh style", "painting"),
        ("stylize it", "painting"),
        ("enhance the details", "enhance"),
        ("sharpen details", "enhance"),
        ("image/3f9c2a1b.jpg", None),
        ("", None),
    ],
)
def test_the_instruction_picks_the_style(instruction: str, style: str | None) -> None:
    assert pick_style(instruction) == style


def stylise(ctx: Any, instruction: str | None, photo: np.ndarray, **options: str) -> np.ndarray:
    inputs = {"image": media(ctx, photo)}
    if instruction is not None:
        inputs["instruction"] = Resource.text(instruction)
    result = expert("builtin/opencv-stylize").run(inputs, options, ctx)
    assert set(result) == {"image"}
    out = pixels_of(result["image"])
    assert out.shape == photo.shape
    return out


def test_sketch_is_grey_and_light_like_pencil_on_paper(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()
    out = stylise(expert_ctx, "Please turn this photo into a pencil sketch", photo)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert out.mean() > photo.mean() + 20  # mostly white paper


def test_enhance_raises_local_contrast(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()
    out = stylise(expert_ctx, "enhance the details", photo)
    assert local_contrast(out) > 1.5 * local_contrast(photo)
    assert abs(float(out.mean()) - float(photo.mean())) < 15  # the same picture, crisper


def test_cartoon_has_few_flat_colours_and_dark_outlines(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()
    out = stylise(expert_ctx, "cartoon", photo)
    colours = len(np.unique(out.reshape(-1, 3), axis=0))
    assert colours <= 13 < len(np.unique(photo.reshape(-1, 3), axis=0)) // 1000
    assert (out.max(axis=2) == 0).mean() > 0.03  # black edge lines


def test_painting_is_the_default_and_keeps_the_picture(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()
    default = stylise(expert_ctx, None, photo)
    named = stylise(expert_ctx, "Van Gogh style", photo)
    assert np.array_equal(default, named)
    difference = np.abs(default.astype(int) - photo.astype(int)).mean()
    assert 5 < difference < 60  # visibly changed, still the same scene
    assert np.corrcoef(grey(default).ravel(), grey(photo).ravel())[0, 1] > 0.8


def test_style_option_wins_and_an_unknown_one_is_an_error(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()[::2, ::2].copy()
    out = stylise(expert_ctx, "cartoon", photo, style="sketch")
    assert np.array_equal(out[..., 0], out[..., 2])
    with pytest.raises(ExpertError, match="unknown style 'cubism'; use one of: painting, sketch"):
        stylise(expert_ctx, None, photo, style="cubism")


def test_styles_keep_transparency_and_the_jpeg_format(expert_ctx: Any) -> None:
    rgba = np.dstack([skimage_data.astronaut()[::4, ::4], np.full((128, 128), 255, np.uint8)])
    rgba[:, :64, 3] = 0
    result = expert("builtin/opencv-stylize").run({"image": media(expert_ctx, rgba)}, {"style": "sketch"}, expert_ctx)
    out = pixels_of(result["image"])
    assert out.shape == (128, 128, 4)
    assert np.array_equal(out[..., 3], rgba[..., 3])
    jpeg = media(expert_ctx, skimage_data.astronaut()[::4, ::4].copy(), "photo.jpg")
    result = expert("builtin/opencv-stylize").run({"image": jpeg}, {}, expert_ctx)
    assert result["image"].path.suffix == ".jpg"


def test_an_unreadable_image_is_a_clear_error(expert_ctx: Any) -> None:
    path = expert_ctx.workdir / "broken.png"
    path.write_bytes(b"not a png at all")
    broken = Resource.media(expert_ctx.save_file(path))
    with pytest.raises(ExpertError, match="is not a readable image"):
        expert("builtin/opencv-stylize").run({"image": broken}, {}, expert_ctx)


# style-transfer


def lab_means(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    return np.asarray(lab.reshape(-1, 3).mean(axis=0))


def edges(rgb: np.ndarray) -> np.ndarray:
    g = grey(rgb)
    return np.asarray(np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)))


def transfer(ctx: Any, content: np.ndarray, style: np.ndarray, **options: str) -> np.ndarray:
    inputs = {"image": media(ctx, content, "content.png"), "style": media(ctx, style, "style.png")}
    result = expert("builtin/reinhard-color-transfer").run(inputs, options, ctx)
    assert set(result) == {"image"}
    out = pixels_of(result["image"])
    assert out.shape == content.shape
    return out


def test_style_transfer_takes_the_style_colours_and_keeps_the_edges(expert_ctx: Any) -> None:
    content, style = skimage_data.astronaut(), skimage_data.coffee()
    before = np.abs(lab_means(content) - lab_means(style))
    assert before.max() > 8  # the two palettes really differ
    out = transfer(expert_ctx, content, style)
    after = np.abs(lab_means(out) - lab_means(style))
    assert after.max() < 3, (before, after)
    correlation = np.corrcoef(edges(out).ravel(), edges(content).ravel())[0, 1]
    assert correlation > 0.9


def test_style_transfer_from_a_grey_style_gives_a_grey_image(expert_ctx: Any) -> None:
    style = np.repeat(skimage_data.camera()[..., None], 3, axis=2)
    out = transfer(expert_ctx, skimage_data.astronaut(), style)
    _, a, b = lab_means(out)
    assert abs(a) < 2 and abs(b) < 2
    assert float(np.abs(out[..., 0].astype(int) - out[..., 2]).mean()) < 3


def test_style_transfer_strength(expert_ctx: Any) -> None:
    content, style = skimage_data.astronaut()[::2, ::2].copy(), skimage_data.coffee()
    assert np.abs(transfer(expert_ctx, content, style, strength="0").astype(int) - content).max() <= 1
    half = lab_means(transfer(expert_ctx, content, style, strength="50%"))
    full = lab_means(transfer(expert_ctx, content, style))
    assert np.all(np.abs(half - (lab_means(content) + full) / 2) < 3)
    for bad, message in [("lots", "strength must be a number"), ("-0.5", "out of range"), ("300", "out of range")]:
        with pytest.raises(ExpertError, match=message):
            transfer(expert_ctx, content, style, strength=bad)


# instruct-image-editing


def edit(ctx: Any, instruction: str, image: np.ndarray | None = None) -> np.ndarray:
    source = marked() if image is None else image
    inputs = {"image": media(ctx, source), "instruction": Resource.text(instruction)}
    result = expert("builtin/opencv-image-editor").run(inputs, {}, ctx)
    assert set(result) == {"image"}
    return pixels_of(result["image"])


@pytest.mark.parametrize(
    ("instruction", "size", "red"),
    [
        ("rotate 90 degrees", (40, 60), (0.94, 0.04)),  # clockwise, as in ImageMagick: top-left goes top-right
        ("Can you rotate the image 90 degrees clockwise?", (40, 60), (0.94, 0.04)),
        ("rotate it to the left", (40, 60), (0.06, 0.96)),
        ("turn it 90 degrees counterclockwise", (40, 60), (0.06, 0.96)),
        ("rotate by 180 degrees", (60, 40), (0.96, 0.94)),
        ("turn it upside down", (60, 40), (0.96, 0.94)),
        ("flip horizontally", (60, 40), (0.96, 0.06)),
        ("mirror the image", (60, 40), (0.96, 0.06)),
        ("flip it vertically", (60, 40), (0.04, 0.94)),
        ("flip the photo upside down", (60, 40), (0.04, 0.94)),
    ],
)
def test_rotations_and_flips_put_pixels_in_the_right_place(
    instruction: str, size: tuple[int, int], red: tuple[float, float], expert_ctx: Any
) -> None:
    out = edit(expert_ctx, instruction)
    assert (out.shape[1], out.shape[0]) == size
    assert red_at(out) == pytest.approx(red, abs=0.02)


def test_rotation_by_any_angle_grows_the_canvas(expert_ctx: Any) -> None:
    out = edit(expert_ctx, "rotate 45°")
    side = round((60 + 40) / 2**0.5)
    assert abs(out.shape[1] - side) <= 1 and abs(out.shape[0] - side) <= 1
    assert out[0, 0].max() == 0 and out[side // 2, side // 2].tolist() == [128, 128, 128]  # black corners


def test_grayscale_has_equal_channels(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()[::4, ::4].copy()
    for instruction in ("make it black and white", "convert to grayscale", "desaturate the picture"):
        out = edit(expert_ctx, instruction, photo)
        assert out.shape == photo.shape
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2]), instruction
        assert abs(float(out.mean()) - float(grey(photo).mean())) < 2


@pytest.mark.parametrize(
    ("instruction", "size"),
    [
        ("resize to 50%", (30, 20)),
        ("Please make it half size", (30, 20)),
        ("scale the image down by 50%", (30, 20)),
        ("resize to 120x80", (120, 80)),
        ("make it 30 pixels wide", (30, 20)),
        ("enlarge it 2x", (120, 80)),
        ("increase the size by 50%", (90, 60)),
        ("make it smaller", (30, 20)),
    ],
)
def test_resizing(instruction: str, size: tuple[int, int], expert_ctx: Any) -> None:
    out = edit(expert_ctx, instruction)
    assert (out.shape[1], out.shape[0]) == size
    assert red_at(out) == pytest.approx((2.5 / 60, 2.5 / 40), abs=0.05)


@pytest.mark.parametrize(
    ("instruction", "box"),
    [
        ("crop the left half", (0, 0, 30, 40)),
        ("crop to the top right quarter", (30, 0, 60, 20)),
        ("crop to the center", (15, 10, 45, 30)),
        ("crop to 5, 10, 25, 30", (5, 10, 25, 30)),
        ("crop the box 0.5,0,1,0.5", (30, 0, 60, 20)),
        ("crop it to a square", (10, 0, 50, 40)),
        ("crop to 20x10", (20, 15, 40, 25)),
        ("trim 10% off each side", (6, 4, 54, 36)),
    ],
)
def test_cropping(instruction: str, box: tuple[int, int, int, int], expert_ctx: Any) -> None:
    source = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = edit(expert_ctx, instruction, source)
    x0, y0, x1, y1 = box
    assert np.array_equal(out, source[y0:y1, x0:x1])


def test_tone_edits(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()[::4, ::4].copy()
    mean, spread = float(photo.mean()), float(photo.std())
    assert edit(expert_ctx, "increase the brightness by 30%", photo).mean() > mean + 15
    assert edit(expert_ctx, "make it darker", photo).mean() < mean - 10
    assert edit(expert_ctx, "reduce the contrast", photo).std() < spread * 0.9
    assert edit(expert_ctx, "more contrast please", photo).std() > spread * 1.05
    inverted = edit(expert_ctx, "invert the colors", photo)
    assert np.array_equal(inverted, 255 - photo)
    blurred = edit(expert_ctx, "blur it strongly", photo)
    sharpened = edit(expert_ctx, "sharpen the image", photo)
    assert local_contrast(blurred) < 0.5 * local_contrast(photo) < 0.5 * local_contrast(sharpened)
    hsv = cv2.cvtColor(edit(expert_ctx, "boost the saturation by 40%", photo), cv2.COLOR_RGB2HSV)
    assert hsv[..., 1].mean() > cv2.cvtColor(photo, cv2.COLOR_RGB2HSV)[..., 1].mean() + 10


def test_several_edits_apply_in_order(expert_ctx: Any) -> None:
    out = edit(expert_ctx, "Please rotate example.jpg 90 degrees, then resize it to 50% and make it black and white.")
    assert (out.shape[1], out.shape[0]) == (20, 30)
    assert np.array_equal(out[..., 0], out[..., 2])
    assert [e.op for e in parse_edits("crop the left half and then flip it; invert")] == ["crop", "flip", "invert"]


def test_edits_keep_transparency(expert_ctx: Any) -> None:
    rgba = np.dstack([marked(), np.full((40, 60), 255, np.uint8)])
    rgba[:, 30:, 3] = 0
    out = edit(expert_ctx, "flip horizontally", rgba)
    assert out.shape == (40, 60, 4)
    assert out[:, :30, 3].max() == 0 and out[:, 30:, 3].min() == 255


@pytest.mark.parametrize(
    "instruction",
    [
        "make it look like Van Gogh",
        "Make the car vibrant red",
        "Change the background color to grayscale",
        "example.jpg",
    ],
)
def test_edits_outside_the_grammar_are_refused(instruction: str, expert_ctx: Any) -> None:
    with pytest.raises(ExpertError) as failure:
        edit(expert_ctx, instruction)
    message = str(failure.value)
    assert "instruct-pix2pix" in message
    assert "rotate" in message and "grayscale" in message and "crop" in message  # what it does understand


def test_a_partly_understood_instruction_is_refused_whole(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="cannot do 'add some clouds'"):
        edit(expert_ctx, "rotate it left and add some clouds")


def test_resize_without_a_size_says_how(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match=re.escape("gives no size; say e.g. 'resize to 800x600'")):
        edit(expert_ctx, "resize the image")


# remove-object


def scene(width: int = 160, height: int = 120) -> np.ndarray:
    """A left-to-right grey gradient with a red square from (60, 40) to (100, 80)."""
    ramp = np.linspace(60, 200, width).astype(np.uint8)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    image[40:80, 60:100] = (220, 20, 30)
    return image


def remove(ctx: Any, what: str, image: np.ndarray) -> np.ndarray:
    inputs = {"image": media(ctx, image), "object": Resource.text(what)}
    result = expert("builtin/opencv-inpaint").run(inputs, {}, ctx)
    assert set(result) == {"image"}
    return pixels_of(result["image"])


@pytest.mark.parametrize("what", ["remove the red square", "60,40,100,80", "[0.375, 0.333, 0.625, 0.667]"])
def test_remove_object_fills_the_gap_like_its_surroundings(what: str, expert_ctx: Any) -> None:
    image = scene()
    out = remove(expert_ctx, what, image)
    background = np.repeat(np.repeat(np.linspace(60, 200, 160)[None, :, None], 120, axis=0), 3, axis=2)
    region = (slice(40, 80), slice(60, 100))
    assert np.abs(image[region].astype(float) - background[region]).mean() > 60
    assert np.abs(out[region].astype(float) - background[region]).mean() < 12
    assert np.abs(out[:30].astype(float) - image[:30]).max() <= 2  # far from the square nothing changes


def test_remove_object_by_name_needs_a_segmentation_model(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="segmentation model"):
        remove(expert_ctx, "remove the dog", scene())


def test_remove_object_of_an_absent_colour_says_so(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="found no blue area"):
        remove(expert_ctx, "the blue ball", scene())


def test_remove_object_refuses_a_box_over_most_of_the_image(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="covers 100% of the image"):
        remove(expert_ctx, "0,0,1,1", scene())


# image-stitcher


def stitched(ctx: Any, first: np.ndarray, second: np.ndarray, **options: str) -> tuple[np.ndarray, str]:
    inputs = {"image": media(ctx, first, "left.png"), "image2": media(ctx, second, "right.png")}
    result = expert("builtin/opencv-stitcher").run(inputs, options, ctx)
    with Image.open(result["image"].path) as image:
        note = image.info.get("Description", "")
    return pixels_of(result["image"]), note


def test_overlapping_halves_stitch_back_into_the_photo(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()
    out, note = stitched(expert_ctx, photo[:, :320].copy(), photo[:, 192:].copy())
    assert abs(out.shape[1] - 512) < 0.1 * 512 and abs(out.shape[0] - 512) < 0.1 * 512
    assert note.startswith("Stitched the two images")
    again = cv2.resize(out, (512, 512), interpolation=cv2.INTER_AREA)
    assert np.abs(again.astype(int) - photo).mean() < 25  # the same picture, not two halves side by side


def test_unrelated_images_become_a_side_by_side_collage(expert_ctx: Any) -> None:
    coffee, cat = skimage_data.coffee(), skimage_data.chelsea()  # 600x400 and 451x300
    out, note = stitched(expert_ctx, coffee, cat)
    assert out.shape[:2] == (300, 450 + 451)
    assert "collage" in note and "do not overlap" in note
    assert np.abs(out[:, 450:].astype(int) - cat).mean() < 2


def test_the_same_image_twice_is_a_collage_not_a_copy(expert_ctx: Any) -> None:
    photo = skimage_data.chelsea()
    out, note = stitched(expert_ctx, photo, photo)
    assert out.shape[:2] == (300, 902) and "collage" in note


def test_stitcher_mode_option(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()
    out, note = stitched(expert_ctx, photo[:, :320].copy(), photo[:, 192:].copy(), mode="collage")
    assert out.shape[:2] == (512, 640) and "collage was asked for" in note
    with pytest.raises(ExpertError, match="unknown stitching mode 'sideways'"):
        stitched(expert_ctx, photo, photo, mode="sideways")


def test_stitcher_refuses_an_input_that_is_not_an_image(expert_ctx: Any) -> None:
    inputs = {"image": media(expert_ctx, marked()), "image2": Resource.text("a cat")}
    with pytest.raises(ExpertError, match="the second image input is text 'a cat', not an image"):
        expert("builtin/opencv-stitcher").run(inputs, {}, expert_ctx)
