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
        from multissl.modalities.image.views import ImageViewsCollator

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


def _tiny_simclr_recipe(tmp_path, extra_train: str = "") -> str:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "method: simclr\ndataset: digits\n"
        "model: {image_size: 16, projection_hidden_dim: 16, projection_dim: 8, backbone_config: {model_type: resnet, "
        "num_channels: 3, embedding_size: 8, hidden_sizes: [8, 16], depths: [1, 1], layer_type: basic}}\n"
        f"train: {{max_steps: 4, batch_size: 16, log_every: 1, progress: false{extra_train}}}\n"
    )
    return str(recipe)


def test_diverged_run_prints_one_line_and_keeps_checkpoints(capsys, tmp_path):
    recipe = _tiny_simclr_recipe(tmp_path, ", learning_rate: 1.0e+30, max_grad_norm: null, save_every: 1, max_steps: 40, "
                                           "keep_checkpoints: 50")
    code, _, err = run_cli(capsys, "train", recipe, "--output-dir", str(tmp_path / "run"))
    assert code == 1 and "NaN/inf" in err and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoints").is_dir() and not (tmp_path / "run" / "final").exists()


def test_resume_from_a_truncated_checkpoint_names_the_folder(capsys, tmp_path):
    recipe = _tiny_simclr_recipe(tmp_path, ", save_every: 2, stop_after_steps: 2")
    assert run_cli(capsys, "train", recipe, "--output-dir", str(tmp_path / "run"))[0] == 0
    step = tmp_path / "run" / "checkpoints" / "step_2"
    weights = next(step.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:64])  # a copy cut short
    code, _, err = run_cli(capsys, "train", recipe, "--output-dir", str(tmp_path / "run"), "--resume")
    assert code == 1 and "step_2 cannot be loaded" in err and "Traceback" not in err


def test_a_save_interrupted_between_renames_restores_the_previous_folder(tmp_path, monkeypatch):
    import os

    atomic_dir(tmp_path / "final", lambda d: (d / "v").write_text("1"))
    real_replace, calls = os.replace, []

    def crash_on_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after moving the old copy aside, before the new one lands
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        atomic_dir(tmp_path / "final", lambda d: (d / "v").write_text("2"))
    monkeypatch.undo()
    assert (tmp_path / "final" / "v").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_set_takes_several_values_after_one_flag_and_repeats():
    """`--set a=1 b=2` (the form recipe comments show) and repeated `--set` both collect every override, in order."""
    from multissl.cli import build_parser

    args = build_parser().parse_args(["train", "r.yaml", "--output-dir", "o", "--set", "a=1", "b=2", "--set", "c=3"])
    assert args.overrides == ["a=1", "b=2", "c=3"] and args.recipe == "r.yaml"


def test_train_prints_the_resolved_recipe_first(tmp_path, capsys):
    """The run shows every default and override it trains with before any work (issue 15)."""
    import yaml

    from multissl.cli import main as cli_main

    code = cli_main(["train", "recipes/simclr_digits.yaml", "--output-dir", str(tmp_path / "r"), "--set", "train.max_steps=1",
                     "train.batch_size=8", "train.progress=false", "train.num_workers=0", "train.save_every=0", "train.warmup_steps=0",
                     "model.loss_temperature=0.3", "eval={}"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("resolved recipe (recipes/simclr_digits.yaml")
    shown = yaml.safe_load(out.split(":\n", 1)[1].split("\nsaved model to")[0].split("\neval ")[0])
    assert shown["model"]["loss_temperature"] == 0.3 and shown["train"]["max_steps"] == 1
    assert shown["train"]["min_lr_ratio"] == 0.0  # a default the recipe file never wrote
    assert shown == yaml.safe_load((tmp_path / "r" / "recipe.yaml").read_text())
