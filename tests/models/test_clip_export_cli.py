"""`multissl export --tower vision|text`: both CLIP towers load in plain transformers (no multissl) and match the model."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from multissl.cli import main
from multissl.data import load_dataset_by_name
from multissl.modalities.text.sentences import load_tokenizer
from multissl.models.clip import ClipModel, make_image_processor, tiny_clip_config
from multissl.models.cpc import CPCModel, tiny_cpc_config

# Runs in a fresh interpreter: only transformers, and it fails if anything pulled multissl in.
PLAIN = textwrap.dedent("""
    import json, sys
    import torch
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    text_dir, vision_dir, inputs, out = sys.argv[1:5]
    spec = json.load(open(inputs))
    tok, text = AutoTokenizer.from_pretrained(text_dir), AutoModel.from_pretrained(text_dir).eval()
    proc, vision = AutoImageProcessor.from_pretrained(vision_dir), AutoModel.from_pretrained(vision_dir).eval()
    enc = tok(spec["captions"], padding=True, truncation=True, max_length=spec["max_length"], return_tensors="pt")
    pixels = proc([Image.open(p) for p in spec["images"]], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        h = text(**enc).last_hidden_state
        mask = enc["attention_mask"][..., None].float()
        feats = {"text": (h * mask).sum(1) / mask.sum(1), "vision": vision(pixel_values=pixels).pooler_output.flatten(1)}
    assert not any(m == "multissl" or m.startswith("multissl.") for m in sys.modules), "multissl was imported"
    save_file({k: v.contiguous() for k, v in feats.items()}, out)
""")


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_both_towers_export_via_cli_and_load_without_multissl(tmp_path, capsys):
    torch.manual_seed(0)
    model = ClipModel(tiny_clip_config()).eval()
    model.save_pretrained(tmp_path / "clip")
    for tower in ("vision", "text"):
        code, out, err = _cli(capsys, "export", "--model", str(tmp_path / "clip"), "--out", str(tmp_path / tower),
                              "--tower", tower)
        assert code == 0 and f"exported {tower} tower" in out, err
    assert (tmp_path / "text" / "tokenizer.json").is_file() and (tmp_path / "vision" / "preprocessor_config.json").is_file()
    # the default (no --tower) is the model's usual encoder: the vision tower
    assert _cli(capsys, "export", "--model", str(tmp_path / "clip"), "--out", str(tmp_path / "default"))[0] == 0
    assert json.loads((tmp_path / "default" / "config.json").read_text())["model_type"] == "resnet"

    rows = load_dataset_by_name("digits_captions", split="test").select(range(4))
    images = []
    for i, row in enumerate(rows):
        row["image"].save(tmp_path / f"img{i}.png")
        images.append(str(tmp_path / f"img{i}.png"))
    captions = [row["caption"] for row in rows]
    spec = {"captions": captions, "images": images, "max_length": model.config.max_seq_length}
    (tmp_path / "inputs.json").write_text(json.dumps(spec))
    (tmp_path / "plain.py").write_text(PLAIN)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, str(tmp_path / "plain.py"), str(tmp_path / "text"), str(tmp_path / "vision"),
                           str(tmp_path / "inputs.json"), str(tmp_path / "feats.safetensors")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = load_file(str(tmp_path / "feats.safetensors"))

    # the same inputs through the multissl model's own tokenizer, image processor and towers
    enc = load_tokenizer(model.config.tokenizer_path)(captions, padding=True, truncation=True,
                                                      max_length=model.config.max_seq_length, return_tensors="pt")
    pixels = make_image_processor(model.config)([r["image"] for r in rows], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ours_text = model.text_backbone_features(enc["input_ids"], enc["attention_mask"])
        ours_vision = model.image_backbone_features(pixels)
    assert plain["text"].shape == ours_text.shape and plain["vision"].shape == ours_vision.shape
    torch.testing.assert_close(plain["text"], ours_text, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(plain["vision"], ours_vision, atol=1e-5, rtol=1e-4)


def test_tower_flag_on_a_non_clip_model_is_a_clear_error(tmp_path, capsys):
    CPCModel(tiny_cpc_config()).save_pretrained(tmp_path / "cpc")
    code, _, err = _cli(capsys, "export", "--model", str(tmp_path / "cpc"), "--out", str(tmp_path / "e"), "--tower", "text")
    assert code == 1 and "--tower applies to CLIP models only" in err and "multissl_cpc" in err
    assert not (tmp_path / "e").exists()
    with pytest.raises(SystemExit):  # argparse rejects an unknown tower name
        main(["export", "--model", str(tmp_path / "cpc"), "--out", str(tmp_path / "e"), "--tower", "audio"])
