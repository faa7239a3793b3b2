"""Contrastive objectives: InfoNCE, NT-Xent (SimCLR), CLIP's symmetric loss, SupCon.

All take embeddings, not models. With `gather_distributed=True` (and a process group) the keys
are all-gathered with gradients and each process computes the loss of its *local* rows against
the *global* batch: the mean over processes equals the single-process loss on the full batch,
memory stays linear in the local batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from multissl.objectives.distributed import gather_with_grad, rank


def _check_2d(name: str, x: torch.Tensor, batch: int | None = None, dim: int | None = None) -> None:
    if x.dim() != 2 or (batch is not None and x.shape[0] != batch) or (dim is not None and x.shape[1] != dim):
        want = f"[{batch if batch is not None else 'B'}, {dim if dim is not None else 'D'}]"
        raise ValueError(f"{name} must have shape {want}; got {tuple(x.shape)}")


def _offset_targets(batch: int, device: torch.device, gathered: bool) -> torch.Tensor:
    """Indices of the local rows inside the gathered (rank-ordered) batch."""
    return torch.arange(batch, device=device) + (rank() * batch if gathered else 0)


def info_nce(
    query: torch.Tensor,
    positive_key: torch.Tensor,
    negative_keys: torch.Tensor | None = None,
    temperature: float = 0.1,
    normalize: bool = True,
    gather_distributed: bool = False,
    in_batch_negatives: bool | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """InfoNCE: -log exp(q.k+/t) / (exp(q.k+/t) + sum_j exp(q.k-_j/t)).  query, positive_key [B, D].

    negative_keys: None -> in-batch negatives (the other rows' positive keys, gathered across
    processes when gather_distributed); [M, D] -> the same M negatives for every query (e.g. a
    MoCo queue); [B, M, D] -> per-query negatives. With in_batch_negatives=True and [M, D]
    negatives, the negatives are *added* to the in-batch ones (supervised SimCSE hard negatives).
    Returns a scalar (reduction="mean") or [B] (reduction="none").
    """
    _check_2d("query", query)
    b, d = query.shape
    _check_2d("positive_key", positive_key, b, d)
    if normalize:
        query, positive_key = F.normalize(query, dim=-1), F.normalize(positive_key, dim=-1)
        if negative_keys is not None:
            negative_keys = F.normalize(negative_keys, dim=-1)
    if in_batch_negatives is None:
        in_batch_negatives = negative_keys is None

    if in_batch_negatives:
        keys = gather_with_grad(positive_key) if gather_distributed else positive_key  # [W*B, D]
        if negative_keys is not None:
            _check_2d("negative_keys (with in_batch_negatives)", negative_keys, dim=d)
            extra = gather_with_grad(negative_keys) if gather_distributed else negative_keys
            keys = torch.cat([keys, extra], dim=0)  # [W*B + W*M, D]
        logits = query @ keys.T  # [B, W*B (+ W*M)]
        targets = _offset_targets(b, query.device, gather_distributed)
    else:
        pos = (query * positive_key).sum(-1, keepdim=True)  # [B, 1]
        if negative_keys.dim() == 2:
            _check_2d("negative_keys", negative_keys, dim=d)
            neg = query @ negative_keys.T  # [B, M]
        elif negative_keys.dim() == 3 and negative_keys.shape[0] == b and negative_keys.shape[2] == d:
            neg = torch.einsum("bd,bmd->bm", query, negative_keys)  # [B, M]
        else:
            raise ValueError(f"negative_keys must be [M, {d}] or [{b}, M, {d}]; got {tuple(negative_keys.shape)}")
        logits = torch.cat([pos, neg], dim=1)  # positive is column 0
        targets = torch.zeros(b, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits / temperature, targets, reduction=reduction)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather_distributed: bool = False) -> torch.Tensor:
    """SimCLR's NT-Xent over 2N views (Algorithm 1): z1, z2 [B, D] are the two views of the same B images.

    l(i,j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t) with cosine s; mean over all 2N anchors.
    """
    _check_2d("z1", z1)
    _check_2d("z2", z2, z1.shape[0], z1.shape[1])
    b = z1.shape[0]
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    g1 = gather_with_grad(z1) if gather_distributed else z1  # [W*B, D]
    g2 = gather_with_grad(z2) if gather_distributed else z2
    n = g1.shape[0]  # W*B
    anchors = torch.cat([z1, z2], dim=0)  # [2B, D] local
    keys = torch.cat([g1, g2], dim=0)  # [2WB, D] global: all first views, then all second views
    logits = anchors @ keys.T / temperature  # [2B, 2WB]
    local = _offset_targets(b, z1.device, gather_distributed)  # rows of this process in g1/g2
    self_idx = torch.cat([local, local + n])
    pos_idx = torch.cat([local + n, local])
    rows = torch.arange(2 * b, device=z1.device)
    logits = logits.index_put((rows, self_idx), torch.tensor(float("-inf"), device=logits.device, dtype=logits.dtype))
    return F.cross_entropy(logits, pos_idx)


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float, gather_distributed: bool = False
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over scale * image @ text.T; image_emb, text_emb [B, D], already L2-normalised.

    Distributed: local rows against gathered columns (open_clip's local-loss regime), labels offset by rank*B.
    """
    _check_2d("image_emb", image_emb)
    _check_2d("text_emb", text_emb, image_emb.shape[0], image_emb.shape[1])
    b = image_emb.shape[0]
    all_img = gather_with_grad(image_emb) if gather_distributed else image_emb
    all_txt = gather_with_grad(text_emb) if gather_distributed else text_emb
    logits_per_image = logit_scale * image_emb @ all_txt.T  # [B, W*B]
    logits_per_text = logit_scale * text_emb @ all_img.T  # [B, W*B]
    labels = _offset_targets(b, image_emb.device, gather_distributed)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def supcon_loss(
    features: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 0.1,
    base_temperature: float | None = None, gather_distributed: bool = False,
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out); features [B, V, D], labels [B] (None = SimCLR-style).

    Every view is an anchor; positives are the other views with the same label; anchors with no
    positive are skipped. Features are L2-normalised here.
    """
    if features.dim() != 3:
        raise ValueError(f"features must be [B, V, D]; got {tuple(features.shape)}")
    b, v, _ = features.shape
    if labels is None:
        labels = _offset_targets(b, features.device, gather_distributed)  # each sample its own class
    elif labels.shape != (b,):
        raise ValueError(f"labels must be [{b}]; got {tuple(labels.shape)}")
    feats = F.normalize(features, dim=-1).transpose(0, 1).reshape(v * b, -1)  # [V*B, D], view-major
    anchor_labels = labels.repeat(v)  # [V*B]
    all_feats, all_labels = feats, anchor_labels
    if gather_distributed:
        all_feats = gather_with_grad(feats)  # [W*V*B, D], rank-ordered blocks of V*B
        all_labels = _gather_labels(anchor_labels)
    logits = feats @ all_feats.T / temperature  # [V*B, W*V*B]
    self_idx = torch.arange(v * b, device=feats.device) + (rank() * v * b if gather_distributed else 0)
    rows = torch.arange(v * b, device=feats.device)
    not_self = torch.ones_like(logits, dtype=torch.bool)
    not_self[rows, self_idx] = False
    pos = (anchor_labels[:, None] == all_labels[None, :]) & not_self
    log_prob = logits - torch.logsumexp(logits.masked_fill(~not_self, float("-inf")), dim=1, keepdim=True)
    n_pos = pos.sum(1)
    valid = n_pos > 0
    mean_log_prob_pos = (log_prob * pos).sum(1)[valid] / n_pos[valid]
    scale = temperature / (base_temperature or temperature)
    return -(scale * mean_log_prob_pos).mean()


def _gather_labels(labels: torch.Tensor) -> torch.Tensor:
    """Plain all_gather of integer labels (no gradient needed)."""
    import torch.distributed as dist

    from multissl.objectives.distributed import is_distributed

    if not is_distributed():
        return labels
    out = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
    dist.all_gather(out, labels.contiguous())
    return torch.cat(out)
