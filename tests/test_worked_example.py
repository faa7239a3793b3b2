"""docs/architecture.md's worked example, run as written: a new method in one file + a registry row + a recipe."""
import re
import sys
from pathlib import Path

import yaml
from PIL import Image

from multissl.registry import METHODS, register_method
from multissl.training import recipe_from_dict, train

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_documented_simsiam_trains_through_the_loop_and_reloads(tmp_path, monkeypatch):
    method_file = next(b for b in _blocks("python") if "class SimSiamModel(MethodModel)" in b)
    row = next(b for b in _blocks("python") if b.lstrip().startswith('("simsiam"'))
    recipe = next(yaml.safe_load(b) for b in _blocks("yaml") if "method: simsiam" in b)

    (tmp_path / "simsiam_example.py").write_text(method_file)
    monkeypatch.syspath_prepend(str(tmp_path))
    name, target, modality, description, default_dataset = eval(row.strip().rstrip(","))
    assert target == "multissl.models.simsiam:SimSiamModel"  # what a built-in row would say
    try:
        register_method(name, "simsiam_example:SimSiamModel", modality=modality, description=description,
                        default_dataset=default_dataset)
        from simsiam_example import SimSiamModel

        tiny = SimSiamModel.tiny_config()
        recipe["model"].update(backbone_config=tiny.backbone_config, image_size=16, projection_dim=8, predictor_hidden_dim=8)
        recipe["train"].update(max_steps=3, batch_size=8, log_every=1, progress=False)
        result = train(recipe_from_dict(recipe), tmp_path / "run")
        assert len(result.losses) == 3 and all(-1.0 <= loss <= 1.0 for loss in result.losses)  # -cos in [-1, 1]
        assert result.eval["knn"]["accuracy"] > 0.0

        from transformers import AutoModel

        reloaded = AutoModel.from_pretrained(result.final_dir)  # registered by defining the subclass
        assert type(reloaded) is SimSiamModel
        batch = SimSiamModel.make_collator(reloaded.config, train=False)([{"image": Image.new("L", (8, 8), 128)}] * 2)
        assert reloaded.eval().embed(**batch).shape == (2, reloaded.backbone.config.hidden_sizes[-1])
        assert (reloaded.save_encoder(tmp_path / "enc") / "model.safetensors").is_file()
    finally:
        METHODS.pop("simsiam", None)
        sys.modules.pop("simsiam_example", None)
