"""The task registry: HuggingGPT's 24 tasks, ControlNet, Visual ChatGPT editing, and both TaskBench tool lists."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import cast

import pytest

from baton.media import KINDS, Kind
from baton.tasks import Port, TaskSpec, UnknownTask, all_tasks, get_task, normalize, resolve

TASKBENCH = Path(__file__).resolve().parents[2] / "shared" / "taskbench"

HUGGINGGPT_TASKS = [
    "text-classification",
    "token-classification",
    "text2text-generation",
    "summarization",
    "translation",
    "question-answering",
    "conversational",
    "text-generation",
    "sentence-similarity",
    "tabular-classification",
    "object-detection",
    "image-classification",
    "image-to-text",
    "text-to-image",
    "image-to-image",
    "image-segmentation",
    "depth-estimation",
    "text-to-speech",
    "automatic-speech-recognition",
    "audio-to-audio",
    "audio-classification",
    "document-question-answering",
    "visual-question-answering",
    "text-to-video",
]

CONDITIONS = ["canny", "depth", "hed", "mlsd", "normal", "openpose", "scribble", "seg"]

# Visual ChatGPT's tool names for the ControlNet pairs: (condition, extraction tool, conditioned-generation tool)
VISUAL_CHATGPT_CONTROLNET = [
    ("canny", "Edge Detection On Image", "Generate Image Condition On Canny Image"),
    ("depth", "Predict Depth On Image", "Generate Image Condition On Depth"),
    ("hed", "Hed Detection On Image", "Generate Image Condition On Soft Hed Boundary Image"),
    ("mlsd", "Line Detection On Image", "Generate Image Condition On Line Image"),
    ("normal", "Predict Normal Map On Image", "Generate Image Condition On Normal Map"),
    ("openpose", "Pose Detection On Image", "Generate Image Condition On Pose Image"),
    ("scribble", "Sketch Detection On Image", "Generate Image Condition On Sketch Image"),
    ("seg", "Segmentation On Image", "Generate Image Condition On Segmentations"),
]

# Visual ChatGPT's (and TaskBench's) names for editing and the core vision tools
VISUAL_CHATGPT_TOOLS = {
    "Instruct Image Using Text": "instruct-image-editing",
    "Image Editing": "instruct-image-editing",
    "Remove Something From The Photo": "remove-object",
    "Replace Something From The Photo": "replace-object",
    "Extend An Image": "outpainting",
    "Get Photo Description": "image-to-text",
    "Generate Image From User Input Text": "text-to-image",
    "Answer Question About The Image": "visual-question-answering",
    "Segment the Image": "image-segmentation",
}

# Copies of TaskBench's tool lists: (id, input-type, output-type). test_tool_list_copies_match_files keeps them honest.
MULTIMEDIA_TOOLS = [
    ("Image Downloader", ["url"], ["image"]),
    ("Video Downloader", ["url"], ["video"]),
    ("Audio Downloader", ["url"], ["audio"]),
    ("Text Downloader", ["url"], ["text"]),
    ("Text Search", ["text"], ["text"]),
    ("Image Search", ["text"], ["Image"]),
    ("Image Search (by Image)", ["image"], ["image"]),
    ("URL Extractor", ["text"], ["url"]),
    ("Video Search", ["text"], ["video"]),
    ("Text-to-Image", ["text"], ["image"]),
    ("Text-to-Video", ["text"], ["video"]),
    ("Text-to-Audio", ["text"], ["audio"]),
    ("Image-to-Text", ["image"], ["text"]),
    ("Audio-to-Text", ["audio"], ["text"]),
    ("Video-to-Text", ["video"], ["text"]),
    ("Audio Noise Reduction", ["audio"], ["audio"]),
    ("Audio Effects", ["audio", "text"], ["audio"]),
    ("Audio Splicer", ["audio", "audio"], ["audio"]),
    ("Voice Changer", ["audio", "text"], ["audio"]),
    ("Text Summarizer", ["text"], ["text"]),
    ("Text Translator", ["text"], ["text"]),
    ("Text Sentiment Analysis", ["text"], ["text"]),
    ("Text Grammar Checker", ["text"], ["text"]),
    ("Text Simplifier", ["text"], ["text"]),
    ("Text Expander", ["text"], ["text"]),
    ("Keyword Extractor", ["text"], ["text"]),
    ("Text Paraphraser", ["text"], ["text"]),
    ("Article Spinner", ["text"], ["text"]),
    ("Topic Generator", ["text"], ["text"]),
    ("Audio-to-Image", ["audio"], ["image"]),
    ("Image-to-Video", ["image", "image"], ["video"]),
    ("Video-to-Audio", ["video"], ["audio"]),
    ("Video-to-Image", ["video"], ["image"]),
    ("Image Stitcher", ["image", "image"], ["image"]),
    ("Image Colorizer", ["image"], ["image"]),
    ("Image Style Transfer", ["image", "image"], ["image"]),
    ("Video Stabilizer", ["video"], ["video"]),
    ("Video Speed Changer", ["video", "text"], ["video"]),
    ("Video Synchronization", ["video", "audio"], ["video"]),
    ("Video Voiceover", ["video", "text"], ["video"]),
]

HUGGINGFACE_TOOLS = [
    ("Token Classification", ["text"], ["text"]),
    ("Translation", ["text"], ["text"]),
    ("Summarization", ["text"], ["text"]),
    ("Question Answering", ["text", "text"], ["text"]),
    ("Conversational", ["text"], ["text"]),
    ("Text Generation", ["text"], ["text"]),
    ("Sentence Similarity", ["text", "text"], []),
    ("Tabular Classification", ["image"], ["text"]),
    ("Object Detection", ["image"], ["text"]),
    ("Image Classification", ["image"], ["text"]),
    ("Image-to-Image", ["image"], ["image"]),
    ("Image-to-Text", ["image"], ["text"]),
    ("Text-to-Image", ["text"], ["image"]),
    ("Text-to-Video", ["text"], ["video"]),
    ("Visual Question Answering", ["image", "text"], ["text"]),
    ("Document Question Answering", ["image", "text"], ["text"]),
    ("Image Segmentation", ["image"], ["image"]),
    ("Depth Estimation", ["image"], ["image"]),
    ("Text-to-Speech", ["text"], ["audio"]),
    ("Automatic Speech Recognition", ["audio"], ["text"]),
    ("Audio-to-Audio", ["audio"], ["audio"]),
    ("Audio Classification", ["audio"], ["text"]),
    ("Image Editing", ["text", "image"], ["image"]),
]

TOOL_LISTS = {"multimedia": MULTIMEDIA_TOOLS, "huggingface": HUGGINGFACE_TOOLS}

# Where baton's outputs legitimately differ from a tool list's output-type beyond an added json output:
# the tool list's kinds, and what baton produces instead.
OUTPUT_EXCEPTIONS = {
    # TaskBench lists no output for Sentence Similarity; baton returns the score as text plus json.
    "Sentence Similarity": ["json", "text"],
    # TaskBench says text; baton returns the image with boxes drawn plus the detections as json,
    # and json feeds text inputs (checked below), so a TaskBench chain "Object Detection -> text tool" still works.
    "Object Detection": ["image", "json"],
}


def kinds(ports: tuple[Port, ...]) -> list[str]:
    return sorted(p.kind for p in ports)


def required_kinds(spec: TaskSpec) -> list[str]:
    return sorted(p.kind for p in spec.inputs if not p.optional)


# --- the HuggingGPT tasks ---


def test_all_24_hugginggpt_tasks_are_registered_under_their_own_names() -> None:
    assert len(HUGGINGGPT_TASKS) == 24
    for name in HUGGINGGPT_TASKS:
        spec = get_task(name)
        assert spec.name == name
        assert resolve(name) == name
        assert spec.description
    assert {t.name for t in all_tasks() if t.group == "huggingface"} == set(HUGGINGGPT_TASKS)


@pytest.mark.parametrize(
    ("task", "inputs", "outputs"),
    [
        ("image-to-text", ["image"], ["text"]),
        ("text-to-speech", ["text"], ["audio"]),
        ("automatic-speech-recognition", ["audio"], ["text"]),
        ("visual-question-answering", ["image", "text"], ["text"]),
        ("document-question-answering", ["image", "text"], ["text"]),
        ("question-answering", ["text", "text"], ["text"]),
        ("text-to-video", ["text"], ["video"]),
        ("object-detection", ["image"], ["image", "json"]),
        ("depth-estimation", ["image"], ["image"]),
    ],
)
def test_hugginggpt_task_signatures(task: str, inputs: list[str], outputs: list[str]) -> None:
    spec = get_task(task)
    assert required_kinds(spec) == inputs
    assert kinds(spec.outputs) == outputs


def test_question_ports_are_named_so_args_can_address_them() -> None:
    assert [p.name for p in get_task("visual-question-answering").inputs] == ["image", "question"]
    assert [p.name for p in get_task("question-answering").inputs] == ["question", "context"]
    translation = get_task("translation")
    target = translation.input("target")
    assert target is not None and target.optional and target.kind == "text"


@pytest.mark.parametrize(
    ("alias", "task"),
    [
        ("sentiment-analysis", "text-classification"),
        ("ner", "token-classification"),
        ("ocr", "image-to-text"),
        ("image captioning", "image-to-text"),
        ("tts", "text-to-speech"),
        ("ASR", "automatic-speech-recognition"),
        ("speech-to-text", "automatic-speech-recognition"),
        ("vqa", "visual-question-answering"),
        ("document-qa", "document-question-answering"),
    ],
)
def test_common_short_names_resolve(alias: str, task: str) -> None:
    assert resolve(alias) == task


# --- ControlNet and Visual ChatGPT ---


def test_each_controlnet_condition_has_an_extraction_and_a_conditioned_generation_task() -> None:
    controlnet = {t.name for t in all_tasks() if t.group == "controlnet"}
    assert controlnet == {f"{c}-control" for c in CONDITIONS} | {f"{c}-text-to-image" for c in CONDITIONS}
    for cond in CONDITIONS:
        extract = get_task(f"{cond}-control")
        assert kinds(extract.inputs) == ["image"]
        assert kinds(extract.outputs) == ["image"]
        generate = get_task(f"{cond}-text-to-image")
        assert [(p.name, p.kind, p.optional) for p in generate.inputs] == [
            ("image", "image", False),
            ("prompt", "text", False),
        ]
        assert kinds(generate.outputs) == ["image"]
        # the short forms work too
        assert resolve(f"image-to-{cond}") == f"{cond}-control"
        assert resolve(f"{cond}-to-image") == f"{cond}-text-to-image"


@pytest.mark.parametrize(("cond", "extract", "generate"), VISUAL_CHATGPT_CONTROLNET)
def test_visual_chatgpt_controlnet_tool_names_resolve(cond: str, extract: str, generate: str) -> None:
    assert resolve(extract) == f"{cond}-control"
    assert resolve(generate) == f"{cond}-text-to-image"


@pytest.mark.parametrize(("tool", "task"), VISUAL_CHATGPT_TOOLS.items())
def test_visual_chatgpt_tool_names_resolve(tool: str, task: str) -> None:
    assert resolve(tool) == task


def test_editing_tasks_take_an_image_and_the_text_they_need() -> None:
    editing = {t.name: t for t in all_tasks() if t.group == "editing"}
    assert set(editing) == {
        "instruct-image-editing",
        "remove-object",
        "replace-object",
        "background-removal",
        "outpainting",
    }
    for spec in editing.values():
        assert spec.inputs[0].kind == "image" and not spec.inputs[0].optional
        assert kinds(spec.outputs) == ["image"]
    assert [(p.name, p.optional) for p in editing["instruct-image-editing"].inputs] == [
        ("image", False),
        ("instruction", False),
    ]
    assert [p.name for p in editing["remove-object"].inputs] == ["image", "object"]
    assert [p.name for p in editing["replace-object"].inputs] == ["image", "object", "replacement"]
    assert required_kinds(editing["background-removal"]) == ["image"]
    prompt = editing["outpainting"].input("prompt")
    assert prompt is not None and prompt.optional


# --- TaskBench tool lists ---


@pytest.mark.parametrize("domain", ["multimedia", "huggingface"])
def test_tool_list_copies_match_files(domain: str) -> None:
    path = TASKBENCH / f"{domain}.tool_desc.json"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    nodes = json.loads(path.read_text())["nodes"]
    assert [(n["id"], n["input-type"], n["output-type"]) for n in nodes] == TOOL_LISTS[domain]


def test_tool_list_sizes() -> None:
    assert len(MULTIMEDIA_TOOLS) == 40
    assert len(HUGGINGFACE_TOOLS) == 23


@pytest.mark.parametrize(
    ("tool", "inputs", "outputs"),
    [pytest.param(*t, id=f"multimedia:{t[0]}") for t in MULTIMEDIA_TOOLS]
    + [pytest.param(*t, id=f"huggingface:{t[0]}") for t in HUGGINGFACE_TOOLS],
)
def test_every_tool_resolves_to_a_task_with_the_same_kinds(tool: str, inputs: list[str], outputs: list[str]) -> None:
    spec = get_task(tool)
    assert resolve(tool) == spec.name
    # inputs: the required ports are exactly the tool's inputs (as a multiset of kinds);
    # baton may add optional ones (translation's target, image-to-image's instruction)
    assert required_kinds(spec) == sorted(k.lower() for k in inputs), f"{tool} -> {spec.name}"
    # outputs: the tool's kinds, with an extra json output allowed, except the documented exceptions
    want = sorted(k.lower() for k in outputs)
    if tool in OUTPUT_EXCEPTIONS:
        assert kinds(spec.outputs) == OUTPUT_EXCEPTIONS[tool]
    else:
        assert sorted(p.kind for p in spec.outputs if p.kind != "json") == want, f"{tool} -> {spec.name}"
    # whatever the list says a tool produces, baton's task can feed it on
    for kind in want:
        assert spec.output_of_kind(cast(Kind, kind)) is not None, f"{spec.name} cannot feed a {kind} input"


def test_tool_list_exceptions_are_real() -> None:
    """The exceptions above describe how the tool list differs, so drop them if the lists change."""
    hf = {tool: outputs for tool, _, outputs in HUGGINGFACE_TOOLS}
    assert hf["Sentence Similarity"] == []
    assert hf["Object Detection"] == ["text"]
    detection = get_task("Object Detection")
    json_port = detection.output_of_kind("text")
    assert json_port is not None and json_port.kind == "json"


@pytest.mark.parametrize("domain", ["multimedia", "huggingface"])
def test_tools_of_one_domain_map_to_distinct_tasks(domain: str) -> None:
    names = [resolve(tool) for tool, _, _ in TOOL_LISTS[domain]]
    assert [n for n, c in Counter(names).items() if c > 1] == []


@pytest.mark.parametrize(
    ("written", "task"),
    [
        ("Image_to_Text", "image-to-text"),  # TaskBench's metric reads "_" as a space
        ("IMAGE-TO-TEXT", "image-to-text"),
        ("  image to text ", "image-to-text"),
        ("image search (by image)", "image-search-by-image"),
        ("Audio-to-Text", "automatic-speech-recognition"),
        ("Text Sentiment Analysis", "text-classification"),
        ("Text Translator", "translation"),
    ],
)
def test_names_resolve_whatever_their_case_and_separators(written: str, task: str) -> None:
    assert resolve(written) == task


# --- unknown names ---


def test_misspelt_name_raises_unknown_task_suggesting_the_intended_task() -> None:
    with pytest.raises(UnknownTask) as caught:
        resolve("image-captionin")
    exc = caught.value
    assert isinstance(exc, LookupError)
    assert exc.name == "image-captionin"
    assert exc.suggestions[0] == "image-to-text"
    message = str(exc)
    assert "unknown task 'image-captionin'" in message
    assert "did you mean image-to-text" in message
    assert "baton tasks" in message


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("objekt detection", "object-detection"),
        ("speach recognition", "automatic-speech-recognition"),
        ("text to speach", "text-to-speech"),
        ("translate", "translation"),
        ("summarize", "summarization"),
        ("captioning", "image-to-text"),
    ],
)
def test_suggestions_put_the_likely_task_first(written: str, meant: str) -> None:
    with pytest.raises(UnknownTask) as caught:
        get_task(written)
    suggestions = caught.value.suggestions
    assert suggestions[0] == meant
    assert len(suggestions) <= 3
    assert len(set(suggestions)) == len(suggestions)
    assert all(get_task(s).name == s for s in suggestions)


def test_a_name_like_nothing_known_gets_no_suggestions() -> None:
    with pytest.raises(UnknownTask) as caught:
        resolve("xyzzy")
    assert caught.value.suggestions == []
    assert "did you mean" not in str(caught.value)
    assert "unknown task 'xyzzy'" in str(caught.value)


# --- registry integrity ---


def test_registry_names_are_unique_normalized_and_typed() -> None:
    specs = all_tasks()
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    for spec in specs:
        assert spec.name == normalize(spec.name)
        assert spec.description
        assert spec.inputs and spec.outputs, spec.name
        ports = [p.name for p in spec.inputs]
        assert len(ports) == len(set(ports)), spec.name
        assert all(p.kind in KINDS for p in (*spec.inputs, *spec.outputs)), spec.name


def test_every_alias_resolves_to_its_own_task() -> None:
    for spec in all_tasks():
        for alias in spec.aliases:
            assert resolve(alias) == spec.name, alias


def test_registry_order_is_hugginggpt_controlnet_editing_multimedia() -> None:
    groups = list(dict.fromkeys(t.group for t in all_tasks()))
    assert groups == ["huggingface", "controlnet", "editing", "multimedia"]
    assert [t.name for t in all_tasks()][:24] == HUGGINGGPT_TASKS


def test_options_are_declared_where_experts_take_them() -> None:
    assert get_task("tts").options == ("voice", "speed")
    assert get_task("ocr").options == ("lang", "max_tokens")  # Tesseract's language; a captioner's length
    assert set(get_task("text-to-image").options) >= {"steps", "seed", "size"}
    assert set(get_task("canny-text-to-image").options) >= {"steps", "seed"}
    assert get_task("summarization").options == ("sentences",)
    assert get_task("translation").options == ()  # a task whose experts take no options declares none


def test_output_of_kind_lets_json_and_url_feed_text() -> None:
    classify = get_task("text-classification")
    text = classify.output_of_kind("text")
    assert text is not None and text.kind == "text"  # a real text output wins over json
    urls = get_task("url-extractor").output_of_kind("text")
    assert urls is not None and urls.kind == "url"
    assert get_task("image-to-text").output_of_kind("image") is None
    assert get_task("text-to-speech").output_of_kind("text") is None
