"""Builtin vision experts (detection, segmentation, cut-outs, ControlNet conditions, document QA) on real pictures.

Photos come from scikit-image's bundled samples (the astronaut Eileen Collins, Chelsea the cat); drawings
are made here with Pillow, so every expected box, edge and area is known exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from baton.catalog import load_catalog
from baton.experts import ExpertError
from baton.experts.builtin.controlnet import CannyControl, LineControl, ScribbleControl, SegControl, line_segments
from baton.experts.builtin.detect import ClassicalDetector
from baton.experts.builtin.docqa import TesseractDocQA, answer_question, read_lines
from baton.experts.builtin.segment import DISTINCT, PALETTE, ColourSegmenter, GrabCutCutout
from baton.media import Resource

skimage_data = pytest.importorskip("skimage.data")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def image_input(ctx: Any, array: Any, name: str = "input.png") -> Resource:
    """Store an RGB array as an image artifact of the test's session, as a task input would be."""
    path = ctx.workdir / name
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return Resource.media(ctx.save_file(path))


def pixels(resource: Resource) -> np.ndarray:
    assert resource.kind == "image"
    with Image.open(resource.path) as image:
        return np.asarray(image)


def rectangle(width: int = 320, height: int = 240, box: tuple[int, int, int, int] = (80, 60, 239, 179)) -> np.ndarray:
    """A filled dark-blue rectangle (inclusive corners ``box``) on white."""
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).rectangle(box, fill=(30, 60, 160))
    return np.asarray(image)


def halves() -> np.ndarray:
    """Left half red, right half blue, with a little sensor-like noise."""
    image = np.zeros((200, 300, 3), np.float64)
    image[:, :150] = (200, 30, 30)
    image[:, 150:] = (30, 60, 200)
    noise = np.random.default_rng(7).normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- catalogue


def test_cards_are_listed_for_their_tasks_and_can_run_here() -> None:
    catalog = load_catalog()
    expected = {
        "builtin/opencv-detect": "object-detection",
        "builtin/tesseract-docqa": "document-question-answering",
        "builtin/slic-segment": "image-segmentation",
        "builtin/grabcut": "background-removal",
        "builtin/opencv-canny": "canny-control",
        "builtin/opencv-lsd": "mlsd-control",
        "builtin/opencv-scribble": "scribble-control",
        "builtin/slic-seg-control": "seg-control",
    }
    for model_id, task in expected.items():
        card = catalog.get(model_id)
        assert card.task == task
        assert card.backend == "builtin" and card.extra == "vision"
        if model_id != "builtin/tesseract-docqa" or shutil.which("tesseract"):
            assert card.missing() == [], model_id
    assert "faces, eyes, people, cat faces, licence plates only" in catalog.get("builtin/opencv-detect").description


# ---------------------------------------------------------------- object detection


@pytest.mark.slow
def test_astronaut_face_and_eyes_are_found_and_drawn(expert_ctx: Any) -> None:
    photo = skimage_data.astronaut()
    out = ClassicalDetector(load_catalog().get("builtin/opencv-detect")).run(
        {"image": image_input(expert_ctx, photo)}, {}, expert_ctx
    )
    result = out["json"].value
    faces = [o for o in result["objects"] if o["label"] == "face"]
    assert len(faces) == 1, result
    x0, y0, x1, y1 = faces[0]["box"]
    assert x0 >= 160 and x1 <= 285 and y0 >= 40 and y1 <= 175, faces  # her face, not the flag or the helmet
    assert 200 <= (x0 + x1) / 2 <= 245 and 95 <= (y0 + y1) / 2 <= 135
    assert 0 < faces[0]["score"] <= 1
    eyes = [o["box"] for o in result["objects"] if o["label"] == "eye"]
    assert len(eyes) == 2
    assert all(x0 <= e[0] and e[2] <= x1 and y0 <= e[1] and e[3] <= (y0 + y1) / 2 + 5 for e in eyes), eyes
    assert not [o for o in result["objects"] if o["label"] in ("cat face", "licence plate")]
    drawn = pixels(out["image"])
    assert drawn.shape == photo.shape
    assert np.any(drawn[y0 + 1, x0:x1] != photo[y0 + 1, x0:x1])  # the box outline is drawn on the photo
    assert np.array_equal(drawn[300:, :100], photo[300:, :100])  # and nothing away from the boxes


@pytest.mark.slow
def test_chelsea_yields_a_cat_face_and_no_human_one(expert_ctx: Any) -> None:
    out = ClassicalDetector(load_catalog().get("builtin/opencv-detect")).run(
        {"image": image_input(expert_ctx, skimage_data.chelsea())}, {}, expert_ctx
    )
    objects = out["json"].value["objects"]
    cats = [o["box"] for o in objects if o["label"] == "cat face"]
    assert cats, objects
    x0, y0, x1, y1 = cats[0]
    assert x0 <= 250 <= x1 and y0 <= 150 <= y1  # covers the middle of her face (the nose sits near 255, 235)
    assert (x1 - x0) * (y1 - y0) >= 0.3 * 451 * 300
    assert not [o for o in objects if o["label"] == "face"]


def test_blank_image_has_no_objects_and_is_left_as_it_is(expert_ctx: Any) -> None:
    blank = np.full((240, 320, 3), 235, np.uint8)
    out = ClassicalDetector(load_catalog().get("builtin/opencv-detect")).run(
        {"image": image_input(expert_ctx, blank)}, {}, expert_ctx
    )
    assert out["json"].value["objects"] == []
    assert out["json"].value["searched"] == ["face", "eye", "person", "cat face", "licence plate"]
    assert np.array_equal(pixels(out["image"]), blank)


def test_kinds_option_narrows_the_search_and_refuses_unknown_objects(expert_ctx: Any) -> None:
    expert = ClassicalDetector(load_catalog().get("builtin/opencv-detect"))
    photo = image_input(expert_ctx, skimage_data.astronaut())
    only_eyes = expert.run({"image": photo}, {"kinds": "Eyes"}, expert_ctx)["json"].value
    assert only_eyes["searched"] == ["eye"]
    assert [o["label"] for o in only_eyes["objects"]] == ["eye", "eye"]
    with pytest.raises(ExpertError, match=r"cannot find 'dogs'.*face, eye, person, cat face, licence plate"):
        expert.run({"image": photo}, {"kinds": "people, dogs"}, expert_ctx)


def test_a_file_that_is_not_an_image_is_refused(expert_ctx: Any) -> None:
    fake = expert_ctx.workdir / "notes.png"
    fake.write_text("just some text")
    resource = Resource.media(expert_ctx.save_file(fake))
    with pytest.raises(ExpertError, match="not a readable image"):
        ClassicalDetector(load_catalog().get("builtin/opencv-detect")).run({"image": resource}, {}, expert_ctx)


# ---------------------------------------------------------------- ControlNet conditions


def test_canny_marks_the_rectangle_border_only(expert_ctx: Any) -> None:
    out = CannyControl(load_catalog().get("builtin/opencv-canny")).run(
        {"image": image_input(expert_ctx, rectangle())}, {}, expert_ctx
    )
    edges = pixels(out["image"])
    assert edges.shape == (240, 320, 3)
    mask = edges[..., 0] > 127
    assert set(np.unique(edges)) <= {0, 255}
    near = np.zeros_like(mask)
    near[57:183, 77:243] = True
    near[63:177, 83:237] = False  # a band of 3 pixels either side of the drawn border
    assert not mask[~near].any()  # nothing inside the rectangle or out in the background
    for side in (mask[57:63, 90:230].any(axis=0), mask[177:183, 90:230].any(axis=0)):
        assert side.mean() > 0.95  # top and bottom edges traced along their length
    for side in (mask[70:170, 77:83].any(axis=1), mask[70:170, 237:243].any(axis=1)):
        assert side.mean() > 0.95  # left and right


def test_line_map_finds_the_four_sides_of_a_rectangle(expert_ctx: Any) -> None:
    import cv2

    grey = cv2.cvtColor(rectangle(), cv2.COLOR_RGB2GRAY)
    segments = line_segments(grey)
    assert len(segments) == 4, segments
    horizontal = sorted((y0 + y1) / 2 for x0, y0, x1, y1 in segments if abs(y1 - y0) < 2 and abs(x1 - x0) > 150)
    vertical = sorted((x0 + x1) / 2 for x0, y0, x1, y1 in segments if abs(x1 - x0) < 2 and abs(y1 - y0) > 110)
    assert horizontal == pytest.approx([59.5, 179.5], abs=1.5)
    assert vertical == pytest.approx([79.5, 239.5], abs=1.5)

    out = LineControl(load_catalog().get("builtin/opencv-lsd")).run(
        {"image": image_input(expert_ctx, rectangle())}, {}, expert_ctx
    )
    drawn = pixels(out["image"])[..., 0] > 127
    assert drawn[57:63, 90:230].any(axis=0).all() and drawn[177:183, 90:230].any(axis=0).all()
    assert drawn[70:170, 77:83].any(axis=1).all() and drawn[70:170, 237:243].any(axis=1).all()
    assert not drawn[66:174, 86:234].any() and not drawn[:50].any()


def test_line_map_of_a_blank_image_is_black(expert_ctx: Any) -> None:
    out = LineControl(load_catalog().get("builtin/opencv-lsd")).run(
        {"image": image_input(expert_ctx, np.full((100, 120, 3), 128))}, {}, expert_ctx
    )
    assert not pixels(out["image"]).any()


def test_scribble_draws_thick_strokes_on_the_outline(expert_ctx: Any) -> None:
    out = ScribbleControl(load_catalog().get("builtin/opencv-scribble")).run(
        {"image": image_input(expert_ctx, rectangle())}, {}, expert_ctx
    )
    strokes = pixels(out["image"])[..., 0] > 127
    assert strokes.shape == (240, 320)
    assert strokes[50:70, 100:220].any(axis=0).all()  # the top side is traced
    assert strokes[50:70, 160].sum() >= 3  # as a stroke several pixels thick, not a hairline
    assert not strokes[90:150, 120:200].any() and not strokes[:40].any() and not strokes[:, :60].any()


def test_seg_condition_paints_two_regions_in_ade20k_colours(expert_ctx: Any) -> None:
    out = SegControl(load_catalog().get("builtin/slic-seg-control")).run(
        {"image": image_input(expert_ctx, halves())}, {}, expert_ctx
    )
    seg = pixels(out["image"])
    colours = {tuple(int(v) for v in c) for c in np.unique(seg.reshape(-1, 3), axis=0)}
    assert len(colours) == 2 and colours <= set(PALETTE)
    assert len({tuple(c) for c in seg[:, :140].reshape(-1, 3)}) == 1
    assert len({tuple(c) for c in seg[:, 160:].reshape(-1, 3)}) == 1


# ---------------------------------------------------------------- segmentation and cut-outs


def test_two_coloured_halves_make_two_half_segments(expert_ctx: Any) -> None:
    out = ColourSegmenter(load_catalog().get("builtin/slic-segment")).run(
        {"image": image_input(expert_ctx, halves())}, {}, expert_ctx
    )
    result = out["json"].value
    assert result["count"] == 2, result
    segments = {s["colour_name"]: s for s in result["segments"]}
    assert set(segments) == {"red", "blue"}
    for name, expected_box in (("red", [0, 0, 150, 200]), ("blue", [150, 0, 300, 200])):
        segment = segments[name]
        assert 0.47 <= segment["share"] <= 0.53
        assert segment["area"] == pytest.approx(30_000, rel=0.06)
        assert segment["box"] == pytest.approx(expected_box, abs=4)
    assert segments["red"]["mean_colour"] == pytest.approx([200, 30, 30], abs=6)
    label_map = pixels(out["image"])
    assert label_map.shape == (200, 300, 3)
    assert {tuple(int(v) for v in c) for c in np.unique(label_map.reshape(-1, 3), axis=0)} <= set(DISTINCT)


def test_segments_option_caps_the_count_and_is_checked(expert_ctx: Any) -> None:
    expert = ColourSegmenter(load_catalog().get("builtin/slic-segment"))
    photo = image_input(expert_ctx, skimage_data.astronaut())
    result = expert.run({"image": photo}, {"segments": "3"}, expert_ctx)["json"].value
    assert 1 <= result["count"] <= 3
    assert sum(s["area"] for s in result["segments"]) == 512 * 512
    default = expert.run({"image": photo}, {}, expert_ctx)["json"].value
    assert 3 < default["count"] <= 12
    with pytest.raises(ExpertError, match="segments must be a whole number from 1 to 50"):
        expert.run({"image": photo}, {"segments": "lots"}, expert_ctx)


def test_background_removal_makes_the_background_transparent(expert_ctx: Any) -> None:
    picture = Image.new("RGB", (320, 240), (225, 228, 230))
    ImageDraw.Draw(picture).ellipse((100, 50, 220, 190), fill=(200, 60, 20), outline=(90, 20, 10), width=4)
    noisy = np.clip(np.asarray(picture) + np.random.default_rng(3).normal(0, 4, (240, 320, 3)), 0, 255)
    out = GrabCutCutout(load_catalog().get("builtin/grabcut")).run(
        {"image": image_input(expert_ctx, noisy)}, {}, expert_ctx
    )
    with Image.open(out["image"].path) as image:
        assert image.mode == "RGBA" and image.size == (320, 240)
        rgba = np.asarray(image)
    alpha = rgba[..., 3]
    assert alpha[120, 160] >= 250 and alpha[70:170, 130:190].min() >= 250  # inside the object
    for y, x in ((0, 0), (0, 319), (239, 0), (239, 319), (120, 40), (20, 160)):
        assert alpha[y, x] <= 5, (y, x)  # corners and plain background
    assert np.array_equal(rgba[120, 160, :3], np.asarray(noisy, np.uint8)[120, 160])  # colours kept


def test_background_removal_refuses_an_image_with_no_subject(expert_ctx: Any) -> None:
    with pytest.raises(ExpertError, match="no foreground subject"):
        GrabCutCutout(load_catalog().get("builtin/grabcut")).run(
            {"image": image_input(expert_ctx, np.full((120, 160, 3), 200))}, {}, expert_ctx
        )


# ---------------------------------------------------------------- document question answering

INVOICE = [
    ("ACME Supplies Ltd.", 56),
    ("INVOICE", 48),
    ("Invoice Number: INV-2041", 32),
    ("Date: 12 March 2024", 32),
    ("Bill to: Jane Smith", 32),
    ("Paper, 10 reams    $45.00", 32),
    ("Subtotal: $90.00", 32),
    ("Tax: $9.50", 32),
    ("Total: $99.50", 32),
    ("Payment due by 11 April 2024", 32),
]


@pytest.fixture(scope="module")
def invoice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = Image.new("RGB", (900, 60 + sum(size * 2 for _, size in INVOICE)), "white")
    pen = ImageDraw.Draw(image)
    y = 30
    for text, size in INVOICE:
        pen.text((40, y), text, fill="black", font=ImageFont.load_default(size=size))
        y += size * 2
    path = tmp_path_factory.mktemp("docqa") / "invoice.png"
    image.save(path)
    return path


@needs_tesseract
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is the total amount due in the invoice?", "$99.50"),
        ("What is the total sum I need to pay as per the invoice?", "$99.50"),
        ("What is the invoice number?", "INV-2041"),
        ("Can you tell me the date of the invoice?", "12 March 2024"),
        ("When is the payment due?", "11 April 2024"),
        ("Who is the invoice billed to?", "Jane Smith"),
        ("How much is the tax?", "$9.50"),
    ],
)
def test_docqa_finds_the_value_after_the_label(invoice: Path, question: str, expected: str) -> None:
    lines = _invoice_lines(invoice)
    answer = answer_question(question, lines)
    assert answer.startswith(expected), answer


_LINES: dict[Path, Any] = {}


def _invoice_lines(path: Path) -> Any:
    if path not in _LINES:  # one OCR pass for all the questions
        _LINES[path] = read_lines(path)
    return _LINES[path]


@needs_tesseract
def test_docqa_topic_and_unanswerable_questions(invoice: Path) -> None:
    lines = _invoice_lines(invoice)
    topic = answer_question("What is the main topic of this document?", lines)
    assert "ACME Supplies" in topic and "INVOICE" in topic
    missing = answer_question("What is the capital of France?", lines)
    assert missing.startswith("I could not find the answer") and "Total: $99.50" in missing


@needs_tesseract
@pytest.mark.slow
def test_docqa_expert_answers_and_says_when_there_is_no_text(invoice: Path, expert_ctx: Any) -> None:
    expert = TesseractDocQA(load_catalog().get("builtin/tesseract-docqa"))
    document = Resource.media(expert_ctx.save_file(invoice))
    out = expert.run({"image": document, "question": Resource.text("What is the total?")}, {}, expert_ctx)
    assert out["text"].value.startswith("$99.50")
    blank = image_input(expert_ctx, np.full((300, 400, 3), 255))
    out = expert.run({"image": blank, "question": Resource.text("Who wrote it?")}, {}, expert_ctx)
    assert out["text"].value.startswith("No printed text could be read")
    with pytest.raises(ExpertError, match="no question"):
        expert.run({"image": document, "question": Resource.text("  ")}, {}, expert_ctx)
