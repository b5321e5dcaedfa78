"""Transformers experts on tiny random models, through the path a user's own model takes.

Each test saves a tiny model (tests/tiny_models.py) into a folder, registers the folder for a task as
``baton models add`` does, and runs a one-task plan through ``Assistant.run`` with that model forced.
The weights are random, so the tests check the kinds and shapes of the outputs, never their content.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image

import tiny_models
from baton.assistant import Assistant, Result
from baton.catalog import load_catalog
from baton.config import Settings
from baton.experts.hub import add_local_model, local_models
from baton.experts.transformers import DETECTION_LABELS, _label_list
from baton.media import BadInput, Resource
from baton.plan import Plan, Task
from conftest import Baton

IMAGE_SIZE = (48, 40)  # not square, and not the models' own input size: outputs must come back at this size


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A tiny model's folder by builder name, built once per test session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return lambda name: tiny_models.build(name, root)


@pytest.fixture(scope="session")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small colourful PNG: a red square and a blue disc on a grey ground."""
    from PIL import ImageDraw

    image = Image.new("RGB", IMAGE_SIZE, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle([4, 4, 20, 20], fill=(220, 30, 30))
    draw.ellipse([24, 14, 44, 34], fill=(30, 30, 220))
    path = tmp_path_factory.mktemp("inputs") / "photo.png"
    image.save(path)
    return path


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half a second of a 16 kHz mono tone with a rising pitch, as a WAV file."""
    import math
    from array import array

    rate = 16_000
    samples = array(
        "h", (int(8000 * math.sin(2 * math.pi * (200 + 200 * i / rate) * i / rate)) for i in range(rate // 2))
    )
    path = tmp_path_factory.mktemp("inputs") / "speech.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


@dataclass
class Ran:
    """One finished single-task run and its outputs."""

    result: Result
    model: str

    @property
    def outputs(self) -> dict[str, Resource]:
        return self.result.outputs[0]

    def text(self) -> str:
        value = self.outputs["text"].value
        assert isinstance(value, str)
        return value

    def json(self) -> Any:
        return self.outputs["json"].value

    def image(self, port: str = "image") -> Image.Image:
        with Image.open(self.outputs[port].path) as image:
            image.load()
            return image


class Hub:
    """Registers tiny models in a fresh BATON_HOME and runs plans with them forced."""

    def __init__(self, home: Path, tiny: Callable[[str], Path]) -> None:
        self.settings = Settings(home=home, cpu_slots=1, task_timeout=120)
        self.tiny = tiny

    def add(self, builder: str, task: str) -> str:
        entry = add_local_model(self.tiny(builder), task, f"tiny/{builder}", self.settings)
        return str(entry["id"])

    def hints(self, builder: str) -> dict[str, Any]:
        """How a registered model loads, as registering it decided (its folder left out)."""
        hub = dict(local_models(self.settings)[f"tiny/{builder}"]["hub"])
        assert hub.pop("path") == str(self.tiny(builder))
        return hub

    def run_plan(self, plan: Plan, models: dict[str, str], inputs: tuple[Path, ...] = ()) -> Result:
        assistant = Assistant(self.settings, catalog=load_catalog())
        try:
            return asyncio.run(assistant.run("run the plan", inputs, plan=plan, models=models))
        finally:
            assistant.close()

    def run(self, builder: str, task: str, args: dict[str, Any], inputs: tuple[Path, ...] = ()) -> Ran:
        """One task by one tiny model, which must succeed."""
        model = self.add(builder, task)
        result = self.run_plan(Plan(tasks=[Task(id=0, task=task, args=args)]), {task: model}, inputs)
        record = result.run.task(0)
        assert record.model == model
        assert record.status == "succeeded", record.error
        return Ran(result, model)


@pytest.fixture
def hub(baton_home: Path, tiny: Callable[[str], Path]) -> Hub:
    return Hub(baton_home, tiny)


def assert_text(ran: Ran) -> str:
    text = ran.text()
    assert isinstance(text, str)
    return text


# how a registered folder loads, decided from its config when it is added


@pytest.mark.parametrize(
    ("config", "files", "task", "hints"),
    [
        (
            {"model_type": "detr", "architectures": ["DetrForObjectDetection"]},
            {},
            "object-detection",
            {"pipeline": "object-detection"},
        ),
        (
            {"model_type": "owlv2", "architectures": ["Owlv2ForObjectDetection"]},
            {},
            "object-detection",
            {"pipeline": "zero-shot-object-detection"},
        ),
        (
            {"model_type": "grounding-dino", "architectures": ["GroundingDinoForObjectDetection"]},
            {},
            "object-detection",
            {"pipeline": "zero-shot-object-detection"},
        ),
        (
            {"model_type": "vit", "architectures": ["ViTForImageClassification"]},
            {},
            "image-classification",
            {"pipeline": "image-classification"},
        ),
        (
            {"model_type": "siglip", "architectures": ["SiglipModel"], "text_config": {}, "vision_config": {}},
            {},
            "image-classification",
            {"pipeline": "zero-shot-image-classification"},
        ),
        (
            {"model_type": "table-transformer"},
            {},
            "tabular-classification",
            {"pipeline": "object-detection", "as_text": True},
        ),
        ({"model_type": "dpt"}, {}, "normal-control", {"pipeline": "depth-estimation", "normals": True}),
        ({"model_type": "segformer"}, {}, "seg-control", {"pipeline": "image-segmentation", "palette": True}),
        ({"model_type": "speecht5", "architectures": ["SpeechT5ForTextToSpeech"]}, {}, "tts", {"kind": "speecht5"}),
        ({"model_type": "vits", "architectures": ["VitsModel"]}, {}, "text-to-speech", {"pipeline": "text-to-audio"}),
        ({"model_type": "bert"}, {}, "sentence-similarity", {"kind": "embedding"}),
        (
            {"model_type": "qwen2"},
            {"tokenizer_config.json": {"chat_template": "{{ messages }}"}},
            "conversational",
            {"pipeline": "text-generation", "chat": True},
        ),
        ({"model_type": "gpt2"}, {"tokenizer_config.json": {}}, "text-generation", {"pipeline": "text-generation"}),
        (
            {"model_type": "idefics3"},
            {"chat_template.jinja": "{{ messages }}"},
            "image-to-text",
            {"pipeline": "image-to-text", "prompt": "Describe this image in detail."},
        ),
        ({"model_type": "blip"}, {}, "image-to-text", {"pipeline": "image-to-text"}),
    ],
)
def test_registering_a_folder_reads_how_it_loads_from_its_config(
    tmp_path: Path, config: dict[str, Any], files: dict[str, Any], task: str, hints: dict[str, Any]
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    for name, content in files.items():
        (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))
    entry = add_local_model(folder, task, "mine/model", Settings(home=tmp_path / "home"))
    assert entry["backend"] == "transformers"
    assert entry["hub"] == {**hints, "path": str(folder)}


def test_a_transformers_folder_for_a_task_without_a_pipeline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BadInput, match="cannot be registered for text-to-video"):
        add_local_model(tmp_path, "text-to-video", None, Settings(home=tmp_path / "home"))


# text


def test_text_classification_labels_a_text(hub: Hub) -> None:
    ran = hub.run("bert_text_classifier", "text-classification", {"text": "What a lovely day in Paris."})
    labels = ran.json()["labels"]
    assert len(labels) == 1
    assert labels[0]["label"] in ("NEGATIVE", "POSITIVE")
    assert 0.0 <= labels[0]["score"] <= 1.0
    assert labels[0]["label"] in ran.text()


def test_token_classification_finds_spans_inside_the_text(hub: Hub) -> None:
    text = "Ada Lovelace was born in London."
    ran = hub.run("bert_token_classifier", "token-classification", {"text": text})
    entities = ran.json()["entities"]
    assert isinstance(entities, list)
    for entity in entities:
        assert entity["type"] in ("PER", "LOC", "O")
        assert 0 <= entity["start"] < entity["end"] <= len(text)
        assert 0.0 <= entity["score"] <= 1.0
    assert_text(ran)


def test_question_answering_answers_with_text(hub: Hub) -> None:
    ran = hub.run(
        "bert_question_answering",
        "question-answering",
        {"question": "Where was Ada born?", "context": "Ada Lovelace was born in London in 1815."},
    )
    assert assert_text(ran).strip()


def test_summarization_with_a_tiny_bart(hub: Hub) -> None:
    text = "The harbour was quiet at dawn. Boats slept at their moorings while gulls circled overhead."
    ran = hub.run("bart_summarizer", "summarization", {"text": text})
    assert_text(ran)


def test_translation_with_a_tiny_t5(hub: Hub) -> None:
    ran = hub.run("t5_translator", "translation", {"text": "Good morning", "target": "German"})
    assert_text(ran)


def test_text_generation_with_a_tiny_gpt2(hub: Hub) -> None:
    ran = hub.run("gpt2_generator", "text-generation", {"text": "Once upon a time"})
    assert_text(ran)


def test_a_chat_model_registered_for_conversation_replies_through_its_template(hub: Hub) -> None:
    ran = hub.run("gpt2_chat", "conversational", {"text": "Hello, who are you?"})
    assert hub.hints("gpt2_chat") == {"pipeline": "text-generation", "chat": True}
    assert_text(ran)


def test_sentence_similarity_scores_two_texts(hub: Hub) -> None:
    ran = hub.run(
        "bert_embedder", "sentence-similarity", {"text": "A cat sat on the mat.", "text2": "A dog lay on the rug."}
    )
    score = ran.json()["score"]
    assert -1.0 <= score <= 1.0
    assert ran.text().startswith("similarity ")


# vision


def assert_boxes_inside(objects: list[dict[str, Any]], labels: set[str]) -> None:
    width, height = IMAGE_SIZE
    for found in objects:
        assert found["label"] in labels
        assert 0.0 <= found["score"] <= 1.0
        box = found["box"]
        assert len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
        x0, y0, x1, y1 = box
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height, box


def test_image_classification_labels_an_image(hub: Hub, photo: Path) -> None:
    ran = hub.run("vit_classifier", "image-classification", {"image": photo.name}, (photo,))
    labels = ran.json()["labels"]
    assert 1 <= len(labels) <= 3
    assert {label["label"] for label in labels} <= {"cat", "dog", "car"}
    assert all(0.0 <= label["score"] <= 1.0 for label in labels)
    assert labels[0]["label"] in ran.text()


def test_zero_shot_image_classification_with_clip(hub: Hub, photo: Path) -> None:
    ran = hub.run("clip_zero_shot", "image-classification", {"image": photo.name}, (photo,))
    labels = ran.json()["labels"]
    assert labels and all(0.0 <= label["score"] <= 1.0 for label in labels)
    # CLIP has no label head: it scores the expert's default labels, given as text
    assert {label["label"] for label in labels} <= set(_label_list(DETECTION_LABELS))
    assert labels[0]["label"] in ran.text()


@pytest.mark.slow  # generates up to 120 tokens
def test_image_to_text_with_blip(hub: Hub, photo: Path) -> None:
    ran = hub.run("blip_captioner", "image-to-text", {"image": photo.name}, (photo,))
    assert_text(ran)


def test_image_to_text_with_a_vision_encoder_decoder(hub: Hub, photo: Path) -> None:
    ran = hub.run("vit_gpt2_captioner", "image-to-text", {"image": photo.name}, (photo,))
    assert_text(ran)


@pytest.mark.slow  # generates up to 120 tokens
def test_a_chat_vlm_captions_and_answers_through_its_chat_template(hub: Hub, photo: Path) -> None:
    ran = hub.run("llava_chat", "image-to-text", {"image": photo.name}, (photo,))
    assert hub.hints("llava_chat") == {"pipeline": "image-to-text", "prompt": "Describe this image in detail."}
    assert_text(ran)
    ran = hub.run(
        "llava_chat", "visual-question-answering", {"image": photo.name, "question": "What is red?"}, (photo,)
    )
    assert hub.hints("llava_chat") == {"pipeline": "visual-question-answering", "chat": True}
    assert_text(ran)


def test_visual_question_answering_with_vilt(hub: Hub, photo: Path) -> None:
    ran = hub.run(
        "vilt_vqa", "visual-question-answering", {"image": photo.name, "question": "what colour is it?"}, (photo,)
    )
    assert ran.text() in ("yes", "no", "red", "blue", "two")


def test_visual_question_answering_with_blip(hub: Hub, photo: Path) -> None:
    ran = hub.run(
        "blip_vqa", "visual-question-answering", {"image": photo.name, "question": "how many shapes?"}, (photo,)
    )
    assert_text(ran)


@pytest.mark.parametrize("builder", ["detr_detector", "yolos_detector"])
def test_object_detection_gives_boxes_and_a_drawn_image(hub: Hub, photo: Path, builder: str) -> None:
    ran = hub.run(builder, "object-detection", {"image": photo.name}, (photo,))
    objects = ran.json()["objects"]
    assert objects, "the tiny detector is biased to its first label, so it finds something"
    assert_boxes_inside(objects, {"cat", "dog"})
    drawn = ran.image()
    assert drawn.size == IMAGE_SIZE and drawn.mode == "RGB"


def test_zero_shot_object_detection_with_owlvit(hub: Hub, photo: Path) -> None:
    ran = hub.run("owlvit_detector", "object-detection", {"image": photo.name, "kinds": "cat, red square"}, (photo,))
    objects = ran.json()["objects"]
    assert_boxes_inside(objects, {"cat", "red square"})
    assert ran.image().size == IMAGE_SIZE


@pytest.mark.parametrize("builder", ["dpt_depth", "depth_anything"])
def test_depth_estimation_gives_a_depth_map_of_the_input_size(hub: Hub, photo: Path, builder: str) -> None:
    ran = hub.run(builder, "depth-estimation", {"image": photo.name}, (photo,))
    depth = ran.image()
    assert depth.size == IMAGE_SIZE
    assert depth.mode == "L"


@pytest.mark.parametrize("builder", ["segformer_segmenter", "detr_panoptic"])
def test_image_segmentation_paints_segments_of_the_input_size(hub: Hub, photo: Path, builder: str) -> None:
    ran = hub.run(builder, "image-segmentation", {"image": photo.name}, (photo,))
    painted = ran.image()
    assert painted.size == IMAGE_SIZE and painted.mode == "RGB"
    segments = ran.json()["segments"]
    assert segments, "every pixel belongs to some segment"
    pixels = IMAGE_SIZE[0] * IMAGE_SIZE[1]
    for segment in segments:
        assert isinstance(segment["label"], str)
        assert 0 < segment["area"] <= pixels
        assert 0.0 < segment["share"] <= 1.0


def test_models_load_in_parallel_threads(hub: Hub, photo: Path) -> None:
    """Tasks on different models start at once: their loads must not corrupt each other (transformers
    builds models under process-wide patches, so baton loads one at a time)."""
    hub.settings = hub.settings.replace(cpu_slots=3)
    tasks = {"image-to-text": "blip_captioner", "object-detection": "detr_detector", "depth-estimation": "dpt_depth"}
    models = {task: hub.add(builder, task) for task, builder in tasks.items()}
    plan = Plan(tasks=[Task(id=i, task=task, args={"image": photo.name}) for i, task in enumerate(tasks)])
    result = hub.run_plan(plan, models, (photo,))
    assert [(t.model, t.status, t.error) for t in result.run.tasks] == [
        (model, "succeeded", None) for model in models.values()
    ]


# speech


def assert_wav(path: Path) -> float:
    """A mono 16-bit WAV's duration in seconds, which must be positive."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        assert wav.getframerate() > 0
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds > 0
    return seconds


def test_speech_recognition_with_whisper(hub: Hub, speech: Path) -> None:
    ran = hub.run("whisper_asr", "automatic-speech-recognition", {"audio": speech.name}, (speech,))
    assert_text(ran)


@pytest.mark.parametrize("builder", ["speecht5_tts", "vits_tts"])
def test_text_to_speech_gives_a_wav(hub: Hub, builder: str) -> None:
    ran = hub.run(builder, "text-to-speech", {"text": "Hello there, how are you?"})
    assert set(ran.outputs) == {"audio"}
    assert ran.outputs["audio"].path.suffix == ".wav"
    assert_wav(ran.outputs["audio"].path)


# the command line: register folders with `baton models add`, run a plan across them


@pytest.mark.slow
def test_models_add_then_a_plan_across_three_tiny_models(
    tiny: Callable[[str], Path], baton: Baton, photo: Path, tmp_path: Path
) -> None:
    added = {
        "image-to-text": ("tiny/blip", tiny("blip_captioner")),
        "object-detection": ("tiny/detr", tiny("detr_detector")),
        "text-to-speech": ("tiny/speecht5", tiny("speecht5_tts")),
    }
    for task, (model, folder) in added.items():
        done = baton("models", "add", folder, "--task", task, "--id", model)
        assert done.code == 0, done
        assert f"registered {model} (transformers, {task})" in done.stdout, done
    listed = {card["id"]: card for card in baton("models", "--json").json()}
    for task, (model, folder) in added.items():
        assert listed[model]["task"] == task and listed[model]["backend"] == "transformers"
        assert listed[model]["missing"] == []
        assert listed[model]["hub"]["path"] == str(folder)

    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            [
                {"task": "object-detection", "id": 0, "dep": [-1], "args": {"image": photo.name}},
                {"task": "image-to-text", "id": 1, "dep": [-1], "args": {"image": photo.name}},
                {"task": "text-to-speech", "id": 2, "dep": [1], "args": {"text": "<GENERATED>-1"}},
            ]
        )
    )
    forced = [arg for task, (model, _) in added.items() for arg in ("-m", f"{task}={model}")]
    done = baton("run", "--plan", plan, "-i", photo, *forced, "--json", cwd=tmp_path, timeout=300)
    assert done.code == 0, done
    result = done.json()
    assert [(t["task"], t["model"], t["status"]) for t in result["tasks"]] == [
        ("object-detection", "tiny/detr", "succeeded"),
        ("image-to-text", "tiny/blip", "succeeded"),
        ("text-to-speech", "tiny/speecht5", "succeeded"),
    ]
    detection, caption, speech = (t["outputs"] for t in result["tasks"])
    assert detection["json"]["value"]["objects"]
    assert isinstance(caption["text"]["value"], str)
    drawn = Path(result["artifacts"][detection["image"]["artifact"]])
    with Image.open(drawn) as image:
        assert image.size == IMAGE_SIZE
    assert assert_wav(Path(result["artifacts"][speech["audio"]["artifact"]])) > 0

    done = baton("models", "rm", "tiny/blip")
    assert done.code == 0 and "forgot tiny/blip" in done.stdout, done
    assert "tiny/blip" not in {card["id"] for card in baton("models", "--json").json()}


def test_a_half_precision_folder_is_budgeted_at_its_fp32_size(tmp_path: Path) -> None:
    """Weights stored in fp16 double when they run at fp32 on a CPU: the estimate must say so."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from baton.config import Settings
    from baton.experts.hub import add_local_model

    config = BertConfig(
        vocab_size=3000, hidden_size=256, num_hidden_layers=1, num_attention_heads=4, intermediate_size=512
    )
    model = BertForSequenceClassification(config)  # about 1.6 M parameters: 6 MB at fp32
    model.save_pretrained(tmp_path / "full")
    model.to(torch.float16).save_pretrained(tmp_path / "half")
    settings = Settings(home=tmp_path / "home")
    as_full = add_local_model(tmp_path / "full", "text-classification", "test/full", settings)
    as_half = add_local_model(tmp_path / "half", "text-classification", "test/half", settings)
    assert as_full["memory_mb"] >= 5
    assert abs(as_half["memory_mb"] - as_full["memory_mb"]) <= 1  # the same model at fp32 either way
