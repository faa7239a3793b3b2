"""What inference needs beside the weights, as the Hugging Face ecosystem reads it: an image processor that does
exactly what the eval collators do, and the sentence-transformers layout (modules.json + 1_Pooling/) that pools
token states the way a text method's `embed` does.

Image processor: `ViTImageProcessor` (AutoImageProcessor loads it; the image-feature-extraction pipeline uses it):
RGB -> resize to S x S (bilinear, antialiased) -> x / 255 -> (x - 0.5) / 0.5, i.e.
`multissl.modalities.image.transforms.eval_transform(S)` with its MEAN / STD (tested equal to 1e-6).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from transformers.image_processing_utils import BaseImageProcessor

from multissl.modalities.image.transforms import MEAN, STD

# multissl text pooler -> sentence-transformers Pooling mode; "cls_before_pooler" is the raw [CLS] state as well.
ST_POOLING = {"avg": "mean", "mean": "mean", "cls": "cls", "cls_before_pooler": "cls"}


def image_processor(image_size: int):
    """A transformers image processor doing what the eval collator does: RGB, resize to S x S, scale, normalise."""
    from transformers import ViTImageProcessor

    if image_size < 1:
        raise ValueError(f"image_size must be >= 1; got {image_size}")
    s = int(image_size)
    return ViTImageProcessor(do_resize=True, size={"height": s, "width": s}, resample=2, do_rescale=True,
                             rescale_factor=1 / 255, do_normalize=True, image_mean=list(MEAN), image_std=list(STD),
                             do_convert_rgb=True)


def save_image_processor(image_size: int, out_dir: str | Path) -> None:
    """Write preprocessor_config.json (the eval transform at `image_size`) into out_dir."""
    image_processor(image_size).save_pretrained(out_dir)


def save_modality_processor(model, out_dir: str | Path) -> None:
    """The default export extra by the method's registered modality: image -> the image processor at
    config.image_size; audio -> a Wav2Vec2FeatureExtractor at config.sampling_rate; otherwise nothing (text methods
    override `save_export_extras` with their tokenizer)."""
    from multissl.registry import method_for_model_type

    spec = method_for_model_type(model.config.model_type)
    modality = spec.modality if spec is not None else None
    if modality == "image" and hasattr(model.config, "image_size"):
        save_image_processor(model.config.image_size, out_dir)
    elif modality == "audio" and hasattr(model.config, "sampling_rate"):
        audio_feature_extractor(model.config.sampling_rate).save_pretrained(out_dir)


def audio_feature_extractor(sampling_rate: int):
    """What the raw-waveform eval collator (AudioCollator) does, as a transformers feature extractor: mono float at
    `sampling_rate`, no normalisation, zero padding to the longest clip (+ attention_mask marking the real samples)."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=False,
                                    return_attention_mask=True)


def write_sentence_transformers_layout(out_dir: str | Path, *, pooler: str, dim: int, max_seq_length: int,
                                       masked_lm: bool = False) -> None:
    """modules.json + sentence_bert_config.json + 1_Pooling/config.json, so `SentenceTransformer(out_dir)` pools the
    token states [B, T, dim] as multissl's `embed` does (`pooler`: avg = attention-masked mean, cls = token 0).

    masked_lm=True: the folder's model is a *ForMaskedLM; sentence-transformers then loads it with
    AutoModelForMaskedLM (every weight used) and reads the last hidden states (the encoder output) instead of logits.
    """
    if pooler not in ST_POOLING:
        raise ValueError(f"pooler {pooler!r} has no sentence-transformers pooling mode; expected one of {sorted(ST_POOLING)}")
    if dim < 1 or max_seq_length < 1:
        raise ValueError(f"dim and max_seq_length must be >= 1; got {dim}, {max_seq_length}")
    out = Path(out_dir)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    module0: dict = {"max_seq_length": int(max_seq_length), "do_lower_case": False}
    if masked_lm:
        module0.update(transformer_task="fill-mask", module_output_name="token_embeddings",
                       modality_config={"text": {"method": "forward", "method_output_name": ["hidden_states", -1]}})
    (out / "sentence_bert_config.json").write_text(json.dumps(module0, indent=2))
    mode = ST_POOLING[pooler]
    pooling = {"word_embedding_dimension": int(dim), "pooling_mode_cls_token": mode == "cls",
               "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
               "pooling_mode_lasttoken": False, "include_prompt": True}
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (out / "config_sentence_transformers.json").write_text(json.dumps({"similarity_fn_name": "cosine"}, indent=2))



# ---- colourisation: its encoder reads CIE L*, which no standard image processor computes: it ships as code ----------

LAB_PROCESSOR_FILE = "lab_lightness_processor.py"


class LabLightnessImageProcessor(BaseImageProcessor):
    """Colourisation's encoder input: RGB (alpha over white) -> resize to S x S (bilinear, antialiased, on 8-bit
    pixels) -> [0, 1] -> CIE L* (sRGB, D65) -> L* / 50 - 1, repeated to 3 channels: pixel_values [B, 3, S, S].

    Self-contained (numpy, torch, torchvision, Pillow, transformers): exports copy this class into their folder, where
    AutoImageProcessor / pipeline load it with trust_remote_code=True.
    """

    model_input_names = ["pixel_values"]

    def __init__(self, size: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.size = dict(size or {"height": 32, "width": 32})

    def preprocess(self, images, return_tensors=None, **kwargs):
        """PIL images or HxWxC uint8 arrays (one or a list) -> BatchFeature with pixel_values [B, 3, S, S]."""
        import numpy as np
        import torch
        from PIL import Image
        from torchvision.transforms.v2 import functional as F
        from transformers.image_processing_utils import BatchFeature

        images = list(images) if isinstance(images, (list, tuple)) else [images]
        h, w = self.size["height"], self.size["width"]
        out = []
        for im in images:
            im = im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im))
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
            t = F.resize(F.pil_to_tensor(im.convert("RGB")), [h, w], antialias=True).float() / 255.0  # [3, h, w]
            lin = torch.where(t > 0.04045, ((t + 0.055) / 1.055) ** 2.4, t / 12.92)  # linear sRGB
            y = 0.212671 * lin[0] + 0.715160 * lin[1] + 0.072169 * lin[2]  # relative luminance (white Y = 1)
            f = torch.where(y > 216.0 / 24389.0, y.clamp_min(1e-12) ** (1.0 / 3.0), (24389.0 / 27.0 * y + 16.0) / 116.0)
            out.append(((116.0 * f - 16.0) / 50.0 - 1.0).expand(3, h, w))  # L* in [0, 100] -> [-1, 1]
        return BatchFeature({"pixel_values": torch.stack(out)}, tensor_type=return_tensors)


def save_lab_lightness_processor(image_size: int, out_dir: str | Path) -> None:
    """Write LabLightnessImageProcessor as code (lab_lightness_processor.py) + preprocessor_config.json with auto_map."""
    import inspect

    out = Path(out_dir)
    source = "from transformers.image_processing_utils import BaseImageProcessor\n\n\n"
    (out / LAB_PROCESSOR_FILE).write_text(source + inspect.getsource(LabLightnessImageProcessor))
    config = {"image_processor_type": "LabLightnessImageProcessor", "size": {"height": image_size, "width": image_size},
              "auto_map": {"AutoImageProcessor": f"{LAB_PROCESSOR_FILE[:-3]}.LabLightnessImageProcessor"}}
    (out / "preprocessor_config.json").write_text(json.dumps(config, indent=2))

# ---- which standard output of the exported encoder is multissl's `embed` (found numerically, so always true) --------

VISION_FEATURES = {
    "pooler_output": "`pooler_output` flattened to [B, D] (the pipeline's `pool=True`)",
    "mean_patch_tokens": "the mean of `last_hidden_state[:, 1:]` (the patch tokens; token 0 is CLS) = the pipeline's "
                         "output without `pool`, averaged over tokens 1:",
    "cls_token": "`last_hidden_state[:, 0]` (the CLS token)",
    "mean_feature_map": "the mean of `last_hidden_state` [B, D, h, w] over h, w",
}


def _vision_candidates(out) -> dict:
    """Candidate features [B, D] from a vision backbone's output, most standard first."""
    import torch

    cands: dict[str, torch.Tensor] = {}
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        cands["pooler_output"] = pooled.flatten(1)
    hidden = out.last_hidden_state
    if hidden.dim() == 3:
        cands["mean_patch_tokens"] = hidden[:, 1:].mean(1)
        cands["cls_token"] = hidden[:, 0]
    elif hidden.dim() == 4:
        cands["mean_feature_map"] = hidden.mean(dim=(2, 3))
    return cands


def detect_vision_feature(model, encoder, image_size: int, num_channels: int = 3, atol: float = 1e-5) -> str | None:
    """The VISION_FEATURES key whose value equals model.embed on random pixels [2, C, S, S] (eval mode), or None when
    embed adds a method head the export leaves out (e.g. metric learning's linear embedding)."""
    import torch

    g = torch.Generator().manual_seed(0)
    param = next(encoder.parameters())
    x = torch.randn(2, num_channels, image_size, image_size, generator=g).to(param.device, param.dtype)
    with _eval_mode(model, encoder), torch.no_grad():
        want = model.embed(pixel_values=x)
        for name, got in _vision_candidates(encoder(pixel_values=x)).items():
            if got.shape == want.shape and torch.allclose(got, want, atol=atol, rtol=1e-4):
                return name
    return None


def detect_text_pooling(model, encoder, vocab_size: int, atol: float = 1e-5) -> str | None:
    """'avg' or 'cls' when model.embed equals that pooling of the encoder's last hidden states (random ids, one padded
    row, eval mode); None otherwise."""
    import torch

    g = torch.Generator().manual_seed(0)
    device = next(encoder.parameters()).device
    ids = torch.randint(5, max(vocab_size, 6), (2, 7), generator=g).to(device)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    with _eval_mode(model, encoder), torch.no_grad():
        want = model.embed(input_ids=ids, attention_mask=mask)
        hidden = encoder.base_model(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, T, D]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        for name, got in (("avg", (hidden * m).sum(1) / m.sum(1)), ("cls", hidden[:, 0])):
            if got.shape == want.shape and torch.allclose(got, want, atol=atol, rtol=1e-4):
                return name
    return None


@contextmanager
def _eval_mode(*modules):
    """Modules in eval mode for a deterministic probe; every submodule's own mode is restored afterwards."""
    modes = [[m.training for m in mod.modules()] for mod in modules]
    for mod in modules:
        mod.eval()
    try:
        yield
    finally:
        for mod, saved in zip(modules, modes):
            for m, was in zip(mod.modules(), saved):
                m.training = was
