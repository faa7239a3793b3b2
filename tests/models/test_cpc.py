"""CPC model: geometry, causality, padding invariance, context options, short/silent clips, save/load, encoder export."""
import pytest
import torch
from transformers import AutoConfig, AutoModel

from multissl.models.cpc import CPCConfig, CPCEncoder, CPCModel, make_cpc_collator, tiny_cpc_config
from multissl.registry import METHODS


def _model(**kw) -> CPCModel:
    torch.manual_seed(0)
    cfg = tiny_cpc_config()
    for k, v in kw.items():
        setattr(cfg, k, v)
    return CPCModel(cfg).eval()


def _wave(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_registered_with_paper_defaults():
    spec = METHODS["cpc"]
    assert spec.model_class is CPCModel and spec.modality == "audio" and spec.default_dataset == "spoken_digits"
    cfg = CPCConfig()
    assert cfg.conv_kernels == [10, 8, 4, 4, 4] and cfg.conv_strides == [5, 4, 2, 2, 2] and cfg.prediction_steps == 12
    assert cfg.receptive_field == 465
    with pytest.raises(ValueError, match="context_type one of"):
        CPCConfig(context_type="mamba")
    with pytest.raises(ValueError, match="negatives must be one of"):
        CPCConfig(negatives="all")


def test_one_frame_per_10ms_and_lengths():
    m = _model()
    enc = m.encoder(torch.stack([_wave(16000), _wave(16000, 1)]), torch.tensor([16000, 8000]))
    assert enc.encoder_hidden_state.shape == (2, 98, 16) and enc.last_hidden_state.shape == (2, 98, 16)
    assert enc.frame_lengths.tolist() == [98, 48]


@pytest.mark.parametrize("context_type", ["gru", "lstm", "transformer"])
@pytest.mark.parametrize("norm", ["layer", "none"])
def test_context_is_causal_and_ignores_padding(context_type, norm):
    m = _model(context_type=context_type, norm=norm)
    m = CPCModel(m.config).eval()  # rebuild with the option
    x = _wave(4000)
    c = m.encoder(x[None]).last_hidden_state
    y = x.clone()
    y[3000:] = 1.0  # change the future: frames whose receptive field ends before sample 3000 must not move
    c2 = m.encoder(y[None]).last_hidden_state
    last_clean = (3000 - 465) // 160  # frame t sees samples [160 t, 160 t + 465)
    torch.testing.assert_close(c[:, : last_clean + 1], c2[:, : last_clean + 1])
    assert not torch.allclose(c[:, -1], c2[:, -1])
    # padding a clip in a batch with a longer one does not change its pooled features
    alone = m.embed(x[None])
    padded = torch.zeros(2, 6000)
    padded[0, :4000], padded[1] = x, _wave(6000, 1)
    torch.testing.assert_close(m.embed(padded, torch.tensor([4000, 6000]))[0], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("options", [{}, {"context_type": "lstm", "norm": "batch", "negatives": "sequence"},
                                     {"context_type": "transformer", "embed_layer": "both"}])
def test_forward_backward_every_parameter_gets_a_gradient(options):
    cfg = tiny_cpc_config()
    for k, v in options.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    m = CPCModel(cfg).train()
    rows = [{"audio": {"array": _wave(n, n).numpy(), "sampling_rate": 16000}} for n in (2400, 3000, 300)]
    batch = make_cpc_collator(cfg, train=True, generator=torch.Generator().manual_seed(0))(rows)
    out = m(**batch)
    assert out.step_accuracy.shape == (cfg.prediction_steps,) and 0 <= out.accuracy <= 1
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    feats = m.eval().embed(**make_cpc_collator(cfg, train=False)(rows))
    assert feats.shape == (3, {"both": 32}.get(cfg.embed_layer, 16)) and torch.isfinite(feats).all()


def test_short_and_silent_clips():
    m = _model()
    with pytest.raises(ValueError, match="needs >= 465"):
        m.encoder(torch.zeros(1, 400))
    with pytest.raises(ValueError, match=r"must be \[B, L\]"):
        m.encoder(torch.zeros(1, 1, 4000))
    rows = [{"audio": {"array": _wave(100).numpy(), "sampling_rate": 16000}},  # shorter than the receptive field
            {"audio": {"array": torch.zeros(3000).numpy(), "sampling_rate": 16000}}]  # silence
    batch = make_cpc_collator(m.config, train=False)(rows)
    assert batch["input_values"].shape == (2, 3000)
    feats = m.embed(**batch)
    assert torch.isfinite(feats).all()
    out = m.train()(**make_cpc_collator(m.config, train=True)(rows))
    assert torch.isfinite(out.loss)


def test_negative_noise_makes_the_loss_reproducible():
    m = _model()
    x = torch.stack([_wave(2400), _wave(2400, 1)])
    frames = int(m.encoder(x).encoder_hidden_state.shape[1])
    noise = torch.rand(2, frames, m.config.num_negatives, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m(x, negative_noise=noise).loss, m(x, negative_noise=noise).loss)


def test_save_load_and_encoder_export(tmp_path):
    m = _model(context_type="lstm")
    m = CPCModel(m.config).eval()
    x = torch.stack([_wave(3000), _wave(3000, 2)])
    m.save_pretrained(tmp_path / "full")
    assert (tmp_path / "full" / "model.safetensors").is_file()
    again = AutoModel.from_pretrained(tmp_path / "full").eval()
    assert isinstance(again, CPCModel) and again.config.context_type == "lstm"
    torch.testing.assert_close(again.embed(x), m.embed(x))
    m.encoder.save_pretrained(tmp_path / "enc")  # the multissl encoder class (the export is a HubertModel: test_export_*)
    assert AutoConfig.from_pretrained(tmp_path / "enc").model_type == "multissl_cpc_encoder"
    enc = AutoModel.from_pretrained(tmp_path / "enc").eval()
    assert isinstance(enc, CPCEncoder)
    torch.testing.assert_close(enc(x).last_hidden_state, m.encoder(x).last_hidden_state)


def test_every_step_accuracy_is_a_scalar_field_and_reaches_metrics_jsonl(tmp_path):
    import json

    from multissl.training import recipe_from_dict, train

    cfg = tiny_cpc_config()
    cfg.prediction_steps = 12
    torch.manual_seed(0)
    out = CPCModel(cfg).train()(torch.stack([_wave(4000), _wave(4000, 1)]))
    for k in range(1, 13):  # one 0-dim field per step, equal to step_accuracy[k-1]
        v = getattr(out, f"accuracy_step{k}")
        assert v.dim() == 0 and torch.equal(v, out.step_accuracy[k - 1]) and f"accuracy_step{k}" in out
    assert "accuracy_step13" not in out and torch.equal(out.accuracy_last, out.accuracy_step12)
    with pytest.raises(ValueError, match="prediction_steps must be in"):
        CPCConfig(prediction_steps=0)

    # the loop logs every 0-dim field, so metrics.jsonl carries all K per-step accuracies
    model = {"encoder_dim": 16, "context_dim": 16, "prediction_steps": 12, "num_negatives": 4, "crop_seconds": 0.2}
    recipe = recipe_from_dict({"method": "cpc", "dataset": "spoken_digits", "model": model,
                               "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "progress": False}})
    train(recipe, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert {f"accuracy_step{k}" for k in range(1, 13)} <= row.keys() and "accuracy" in row
        assert all(0 <= row[f"accuracy_step{k}"] <= 1 for k in range(1, 13))
