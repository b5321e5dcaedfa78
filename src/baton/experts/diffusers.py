"""Experts on diffusers pipelines: text-to-image, image-to-image, instruct editing, inpainting
(remove/replace object, outpainting), ControlNet generation, image variations and text-to-video.

Remove and replace follow Visual ChatGPT's templates: a text-prompted segmenter (CLIPSeg) finds the
named object, and the inpainting pipeline paints background or the replacement over its mask.
"""

from __future__ import annotations

import importlib
import math
import warnings
from pathlib import Path
from typing import Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.hub import LOAD_LOCK, choose_device
from baton.experts.transformers import _image, _module_bytes, _save_pil, local_weights
from baton.media import Resource

__all__ = ["DiffusersExpert"]

# diffusers loads under accelerate's init_empty_weights, which swaps nn.Module.register_parameter for the whole
# process: two loads in parallel threads can restore each other's swap and leave every later model on the meta
# device. Pipelines load one at a time.


def _diffusers() -> Any:
    return importlib.import_module("diffusers")


class DiffusersExpert(Expert):
    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self._device, self._dtype = choose_device(card)
        self.pipe: Any = None
        self.segmenter: tuple[Any, Any] | None = None

    @property
    def device(self) -> str:
        return "cuda:0" if self._device == "cuda" else self._device

    @property
    def memory_bytes(self) -> int:
        fp16 = self.card.memory_fp16_mb if str(self._dtype).endswith("float16") else 0
        return (fp16 or self.card.memory_mb) * 1024 * 1024

    def measured_bytes(self) -> int:
        if self.pipe is None:
            return 0
        parts = [getattr(self.pipe, name, None) for name in self.pipe.components]
        total = sum(_module_bytes(part) for part in parts if part is not None)
        if self.segmenter is not None:
            total += _module_bytes(self.segmenter[1])
        return total

    def load(self) -> None:
        diffusers = _diffusers()
        diffusers.utils.logging.set_verbosity_error()
        hub = self.card.hub
        folder = local_weights(self.card)
        class_name = str(hub.get("class") or "DiffusionPipeline")
        pipeline_class = getattr(diffusers, class_name)
        kwargs: dict[str, Any] = {"torch_dtype": self._dtype}
        try:
            with LOAD_LOCK, warnings.catch_warnings():  # newer diffusers say dtype; older ones know only torch_dtype
                warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                if "controlnet" in hub or "ControlNet" in class_name:
                    source = hub.get("controlnet")
                    control_folder = self._companion(str(source)) if source else folder / "controlnet"
                    if not control_folder.is_dir():
                        raise ExpertError(
                            f"{self.card.id} has no ControlNet: save a ControlNetModel into {folder / 'controlnet'}"
                        )
                    kwargs["controlnet"] = diffusers.ControlNetModel.from_pretrained(
                        str(control_folder), torch_dtype=self._dtype
                    )
                if _takes_safety_checker(folder):  # the checker's weights are optional; outputs are the user's
                    kwargs["safety_checker"] = None
                self.pipe = pipeline_class.from_pretrained(str(folder), **kwargs).to(self._device)
            self.pipe.set_progress_bar_config(disable=True)
            if hub.get("mask_from"):
                self._load_segmenter(self._companion(str(hub["mask_from"])))
        except ExpertError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ExpertError(f"cannot load {self.card.id} from {folder}: {exc}") from None
        self.loaded = True

    def _companion(self, source: str) -> Path:
        """A companion model's folder: a local folder as it is (registered models), else a Hub repo's snapshot."""
        path = Path(source)
        return path if path.is_absolute() and path.is_dir() else local_weights(self.card, source)

    def _load_segmenter(self, folder: Path) -> None:
        transformers = importlib.import_module("transformers")
        processor = transformers.CLIPSegProcessor.from_pretrained(str(folder))
        model = transformers.CLIPSegForImageSegmentation.from_pretrained(str(folder)).to(self._device)
        self.segmenter = (processor, model)

    def unload(self) -> None:
        self.pipe = None
        self.segmenter = None
        self.loaded = False
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import torch

        hub, task = self.card.hub, self.card.task
        steps = _int(options, "steps", 25, 1, 200)
        seed = _int(options, "seed", 0, 0, 2**31 - 1)
        common: dict[str, Any] = {
            "num_inference_steps": steps,
            "generator": torch.Generator(device="cpu").manual_seed(seed),
        }
        size = options.get("size")
        prompt = _prompt(inputs)
        if hub.get("video"):
            frames = self.pipe(prompt, num_frames=_int(options, "frames", 16, 2, 64), **common).frames[0]
            return {"video": _save_video(frames, ctx)}
        if task == "text-to-image":
            if size:
                width, height = _size(size)
                common.update(width=width, height=height)
            return {"image": _save_pil(self.pipe(prompt, **common).images[0], ctx, "generated.png")}
        image = _workable(_image(inputs["image"]))
        if "controlnet" in hub or task.endswith("-text-to-image"):
            result = self.pipe(prompt, image=image, **common)
        elif hub.get("image_only"):  # image variations take no prompt
            result = self.pipe(image, **common)
        elif "InstructPix2Pix" in str(hub.get("class")):
            result = self.pipe(inputs["instruction"].as_text(), image=image, **common)
        elif hub.get("outpaint"):
            canvas, mask = _outpaint_canvas(image, _fraction(options, "margin", 0.25))
            # inpainting pipelines default to the model's own size; paint the whole canvas instead
            result = self.pipe(
                prompt or "a natural continuation of the scene",
                image=canvas,
                mask_image=mask,
                width=canvas.width,
                height=canvas.height,
                **common,
            )
        elif hub.get("mask_from"):
            target = inputs["object"].as_text()
            mask = self._mask_of(image, target)
            fill = inputs["replacement"].as_text() if "replacement" in inputs else str(hub.get("prompt", "background"))
            result = self.pipe(fill, image=image, mask_image=mask, width=image.width, height=image.height, **common)
        else:  # image-to-image guided by the instruction
            strength = _fraction(options, "strength", 0.6)
            common["num_inference_steps"] = _denoising_steps(steps, strength)
            result = self.pipe(prompt or "a high quality picture", image=image, strength=strength, **common)
        return {"image": _save_pil(result.images[0], ctx, "generated.png")}

    def _mask_of(self, image: Any, target: str) -> Any:
        import torch
        from PIL import Image

        if self.segmenter is None:
            raise ExpertError(f"{self.card.id} has no segmenter to find '{target}'")
        processor, model = self.segmenter
        batch = processor(text=[target], images=[image], return_tensors="pt").to(self._device)
        with torch.inference_mode():
            logits = model(**batch).logits
        probabilities = torch.sigmoid(logits).reshape(logits.shape[-2:]).float().cpu().numpy()
        mask = Image.fromarray(((probabilities > 0.4) * 255).astype("uint8")).resize(image.size)
        if not mask.getbbox():
            raise ExpertError(f"could not find '{target}' in the image; name the object differently")
        return mask


def _takes_safety_checker(folder: Path) -> bool:
    import json

    index_file = folder / "model_index.json"
    return index_file.exists() and "safety_checker" in json.loads(index_file.read_text(encoding="utf-8"))


def _prompt(inputs: dict[str, Resource]) -> str:
    for port in ("prompt", "text", "instruction"):
        if port in inputs:
            return inputs[port].as_text().strip()
    return ""


def _int(options: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = options.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ExpertError(f"{name} must be a whole number, not '{raw}'") from None
    if not low <= value <= high:
        raise ExpertError(f"{name} {value} is out of range; use {low} to {high}")
    return value


def _fraction(options: dict[str, str], name: str, default: float) -> float:
    raw = options.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ExpertError(f"{name} must be a number between 0 and 1, not '{raw}'") from None
    if not 0 < value <= 1:
        raise ExpertError(f"{name} {value} is out of range; use a number above 0 and at most 1")
    return value


def _denoising_steps(steps: int, strength: float) -> int:
    """Steps for image-to-image: it runs only steps x strength of them, and that must be at least one."""
    steps = max(steps, math.ceil(1 / strength))
    return steps if int(steps * strength) >= 1 else steps + 1


def _workable(image: Any, limit: int = 1024) -> Any:
    """The image at a size diffusion pipelines take: sides multiples of 8, the longer one at most ``limit``."""
    scale = min(1.0, limit / max(image.size))
    width, height = (max(8, int(side * scale) // 8 * 8) for side in image.size)
    return image if (width, height) == image.size else image.resize((width, height))


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(" ", "").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ExpertError(f"size must look like 512x512, not '{text}'") from None
    if width % 8 or height % 8 or not (64 <= width <= 2048 and 64 <= height <= 2048):
        raise ExpertError(f"size {text} must be multiples of 8 between 64 and 2048")
    return width, height


def _outpaint_canvas(image: Any, margin: float) -> tuple[Any, Any]:
    """The image centred on a larger canvas, and the mask of the new border to paint."""
    from PIL import Image

    width, height = image.size
    pad_w, pad_h = int(width * margin) // 8 * 8, int(height * margin) // 8 * 8
    canvas = Image.new("RGB", (width + 2 * pad_w, height + 2 * pad_h), "gray")
    canvas.paste(image, (pad_w, pad_h))
    mask = Image.new("L", canvas.size, 255)
    mask.paste(0, (pad_w, pad_h, pad_w + width, pad_h + height))
    return canvas, mask


def _save_video(frames: Any, ctx: ExpertContext) -> Resource:
    """Frames (PIL images or arrays) as an H.264 MP4 through ffmpeg."""
    import numpy as np
    from PIL import Image

    from baton.experts.process import run_program

    folder = ctx.workdir / "frames"
    folder.mkdir(exist_ok=True)
    for index, frame in enumerate(frames):
        picture = (
            frame
            if isinstance(frame, Image.Image)
            else Image.fromarray((np.asarray(frame) * 255).clip(0, 255).astype("uint8"))
        )
        picture.save(folder / f"{index:04d}.png")
    out = ctx.workdir / "video.mp4"
    done = run_program(
        ["ffmpeg", "-y", "-loglevel", "error", "-framerate", "8", "-i", str(folder / "%04d.png"),
         "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)]
    )  # fmt: skip
    if done.returncode != 0:
        raise ExpertError(f"ffmpeg could not write the video: {done.stderr.decode(errors='replace')[-300:]}")
    return Resource.media(ctx.save_file(out))
