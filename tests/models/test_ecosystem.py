"""The ecosystem's own loaders on multissl exports, each family in one fresh interpreter that never imports multissl.

vision: AutoImageProcessor + AutoModel and pipeline("image-feature-extraction") give multissl's `embed` (1e-5) for
every image method (+ CLIP's vision tower and a timm backbone); text: SentenceTransformer(path).encode = `embed` for
SimCSE, BERT-MLM and CLIP's text tower, pipeline("fill-mask") = the MLM's own probabilities, pipeline("text-generation")
= the GPT's own greedy tokens, AutoProcessor on a CLIP final/ = multissl's inputs; audio: AutoFeatureExtractor +
AutoModel on the CPC export give CPC's frame features z exactly.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from multissl.data import load_dataset_by_name
from multissl.models.processors import VISION_FEATURES
from multissl.registry import METHODS

PRELUDE = """
import json, sys
import torch
from safetensors.torch import save_file
spec = json.load(open(sys.argv[1]))
out = {}
"""
EPILOGUE = """
assert not any(m == "multissl" or m.startswith("multissl.") for m in sys.modules), "multissl was imported"
save_file({k: v.contiguous().float() for k, v in out.items()}, spec["out"])
"""
VISION = """
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, pipeline

def feature(o, kind):  # o: a model output, or one pipeline result (pooler_output, or last_hidden_state)
    if kind == "pooler_output":
        return (o.pooler_output if hasattr(o, "pooler_output") else o).flatten(1)
    h = o.last_hidden_state if hasattr(o, "last_hidden_state") else o
    return {"mean_patch_tokens": lambda: h[:, 1:].mean(1), "cls_token": lambda: h[:, 0],
            "mean_feature_map": lambda: h.mean(dim=(2, 3))}[kind]()

images = [Image.open(p) for p in spec["images"]]
for m in spec["models"]:
    trust = m["trust_remote_code"]
    processor = AutoImageProcessor.from_pretrained(m["path"], trust_remote_code=trust)
    model = AutoModel.from_pretrained(m["path"]).eval()
    with torch.no_grad():
        out[m["name"] + "/auto"] = feature(model(**processor(images, return_tensors="pt")), m["feature"])
    pipe = pipeline("image-feature-extraction", model=m["path"], trust_remote_code=trust)
    results = pipe(images, pool=m["feature"] == "pooler_output", return_tensors=True)
    out[m["name"] + "/pipeline"] = torch.cat([feature(r, m["feature"]) for r in results])
"""
TEXT = """
from sentence_transformers import SentenceTransformer
from transformers import AutoProcessor, pipeline

for name, path in spec["sentence"].items():
    out["st/" + name] = SentenceTransformer(path, device="cpu").encode(spec["texts"], convert_to_tensor=True)
fill = pipeline("fill-mask", model=spec["fill_mask"], top_k=5)
guesses = fill(spec["mask_prompt"].replace("MASK", fill.tokenizer.mask_token))
out["fill/ids"] = torch.tensor([g["token"] for g in guesses])
out["fill/scores"] = torch.tensor([g["score"] for g in guesses])
generate = pipeline("text-generation", model=spec["generate"])
gen = generate(spec["prompt"], max_new_tokens=8, do_sample=False, return_tensors=True)
out["generate/ids"] = torch.tensor(gen[0]["generated_token_ids"])
processor = AutoProcessor.from_pretrained(spec["clip_final"])
assert type(processor).__name__ == "CLIPProcessor", type(processor)
from PIL import Image
inputs = processor(text=spec["captions"], images=[Image.open(p) for p in spec["images"]], padding=True,
                   truncation=True, max_length=spec["max_length"], return_tensors="pt")
out["clip/input_ids"], out["clip/pixel_values"] = inputs["input_ids"], inputs["pixel_values"]
"""
AUDIO = """
import numpy as np
from transformers import AutoFeatureExtractor, AutoModel

extractor = AutoFeatureExtractor.from_pretrained(spec["path"])
model = AutoModel.from_pretrained(spec["path"]).eval()
waves = [np.load(p) for p in spec["waves"]]
inputs = extractor(waves, sampling_rate=extractor.sampling_rate, padding=True, return_tensors="pt")
with torch.no_grad():
    out["z"] = model.feature_extractor(inputs["input_values"]).transpose(1, 2)
    out["frames"] = model._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1))
    out["last_hidden_state"] = model(**inputs).last_hidden_state
"""


def _run_plain(tmp_path, name: str, body: str, spec: dict) -> dict:
    """Run PRELUDE + body + EPILOGUE in a fresh interpreter (offline, no multissl) and return what it saved."""
    spec = {**spec, "out": str(tmp_path / f"{name}.safetensors")}
    (tmp_path / f"{name}.json").write_text(json.dumps(spec))
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PRELUDE + body + EPILOGUE))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "HF_MODULES_CACHE": str(tmp_path / "hf_modules")}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, str(tmp_path / f"{name}.py"), str(tmp_path / f"{name}.json")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return load_file(str(tmp_path / f"{name}.safetensors"))


def _rows(dataset: str, n: int, split: str = "test") -> list[dict]:
    ds = load_dataset_by_name(dataset, split=split).select(range(n))
    return [dict(zip(ds.column_names, v)) for v in zip(*ds[:].values())]


def _tiny(name: str, **changes):
    torch.manual_seed(0)
    cls = METHODS[name].model_class
    config = cls.tiny_config()
    for key, value in changes.items():
        setattr(config, key, value)
    model = cls(config).eval()
    with torch.no_grad():  # untrained BatchNorm statistics are 0/1: give them values so eval mode is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _documented_feature(folder) -> str | None:
    """The VISION_FEATURES key the model card names as multissl's embed (None: embed adds a head)."""
    text = (folder / "README.md").read_text()
    return next((k for k, v in VISION_FEATURES.items() if f"multissl's `embed` = {v}" in text), None)


@pytest.mark.slow  # one fresh interpreter (imports torch + transformers): seconds, not milliseconds
def test_vision_exports_through_auto_classes_and_the_pipeline_equal_embed(tmp_path):
    from multissl.models.common.backbones import vision_features

    rows = _rows("glyphs", 3) + _rows("digits", 1)  # RGB 32 px and greyscale 8 px: conversion and resizing both run
    images = []
    for i, row in enumerate(rows):
        row["image"].save(tmp_path / f"img{i}.png")
        images.append(str(tmp_path / f"img{i}.png"))
    rows = [{"image": Image.open(p)} for p in images]  # exactly the files the plain interpreter reads
    cases = {n: _tiny(n) for n, s in sorted(METHODS.items()) if s.modality in ("image", "image-text")}
    cases["simclr_timm"] = _tiny("simclr", backbone_config={"model_type": "timm_wrapper", "architecture": "test_resnet"})
    models, want = [], {}
    for name, model in cases.items():
        folder = model.save_encoder(tmp_path / name)
        feature = _documented_feature(folder)
        batch = type(model).make_collator(model.config, train=False)(rows)
        with torch.no_grad():
            if feature is None:  # metric learning: embed = normalise(linear(backbone feature)); the export is the backbone
                assert name == "metric" and "adds a method head" in (folder / "README.md").read_text()
                want[name] = vision_features(model.backbone, batch["pixel_values"])
            else:
                want[name] = model.embed(pixel_values=batch["pixel_values"])
        trust = (folder / "lab_lightness_processor.py").is_file()
        models.append({"name": name, "path": str(folder), "feature": feature or "pooler_output", "trust_remote_code": trust})
    assert {"mae", "colorization", "clip", "simclr_timm", "dino"} <= set(want)
    got = _run_plain(tmp_path, "vision", VISION, {"images": images, "models": models})
    for name, expected in want.items():
        for loader in ("auto", "pipeline"):
            torch.testing.assert_close(got[f"{name}/{loader}"], expected, atol=1e-5, rtol=1e-4, msg=f"{name} via {loader}")


@pytest.mark.slow  # one fresh interpreter (imports torch + transformers): seconds, not milliseconds
def test_text_exports_through_sentence_transformers_fill_mask_generation_and_auto_processor(tmp_path):
    from multissl.data.tokenizers import load_tokenizer_spec
    from multissl.modalities.text.sentences import load_tokenizer
    from multissl.modalities.text.tokenizer import tokenizer_spec_for

    texts = ["Return the value of x.", "A list is a mutable sequence.",
             " ".join(["Iterators yield items one at a time until the sequence is exhausted."] * 6)]  # truncated
    rows = [{"text": t} for t in texts]
    simcse, simcse_cls, mlm, gpt, clip = (_tiny("simcse"), _tiny("simcse", pooler="cls"), _tiny("bert_mlm"),
                                          _tiny("gpt_lm"), _tiny("clip"))
    want, sentence = {}, {}
    for name, model in {"simcse": simcse, "simcse_cls": simcse_cls, "bert_mlm": mlm}.items():
        sentence[name] = str(model.save_encoder(tmp_path / name))
        with torch.no_grad():
            want["st/" + name] = model.embed(**type(model).make_collator(model.config, train=False)(rows))
    from multissl.models.clip import save_tower

    sentence["clip_text"] = str(save_tower(clip, tmp_path / "clip_text", "text"))
    enc = load_tokenizer(clip.config.tokenizer_path)(texts, padding=True, truncation=True,
                                                     max_length=clip.config.max_seq_length, return_tensors="pt")
    with torch.no_grad():
        want["st/clip_text"] = clip.embed(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])

    mask_prompt = "Return the MASK of x."
    tok = load_tokenizer_spec(tokenizer_spec_for(mlm.config))
    ids = tok(mask_prompt.replace("MASK", tok.mask_token), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = mlm.backbone(input_ids=ids).logits[0, (ids[0] == tok.mask_token_id).nonzero()[0, 0]].softmax(-1)
    top = probs.topk(5)
    prompt = "The module"
    gtok = gpt.inference_tokenizer()
    with torch.no_grad():
        gen = gpt.backbone.generate(**gtok(prompt, return_tensors="pt"), max_new_tokens=8, do_sample=False,
                                    pad_token_id=gtok.pad_token_id)
    clip.save_pretrained(tmp_path / "clip_final")
    caption_rows = _rows("digits_captions", 2)
    images = []
    for i, row in enumerate(caption_rows):
        row["image"].save(tmp_path / f"cap{i}.png")
        images.append(str(tmp_path / f"cap{i}.png"))
    captions = [r["caption"] for r in caption_rows]
    spec = {"texts": texts, "sentence": sentence, "fill_mask": str(mlm.save_encoder(tmp_path / "mlm_fill")),
            "mask_prompt": mask_prompt, "generate": str(gpt.save_encoder(tmp_path / "gpt")), "prompt": prompt,
            "clip_final": str(tmp_path / "clip_final"), "captions": captions, "images": images,
            "max_length": clip.config.max_seq_length}
    got = _run_plain(tmp_path, "text", TEXT, spec)
    for key, expected in want.items():
        torch.testing.assert_close(got[key], expected, atol=1e-5, rtol=1e-4, msg=key)
    assert torch.equal(got["fill/ids"].long(), top.indices)
    torch.testing.assert_close(got["fill/scores"], top.values, atol=1e-5, rtol=1e-4)
    assert got["generate/ids"].long().tolist() == gen[0].tolist()
    collate = type(clip).make_collator(clip.config, train=True)
    ours = collate.tokenize(captions)
    assert torch.equal(got["clip/input_ids"].long(), ours["input_ids"])
    pixels = type(clip).make_collator(clip.config, train=False)([{"image": Image.open(p)} for p in images])["pixel_values"]
    torch.testing.assert_close(got["clip/pixel_values"], pixels, atol=1e-5, rtol=0)


@pytest.mark.slow  # one fresh interpreter (imports torch + transformers): seconds, not milliseconds
def test_cpc_export_through_auto_feature_extractor_and_auto_model_gives_cpc_frame_features(tmp_path):
    model = _tiny("cpc")
    folder = model.save_encoder(tmp_path / "cpc")
    t = np.arange(3200) / 16000.0
    waves = [np.sin(2 * np.pi * 220 * t).astype(np.float32) * 0.3,
             (np.random.default_rng(0).standard_normal(2400) * 0.1).astype(np.float32)]
    paths = []
    for i, w in enumerate(waves):
        np.save(tmp_path / f"w{i}.npy", w)
        paths.append(str(tmp_path / f"w{i}.npy"))
    batch = type(model).make_collator(model.config, train=False)([{"audio": {"array": w, "sampling_rate": 16000}}
                                                                  for w in waves])
    with torch.no_grad():
        enc = model.encoder(batch["input_values"], batch["lengths"])
    got = _run_plain(tmp_path, "audio", AUDIO, {"path": str(folder), "waves": paths})
    torch.testing.assert_close(got["z"], enc.encoder_hidden_state, atol=1e-5, rtol=1e-4)
    assert got["frames"].long().tolist() == enc.frame_lengths.tolist()
    z = enc.encoder_hidden_state
    ln = torch.nn.functional.layer_norm(z, z.shape[-1:])
    for i, n in enumerate(enc.frame_lengths.tolist()):  # last_hidden_state = LayerNorm(z) per valid frame (documented)
        torch.testing.assert_close(got["last_hidden_state"][i, :n], ln[i, :n], atol=1e-5, rtol=1e-4)


def test_the_child_guard_fails_when_multissl_is_imported():
    """The check every child ends with really fails in an interpreter that has imported multissl (as this one has)."""
    import multissl  # noqa: F401

    with pytest.raises(AssertionError, match="multissl was imported"):
        exec(compile(EPILOGUE, "epilogue", "exec"), {"sys": sys, "spec": {}, "out": {}, "save_file": None})
