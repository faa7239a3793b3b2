"""CPC with channel views (channel_augment + target_view): the loss against InfoNCE by hand, the default path unchanged."""
import json

import pytest
import torch

from multissl.modalities.audio.channel_augment import ChannelViewsCollator
from multissl.modalities.audio.collators import AudioCollator
from multissl.models.cpc import CPCConfig, CPCModel, make_cpc_collator, tiny_cpc_config
from multissl.objectives.cpc import cpc_loss


def _rows(lengths=(2400, 3000, 1800)):
    g = torch.Generator().manual_seed(1)
    return [{"audio": {"array": (torch.randn(n, generator=g) * 0.1).numpy(), "sampling_rate": 16000}} for n in lengths]


def _config(**kw) -> CPCConfig:
    cfg = tiny_cpc_config()
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _infonce_by_hand(pred, z, frames, noise):
    """One softmax per (b, t, k): W_k c_t against z_{t+k+1} and N batch negatives floor(u * #valid) of the valid frames."""
    B, T, K, _ = pred.shape
    valid = [(b, t) for b in range(B) for t in range(int(frames[b]))]  # row-major, as cpc_loss flattens
    per_step = []
    for k in range(K):
        rows = []
        for b in range(B):
            for t in range(int(frames[b]) - k - 1):
                negs = [z[valid[int(u * len(valid))]] for u in noise[b, t].tolist()]
                scores = torch.stack([pred[b, t, k] @ z[b, t + k + 1]] + [pred[b, t, k] @ v for v in negs])
                rows.append(-torch.log_softmax(scores, 0)[0])
        per_step.append(torch.stack(rows).mean())
    return torch.stack(per_step).mean()


@pytest.mark.parametrize("target_view", ["augmented", "clean"])
def test_loss_is_infonce_of_context_from_view_a_and_targets_from_view_b(target_view):
    cfg = _config(channel_augment={}, target_view=target_view)
    torch.manual_seed(0)
    m = CPCModel(cfg).eval()
    batch = make_cpc_collator(cfg, train=True)(_rows(), generator=torch.Generator().manual_seed(2))
    a, b, lengths = batch["input_values"], batch["target_values"], batch["lengths"]
    enc_a, enc_b = m.encoder(a, lengths), m.encoder(b, lengths)  # c from view A, z from view B
    c, z, frames = enc_a.last_hidden_state, enc_b.encoder_hidden_state, enc_a.frame_lengths
    B, T, _ = z.shape
    noise = torch.rand(B, T, cfg.num_negatives, generator=torch.Generator().manual_seed(3))
    pred = m.predictor(c).view(B, T, cfg.prediction_steps, cfg.encoder_dim)
    expected = _infonce_by_hand(pred, z, frames, noise)
    got = m(**batch, negative_noise=noise).loss
    torch.testing.assert_close(got, expected)
    single = m(a, lengths, negative_noise=noise).loss  # the targets' view matters
    assert not torch.allclose(got, single)


def test_every_parameter_gets_a_gradient_and_eval_is_never_augmented():
    cfg = _config(channel_augment={"snr_db": [0, 10]}, target_view="augmented")
    torch.manual_seed(0)
    m = CPCModel(cfg).train()
    collate = make_cpc_collator(cfg, train=True)
    assert isinstance(collate, ChannelViewsCollator)
    m(**collate(_rows(), generator=torch.Generator().manual_seed(0))).loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert make_cpc_collator(cfg, train=False) == make_cpc_collator(tiny_cpc_config(), train=False)
    with pytest.raises(ValueError, match="target_values must have input_values' shape"):
        m(torch.zeros(2, 1600), target_values=torch.zeros(2, 1500))


def _old_collator(cfg: CPCConfig) -> AudioCollator:
    """make_cpc_collator as it was before channel views (a copy)."""
    return AudioCollator(sample_rate=cfg.sampling_rate, crop_samples=int(round(cfg.crop_seconds * cfg.sampling_rate)),
                         min_samples=cfg.receptive_field, train=True)


def _old_loss(m: CPCModel, input_values, lengths):
    """CPCModel.forward's loss as it was before channel views (a copy)."""
    enc = m.encoder(input_values, lengths)
    z, c = enc.encoder_hidden_state, enc.last_hidden_state
    B, T, D = z.shape
    pred = m.predictor(c).view(B, T, m.config.prediction_steps, D)
    return cpc_loss(pred, z, enc.frame_lengths, m.config.num_negatives, m.config.negatives).loss


@pytest.mark.parametrize("explicit", [False, True])
def test_off_by_default_and_bit_identical_to_before(explicit):
    cfg = _config(channel_augment=None, target_view="same") if explicit else tiny_cpc_config()
    assert cfg.channel_augment is None and cfg.target_view == "same"
    torch.manual_seed(0)
    m = CPCModel(cfg).train()
    collate = make_cpc_collator(cfg, train=True)
    assert type(collate) is AudioCollator
    new = collate(_rows((2400, 9000, 300)), generator=torch.Generator().manual_seed(5))
    old = _old_collator(cfg)(_rows((2400, 9000, 300)), generator=torch.Generator().manual_seed(5))
    assert new.keys() == old.keys() == {"input_values", "lengths"}
    assert all(torch.equal(new[k], old[k]) for k in new)
    torch.manual_seed(11)  # negatives from the global RNG, as in the loop: the same draws both ways
    loss_new = m(**new).loss
    loss_new.backward()
    grads_new = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    torch.manual_seed(11)
    loss_old = _old_loss(m, old["input_values"], old["lengths"])
    loss_old.backward()
    assert torch.equal(loss_new, loss_old)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads_new, m.parameters()))


def test_config_errors_are_one_line_and_name_the_field():
    from multissl.registry import METHODS
    from multissl.training.config import RecipeError
    from multissl.training.loop import build_config

    for model, match in [({"target_view": "augmented"}, "target_view 'augmented' needs channel_augment"),
                         ({"target_view": "past"}, "target_view must be one of"),
                         ({"channel_augment": {"snr_db": [20, 5]}}, r"channel_augment\.snr_db must be a \[low, high\]"),
                         ({"channel_augment": {"rt60": [0.1, 0.5]}}, r"channel_augment: unknown key")]:
        with pytest.raises(RecipeError, match=match) as err:
            build_config(METHODS["cpc"], model, "recipe.yaml")
        assert "\n" not in str(err.value) and str(err.value).startswith("recipe.yaml: model:")


def test_trains_from_a_recipe_and_saves_the_resolved_ranges(tmp_path):
    from transformers import AutoConfig

    from multissl.training import recipe_from_dict, train

    model = {"encoder_dim": 16, "context_dim": 16, "prediction_steps": 3, "num_negatives": 4, "crop_seconds": 0.2,
             "channel_augment": {"snr_db": [5, 10]}, "target_view": "augmented"}
    recipe = recipe_from_dict({"method": "cpc", "dataset": "spoken_digits", "model": model,
                               "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "progress": False}})
    train(recipe, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    saved = AutoConfig.from_pretrained(tmp_path / "run" / "final")
    assert saved.target_view == "augmented"
    assert saved.channel_augment == {"snr_db": [5.0, 10.0], "rt60_s": [0.1, 0.5], "drr_db": [0.0, 12.0],
                                     "noise_beta": [0.0, 2.0], "peak": [0.3, 0.9]}
