"""A toy method and dataset for loop tests: per-sample loss, so accumulation must equal one big batch."""
import datasets
import torch
from transformers.utils import ModelOutput

from multissl.models.base import MethodConfig, MethodModel
from multissl.registry import register_dataset, register_method


class ToyConfig(MethodConfig):
    model_type = "multissl_test_toy"

    def __init__(self, dim: int = 4, **kwargs):
        self.dim = dim
        super().__init__(**kwargs)


def toy_collate_factory(config, train=True):
    def collate(rows, generator=None):
        return {"x": torch.tensor([r["x"] for r in rows]), "y": torch.tensor([r["y"] for r in rows])}

    return collate


class ToyModel(MethodModel):
    config_class = ToyConfig
    tiny_config = ToyConfig
    make_collator = staticmethod(toy_collate_factory)
    main_input_name = "x"

    def __init__(self, config):
        super().__init__(config)
        self.linear = torch.nn.Linear(config.dim, 1)
        self.post_init()

    def forward(self, x, y):
        return ModelOutput(loss=((self.linear(x).squeeze(-1) - y) ** 2).mean())

    def embed(self, x):
        return self.linear(x)


def load_toy(split="train"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    return datasets.Dataset.from_dict({"x": x.tolist(), "y": y.tolist()})


register_method("test_toy", f"{__name__}:ToyModel", modality="test", description="test-only linear regression",
                default_dataset="test_toy")
register_dataset("test_toy", f"{__name__}:load_toy", modality="test", description="test-only regression data")
