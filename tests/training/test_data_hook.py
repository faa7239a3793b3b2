"""The method-owned data hook: a method that draws two streams per step (labeled + unlabeled, as semi-supervised
methods do) overrides make_batch_source and trains through the unchanged loop, resumably."""
import numpy as np
import torch
from torch import nn
from transformers.utils import ModelOutput

from multissl.data.batches import BatchSource, DataRequest
from multissl.models.base import MethodConfig, MethodModel
from multissl.registry import METHODS, register_method
from multissl.training import recipe_from_dict, train


class TwoStreamConfig(MethodConfig):
    model_type = "multissl_test_two_stream"

    def __init__(self, mu: int = 3, **kwargs):
        self.mu = mu
        super().__init__(**kwargs)


def _collate(rows, generator=None):
    x = torch.from_numpy(np.stack([np.asarray(r["image"], dtype=np.float32).reshape(-1) for r in rows])) / 255.0  # [B, 64]
    return {"x": x, "label": torch.tensor([r["label"] for r in rows])}


class TwoStreamSource(torch.utils.data.Dataset):
    """Item i = B labeled rows and mu*B unlabeled rows of the same dataset, each stream with its own order."""

    def __init__(self, labeled: BatchSource, unlabeled: BatchSource):
        self.labeled, self.unlabeled = labeled, unlabeled

    def __len__(self) -> int:
        return len(self.labeled)

    def __getitem__(self, i: int) -> dict:
        lab, unl = self.labeled[i], self.unlabeled[i]
        return {"x": lab["x"], "labels": lab["label"], "x_unlabeled": unl["x"]}


class TwoStreamModel(MethodModel):
    config_class = TwoStreamConfig
    main_input_name = "x"

    def __init__(self, config):
        super().__init__(config)
        self.net = nn.Linear(64, 10)
        self.post_init()

    @classmethod
    def make_collator(cls, config, train=True):
        return _collate

    @classmethod
    def make_batch_source(cls, config, data: DataRequest, *, batch_size, seed, world_size=1, rank=0):
        dataset = data.load()
        return TwoStreamSource(BatchSource(dataset, _collate, batch_size, seed, world_size, rank),
                               BatchSource(dataset, _collate, config.mu * batch_size, seed + 1, world_size, rank))

    def forward(self, x, labels, x_unlabeled, **_):
        sup = nn.functional.cross_entropy(self.net(x), labels)
        probs = self.net(x_unlabeled).softmax(-1)
        entropy = -(probs * probs.clamp_min(1e-8).log()).sum(-1).mean()
        return ModelOutput(loss=sup + 0.1 * entropy, unlabeled_rows=torch.tensor(float(x_unlabeled.shape[0])))

    def embed(self, x):
        return self.net(x)


def test_a_two_stream_method_trains_through_the_unchanged_loop_and_resumes_exactly(tmp_path):
    register_method("test_two_stream", f"{__name__}:TwoStreamModel", modality="image", description="test only",
                    default_dataset="digits")
    try:
        recipe = {"method": "test_two_stream", "model": {"mu": 3},
                  "train": {"max_steps": 4, "batch_size": 8, "log_every": 1, "save_every": 2, "progress": False}}
        full = train(recipe_from_dict(recipe), tmp_path / "full")
        assert len(full.losses) == 4
        rows = [__import__("json").loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
        assert all(r["unlabeled_rows"] == 24 for r in rows)  # mu * B unlabeled rows reached forward every step
        recipe["train"]["stop_after_steps"] = 2
        train(recipe_from_dict(recipe), tmp_path / "cut")
        recipe["train"]["stop_after_steps"] = None
        resumed = train(recipe_from_dict(recipe), tmp_path / "cut", resume=True)
        assert resumed.losses == full.losses[2:]
    finally:
        METHODS.pop("test_two_stream", None)
