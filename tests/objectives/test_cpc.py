"""CPC K-step InfoNCE: against a direct per-(b, t, k) loop and against the shared info_nce, masking, sampling."""
import math

import pytest
import torch

from multissl.objectives.cpc import cpc_loss, sample_negative_indices

B, T, K, D, N = 3, 7, 3, 5, 4


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(B, T, K, D, generator=g)
    z = torch.randn(B, T, D, generator=g)
    lengths = torch.tensor([7, 5, 2])
    noise = torch.rand(B, T, N, generator=g)
    return pred, z, lengths, noise


def _loop_reference(pred, z, lengths, noise, mode):
    """The formula written out: one softmax per (b, t, k) with z_{t+k} against the drawn negatives."""
    valid_frames = [(b, t) for b in range(B) for t in range(int(lengths[b]))]  # row-major, as the flat index
    losses = {k: [] for k in range(K)}
    hits = {k: [] for k in range(K)}
    for b in range(B):
        for t in range(T):
            if mode == "sequence":
                negs = [z[b, int(math.floor(float(noise[b, t, n]) * int(lengths[b])))] for n in range(N)]
            else:
                negs = [z[valid_frames[int(math.floor(float(noise[b, t, n]) * len(valid_frames)))]] for n in range(N)]
            for k in range(K):
                if t + k + 1 >= int(lengths[b]):
                    continue
                scores = torch.stack([pred[b, t, k] @ z[b, t + k + 1]] + [pred[b, t, k] @ v for v in negs])
                losses[k].append(-torch.log_softmax(scores, 0)[0])
                hits[k].append(float(scores.argmax() == 0))
    step_loss = torch.stack([torch.stack(losses[k]).mean() for k in range(K)])
    step_acc = torch.tensor([sum(hits[k]) / len(hits[k]) for k in range(K)])
    return step_loss.mean(), step_loss, step_acc


@pytest.mark.parametrize("mode", ["batch", "sequence"])
def test_matches_direct_loop(mode):
    pred, z, lengths, noise = _inputs()
    out = cpc_loss(pred, z, lengths, num_negatives=N, negatives=mode, noise=noise)
    loss, step_loss, step_acc = _loop_reference(pred, z, lengths, noise, mode)
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(out.step_loss, step_loss)
    torch.testing.assert_close(out.step_accuracy, step_acc)


@pytest.mark.parametrize("mode", ["batch", "sequence"])
def test_each_step_is_shared_info_nce(mode):
    """Per step k, the loss is info_nce(W_k c_t, z_{t+k}, negatives) with temperature 1 and no normalisation."""
    contrastive = pytest.importorskip("multissl.objectives.contrastive")
    pred, z, lengths, noise = _inputs(1)
    out = cpc_loss(pred, z, lengths, num_negatives=N, negatives=mode, noise=noise)
    neg_idx = sample_negative_indices(lengths, T, N, mode, noise=noise)  # [B, T, N]
    flat = z.reshape(B * T, D)
    for k in range(K):
        rows = [(b, t) for b in range(B) for t in range(T) if t + k + 1 < int(lengths[b])]
        q = torch.stack([pred[b, t, k] for b, t in rows])
        pos = torch.stack([z[b, t + k + 1] for b, t in rows])
        negs = torch.stack([flat[neg_idx[b, t]] for b, t in rows])  # [Q, N, D]
        ref = contrastive.info_nce(q, pos, negs, temperature=1.0, normalize=False)
        torch.testing.assert_close(out.step_loss[k], ref)


def test_padded_frames_do_not_matter():
    pred, z, lengths, noise = _inputs(2)
    out = cpc_loss(pred, z, lengths, num_negatives=N, noise=noise)
    pred2, z2 = pred.clone(), z.clone()
    z2[1, 5:] = 1e3  # row 1 has 5 valid frames, row 2 has 2
    z2[2, 2:] = -1e3
    pred2[2, 2:] = 7.0
    out2 = cpc_loss(pred2, z2, lengths, num_negatives=N, noise=noise)
    torch.testing.assert_close(out.loss, out2.loss)


def test_perfect_predictions_give_full_accuracy():
    z = torch.eye(8)[None].repeat(2, 1, 1) * 10  # [2, 8, 8] orthogonal frames
    K_ = 2
    pred = torch.stack([torch.roll(z, -k, dims=1) for k in range(1, K_ + 1)], dim=2)  # pred[t, k] = z[t+k]
    out = cpc_loss(pred, z, torch.tensor([8, 8]), num_negatives=6, negatives="sequence",
                   generator=torch.Generator().manual_seed(0))
    # a negative may be the positive frame itself (tie): accuracy counts argmax == 0, the first on ties
    assert torch.all(out.step_accuracy == 1.0)
    assert out.loss < math.log(7)


def test_sampling_stays_in_valid_frames_and_is_reproducible():
    lengths = torch.tensor([4, 1, 6])
    for mode in ("batch", "sequence"):
        idx = sample_negative_indices(lengths, 6, 50, mode, generator=torch.Generator().manual_seed(3))
        again = sample_negative_indices(lengths, 6, 50, mode, generator=torch.Generator().manual_seed(3))
        assert torch.equal(idx, again)
        b, t = idx // 6, idx % 6
        assert torch.all(t < lengths[b])
        if mode == "sequence":
            assert torch.all(b == torch.arange(3)[:, None, None])
    assert len(set(sample_negative_indices(lengths, 6, 200, "batch").flatten().tolist())) == 11  # all valid frames drawn


def test_gradients_and_errors():
    pred, z, lengths, noise = _inputs(4)
    pred.requires_grad_(True)
    z.requires_grad_(True)
    cpc_loss(pred, z, lengths, num_negatives=N, noise=noise).loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0 and z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="negatives must be one of"):
        cpc_loss(pred, z, lengths, negatives="everywhere")
    with pytest.raises(ValueError, match="z must be"):
        cpc_loss(pred, z[:, :-1], lengths)
    with pytest.raises(ValueError, match="no valid CPC rows"):
        cpc_loss(pred, z, torch.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match="noise must have shape"):
        cpc_loss(pred, z, lengths, num_negatives=N, noise=noise[:, :2])
