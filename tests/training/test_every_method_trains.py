"""Every registered method trains 2 steps through the one loop on its default dataset and reloads with AutoModel.

This exercises the method contract's hooks: `make_batch_source` / `prepare_dataset` (text methods
tokenise and group blocks before batching), `on_step_end` (EMA teachers, queues) and `on_train_end`
(MAE's reconstruction grid).
"""

import pytest
import torch
from transformers import AutoModel

import multissl
from multissl.models.base import MethodModel, config_keys
from multissl.registry import METHODS
from multissl.training import recipe_from_dict, train

METHOD_NAMES = sorted(METHODS)
multissl.register_auto_classes()


def _tiny_recipe(name: str) -> dict:
    spec = METHODS[name]
    params = config_keys(spec.config_class)
    model = {k: v for k, v in spec.model_class.tiny_config().to_diff_dict().items() if k in params}
    return {"method": name, "model": model,
            "train": {"max_steps": 2, "batch_size": 8, "log_every": 1, "warmup_steps": 1, "progress": False}}


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_two_steps_through_the_loop_then_auto_model_reloads(name, tmp_path):
    result = train(recipe_from_dict(_tiny_recipe(name)), tmp_path / name)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    reloaded = AutoModel.from_pretrained(result.final_dir)
    assert type(reloaded) is METHODS[name].model_class
    assert (tmp_path / name / "loss_curve.png").stat().st_size > 1000
    # only methods with an end-of-run picture write one
    draws = METHODS[name].model_class.on_train_end is not MethodModel.on_train_end
    assert (tmp_path / name / "reconstructions.png").exists() == draws
