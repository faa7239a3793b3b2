"""The speed knobs through the one loop: compile, channels_last, LARS, gradient checkpointing and attention train
the same losses as the plain run (2 steps, tiny configs, CPU)."""
from __future__ import annotations

import pytest
import torch

from multissl.models.bert_mlm import BertMLMModel
from multissl.models.simclr import SimCLRModel
from multissl.training import performance, recipe_from_dict, train
from multissl.training.performance import backbones


def _recipe(method: str, model: dict, **train_keys) -> dict:
    return {"method": method, "model": model,
            "train": {"max_steps": 2, "batch_size": 8, "log_every": 1, "progress": False, **train_keys}}


SIMCLR = {k: v for k, v in SimCLRModel.tiny_config().to_diff_dict().items()
          if k in ("backbone_config", "image_size", "projection_dim", "projection_hidden_dim")}


@pytest.mark.slow
def test_compile_traces_the_backbone_and_trains_the_eager_losses(tmp_path, monkeypatch, capsys):
    graphs = []

    def counting_backend(gm, example_inputs):  # dynamo's graph, run as captured (no code generation: seconds)
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    monkeypatch.setattr(performance, "COMPILE_OPTIONS", {"backend": counting_backend})
    eager = train(recipe_from_dict(_recipe("simclr", SIMCLR)), tmp_path / "eager")
    compiled = train(recipe_from_dict(_recipe("simclr", SIMCLR, compile=True)), tmp_path / "compiled")
    torch._dynamo.reset()
    assert graphs, "torch.compile never captured the backbone"
    assert any(n.op == "call_module" or n.op == "call_function" for n in graphs[0].graph.nodes)
    assert "speed settings: compile (backbone)" in capsys.readouterr().out
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-4, abs=1e-5)
    # Module.compile in place: the saved weights carry the plain names (no `_orig_mod.`)
    loaded = SimCLRModel.from_pretrained(compiled.final_dir)
    assert set(loaded.state_dict()) == set(SimCLRModel.from_pretrained(eager.final_dir).state_dict())


def test_lars_and_channels_last_train_through_the_loop(tmp_path, capsys):
    plain = train(recipe_from_dict(_recipe("simclr", SIMCLR, optimizer="lars", learning_rate=0.3)), tmp_path / "a")
    nhwc = train(recipe_from_dict(_recipe("simclr", SIMCLR, optimizer="lars", learning_rate=0.3, channels_last=True,
                                          tf32=True)), tmp_path / "b")
    assert "speed settings: tf32 (no effect on cpu); channels_last" in capsys.readouterr().out
    assert nhwc.losses == pytest.approx(plain.losses, rel=1e-4, abs=1e-5)
    a, b = (SimCLRModel.from_pretrained(r.final_dir).state_dict() for r in (plain, nhwc))
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-4
    torch.set_float32_matmul_precision("highest")  # tf32 is process-wide: leave the default for other tests


@pytest.mark.slow
def test_gradient_checkpointing_and_eager_attention_train_a_bert(tmp_path, capsys):
    config = BertMLMModel.tiny_config().to_diff_dict()
    model = {k: config[k] for k in ("backbone_config", "tokenizer_path", "block_size")}
    plain = train(recipe_from_dict(_recipe("bert_mlm", model, attention="eager")), tmp_path / "a")
    ckpt = train(recipe_from_dict(_recipe("bert_mlm", model, attention="eager", gradient_checkpointing=True)),
                 tmp_path / "b")
    out = capsys.readouterr().out
    assert "speed settings: attention=eager (backbone); gradient_checkpointing (backbone)" in out
    # Recomputation replays dropout with the saved RNG state: the same losses, not merely similar ones.
    assert ckpt.losses == pytest.approx(plain.losses, rel=1e-5)
    saved = BertMLMModel.from_pretrained(ckpt.final_dir)
    assert [n for n, _ in backbones(saved)] == ["backbone"]
    assert not saved.backbone.is_activation_checkpointing  # a training setting, not saved into the model
