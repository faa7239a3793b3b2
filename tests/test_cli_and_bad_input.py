"""CLI surface and the bad-input contract: one clear error naming what was wrong."""
import subprocess
import sys

import pytest
import torch

from multissl.atomic import atomic_dir
from multissl.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_commands():
    res = subprocess.run([sys.executable, "-m", "multissl.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    for cmd in ("train", "eval", "list", "export"):
        assert cmd in res.stdout


def test_list_shows_methods_and_datasets_one_line_each(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert any(line.split()[0] == "simclr" for line in lines if line.startswith("  "))
    assert any(line.split()[0] == "simcse" for line in lines if line.startswith("  "))
    assert any(line.split()[0] == "digits" for line in lines if line.startswith("  "))


@pytest.mark.parametrize("body, needle", [
    ("method: simclrr\ndataset: digits\n", "unknown method 'simclrr'"),
    ("method: simclr\ndataset: ./no/such/folder\n", "dataset path './no/such/folder' does not exist"),
    ("method: simclr\ndataset: digits\nmodell: {}\n", "unknown recipe key(s) ['modell']"),
    ("method: simclr\ndataset: digits\nmodel: {projection_dims: 3}\n", "unknown model key(s) ['projection_dims']"),
    ("method: simclr\ndataset: digits\ntrain: {batch_size: 5000}\n", "fewer than one global batch"),
])
def test_bad_recipes_fail_with_one_clear_line(capsys, tmp_path, body, needle):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(body)
    code, _, err = run_cli(capsys, "train", str(recipe), "--output-dir", str(tmp_path / "run"))
    assert code == 1 and needle in err and "Traceback" not in err


def test_corrupt_checkpoint_folder(capsys, tmp_path):
    from multissl.models.simclr import SimCLRModel, tiny_simclr_config

    SimCLRModel(tiny_simclr_config()).save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated download / interrupted copy
    code, _, err = run_cli(capsys, "export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "e"))
    assert code == 1 and "model.safetensors: corrupt or truncated" in err
    (tmp_path / "m" / "config.json").unlink()
    code, _, err = run_cli(capsys, "export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "e"))
    assert code == 1 and "no config.json" in err
    code, _, err = run_cli(capsys, "export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "e"))
    assert code == 1 and "does not exist" in err


def test_images_of_other_modes_are_converted_and_non_images_rejected():
    from PIL import Image

    from multissl.models.simclr import make_simclr_collator, tiny_simclr_config

    collate = make_simclr_collator(tiny_simclr_config())
    rows = [{"image": Image.new("L", (8, 8))}, {"image": Image.new("RGBA", (40, 20))}, {"image": Image.new("P", (9, 9))}]
    assert collate(rows)["pixel_values"].shape == (3, 2, 3, 16, 16)
    with pytest.raises(ValueError, match="row 1: 'image': expected a PIL image"):
        collate([rows[0], {"image": "cat.png"}])
    with pytest.raises(ValueError, match="row 0: 'image': missing image"):
        collate([{"image": None}])
    with pytest.raises(ValueError, match="augment: unknown key"):
        from multissl.models.simclr import ImageViewsCollator

        ImageViewsCollator(16, {"blur": 1.0})


def test_interrupted_save_never_leaves_a_half_written_folder(tmp_path):
    target = tmp_path / "final"
    atomic_dir(target, lambda d: (d / "model.safetensors").write_text("v1"))

    def crash(d):
        (d / "model.safetensors").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_dir(target, crash)
    assert (target / "model.safetensors").read_text() == "v1"  # the old complete model survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # no temp leftovers


def test_export_loads_in_plain_transformers(tmp_path, capsys):
    from multissl.models.simclr import SimCLRModel, tiny_simclr_config

    model = SimCLRModel(tiny_simclr_config()).eval()
    model.save_pretrained(tmp_path / "m")
    code, out, _ = run_cli(capsys, "export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "enc"))
    assert code == 0 and "exported encoder" in out
    from transformers import AutoModel

    enc = AutoModel.from_pretrained(tmp_path / "enc").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(enc(pixel_values=x).pooler_output.flatten(1), model.embed(x), atol=1e-6)
