"""Complete, self-describing Hugging Face folders: `multissl export` (an encoder that loads without multissl) and a
run's `final/` (the multissl model), each with what inference needs for its modality and a model card.

An export holds encoder_for_export() + the method's extras (image processor / tokenizer / audio feature extractor) +,
for text encoders, the sentence-transformers layout with the pooling `embed` uses + README.md. Which output is the
feature `embed` returns is found numerically on the exported encoder (processors.detect_*), so the card and the
sentence-transformers pooling always say what is true. Everything is written into one temp folder that is renamed.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transformers import PreTrainedModel

from multissl.atomic import atomic_dir
from multissl.models.model_card import CardContext, CardUsage, render_model_card, write_model_card
from multissl.models.processors import VISION_FEATURES, detect_text_pooling, detect_vision_feature, write_sentence_transformers_layout
from multissl.registry import method_for_model_type


def _method(model: PreTrainedModel) -> tuple[str, str, str]:
    """(method name, modality, description) from the registry."""
    spec = method_for_model_type(model.config.model_type)
    if spec is None:
        return model.config.model_type, "unknown", "A multissl model"
    return spec.name, spec.modality, spec.description


def _text_max_length(config) -> int | None:
    """The context a text method's eval collator truncates to: max_seq_length (sentence methods) or block_size (LMs)."""
    for key in ("max_seq_length", "block_size"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def _is_task_model(encoder: PreTrainedModel, mapping_name: str) -> bool:
    from transformers.models.auto import modeling_auto

    return type(encoder) in set(getattr(modeling_auto, mapping_name).values())


def _remote_processor(folder: Path) -> str | None:
    """The code file of a processor that ships as code in `folder` (auto_map in preprocessor_config.json), else None."""
    import json

    config = folder / "preprocessor_config.json"
    auto_map = json.loads(config.read_text()).get("auto_map") if config.is_file() else None
    return f"{auto_map['AutoImageProcessor'].split('.')[0]}.py" if auto_map and "AutoImageProcessor" in auto_map else None


def export_usage(model: PreTrainedModel, encoder: PreTrainedModel, remote: str | None = None) -> tuple[CardUsage, str | None]:
    """How an export is loaded and which output is `embed`; and the sentence-transformers pooler to write (or None).

    `remote`: the file of an image processor that ships as code (colourisation's Lab lightness), if any.
    """
    cls = type(encoder).__name__
    if encoder.main_input_name == "pixel_values":
        size = model.config.image_size
        channels = getattr(encoder.config, "num_channels", 3)
        feature = detect_vision_feature(model, encoder, size, channels)
        what = VISION_FEATURES.get(feature) if feature else None
        trust = ", trust_remote_code=True" if remote else ""
        load = (f"from transformers import AutoImageProcessor, AutoModel, pipeline\n\n"
                f"processor = AutoImageProcessor.from_pretrained(PATH{trust})\nmodel = AutoModel.from_pretrained(PATH)  # {cls}\n"
                f"features = pipeline(\"image-feature-extraction\", model=PATH{trust}, pool={feature in (None, 'pooler_output')})(images)")
        return CardUsage(pipeline_tag="image-feature-extraction", tags=["image-feature-extraction", "vision"], load=load,
                         feature=(f"multissl's `embed` = {what}, from `AutoModel`'s output (tested to 1e-5)." if what else
                                  "multissl's `embed` adds a method head on top of this backbone (it stays in the multissl "
                                  "folder): the export's feature is `pooler_output` flattened (the backbone feature)."),
                         preprocessing=_image_preprocessing(size, remote)), None
    if encoder.main_input_name == "input_ids":
        pooler = detect_text_pooling(model, encoder, encoder.config.vocab_size)
        if _is_task_model(encoder, "MODEL_FOR_CAUSAL_LM_MAPPING"):
            load = ("from transformers import pipeline\n\ngenerate = pipeline(\"text-generation\", model=PATH)\n"
                    "print(generate(\"The module\", max_new_tokens=20)[0][\"generated_text\"])")
            return CardUsage(pipeline_tag="text-generation", tags=["text-generation"], load=load,
                             feature=_text_feature(pooler, "AutoModelForCausalLM", cls, sentence=False)), None
        masked = _is_task_model(encoder, "MODEL_FOR_MASKED_LM_MAPPING")
        load = ("from sentence_transformers import SentenceTransformer\n\nembeddings = SentenceTransformer(PATH).encode(texts)  "
                "# = multissl's embed\n")
        if masked:
            load += ("\nfrom transformers import AutoModel, pipeline\n\nfill = pipeline(\"fill-mask\", model=PATH)\n"
                     "print(fill(f\"Return the {fill.tokenizer.mask_token} of x.\"))\n"
                     "encoder = AutoModel.from_pretrained(PATH, add_pooling_layer=False)  # the bare encoder; the MLM head "
                     "is left unused")
        tag = "fill-mask" if masked else "sentence-similarity"
        return CardUsage(library_name="sentence-transformers" if pooler else "transformers", pipeline_tag=tag,
                         tags=["sentence-transformers", "feature-extraction", tag] if pooler else [tag], load=load,
                         feature=_text_feature(pooler, "AutoModelForMaskedLM" if masked else "AutoModel", cls, sentence=True)), pooler
    if encoder.main_input_name == "input_values":
        load = ("import torch\nfrom transformers import AutoFeatureExtractor, AutoModel\n\n"
                "extractor = AutoFeatureExtractor.from_pretrained(PATH)\nmodel = AutoModel.from_pretrained(PATH)  # " + cls + "\n"
                "inputs = extractor(waveforms, sampling_rate=extractor.sampling_rate, return_tensors=\"pt\", padding=True)\n"
                "with torch.no_grad():\n    z = model.feature_extractor(inputs.input_values).transpose(1, 2)  # [B, T, D]\n"
                "frames = model._get_feat_extract_output_lengths(inputs.attention_mask.sum(-1))  # valid frames per clip")
        return CardUsage(pipeline_tag="feature-extraction", tags=["audio", "feature-extraction"], load=load,
                         feature="`model.feature_extractor(input_values)` [B, D, T] is CPC's frame encoder z_t exactly "
                                 "(one frame per hop of the conv strides). `last_hidden_state` is LayerNorm(z_t) per frame "
                                 "(no transformer layers). multissl's `embed` mean-pools the context network's c_t, which "
                                 "stays in the multissl folder (run/final).",
                         preprocessing=f"{model.config.sampling_rate} Hz mono float waveforms, not normalised, zero-padded "
                                       "(the feature extractor)."), None
    return CardUsage(load="from transformers import AutoModel\n\nmodel = AutoModel.from_pretrained(PATH)"), None


def _text_feature(pooler: str | None, loader: str, cls: str, sentence: bool) -> str:
    """The card's sentence on which output is `embed` (`sentence`: the folder has the sentence-transformers layout)."""
    names = {"avg": "the attention-masked mean of the last hidden states", "cls": "the first ([CLS]) token's last hidden state"}
    if pooler is None:
        return f"Load with `{loader}` ({cls}); multissl's `embed` pools it in a way no standard pooling reproduces."
    text = f"multissl's `embed` = {names[pooler]} of the encoder (`{loader}` loads the whole folder, {cls})"
    return text + ("; `SentenceTransformer(PATH).encode` computes exactly that (tested to 1e-5)." if sentence else ".")


def _image_preprocessing(size: int, remote: str | None) -> str:
    if remote:
        return (f"The image processor ships as code in this folder (`{remote}`; load it with `trust_remote_code=True`): "
                f"RGB, resize to {size}x{size} (bilinear, antialiased), then what the method's encoder was trained on "
                "(see the class docstring).")
    return (f"RGB, resize to {size}x{size} (bilinear, antialiased), x / 255, normalise with mean 0.5 and std 0.5 per channel "
            "(`preprocessor_config.json`, a ViTImageProcessor: exactly multissl's eval transform).")


def save_encoder(model: PreTrainedModel, out_dir: str | Path, context: CardContext | None = None, *,
                 encoder: PreTrainedModel | None = None, extras: Callable[[Path], None] | None = None) -> Path:
    """Write encoder_for_export() + extras (+ the sentence-transformers layout for text encoders) + README.md, atomically.

    `encoder` / `extras` replace encoder_for_export() / model.save_export_extras (CLIP's text tower + its tokenizer).
    """
    if not hasattr(model, "encoder_for_export"):
        raise TypeError(f"{type(model).__name__} has no encoder_for_export(); it is not a multissl method model")
    encoder = encoder if encoder is not None else model.encoder_for_export()
    extras = extras if extras is not None else model.save_export_extras
    method, modality, description = _method(model)
    what = (f"The encoder alone, exported from a multissl `{method}` model as a plain transformers "
            f"`{type(encoder).__name__}` that loads without multissl (`multissl export`). The method's training heads "
            "are not in it; the full model is the run's `final/` folder.")

    def write(tmp: Path) -> None:
        encoder.save_pretrained(tmp, safe_serialization=True)
        extras(tmp)  # tokenizer / image processor / audio feature extractor
        usage, st_pooler = export_usage(model, encoder, _remote_processor(tmp))
        card = render_model_card(method, modality, description, usage, context or CardContext(), what=what)
        if st_pooler is not None:
            write_sentence_transformers_layout(tmp, pooler=st_pooler, dim=encoder.config.hidden_size,
                                               max_seq_length=_text_max_length(model.config) or 512,
                                               masked_lm=_is_task_model(encoder, "MODEL_FOR_MASKED_LM_MAPPING"))
        write_model_card(tmp, card)

    return atomic_dir(out_dir, write)


def final_card(model: PreTrainedModel, context: CardContext | None = None) -> str:
    """The README.md of a run's final/ folder (the full multissl model)."""
    method, modality, description = _method(model)
    load = ("import multissl\n\nmodel = multissl.load(PATH)  # the full multissl model, eval mode\n"
            "features = multissl.embed(model, inputs)  # [N, D]: what k-NN, probes and retrieval use")
    tag = {"image": "image-feature-extraction", "image-text": "zero-shot-image-classification"}.get(modality, "feature-extraction")
    if modality == "image-text":
        load += ("\n\nfrom transformers import AutoProcessor, pipeline\n\nprocessor = AutoProcessor.from_pretrained(PATH)"
                 "\nclassify = pipeline(\"zero-shot-image-classification\", model=PATH)  # after import multissl")
    usage = CardUsage(library_name="multissl", pipeline_tag=tag, tags=[modality], load=load)
    what = (f"The full multissl `{method}` model as trained (encoder + the method's heads and state), with what "
            "inference needs for its modality beside it. `multissl export --model PATH --out DIR` writes the encoder "
            "alone as a plain transformers folder (see docs/exports.md).")
    return render_model_card(method, modality, description, usage, context or CardContext(), what=what)


def save_final(model: PreTrainedModel, out_dir: Path, *, state_dict: dict | None = None,
               context: CardContext | None = None) -> None:
    """Fill `out_dir` (the loop's temp folder for final/): save_pretrained + the modality's extras + README.md."""
    model.save_pretrained(out_dir, safe_serialization=True, state_dict=state_dict)
    model.save_export_extras(out_dir)
    write_model_card(out_dir, final_card(model, context))


def refresh_final_card(final_dir: str | Path, model: PreTrainedModel, context: CardContext) -> Path:
    """Rewrite final/README.md (temp file + rename) once eval.json exists, so its metrics are in the card."""
    return write_model_card(final_dir, final_card(model, context), atomic=True)


def vit_with_identity_pooler(vit: PreTrainedModel) -> PreTrainedModel:
    """A copy of a pooler-less ViTModel whose pooler is the identity on the CLS token (dense = I, bias 0, activation
    'linear'), so `AutoModel.from_pretrained` finds every weight (ViTModel always builds a pooler) and `pooler_output`
    is the CLS state, never a random projection. The weights are copied: training the original does not change it."""
    import torch
    from transformers import ViTModel

    if getattr(vit, "pooler", None) is not None:
        return vit  # it has a trained pooler already
    config = vit.config.__class__.from_dict({**vit.config.to_dict(), "pooler_act": "linear",
                                             "pooler_output_size": vit.config.hidden_size})
    out = ViTModel(config, add_pooling_layer=True)
    missing, unexpected = out.load_state_dict(vit.state_dict(), strict=False)  # all but the pooler, set next
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise ValueError(f"not a ViTModel state: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with torch.no_grad():
        out.pooler.dense.weight.copy_(torch.eye(config.hidden_size, dtype=out.pooler.dense.weight.dtype))
        out.pooler.dense.bias.zero_()
    return out.to(next(vit.parameters()).device).eval()
