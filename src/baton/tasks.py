"""The TaskSpec registry: every kind of task baton knows, whether or not an expert can run it here.

One table lists each task's name, typed inputs and outputs, a one-line description and its aliases
(the names TaskBench, HuggingGPT and Visual ChatGPT use). ``resolve()`` maps any of those names to
baton's own.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cache

from baton.media import KINDS, Kind

__all__ = ["Port", "TaskSpec", "UnknownTask", "all_tasks", "get_task", "normalize", "resolve"]


@dataclass(frozen=True, slots=True)
class Port:
    """One typed input or output of a task."""

    name: str
    kind: Kind
    optional: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One kind of task: its name, typed inputs and outputs, description and aliases."""

    name: str
    description: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    group: str
    aliases: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())

    def input(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output_of_kind(self, kind: Kind) -> Port | None:
        """The output that can feed an input of ``kind`` (json and url also feed text)."""
        for port in self.outputs:
            if port.kind == kind:
                return port
        if kind == "text":
            return next((p for p in self.outputs if p.kind in ("json", "url")), None)
        return None


class UnknownTask(LookupError):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown task '{name}'{hint} (see 'baton tasks' for the full list)")
        self.name = name
        self.suggestions = suggestions


def normalize(name: str) -> str:
    """Lower-case, words joined by '-': 'Image Search (by Image)' -> 'image-search-by-image'."""
    return "-".join(re.findall(r"[a-z0-9]+", name.lower()))


def _ports(text: str) -> tuple[Port, ...]:
    """Parse 'image, text:question?' into ports: kind, optional ':name', '?' for optional."""
    ports = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        optional = item.endswith("?")
        kind, _, name = item.rstrip("?").partition(":")
        assert kind in KINDS, kind
        ports.append(Port(name=name or kind, kind=kind, optional=optional))  # type: ignore[arg-type]
    return tuple(ports)


# name | inputs | outputs | description | aliases (';'-separated; normalized names need not be listed)
_HUGGINGGPT = """
text-classification | text | text, json | Label a text, e.g. its sentiment (positive, negative, neutral). | sentiment-analysis; Text Sentiment Analysis
token-classification | text | text, json | Tag spans of a text: named entities, dates, numbers, e-mails, URLs, money. | ner
text2text-generation | text | text | Rewrite or transform a text into another text. |
summarization | text | text | Shorten a text while keeping its main points. | Text Summarizer
translation | text, text:target? | text | Translate a text into another language (English unless a target is given). | Text Translator
question-answering | text:question, text:context | text | Answer a question from a given context text. |
conversational | text | text | Reply to a message as a chat assistant. |
text-generation | text | text | Continue or write new text from a prompt. |
sentence-similarity | text, text:text2 | text, json | Score how similar two texts are (0 to 1). |
tabular-classification | image | text | Classify a table given as an image. |
object-detection | image | image, json | Find objects in an image: boxes, labels and scores, and the image with boxes drawn. |
image-classification | image | text, json | Assign a class label to a whole image. |
image-to-text | image | text | Describe an image or read the text printed in it (captioning, OCR). | ocr; image-captioning; Get Photo Description
text-to-image | text | image | Generate an image from a text description. | Generate Image From User Input Text
image-to-image | image, text:instruction? | image | Transform an image into another image (styles, enhancement). |
image-segmentation | image | image, json | Divide an image into segments; a coloured label map and per-segment stats. | Segment the Image
depth-estimation | image | image | Estimate the depth of each pixel of an image; a depth map. |
text-to-speech | text | audio | Speak a text aloud; a WAV recording. | tts
automatic-speech-recognition | audio | text | Transcribe the speech in an audio recording. | asr; speech-to-text; Audio-to-Text
audio-to-audio | audio | audio | Transform audio into audio, e.g. speech enhancement or source separation. |
audio-classification | audio | text, json | Assign a label to an audio clip (command, emotion, speaker). |
document-question-answering | image, text:question | text | Answer a question about a document image. | document-qa
visual-question-answering | image, text:question | text | Answer a question about an image. | vqa; Answer Question About The Image
text-to-video | text | video | Generate a video from a text description. |
"""

_CONDITIONS = {
    "canny": ("Canny edge map", "Edge Detection On Image", "Generate Image Condition On Canny Image"),
    "depth": ("depth map", "Predict Depth On Image", "Generate Image Condition On Depth"),
    "hed": ("HED soft-edge map", "Hed Detection On Image", "Generate Image Condition On Soft Hed Boundary Image"),
    "mlsd": ("M-LSD straight-line map", "Line Detection On Image", "Generate Image Condition On Line Image"),
    "normal": ("surface-normal map", "Predict Normal Map On Image", "Generate Image Condition On Normal Map"),
    "openpose": ("OpenPose skeleton", "Pose Detection On Image", "Generate Image Condition On Pose Image"),
    "scribble": (
        "scribble (thick sketch lines)",
        "Sketch Detection On Image",
        "Generate Image Condition On Sketch Image",
    ),
    "seg": ("semantic segmentation map", "Segmentation On Image", "Generate Image Condition On Segmentations"),
}

_EDITING = """
instruct-image-editing | image, text:instruction | image | Edit an image following a written instruction ("make it grayscale", "rotate 90 degrees"). | Instruct Image Using Text; Image Editing; pix2pix
remove-object | image, text:object | image | Remove an object (named, or given by a box or mask) from an image and fill the gap. | Remove Something From The Photo
replace-object | image, text:object, text:replacement | image | Replace an object in an image with something described in text. | Replace Something From The Photo
background-removal | image | image | Cut out the foreground: the image with a transparent background (RGBA). | remove-background
outpainting | image, text:prompt? | image | Extend an image beyond its borders. | Extend An Image; image-outpainting
"""

_MULTIMEDIA = """
image-downloader | url | image | Download an image from a URL (needs network access enabled). | Image Downloader
video-downloader | url | video | Download a video from a URL (needs network access enabled). | Video Downloader
audio-downloader | url | audio | Download an audio file from a URL (needs network access enabled). | Audio Downloader
text-downloader | url | text | Download the text content of a web page (needs network access enabled). | Text Downloader
text-search | text | text | Search the internet for a text or keyword. | Text Search
image-search | text | image | Search the internet for images matching a query. | Image Search
image-search-by-image | image | image | Find images similar to a given image. | Image Search (by Image)
url-extractor | text | url | Extract the URLs contained in a text. | URL Extractor
video-search | text | video | Search the internet for videos matching a query. | Video Search
text-to-audio | text | audio | Generate sound or music from a text description. | Text-to-Audio
video-to-text | video | text | Transcribe the speech in a video's audio track. | Video-to-Text
audio-noise-reduction | audio | audio | Reduce background noise in an audio recording. | Audio Noise Reduction; denoise
audio-effects | audio, text:instruction | audio | Apply effects (echo, reverb, speed, pitch, volume, fade) to audio as instructed. | Audio Effects
audio-splicer | audio, audio:audio2 | audio | Join two audio files one after the other. | Audio Splicer
voice-changer | audio, text:instruction | audio | Change a voice's pitch, tone or character as instructed. | Voice Changer
grammar-check | text | text | Find grammar mistakes in a text and suggest corrections. | Text Grammar Checker
text-simplifier | text | text | Rewrite a text in simpler words. | Text Simplifier
text-expander | text | text | Expand a short text into a more detailed one. | Text Expander
keyword-extraction | text | text | Extract the most important keywords and phrases of a text. | Keyword Extractor
paraphrase | text | text | Rewrite a text in other words with the same meaning. | Text Paraphraser
article-spinner | text | text | Rewrite an article with synonyms and new syntax into a unique version. | Article Spinner
topic-generator | text | text | Suggest topics or ideas related to a text. | Topic Generator
audio-to-image | audio | image | Draw an audio file as a picture (waveform and spectrogram). | Audio-to-Image
image-to-video | image, image:image2 | video | Make a slideshow video from two images. | Image-to-Video
video-to-audio | video | audio | Extract the audio track of a video. | Video-to-Audio
video-to-image | video | image | Extract a still frame from a video. | Video-to-Image
image-stitcher | image, image:image2 | image | Stitch two images into a panorama, or a side-by-side collage. | Image Stitcher
image-colorization | image | image | Add colour to a black-and-white image. | Image Colorizer
style-transfer | image, image:style | image | Apply the visual style of one image to the content of another. | Image Style Transfer
video-stabilizer | video | video | Stabilize a shaky video. | Video Stabilizer
video-speed-changer | video, text:instruction | video | Speed a video up or slow it down as instructed. | Video Speed Changer
video-synchronization | video, audio | video | Put an audio track onto a video, matching their lengths. | Video Synchronization
video-voiceover | video, text:script | video | Speak a script and lay it over a video as its voiceover. | Video Voiceover
"""

_OPTIONS = {
    "text-to-speech": ("voice", "speed"),
    "image-to-text": ("lang", "max_tokens"),
    "image-classification": ("labels",),
    "automatic-speech-recognition": ("grammar", "keywords"),
    "video-to-text": ("grammar", "keywords"),
    "object-detection": ("kinds", "labels", "threshold"),
    "image-segmentation": ("segments",),
    "image-to-image": ("style", "strength", "steps", "seed"),
    "text-to-image": ("steps", "seed", "size"),
    "outpainting": ("margin", "steps", "seed"),
    "instruct-image-editing": ("steps", "seed"),
    "remove-object": ("steps", "seed"),
    "replace-object": ("steps", "seed"),
    "text-to-video": ("frames", "steps", "seed"),
    "visual-question-answering": ("max_tokens",),
    "text-generation": ("max_tokens",),
    "conversational": ("max_tokens",),
    "style-transfer": ("strength",),
    "image-stitcher": ("mode",),
    "summarization": ("sentences",),
    "keyword-extraction": ("count",),
    "video-to-image": ("time",),
    "image-to-video": ("seconds",),
    "video-synchronization": ("match",),
    "video-voiceover": ("voice", "speed"),
}


def _table(text: str, group: str) -> list[TaskSpec]:
    specs = []
    for line in filter(None, (row.strip() for row in text.splitlines())):
        name, inputs, outputs, description, aliases = (cell.strip() for cell in line.split("|"))
        specs.append(
            TaskSpec(
                name=name,
                description=description,
                inputs=_ports(inputs),
                outputs=_ports(outputs),
                group=group,
                aliases=tuple(a.strip() for a in aliases.split(";") if a.strip()),
                options=_OPTIONS.get(name, ()),
            )
        )
    return specs


_GENERATION_OPTIONS = ("steps", "seed")


def _controlnet() -> list[TaskSpec]:
    specs = []
    for cond, (what, extract_alias, generate_alias) in _CONDITIONS.items():
        specs.append(
            TaskSpec(
                name=f"{cond}-control",
                description=f"Extract the {what} of an image, a ControlNet condition.",
                inputs=_ports("image"),
                outputs=_ports("image"),
                group="controlnet",
                aliases=(extract_alias, f"image-to-{cond}"),
            )
        )
        specs.append(
            TaskSpec(
                name=f"{cond}-text-to-image",
                description=f"Generate an image from a text prompt that follows a {what} (ControlNet).",
                inputs=_ports("image, text:prompt"),
                outputs=_ports("image"),
                group="controlnet",
                aliases=(generate_alias, f"{cond}-to-image"),
                options=_GENERATION_OPTIONS,
            )
        )
    return specs


@cache
def _registry() -> tuple[dict[str, TaskSpec], dict[str, str]]:
    specs = (
        _table(_HUGGINGGPT, "huggingface")
        + _controlnet()
        + _table(_EDITING, "editing")
        + _table(_MULTIMEDIA, "multimedia")
    )
    by_name = {spec.name: spec for spec in specs}
    assert len(by_name) == len(specs), "duplicate task names"
    aliases: dict[str, str] = {}
    for spec in specs:
        for alias in (spec.name, *spec.aliases):
            key = normalize(alias)
            assert aliases.get(key, spec.name) == spec.name, f"alias {alias} is ambiguous"
            aliases[key] = spec.name
    return by_name, aliases


def all_tasks() -> list[TaskSpec]:
    """Every task, in registry order (HuggingGPT, ControlNet, editing, multimedia)."""
    return list(_registry()[0].values())


def resolve(name: str) -> str:
    """baton's name for a task named in any known way; raises UnknownTask with suggestions."""
    aliases = _registry()[1]
    found = aliases.get(normalize(name))
    if found is not None:
        return found
    close = difflib.get_close_matches(normalize(name), list(aliases), n=6, cutoff=0.6)
    suggestions = list(dict.fromkeys(aliases[c] for c in close))[:3]
    raise UnknownTask(name, suggestions)


def get_task(name: str) -> TaskSpec:
    """The TaskSpec for a task named in any known way."""
    return _registry()[0][resolve(name)]
