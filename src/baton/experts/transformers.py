"""Experts on transformers models: a ``pipeline(...)`` where one fits, the model classes where not.

Weights come from a registered folder or the Hugging Face cache (downloaded first only when allowed).
Device and dtype are chosen automatically (cuda fp16 when available, else cpu fp32) unless the card
overrides them. Outputs become baton Resources: text, json, images (boxes drawn, masks painted,
depth), audio as WAV.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

from baton.catalog import ModelCard
from baton.experts import Expert, ExpertContext, ExpertError
from baton.experts.hub import LOAD_LOCK, choose_device, downloads_allowed, repo_of
from baton.media import Resource

__all__ = ["TransformersExpert", "local_weights"]

# tasks transformers 5 has no pipeline for -> the model class that does them
MODEL_CLASSES = {
    "summarization": "AutoModelForSeq2SeqLM",
    "translation": "AutoModelForSeq2SeqLM",
    "text2text-generation": "AutoModelForSeq2SeqLM",
    "question-answering": "AutoModelForQuestionAnswering",
    "image-to-text": "AutoModelForImageTextToText",
    "visual-question-answering": "AutoModelForVisualQuestionAnswering",
}

DETECTION_LABELS = "person, car, dog, cat, bicycle, bird, chair, table, bottle, cup, phone, laptop, book, tree"


def local_weights(card: ModelCard, repo: str | None = None) -> Path:
    """The folder holding a card's (or a companion repo's) weights; downloads only when allowed."""
    if repo is None and card.hub.get("path"):
        return Path(str(card.hub["path"]))
    repo = repo or repo_of(card)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=repo, local_files_only=True))
    except LocalEntryNotFoundError:
        if not downloads_allowed(None):
            raise ExpertError(
                f"the weights of {repo} are not downloaded: baton models pull {card.id} (or set BATON_ALLOW_DOWNLOADS=1)"
            ) from None
    try:
        return Path(snapshot_download(repo_id=repo))
    except Exception as exc:
        raise ExpertError(f"cannot download {repo} ({type(exc).__name__}); check the network") from None


class TransformersExpert(Expert):
    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        self._device, self._dtype = choose_device(card)
        self.pipe: Any = None
        self.parts: dict[str, Any] = {}

    @property
    def device(self) -> str:
        return "cuda:0" if self._device == "cuda" else self._device

    @property
    def memory_bytes(self) -> int:
        fp16 = self.card.memory_fp16_mb if str(self._dtype).endswith("float16") else 0
        return (fp16 or self.card.memory_mb) * 1024 * 1024

    def measured_bytes(self) -> int:
        models = [self.pipe.model] if self.pipe is not None else []
        models += [part for part in self.parts.values() if hasattr(part, "parameters")]
        return sum(_module_bytes(model) for model in models)

    # loading

    def load(self) -> None:
        transformers = _transformers()

        transformers.logging.set_verbosity_error()
        folder = str(local_weights(self.card))
        with LOAD_LOCK:  # one model is built at a time: loads in parallel threads corrupt each other
            self._load(folder)
        self.loaded = True

    def _load(self, folder: str) -> None:
        transformers = _transformers()
        kind = self.card.hub.get("kind")
        try:
            if kind == "embedding":
                self.parts["tokenizer"] = transformers.AutoTokenizer.from_pretrained(folder)
                self.parts["model"] = transformers.AutoModel.from_pretrained(folder, dtype=self._dtype).to(self._device)
            elif kind in ("speecht5", "speecht5-vc"):
                self._load_speecht5(folder, kind)
            elif kind == "clipseg":
                self.parts["processor"] = transformers.CLIPSegProcessor.from_pretrained(folder)
                self.parts["model"] = transformers.CLIPSegForImageSegmentation.from_pretrained(folder).to(self._device)
            elif kind == "vitpose":
                self.parts["processor"] = transformers.AutoProcessor.from_pretrained(folder)
                self.parts["model"] = transformers.VitPoseForPoseEstimation.from_pretrained(folder).to(self._device)
            elif kind == "controlnet-aux":
                try:
                    import controlnet_aux
                except ImportError:
                    raise ExpertError("this annotator needs controlnet_aux: pip install controlnet_aux") from None
                detector = getattr(controlnet_aux, str(self.card.hub["detector"]))
                self.parts["detector"] = detector.from_pretrained(folder)
            elif self.card.hub.get("pipeline") in MODEL_CLASSES:
                self._load_classes(folder, str(self.card.hub["pipeline"]))
            else:
                self.pipe = transformers.pipeline(
                    str(self.card.hub["pipeline"]), model=folder, device=self._device, dtype=self._dtype
                )
        except ExpertError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise ExpertError(f"cannot load {self.card.id} from {folder}: {exc}") from None

    def _load_classes(self, folder: str, task: str) -> None:
        """Tasks transformers 5 has no pipeline for: the processor and model classes directly."""
        transformers = _transformers()

        chat_vlm = task == "visual-question-answering" and self.card.hub.get("chat")
        model_class = getattr(transformers, "AutoModelForImageTextToText" if chat_vlm else MODEL_CLASSES[task])
        if task in ("image-to-text", "visual-question-answering"):
            try:
                processor = transformers.AutoProcessor.from_pretrained(folder)
            except (OSError, ValueError, KeyError, TypeError):
                processor = None
            if hasattr(processor, "image_processor"):
                self.parts["processor"] = processor
            else:  # e.g. ViT + GPT-2: no joint processor, and AutoProcessor gives the tokenizer alone
                self.parts["processor"] = _JointProcessor(
                    transformers.AutoImageProcessor.from_pretrained(folder),
                    transformers.AutoTokenizer.from_pretrained(folder),
                )
        else:
            self.parts["processor"] = transformers.AutoTokenizer.from_pretrained(folder)
        self.parts["model"] = model_class.from_pretrained(folder, dtype=self._dtype).to(self._device).eval()

    def _load_speecht5(self, folder: str, kind: str) -> None:
        import torch

        transformers = _transformers()

        model_class = (
            transformers.SpeechT5ForTextToSpeech if kind == "speecht5" else transformers.SpeechT5ForSpeechToSpeech
        )
        self.parts["processor"] = transformers.SpeechT5Processor.from_pretrained(folder)
        self.parts["model"] = model_class.from_pretrained(folder).to(self._device)
        vocoder = self.card.hub.get("vocoder")
        vocoder_folder = str(local_weights(self.card, str(vocoder))) if vocoder else str(Path(folder) / "vocoder")
        self.parts["vocoder"] = transformers.SpeechT5HifiGan.from_pretrained(vocoder_folder).to(self._device)
        size = self.parts["model"].config.speaker_embedding_dim
        generator = torch.Generator().manual_seed(7)  # a fixed built-in voice
        self.parts["speaker"] = (torch.randn(1, size, generator=generator) * 0.05).to(self._device)

    def unload(self) -> None:
        self.pipe = None
        self.parts = {}
        self.loaded = False
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # running

    def run(self, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        kind = self.card.hub.get("kind")
        if kind == "embedding":
            return self._similarity(inputs)
        if kind == "speecht5":
            return self._speak(inputs["text"].as_text(), ctx)
        if kind == "speecht5-vc":
            return self._convert_voice(inputs["audio"], ctx)
        if kind == "clipseg":
            return self._cut_out(inputs["image"], options, ctx)
        if kind == "vitpose":
            return self._pose(inputs["image"], ctx)
        if kind == "controlnet-aux":
            image = _image(inputs["image"])
            return {"image": _save_pil(self.parts["detector"](image), ctx, "condition.png")}
        task = str(self.card.hub["pipeline"])
        if task in MODEL_CLASSES:
            return self._with_classes(task, inputs, options)
        return self._pipeline(task, inputs, options, ctx)

    def _with_classes(self, task: str, inputs: dict[str, Resource], options: dict[str, str]) -> dict[str, Resource]:
        import torch

        processor, model = self.parts["processor"], self.parts["model"]
        tokens = int(options.get("max_tokens", 120))
        with torch.inference_mode():
            if task in ("summarization", "translation", "text2text-generation"):
                text = _text(inputs)
                if task == "translation" and model.config.model_type == "t5":
                    target = (inputs.get("target") or Resource.text("")).as_text().strip()
                    text = f"translate English to {target or self.card.hub.get('default_target', 'French')}: {text}"
                if task == "summarization" and model.config.model_type == "t5":
                    text = f"summarize: {text}"
                batch = processor(text, truncation=True, return_tensors="pt").to(self._device)
                out = model.generate(**batch, max_new_tokens=tokens)
                return {"text": Resource.text(processor.decode(out[0], skip_special_tokens=True).strip())}
            if task == "question-answering":
                question, context = inputs["question"].as_text(), inputs["context"].as_text()
                batch = processor(question, context, truncation="only_second", return_tensors="pt").to(self._device)
                result = model(**batch)
                start = int(result.start_logits[0].argmax())
                end = start + int(result.end_logits[0][start:].argmax())
                answer = processor.decode(batch["input_ids"][0][start : end + 1], skip_special_tokens=True).strip()
                return {"text": Resource.text(answer or "no answer found in the context")}
            image = _image(inputs["image"])
            if task == "visual-question-answering":
                question = inputs["question"].as_text()
                if self.card.hub.get("chat"):  # a chat VLM: the question goes through its chat template
                    return {"text": Resource.text(self._chat_about(image, question, tokens))}
                batch = processor(images=image, text=question, return_tensors="pt").to(self._device)
                if model.config.model_type == "vilt":  # a classifier over its answer vocabulary
                    logits = model(**batch).logits
                    return {"text": Resource.text(str(model.config.id2label[int(logits[0].argmax())]))}
                out = model.generate(**batch, max_new_tokens=20)
                return {"text": Resource.text(processor.decode(out[0], skip_special_tokens=True).strip())}
            prompt = self.card.hub.get("prompt")
            if prompt:  # a chat VLM: the image goes through its chat template
                return {"text": Resource.text(self._chat_about(image, str(prompt), tokens))}
            batch = processor(images=image, return_tensors="pt").to(self._device)
            out = model.generate(**batch, max_new_tokens=tokens)
            return {"text": Resource.text(processor.decode(out[0], skip_special_tokens=True).strip())}

    def _chat_about(self, image: Any, text: str, tokens: int) -> str:
        """A chat VLM's reply to one user turn holding the image and a text, through its chat template."""
        processor, model = self.parts["processor"], self.parts["model"]
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        batch = processor(text=prompt, images=[image], return_tensors="pt").to(self._device)
        out = model.generate(**batch, max_new_tokens=tokens)
        return str(processor.decode(out[0][batch["input_ids"].shape[1] :], skip_special_tokens=True)).strip()

    def _pipeline(
        self, task: str, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext
    ) -> dict[str, Resource]:
        pipe = self.pipe
        if task in ("text-classification", "audio-classification", "image-classification"):
            source = _audio_input(inputs["audio"], ctx) if "audio" in inputs else (
                _image(inputs["image"]) if "image" in inputs else _text(inputs)
            )  # fmt: skip
            results = _as_list(pipe(source, top_k=5 if task != "text-classification" else 1))
            return _labels(results)
        if task == "zero-shot-image-classification":
            labels = _label_list(options.get("labels") or DETECTION_LABELS)
            return _labels(_as_list(pipe(_image(inputs["image"]), candidate_labels=labels)))
        if task == "token-classification":
            entities = pipe(_text(inputs), aggregation_strategy="simple")
            found = [
                {
                    "type": e["entity_group"],
                    "text": e["word"],
                    "score": float(e["score"]),
                    "start": e["start"],
                    "end": e["end"],
                }
                for e in entities
            ]
            text = "\n".join(f"{e['type']}: {e['text']}" for e in found) or "no entities found"
            return {"text": Resource.text(text), "json": Resource.json_value({"entities": found})}
        if task == "text-generation":
            return {"text": Resource.text(self._chat_or_continue(_text(inputs), options))}
        if task in ("object-detection", "zero-shot-object-detection"):
            return self._detect(task, inputs, options, ctx)
        if task == "image-text-to-text":
            prompt = str(self.card.hub.get("prompt") or "Describe this image.")
            messages = [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": _image(inputs["image"])}, {"type": "text", "text": prompt}],
                }
            ]
            result = _as_list(
                pipe(text=messages, max_new_tokens=int(options.get("max_tokens", 80)), return_full_text=False)
            )
            return {"text": Resource.text(str(result[0]["generated_text"]).strip())}
        if task == "document-question-answering":
            result = _as_list(pipe(image=_image(inputs["image"]), question=inputs["question"].as_text()))
            return {"text": Resource.text(str(result[0]["answer"]) if result else "no answer found")}
        if task == "image-segmentation":
            return self._segment(inputs["image"], ctx)
        if task == "mask-generation":
            result = pipe(_image(inputs["image"]), points_per_batch=64)
            return self._paint_masks([(f"mask {i}", m) for i, m in enumerate(result["masks"])], inputs["image"], ctx)
        if task == "depth-estimation":
            return self._depth(inputs["image"], ctx)
        if task == "automatic-speech-recognition":
            result = pipe(_audio_input(inputs["audio"], ctx), return_timestamps=False)
            return {"text": Resource.text(str(result["text"]).strip())}
        if task == "text-to-audio":
            result = pipe(_text(inputs))
            return {"audio": _save_wav(result["audio"], int(result["sampling_rate"]), ctx)}
        raise ExpertError(f"{self.card.id}: the pipeline '{task}' is not wired into baton yet")

    def _chat_or_continue(self, text: str, options: dict[str, str]) -> str:
        tokens = int(options.get("max_tokens", 120))
        if self.card.hub.get("chat") and getattr(self.pipe.tokenizer, "chat_template", None):
            result = _as_list(self.pipe([{"role": "user", "content": text}], max_new_tokens=tokens))
            generated = result[0]["generated_text"]
            return str(generated[-1]["content"] if isinstance(generated, list) else generated).strip()
        result = _as_list(self.pipe(text, max_new_tokens=tokens, return_full_text=False))
        return str(result[0]["generated_text"]).strip()

    def _similarity(self, inputs: dict[str, Resource]) -> dict[str, Resource]:
        import torch

        tokenizer, model = self.parts["tokenizer"], self.parts["model"]
        texts = [inputs["text"].as_text(), inputs["text2"].as_text()]
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self._device)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        score = float(torch.nn.functional.cosine_similarity(pooled[0:1], pooled[1:2]).item())
        return {
            "text": Resource.text(f"similarity {score:.2f}"),
            "json": Resource.json_value({"score": round(score, 4)}),
        }

    def _detect(
        self, task: str, inputs: dict[str, Resource], options: dict[str, str], ctx: ExpertContext
    ) -> dict[str, Resource]:
        image = _image(inputs["image"])
        threshold = float(options.get("threshold", 0.5 if task == "object-detection" else 0.1))
        if task == "zero-shot-object-detection":  # the task's "kinds" option names what to look for
            labels = _label_list(options.get("labels") or options.get("kinds") or DETECTION_LABELS)
            found = self.pipe(image, candidate_labels=labels, threshold=threshold)
        else:
            found = self.pipe(image, threshold=threshold)
        objects = [
            {"label": str(o["label"]), "score": round(float(o["score"]), 4), "box": _box(o["box"], image.size)}
            for o in found
        ]
        if self.card.hub.get("as_text"):
            names = ", ".join(f"{o['label']} ({o['score']:.2f})" for o in objects) or "nothing found"
            return {"text": Resource.text(names)}
        drawn = _draw_boxes(image, objects)
        return {"image": _save_pil(drawn, ctx, "boxes.png"), "json": Resource.json_value({"objects": objects})}

    def _segment(self, resource: Resource, ctx: ExpertContext) -> dict[str, Resource]:
        results = self.pipe(_image(resource))
        return self._paint_masks(
            [(str(r.get("label") or f"segment {i}"), r["mask"]) for i, r in enumerate(results)], resource, ctx
        )

    def _paint_masks(self, masks: list[tuple[str, Any]], resource: Resource, ctx: ExpertContext) -> dict[str, Resource]:
        import numpy as np

        from baton.experts.builtin.segment import DISTINCT, PALETTE

        image = _image(resource)
        palette = np.array(PALETTE if self.card.hub.get("palette") else DISTINCT, dtype=np.uint8)
        canvas = np.zeros((image.height, image.width, 3), dtype=np.uint8)
        stats = []
        for index, (label, mask) in enumerate(masks):
            array = np.asarray(mask, dtype=bool)
            if array.shape != canvas.shape[:2]:
                continue
            canvas[array] = palette[index % len(palette)]
            stats.append({"label": label, "area": int(array.sum()), "share": round(float(array.mean()), 4)})
        image_out = _save_array(canvas, ctx, "segments.png")
        if self.card.task.endswith("-control"):
            return {"image": image_out}
        return {"image": image_out, "json": Resource.json_value({"segments": stats})}

    def _depth(self, resource: Resource, ctx: ExpertContext) -> dict[str, Resource]:
        import numpy as np

        depth = np.asarray(self.pipe(_image(resource))["depth"], dtype=np.float32)
        if self.card.hub.get("normals"):
            gy, gx = np.gradient(depth / max(float(depth.max()), 1e-6) * 255.0)
            normal = np.dstack([-gx, -gy, np.full_like(depth, 10.0)])
            normal /= np.linalg.norm(normal, axis=2, keepdims=True)
            return {"image": _save_array(((normal + 1) * 127.5).astype(np.uint8), ctx, "normals.png")}
        span = float(depth.max() - depth.min()) or 1.0
        return {"image": _save_array(((depth - depth.min()) / span * 255).astype(np.uint8), ctx, "depth.png")}

    def _speak(self, text: str, ctx: ExpertContext) -> dict[str, Resource]:
        import torch

        if not text.strip():
            raise ExpertError("there is no text to speak: the input text is empty")
        processor, model = self.parts["processor"], self.parts["model"]
        ids = processor(text=text, return_tensors="pt")["input_ids"].to(self._device)
        with torch.inference_mode():
            speech = model.generate_speech(ids, self.parts["speaker"], vocoder=self.parts["vocoder"])
        return {"audio": _save_wav(speech.float().cpu().numpy(), 16000, ctx)}

    def _convert_voice(self, resource: Resource, ctx: ExpertContext) -> dict[str, Resource]:
        import torch

        audio = _audio_input(resource, ctx)
        processor, model = self.parts["processor"], self.parts["model"]
        values = processor(audio=audio["raw"], sampling_rate=16000, return_tensors="pt")["input_values"].to(
            self._device
        )
        with torch.inference_mode():
            speech = model.generate_speech(values, self.parts["speaker"], vocoder=self.parts["vocoder"])
        return {"audio": _save_wav(speech.float().cpu().numpy(), 16000, ctx)}

    def _cut_out(self, resource: Resource, options: dict[str, str], ctx: ExpertContext) -> dict[str, Resource]:
        import numpy as np
        import torch

        image = _image(resource)
        prompt = options.get("object") or str(self.card.hub.get("prompt") or "the main subject")
        batch = self.parts["processor"](text=[prompt], images=[image], return_tensors="pt").to(self._device)
        with torch.inference_mode():
            logits = self.parts["model"](**batch).logits
        mask = torch.sigmoid(logits).reshape(logits.shape[-2:]).float().cpu().numpy()
        from PIL import Image

        alpha = Image.fromarray((mask * 255).astype(np.uint8)).resize(image.size)
        cut = image.convert("RGBA")
        cut.putalpha(alpha)
        return {"image": _save_pil(cut, ctx, "cutout.png")}

    def _pose(self, resource: Resource, ctx: ExpertContext) -> dict[str, Resource]:
        import numpy as np
        import torch
        from PIL import ImageDraw

        image = _image(resource)
        boxes = [[[0.0, 0.0, float(image.width), float(image.height)]]]
        batch = self.parts["processor"](image, boxes=boxes, return_tensors="pt").to(self._device)
        with torch.inference_mode():
            outputs = self.parts["model"](**batch)
        poses = self.parts["processor"].post_process_pose_estimation(outputs, boxes=boxes)[0]
        from PIL import Image

        canvas = Image.new("RGB", image.size, "black")
        draw = ImageDraw.Draw(canvas)
        for person in poses:
            points = np.asarray(person["keypoints"].cpu(), dtype=float)
            for a, b in _SKELETON:
                if a < len(points) and b < len(points):
                    draw.line([tuple(points[a]), tuple(points[b])], fill=_LIMB, width=4)
            for x, y in points:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(255, 0, 0))
        return {"image": _save_pil(canvas, ctx, "pose.png")}


# COCO keypoint limbs, drawn as OpenPose-style lines
_SKELETON = [
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (5, 6),
    (5, 11),
    (6, 12),
    (11, 12),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
]
_LIMB = (0, 200, 255)


class _JointProcessor:
    """An image processor and a tokenizer acting as one processor (encoder-decoder captioners)."""

    def __init__(self, images: Any, tokenizer: Any) -> None:
        self.images, self.tokenizer = images, tokenizer

    def __call__(self, images: Any = None, text: Any = None, return_tensors: str = "pt") -> Any:
        batch = self.images(images, return_tensors=return_tensors)
        if text is not None:
            batch.update(self.tokenizer(text, return_tensors=return_tensors))
        return batch

    def decode(self, ids: Any, **kwargs: Any) -> str:
        return str(self.tokenizer.decode(ids, **kwargs))


def _transformers() -> Any:
    """The transformers module, typed loosely: its overloads do not help this generic code."""
    import importlib

    return importlib.import_module("transformers")


def _module_bytes(module: Any) -> int:
    try:
        tensors = [*module.parameters(), *module.buffers()]
    except AttributeError:
        return 0
    return sum(t.numel() * t.element_size() for t in tensors)


def _text(inputs: dict[str, Resource]) -> str:
    text = inputs["text"].as_text().strip()
    if not text:
        raise ExpertError("the input text is empty; give the task some text")
    return text


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list) and value and isinstance(value[0], list):
        return list(value[0])
    return value if isinstance(value, list) else [value]


def _labels(results: list[dict[str, Any]]) -> dict[str, Resource]:
    found = [{"label": str(r["label"]), "score": round(float(r["score"]), 4)} for r in results]
    text = ", ".join(f"{r['label']} ({r['score']:.2f})" for r in found) or "no label"
    return {"text": Resource.text(text), "json": Resource.json_value({"labels": found})}


def _box(box: dict[str, Any], size: tuple[int, int]) -> list[int]:
    """A pipeline's box as [x0, y0, x1, y1] within the image: models that pad the image (OWL-ViT pads it
    to a square) or regress freely (DETR) can place boxes past its edges."""
    width, height = size
    x0, x1 = (min(max(int(box[key]), 0), width) for key in ("xmin", "xmax"))
    y0, y1 = (min(max(int(box[key]), 0), height) for key in ("ymin", "ymax"))
    return [x0, y0, x1, y1]


def _label_list(text: str) -> list[str]:
    return [label.strip() for label in text.replace(";", ",").split(",") if label.strip()]


def _image(resource: Resource) -> Any:
    from PIL import Image

    from baton.experts.builtin.detect import load_rgb

    return Image.fromarray(load_rgb(resource.path))


def _audio_input(resource: Resource, ctx: ExpertContext) -> dict[str, Any]:
    """An audio (or video sound) input as 16 kHz mono float samples, the form speech models take."""
    import numpy as np

    from baton.experts.builtin.audio import check_audio, decode_wav

    check_audio(resource, ctx)
    path = decode_wav(resource, ctx, ctx.workdir / "input-16k.wav", rate=16000, channels=1)
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0
    return {"raw": samples, "sampling_rate": 16000}


def _save_wav(samples: Any, rate: int, ctx: ExpertContext) -> Resource:
    import numpy as np

    data = np.asarray(samples, dtype=np.float32).reshape(-1)
    peak = float(np.abs(data).max()) if data.size else 0.0
    if peak > 1.0:
        data = data / peak
    path = ctx.workdir / "speech.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((data * 32767).astype(np.int16).tobytes())
    return Resource.media(ctx.save_file(path))


def _save_pil(image: Any, ctx: ExpertContext, name: str) -> Resource:
    path = ctx.workdir / name
    image.save(path)
    return Resource.media(ctx.save_file(path))


def _save_array(array: Any, ctx: ExpertContext, name: str) -> Resource:
    from PIL import Image

    return _save_pil(Image.fromarray(array), ctx, name)


def _draw_boxes(image: Any, objects: list[dict[str, Any]]) -> Any:
    from PIL import ImageDraw

    drawn = image.copy()
    draw = ImageDraw.Draw(drawn)
    for found in objects:
        x0, y0, x1, y1 = found["box"]
        draw.rectangle([x0, y0, x1, y1], outline=(255, 40, 40), width=3)
        draw.text((x0 + 3, y0 + 2), f"{found['label']} {found['score']:.2f}", fill=(255, 255, 0))
    return drawn
