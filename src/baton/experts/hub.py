"""Hub models: the catalogue of transformers and diffusers models, where their weights are, and devices.

The catalogue lives in ``catalog/hub.json``; folders the user registers (``baton models add``) are kept
in ``$BATON_HOME/models.json``. A Hub model can run when its weights are in the Hugging Face cache
(``HF_HOME``), in a registered folder, or when downloads are allowed (``BATON_ALLOW_DOWNLOADS=1``)
and ``HF_HUB_OFFLINE`` is not set. Nothing here imports torch: listing the catalogue stays fast.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.catalog import ModelCard
from baton.media import BadInput

if TYPE_CHECKING:
    from baton.config import Settings

__all__ = [
    "LOAD_LOCK",
    "add_local_model",
    "choose_device",
    "hf_cached",
    "local_models",
    "pull",
    "register",
    "remove_local_model",
    "repo_of",
    "weights_missing",
]

PYTHON = {"transformers": ("torch", "transformers"), "diffusers": ("torch", "transformers", "diffusers")}
FACTORY = {
    "transformers": "baton.experts.transformers:TransformersExpert",
    "diffusers": "baton.experts.diffusers:DiffusersExpert",
}

# Held while a Hub model is built from its weights: transformers (and diffusers through it) build models
# under process-wide patches (the meta device, skipped initialisation), so two loads in two threads at
# once corrupt each other ("Cannot copy out of meta tensor"). Running models needs no lock.
LOAD_LOCK = threading.RLock()


def register(add: Callable[[ModelCard], None]) -> None:
    """Entry point of the ``baton.experts`` group: the Hub catalogue and the user's registered folders."""
    data = json.loads(files("baton.catalog").joinpath("hub.json").read_text(encoding="utf-8"))
    for entry in data:
        add(_card(entry))
    for entry in local_models().values():
        add(_card(entry))


def _card(entry: dict[str, Any]) -> ModelCard:
    backend = entry["backend"]
    return ModelCard(
        **{k: v for k, v in entry.items() if k in ModelCard.model_fields},
        factory=FACTORY[backend],
        python=PYTHON[backend],
        extra="hf",
    )


def repo_of(card: ModelCard) -> str:
    """The Hub repository (or local folder) holding a card's weights."""
    return str(card.hub.get("path") or card.hub.get("repo") or card.id.split("#")[0])


def _home(settings: Settings | None) -> Path:
    if settings is not None:
        return settings.home
    from baton.config import default_home

    return default_home()


# the user's registered folders


def _registry_file(settings: Settings | None) -> Path:
    return _home(settings) / "models.json"


def local_models(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    path = _registry_file(settings)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise BadInput(f"{path} is not readable JSON ({exc}); fix or delete it") from None
    return {entry["id"]: entry for entry in data if isinstance(entry, dict) and "id" in entry}


def _write_registry(entries: dict[str, dict[str, Any]], settings: Settings | None) -> None:
    path = _registry_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".part", encoding="utf-8") as tmp:
        json.dump(list(entries.values()), tmp, indent=1)
    os.replace(tmp.name, path)


def add_local_model(
    folder: Path, task: str, model_id: str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Register a folder saved with ``save_pretrained`` as a model for ``task``; returns its entry."""
    from baton.tasks import get_task

    spec = get_task(task)
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise BadInput(f"'{folder}' is not a folder; give the folder a model was saved to with save_pretrained")
    if (folder / "model_index.json").exists():
        backend, hub = "diffusers", _diffusers_hints(folder, spec.name)
    elif (folder / "config.json").exists():
        backend, hub = "transformers", _transformers_hints(folder, spec.name)
    else:
        raise BadInput(
            f"'{folder}' has neither config.json (transformers) nor model_index.json (diffusers); "
            "save the model with save_pretrained into it"
        )
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.suffix in (".safetensors", ".bin"))
    if _stored_half(folder):  # fp16/bf16 files double in size when they run at fp32 on a CPU
        size *= 2
    entry: dict[str, Any] = {
        "id": model_id or f"local/{folder.name}",
        "task": spec.name,
        "backend": backend,
        "description": f"a {backend} model registered from {folder}",
        "memory_mb": max(1, int(size * 1.2 / 2**20)),
        "memory_fp16_mb": max(1, int(size * 0.6 / 2**20)),
        "hub": {**hub, "path": str(folder)},
    }
    entries = local_models(settings)
    entries[entry["id"]] = entry
    _write_registry(entries, settings)
    return entry


def _stored_half(folder: Path) -> bool:
    """Whether a folder's weights are stored in 16 bits (from config.json, or a safetensors header)."""
    config = folder / "config.json"
    if config.exists():
        data = json.loads(config.read_text(encoding="utf-8"))
        dtype = str(data.get("dtype") or data.get("torch_dtype") or "")
        if dtype:
            return dtype in ("float16", "bfloat16")
    for weights in sorted(folder.rglob("*.safetensors"))[:1]:
        with open(weights, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(min(length, 10_000_000)))
        dtypes = {v.get("dtype") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
        return bool(dtypes) and dtypes <= {"F16", "BF16"}
    return False


def remove_local_model(model_id: str, settings: Settings | None = None) -> bool:
    entries = local_models(settings)
    if model_id not in entries:
        return False
    del entries[model_id]
    _write_registry(entries, settings)
    return True


_PIPELINE_FOR_TASK = {
    "image-to-text": "image-to-text",
    "visual-question-answering": "visual-question-answering",
    "document-question-answering": "document-question-answering",
    "object-detection": "object-detection",
    "image-classification": "image-classification",
    "image-segmentation": "image-segmentation",
    "depth-estimation": "depth-estimation",
    "depth-control": "depth-estimation",
    "normal-control": "depth-estimation",
    "seg-control": "image-segmentation",
    "automatic-speech-recognition": "automatic-speech-recognition",
    "text-to-speech": "text-to-audio",
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
    "summarization": "summarization",
    "translation": "translation",
    "text2text-generation": "text2text-generation",
    "text-generation": "text-generation",
    "conversational": "text-generation",
    "audio-classification": "audio-classification",
    "tabular-classification": "object-detection",
}
# how a task's output differs from its pipeline's (the same keys the catalogue's cards use)
_TASK_HINTS: dict[str, dict[str, Any]] = {
    "tabular-classification": {"as_text": True},
    "normal-control": {"normals": True},
    "seg-control": {"palette": True},
}
# model types whose detection takes the labels as text (transformers' zero-shot-object-detection models)
_ZERO_SHOT_DETECTORS = ("owlvit", "owlv2", "grounding-dino", "mm-grounding-dino", "omdet-turbo")


def _transformers_hints(folder: Path, task: str) -> dict[str, Any]:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    architectures = " ".join(config.get("architectures") or [])
    if task == "sentence-similarity":
        return {"kind": "embedding"}
    if "SpeechT5ForTextToSpeech" in architectures:
        return {"kind": "speecht5"}
    if task == "object-detection" and config.get("model_type") in _ZERO_SHOT_DETECTORS:
        return {"pipeline": "zero-shot-object-detection"}
    if task == "image-classification" and "text_config" in config and "vision_config" in config:
        return {"pipeline": "zero-shot-image-classification"}  # CLIP and its kin: the labels are given as text
    pipeline = _PIPELINE_FOR_TASK.get(task)
    if pipeline is None:
        raise BadInput(f"a transformers folder cannot be registered for {task} yet; pick a task with a pipeline")
    hints = {"pipeline": pipeline, **_TASK_HINTS.get(task, {})}
    if _has_chat_template(folder):  # a chat model: prompts go through its template
        if task == "image-to-text":
            hints["prompt"] = "Describe this image in detail."
        elif task in ("visual-question-answering", "text-generation", "conversational"):
            hints["chat"] = True
    return hints


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    for name in ("tokenizer_config.json", "processor_config.json"):
        path = folder / name
        try:
            if path.exists() and json.loads(path.read_text(encoding="utf-8")).get("chat_template"):
                return True
        except (ValueError, AttributeError):
            continue
    return False


def _diffusers_hints(folder: Path, task: str) -> dict[str, Any]:
    """How a diffusers folder loads for ``task``: a Stable Diffusion folder serves every image task through the
    pipeline class of that task; ControlNet generation takes the ControlNetModel in ``controlnet/``, removing
    and replacing objects the CLIPSeg segmenter (model and processor) in ``segmenter/``."""
    variants = {"image-to-image": "Img2Img", "outpainting": "Inpaint", "remove-object": "Inpaint"}
    variants.update({"replace-object": "Inpaint", "instruct-image-editing": "Img2Img", "text-to-image": ""})
    control = task.endswith("-text-to-image")
    if task not in variants and task != "text-to-video" and not control:
        raise BadInput(
            f"a diffusers folder cannot be registered for {task}; it can do text-to-image, image-to-image, "
            "instruct-image-editing, outpainting, remove-object, replace-object, text-to-video and ControlNet "
            "generation (canny-text-to-image, ...)"
        )
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    name = str(index.get("_class_name", "DiffusionPipeline"))
    hints: dict[str, Any] = {"class": name}
    family = name.removesuffix("Pipeline")
    for part in ("Img2Img", "Inpaint", "InstructPix2Pix", "ControlNet"):
        family = family.replace(part, "")
    variant = variants.get(task, "")
    if control:
        if not (folder / "controlnet").is_dir():
            raise BadInput(
                f"'{folder}' has no controlnet subfolder; {task} needs a ControlNetModel saved into "
                f"{folder / 'controlnet'}"
            )
        variant = "ControlNet"
    elif task == "instruct-image-editing" and "InstructPix2Pix" in name:
        variant = "InstructPix2Pix"  # otherwise image-to-image guided by the instruction
    if name.endswith("Pipeline") and family in ("StableDiffusion", "StableDiffusionXL", "StableDiffusion3"):
        hints["class"] = f"{family}{variant}Pipeline"
    if task in ("remove-object", "replace-object"):
        segmenter = folder / "segmenter"
        if not (segmenter / "config.json").exists():
            raise BadInput(
                f"'{folder}' has no segmenter subfolder; {task} finds the object with a CLIPSeg model: save "
                f"CLIPSegForImageSegmentation and CLIPSegProcessor into {segmenter}"
            )
        hints["mask_from"] = str(segmenter)
        if task == "remove-object":
            hints["prompt"] = "background"
    if task == "outpainting":
        hints["outpaint"] = True
    if task == "text-to-video":
        hints["video"] = True
    if "ImageVariation" in name:
        hints["image_only"] = True  # image variations take no prompt
    return hints


# where weights are


def hf_cached(repo: str) -> bool:
    """Whether a Hub repository has a snapshot in the Hugging Face cache (no network is used)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    snapshots = Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(
        (snap / "config.json").exists() or (snap / "model_index.json").exists() for snap in snapshots.iterdir()
    )


def downloads_allowed(settings: Settings | None) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if settings is None:
        from baton.config import Settings

        settings = Settings.load()
    return settings.allow_downloads


def companions(card: ModelCard) -> list[str]:
    """Every Hub repository a card needs: its own and its vocoder, ControlNet or mask model."""
    return list(
        dict.fromkeys(
            [repo_of(card), *(str(card.hub[k]) for k in ("vocoder", "controlnet", "mask_from") if card.hub.get(k))]
        )
    )


def is_cached(card: ModelCard) -> bool:
    """Whether a Hub card's weights are all here (registered folder or HF cache); other cards have none."""
    if card.backend not in ("transformers", "diffusers") or card.hub.get("path"):
        return True
    try:
        return all(hf_cached(repo) for repo in companions(card))
    except ImportError:
        return False


def weights_missing(card: ModelCard, settings: Settings | None = None) -> list[str]:
    """Why a Hub model's weights are not at hand, with the fix; empty when they are (or may be fetched)."""
    path = card.hub.get("path")
    if path:
        return [] if Path(path).is_dir() else [f"its folder {path} is gone: baton models rm {card.id}"]
    try:
        absent = [repo for repo in companions(card) if not hf_cached(repo)]
    except ImportError:
        return []  # the missing huggingface_hub is reported with the Python modules
    if not absent or downloads_allowed(settings):
        return []
    size = card.memory_mb / 1.2 / 1024
    return [
        f"weights not downloaded ({', '.join(absent)}, about {size:.1f} GB): baton models pull {card.id} "
        "(or set BATON_ALLOW_DOWNLOADS=1)"
    ]


def pull(card: ModelCard) -> list[Path]:
    """Download a card's weights into the Hugging Face cache, with progress bars; clear errors offline."""
    from huggingface_hub import snapshot_download

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise BadInput(f"HF_HUB_OFFLINE is set, so {card.id} cannot be downloaded; unset it to download")
    folders = []
    for repo in companions(card):
        try:
            folders.append(Path(snapshot_download(repo_id=repo)))
        except Exception as exc:  # network, auth or missing repo: one clear line
            raise BadInput(
                f"cannot download {repo} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "check the network and the model id"
            ) from None
    return folders


def choose_device(card: ModelCard) -> tuple[str, Any]:
    """(device, torch dtype): the card's override, else cuda fp16 when available, else cpu fp32."""
    import torch

    device = str(card.hub.get("device") or os.environ.get("BATON_DEVICE") or "")
    if not device:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype_name = str(card.hub.get("dtype") or ("float16" if device.startswith("cuda") else "float32"))
    return device, getattr(torch, dtype_name)
