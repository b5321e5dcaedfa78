"""Tiny randomly initialised diffusers pipelines, built offline and saved with save_pretrained.

Each is one or two megabytes: Stable Diffusion pipelines from a tiny UNet, VAE and CLIP text encoder with a
tokenizer made from a small vocabulary, a ControlNet, and a CLIPSeg segmenter for remove/replace object.
Images come out at 32x32 (16x16 latents, one VAE downsampling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HIDDEN = 32  # the text encoder's width, and so the UNet's cross-attention width
TEXT_LENGTH = 16  # tokens per prompt (the real models take 77)
LATENT = 16  # latent size; the VAE has two blocks, so images are 2x as large
IMAGE = LATENT * 2


def clip_tokenizer() -> Any:
    """A CLIP tokenizer over single characters (with CLIP's end-of-word forms) and a few merges."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    characters = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*characters, *(c + "</w>" for c in characters)]
    merges = [("a", "t</w>"), ("c", "a"), ("ca", "t</w>"), ("o", "g</w>"), ("d", "og</w>"), ("r", "e"), ("re", "d</w>")]
    tokens += ["".join(pair) for pair in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TEXT_LENGTH)


def clip_text_config(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=TEXT_LENGTH,
        projection_dim=HIDDEN,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _unet(in_channels: int) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
        norm_num_groups=8,
    )


def _components(unet_channels: int = 4) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=IMAGE,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": _unet(unet_channels),
        "vae": vae,
        "text_encoder": CLIPTextModel(clip_text_config(tokenizer)).eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def save_text_to_image(folder: Path) -> Path:
    """A StableDiffusionPipeline; the same folder also serves image-to-image (same components)."""
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline(**_components()).save_pretrained(folder)
    return folder


def save_controlnet(folder: Path) -> Path:
    """A StableDiffusionControlNetPipeline: the ControlNet lands in the folder's controlnet/ subfolder."""
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    components = _components()
    torch.manual_seed(1)
    controlnet = ControlNetModel(
        in_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
        norm_num_groups=8,
        conditioning_embedding_out_channels=(8, 16),  # one stride-2 step: images are 2x the latents
    )
    StableDiffusionControlNetPipeline(**components, controlnet=controlnet).save_pretrained(folder)
    return folder


def save_inpainting(folder: Path, segmenter: bool = False, segmenter_finds: bool = True) -> Path:
    """A StableDiffusionInpaintPipeline (9-channel UNet); with ``segmenter``, a CLIPSeg in segmenter/ too."""
    from diffusers import StableDiffusionInpaintPipeline

    StableDiffusionInpaintPipeline(**_components(9)).save_pretrained(folder)
    if segmenter:
        save_clipseg(folder / "segmenter", finds=segmenter_finds)
    return folder


def save_instruct_pix2pix(folder: Path) -> Path:
    """A StableDiffusionInstructPix2PixPipeline (8-channel UNet: the latents and the image's latents)."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    StableDiffusionInstructPix2PixPipeline(**_components(8)).save_pretrained(folder)
    return folder


def save_clipseg(folder: Path, finds: bool = True) -> Path:
    """A CLIPSeg text-prompted segmenter with its processor (ViT Pil image processor + CLIP tokenizer).

    Random weights give a random mask; the last layer's bias makes it certain instead: the whole image when
    ``finds``, else nothing (an object that is not there).
    """
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPSegVisionConfig,
        ViTImageProcessorPil,
    )

    torch.manual_seed(2)
    tokenizer = clip_tokenizer()
    text = clip_text_config(tokenizer).to_dict()
    vision = CLIPSegVisionConfig(
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
    )
    config = CLIPSegConfig(
        text_config=text,
        vision_config=vision.to_dict(),
        projection_dim=HIDDEN,
        extract_layers=[0, 1],  # hidden states after layers 1 and 2
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
        use_complex_transposed_convolution=False,  # one transposed convolution: its bias decides the mask
    )
    model = CLIPSegForImageSegmentation(config).eval()
    with torch.no_grad():
        model.decoder.transposed_convolution.bias.fill_(20.0 if finds else -20.0)
    model.save_pretrained(folder)
    processor = ViTImageProcessorPil(
        size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_resize=True
    )
    CLIPSegProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
