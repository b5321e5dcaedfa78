"""Tiny randomly initialised transformers models, saved with ``save_pretrained`` for tests.

No weights can be downloaded in tests, so each builder here makes a model from a config (hidden sizes
of 16 to 32, one or two layers), builds its tokenizer offline from a vocabulary dict (character level,
so any text tokenizes) and its image processor from the ``*ImageProcessorPil`` classes (no
torchvision), and saves them all into a folder the way a user's downloaded model looks.

Each builder takes a folder (created if absent), saves into it and returns it; ``build(name, root)``
builds ``root/name`` once and reuses it afterwards. The folders can be registered with
``baton.experts.hub.add_local_model`` or ``baton models add``. Importing this module is cheap:
torch and transformers are imported inside the builders.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "BUILDERS",
    "IMAGE_SIZE",
    "bart_summarizer",
    "bart_tokenizer",
    "bert_embedder",
    "bert_question_answering",
    "bert_text_classifier",
    "bert_token_classifier",
    "bert_tokenizer",
    "blip_captioner",
    "blip_vqa",
    "build",
    "clip_tokenizer",
    "clip_zero_shot",
    "depth_anything",
    "detr_detector",
    "detr_panoptic",
    "dpt_depth",
    "gpt2_chat",
    "gpt2_generator",
    "gpt2_tokenizer",
    "llava_chat",
    "owlvit_detector",
    "segformer_segmenter",
    "speecht5_tokenizer",
    "speecht5_tts",
    "t5_tokenizer",
    "t5_translator",
    "vilt_vqa",
    "vit_classifier",
    "vit_gpt2_captioner",
    "vits_tts",
    "whisper_asr",
    "whisper_tokenizer",
    "yolos_detector",
]

IMAGE_SIZE = 32  # the side images are resized to: 4 x 4 patches of 8 pixels
PATCH = 8
CHARS = string.ascii_letters + string.digits + string.punctuation
LOWER = string.ascii_lowercase + string.digits + string.punctuation

# one small transformer stack, in the names most configs use
SMALL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
SMALL_VISION = {**SMALL, "image_size": IMAGE_SIZE, "patch_size": PATCH}


def _transformers() -> Any:
    import importlib

    return importlib.import_module("transformers")


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def _folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(folder: Path, model: Any, *processors: Any) -> Path:
    _folder(folder)
    model.save_pretrained(folder)
    for processor in processors:
        processor.save_pretrained(folder)
    return folder


# tokenizers, built from vocabulary dicts


def bert_tokenizer() -> Any:
    """A WordPiece tokenizer over single characters (lower-cased), with BERT's special tokens."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate([*special, *LOWER, *(f"##{c}" for c in LOWER)])}
    return _transformers().BertTokenizer(vocab=vocab, model_max_length=128)


def _byte_level_vocab(first: list[str], suffix: str = "", last: tuple[str, ...] = ()) -> dict[str, int]:
    from tokenizers import pre_tokenizers

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*first, *chars, *(f"{c}{suffix}" for c in chars if suffix), *last]
    return {token: i for i, token in enumerate(tokens)}


def gpt2_tokenizer() -> Any:
    """GPT-2's byte-level BPE with no merges: one token per byte, ``<|endoftext|>`` as id 0."""
    vocab = _byte_level_vocab(["<|endoftext|>"])
    return _transformers().GPT2Tokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>", model_max_length=128)


def clip_tokenizer() -> Any:
    """CLIP's BPE with no merges (each byte, and each byte ending a word); start and end are the last ids.

    As in CLIP's own vocabulary, no special token is id 0: OWL-ViT takes a query whose first id is 0 for padding.
    """
    vocab = _byte_level_vocab([], suffix="</w>", last=("<|startoftext|>", "<|endoftext|>"))
    return _transformers().CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def bart_tokenizer() -> Any:
    """BART's byte-level BPE with no merges; ``<s> <pad> </s> <unk>`` are ids 0-3, ``<mask>`` the last."""
    vocab = _byte_level_vocab(["<s>", "<pad>", "</s>", "<unk>"])
    vocab["<mask>"] = len(vocab)
    return _transformers().BartTokenizer(vocab=vocab, merges=[], model_max_length=128)


def t5_tokenizer() -> Any:
    """A unigram (sentencepiece-style) tokenizer over characters; ``<pad> </s> <unk>`` are ids 0-2."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in CHARS] + [(f"\u2581{c}", -2.5) for c in CHARS]
    return _transformers().T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=128)


# a minimal chat template: user and assistant turns, an image as the <image> placeholder
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


# text


def _bert_config(**extra: Any) -> Any:
    return _transformers().BertConfig(
        vocab_size=len(bert_tokenizer()), max_position_embeddings=128, pad_token_id=0, **SMALL, **extra
    )


def bert_text_classifier(folder: Path) -> Path:
    """text-classification: BERT with a two-label (NEGATIVE/POSITIVE) head."""
    _seed()
    labels = {0: "NEGATIVE", 1: "POSITIVE"}
    config = _bert_config(id2label=labels, label2id={v: k for k, v in labels.items()})
    return _save(folder, _transformers().BertForSequenceClassification(config), bert_tokenizer())


def bert_token_classifier(folder: Path) -> Path:
    """token-classification: BERT tagging with BIO labels for PER and LOC."""
    _seed()
    labels = dict(enumerate(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]))
    config = _bert_config(id2label=labels, label2id={v: k for k, v in labels.items()})
    return _save(folder, _transformers().BertForTokenClassification(config), bert_tokenizer())


def bert_question_answering(folder: Path) -> Path:
    """question-answering: BERT with a span (start/end) head."""
    _seed()
    return _save(folder, _transformers().BertForQuestionAnswering(_bert_config()), bert_tokenizer())


def bert_embedder(folder: Path) -> Path:
    """sentence-similarity: a bare BERT encoder (mean-pooled by the expert)."""
    _seed()
    return _save(folder, _transformers().BertModel(_bert_config()), bert_tokenizer())


def gpt2_generator(folder: Path) -> Path:
    """text-generation: a one-layer GPT-2 over bytes."""
    _seed()
    transformers = _transformers()
    config = transformers.GPT2Config(
        vocab_size=len(gpt2_tokenizer()),
        n_positions=256,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = 0
    return _save(folder, model, gpt2_tokenizer())


def gpt2_chat(folder: Path) -> Path:
    """conversational: the tiny GPT-2 with a chat template, as instruction-tuned models have."""
    gpt2_generator(folder)
    tokenizer = gpt2_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


def bart_summarizer(folder: Path) -> Path:
    """summarization (or translation): a one-layer BART encoder-decoder over bytes."""
    _seed()
    transformers = _transformers()
    tokenizer = bart_tokenizer()
    config = transformers.BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_position_embeddings=256,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=2,
    )
    return _save(folder, transformers.BartForConditionalGeneration(config), tokenizer)


def t5_translator(folder: Path) -> Path:
    """translation (or summarization): a one-layer T5 over characters."""
    _seed()
    transformers = _transformers()
    tokenizer = t5_tokenizer()
    config = transformers.T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=16,
        d_ff=37,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return _save(folder, transformers.T5ForConditionalGeneration(config), tokenizer)


# vision


def _square() -> dict[str, int]:
    return {"height": IMAGE_SIZE, "width": IMAGE_SIZE}


def _vit_config(**extra: Any) -> Any:
    return _transformers().ViTConfig(**SMALL_VISION, **extra)


def _labels(names: list[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


def vit_classifier(folder: Path) -> Path:
    """image-classification: a ViT with three labels."""
    _seed()
    transformers = _transformers()
    model = transformers.ViTForImageClassification(_vit_config(**_labels(["cat", "dog", "car"])))
    return _save(folder, model, transformers.ViTImageProcessorPil(size=_square()))


def blip_captioner(folder: Path) -> Path:
    """image-to-text: BLIP captioning (a ViT encoder and a BERT decoder); it starts from [CLS], ends at [SEP]."""
    _seed()
    transformers = _transformers()
    tokenizer = bert_tokenizer()
    config = transformers.BlipConfig(
        vision_config=dict(SMALL_VISION),
        text_config={
            **SMALL,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 256,
            "bos_token_id": tokenizer.cls_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        projection_dim=32,
    )
    processor = transformers.BlipProcessor(transformers.BlipImageProcessorPil(size=_square()), tokenizer)
    return _save(folder, transformers.BlipForConditionalGeneration(config), processor)


def blip_vqa(folder: Path) -> Path:
    """visual-question-answering: BLIP VQA (image and question encoders, an answer decoder)."""
    _seed()
    transformers = _transformers()
    tokenizer = bert_tokenizer()
    config = transformers.BlipConfig(
        vision_config=dict(SMALL_VISION),
        text_config={
            **SMALL,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 256,
            "bos_token_id": tokenizer.cls_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        projection_dim=32,
    )
    processor = transformers.BlipProcessor(transformers.BlipImageProcessorPil(size=_square()), tokenizer)
    return _save(folder, transformers.BlipForQuestionAnswering(config), processor)


def vilt_vqa(folder: Path) -> Path:
    """visual-question-answering: ViLT, a classifier over a small answer vocabulary."""
    _seed()
    transformers = _transformers()
    tokenizer = bert_tokenizer()
    config = transformers.ViltConfig(
        **SMALL_VISION,
        vocab_size=len(tokenizer),
        max_position_embeddings=64,
        max_image_length=-1,
        **_labels(["yes", "no", "red", "blue", "two"]),
    )
    images = transformers.ViltImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, size_divisor=PATCH)
    processor = transformers.ViltProcessor(images, tokenizer)
    return _save(folder, transformers.ViltForQuestionAnswering(config), processor)


def vit_gpt2_captioner(folder: Path) -> Path:
    """image-to-text: a VisionEncoderDecoder of a ViT and a GPT-2 (no joint processor, as nlpconnect's)."""
    _seed()
    transformers = _transformers()
    tokenizer = gpt2_tokenizer()
    decoder = transformers.GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
    )
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(_vit_config(), decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = 0
    model = transformers.VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 0
    return _save(folder, model, transformers.ViTImageProcessorPil(size=_square()), tokenizer)


def llava_chat(folder: Path) -> Path:
    """image-to-text / visual-question-answering: a LLaVA-style chat VLM (CLIP vision, Llama text) with a
    chat template, as SmolVLM and its kin are."""
    _seed()
    transformers = _transformers()
    vocab = _byte_level_vocab(["<|endoftext|>"], last=("<image>",))
    tokenizer = transformers.GPT2Tokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>", model_max_length=512)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    images = transformers.CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size=_square())
    processor = transformers.LlavaProcessor(
        images,
        tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy drops
    )
    text = transformers.LlamaConfig(
        **{**SMALL, "num_key_value_heads": 2},
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(**SMALL_VISION),
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(IMAGE_SIZE // PATCH) ** 2,
        vision_feature_layer=-1,
    )
    model = transformers.LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = 0
    return _save(folder, model, processor)


def _resnet_backbone() -> Any:
    """A three-stage ResNet made here (no timm, nothing pretrained); the panoptic head reads all three."""
    return _transformers().ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 16],
        depths=[1, 1, 1],
        layer_type="basic",
        out_features=["stage1", "stage2", "stage3"],
    )


def _detr_config(**extra: Any) -> Any:
    return _transformers().DetrConfig(
        backbone_config=_resnet_backbone(),
        use_pretrained_backbone=False,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=8,  # the panoptic mask head takes d_model + heads channels, a multiple of 8
        decoder_attention_heads=8,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_queries=6,
        **extra,
    )


def _confident(linear: Any, label: int = 0) -> None:
    """Make a classification head favour one label strongly, so a random detector finds objects."""
    import torch

    with torch.no_grad():
        linear.bias.fill_(-4.0)
        linear.bias[label] = 4.0


def detr_detector(folder: Path) -> Path:
    """object-detection: DETR on a small ResNet, confident in its first label so boxes come out."""
    _seed()
    transformers = _transformers()
    model = transformers.DetrForObjectDetection(_detr_config(**_labels(["cat", "dog"])))
    _confident(model.class_labels_classifier)
    images = transformers.DetrImageProcessorPil(size={"shortest_edge": IMAGE_SIZE, "longest_edge": 2 * IMAGE_SIZE})
    return _save(folder, model, images)


def detr_panoptic(folder: Path) -> Path:
    """image-segmentation: DETR with its panoptic mask head, which finds one segment covering the image."""
    import torch

    _seed()
    transformers = _transformers()
    model = transformers.DetrForSegmentation(_detr_config(**_labels(["sky", "grass", "person"])))
    _confident(model.detr.class_labels_classifier)
    with torch.no_grad():  # every mask covers the image: the best query's segment survives post-processing
        model.mask_head.output_conv.weight.zero_()
        model.mask_head.output_conv.bias.fill_(5.0)
    images = transformers.DetrImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE, "longest_edge": 2 * IMAGE_SIZE}, format="coco_panoptic"
    )
    return _save(folder, model, images)


def yolos_detector(folder: Path) -> Path:
    """object-detection: YOLOS, a ViT with detection tokens."""
    _seed()
    transformers = _transformers()
    config = transformers.YolosConfig(
        **{**SMALL_VISION, "image_size": [IMAGE_SIZE, IMAGE_SIZE]}, num_detection_tokens=6, **_labels(["cat", "dog"])
    )
    model = transformers.YolosForObjectDetection(config)
    _confident(model.class_labels_classifier.layers[-1])
    images = transformers.YolosImageProcessorPil(size={"shortest_edge": IMAGE_SIZE, "longest_edge": 2 * IMAGE_SIZE})
    return _save(folder, model, images)


def _clip_configs() -> dict[str, Any]:
    tokenizer = clip_tokenizer()
    text = {
        **SMALL,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return {"text_config": text, "vision_config": dict(SMALL_VISION), "projection_dim": 32}


def clip_zero_shot(folder: Path) -> Path:
    """zero-shot image classification: CLIP with a byte-level tokenizer."""
    _seed()
    transformers = _transformers()
    model = transformers.CLIPModel(transformers.CLIPConfig(**_clip_configs()))
    images = transformers.CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size=_square())
    return _save(folder, model, transformers.CLIPProcessor(images, clip_tokenizer()))


def owlvit_detector(folder: Path) -> Path:
    """zero-shot object detection: OWL-ViT, boxes for labels given as text, confident in all of them."""
    import torch

    _seed()
    transformers = _transformers()
    model = transformers.OwlViTForObjectDetection(transformers.OwlViTConfig(**_clip_configs()))
    with torch.no_grad():  # confident in every query, boxes on the patch grid (random ones saturate)
        for linear, bias in ((model.class_head.logit_shift, 4.0), (model.class_head.logit_scale, 0.0)):
            linear.weight.zero_()
            linear.bias.fill_(bias)
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.zero_()
    images = transformers.OwlViTImageProcessorPil(size=_square(), crop_size=_square())
    return _save(folder, model, transformers.OwlViTProcessor(images, clip_tokenizer()))


def dpt_depth(folder: Path) -> Path:
    """depth-estimation: DPT (a ViT and a reassemble/fusion neck) with a depth head."""
    _seed()
    transformers = _transformers()
    config = transformers.DPTConfig(
        **{**SMALL_VISION, "num_hidden_layers": 4},
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 16, 16],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
        head_in_index=-1,
    )
    return _save(folder, transformers.DPTForDepthEstimation(config), transformers.DPTImageProcessorPil(size=_square()))


def depth_anything(folder: Path) -> Path:
    """depth-estimation: Depth Anything on a small DINOv2 backbone."""
    _seed()
    transformers = _transformers()
    backbone = transformers.Dinov2Config(
        **{**SMALL_VISION, "num_hidden_layers": 4, "patch_size": 4},
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 8, 16, 16],
        reassemble_hidden_size=32,
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=4,
    )
    images = transformers.DPTImageProcessorPil(size=_square(), ensure_multiple_of=4)
    return _save(folder, transformers.DepthAnythingForDepthEstimation(config), images)


def segformer_segmenter(folder: Path) -> Path:
    """image-segmentation: SegFormer (semantic), two small stages and four classes."""
    _seed()
    transformers = _transformers()
    config = transformers.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        **_labels(["sky", "wall", "grass", "person"]),
    )
    images = transformers.SegformerImageProcessorPil(size=_square())
    return _save(folder, transformers.SegformerForSemanticSegmentation(config), images)


# speech

WHISPER_SPECIAL = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|transcribe|>",
    "<|translate|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)


def whisper_tokenizer() -> Any:
    """Whisper's byte-level BPE with no merges, its special tokens after the bytes as in Whisper's own."""
    vocab = _byte_level_vocab([], last=WHISPER_SPECIAL)
    return _transformers().WhisperTokenizer(
        vocab=vocab, merges=[], additional_special_tokens=list(WHISPER_SPECIAL[1:]), model_max_length=64
    )


def whisper_asr(folder: Path) -> Path:
    """automatic-speech-recognition: an English-only Whisper (30 s windows of 16 mel bins)."""
    _seed()
    transformers = _transformers()
    tokenizer = whisper_tokenizer()
    ids = dict(zip(WHISPER_SPECIAL, tokenizer.convert_tokens_to_ids(list(WHISPER_SPECIAL)), strict=True))
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = transformers.WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=16,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_target_positions=64,
        pad_token_id=end,
        bos_token_id=end,
        eos_token_id=end,
        decoder_start_token_id=start,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    model = transformers.WhisperForConditionalGeneration(config)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        decoder_start_token_id=start,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=False,
        max_length=16,
    )
    features = transformers.WhisperFeatureExtractor(feature_size=16)
    return _save(folder, model, transformers.WhisperProcessor(features, tokenizer))


def speecht5_tokenizer(folder: Path) -> Any:
    """SpeechT5's character-level sentencepiece model, trained here on the characters themselves."""
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([CHARS, "the quick brown fox jumps over the lazy dog", CHARS.upper()]),
        model_writer=model,
        model_type="char",
        vocab_size=len(CHARS) + 5,
        hard_vocab_limit=False,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    path = _folder(folder) / "spm_char.model"
    path.write_bytes(model.getvalue())
    return _transformers().SpeechT5Tokenizer(str(path))


def speecht5_tts(folder: Path) -> Path:
    """text-to-speech: SpeechT5 with a tiny HiFi-GAN vocoder in the ``vocoder`` subfolder."""
    _seed()
    transformers = _transformers()
    tokenizer = speecht5_tokenizer(folder)
    mels = 8
    config = transformers.SpeechT5Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_mel_bins=mels,
        speech_decoder_prenet_units=16,
        speaker_embedding_dim=16,
        speech_decoder_postnet_layers=1,
        speech_decoder_postnet_units=16,
        max_speech_positions=512,
        max_text_positions=256,
        encoder_max_relative_position=16,
    )
    features = transformers.SpeechT5FeatureExtractor(num_mel_bins=mels)
    processor = transformers.SpeechT5Processor(features, tokenizer)
    _save(folder, transformers.SpeechT5ForTextToSpeech(config), processor)
    vocoder = transformers.SpeechT5HifiGanConfig(
        model_in_dim=mels,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )
    _save(folder / "vocoder", transformers.SpeechT5HifiGan(vocoder))
    return folder


def vits_tts(folder: Path) -> Path:
    """text-to-speech: VITS (MMS-TTS style) over lower-case characters, through the text-to-audio pipeline."""
    _seed()
    transformers = _transformers()
    vocab = {token: i for i, token in enumerate(["<pad>", "<unk>", " ", *LOWER])}
    path = _folder(folder) / "vocab.json"
    path.write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = transformers.VitsTokenizer(str(path), phonemize=False, add_blank=True)
    config = transformers.VitsConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=16,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=1,
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        depth_separable_num_layers=1,
    )
    return _save(folder, transformers.VitsModel(config), tokenizer)


BUILDERS: dict[str, Callable[[Path], Path]] = {
    builder.__name__: builder
    for builder in (
        bert_text_classifier,
        bert_token_classifier,
        bert_question_answering,
        bert_embedder,
        gpt2_generator,
        gpt2_chat,
        bart_summarizer,
        t5_translator,
        vit_classifier,
        blip_captioner,
        blip_vqa,
        vilt_vqa,
        vit_gpt2_captioner,
        llava_chat,
        detr_detector,
        detr_panoptic,
        yolos_detector,
        clip_zero_shot,
        owlvit_detector,
        dpt_depth,
        depth_anything,
        segformer_segmenter,
        whisper_asr,
        speecht5_tts,
        vits_tts,
    )
}


def build(name: str, root: Path) -> Path:
    """``root/name`` built by the builder of that name, once: a finished folder is reused."""
    folder = root / name
    done = folder / ".built"
    if not done.exists():
        BUILDERS[name](folder)
        done.write_text(json.dumps({"builder": name}), encoding="utf-8")
    return folder
