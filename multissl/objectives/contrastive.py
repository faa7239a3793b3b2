"""Contrastive objectives: InfoNCE, NT-Xent (SimCLR), CLIP's symmetric loss, SupCon.

All take embeddings, not models. With `gather_distributed=True` (and a process group of W > 1
processes) the keys are all-gathered with gradients and each process computes the loss of its
*local* rows against the *global* batch. For the mean-reduced losses here the mean of the W
per-process losses equals the single-process loss on the concatenated batch, and with DDP's
gradient averaging the parameter gradients equal the full-batch ones; memory stays linear in
the local batch. Every process must pass the same batch size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from multissl.objectives.distributed import gather_no_grad, gather_with_grad, is_distributed, rank


def _check_2d(name: str, x: torch.Tensor, rows: int | str = "B", dim: int | str = "D") -> None:
    """Raise a ValueError naming `name` unless x is [rows, dim] (str = any size)."""
    ok = x.dim() == 2 and (isinstance(rows, str) or x.shape[0] == rows) and (isinstance(dim, str) or x.shape[1] == dim)
    if not ok:
        raise ValueError(f"{name} must have shape [{rows}, {dim}]; got {tuple(x.shape)}")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")


def _local_rows(batch: int, device: torch.device, gathered: bool) -> torch.Tensor:
    """[B] indices of this process's rows inside a rank-ordered gathered batch."""
    return torch.arange(batch, device=device) + (rank() * batch if gathered else 0)


def info_nce(
    query: torch.Tensor,
    positive_key: torch.Tensor,
    negative_keys: torch.Tensor | None = None,
    temperature: float = 0.1,
    normalize: bool = True,
    gather_distributed: bool = False,
    reduction: str = "mean",
    *,
    in_batch_negatives: bool | None = None,
) -> torch.Tensor:
    """InfoNCE -log e^{q.k+/t} / (e^{q.k+/t} + sum_j e^{q.k-_j/t}); query, positive_key [B, D] -> scalar or [B].

    negative_keys: None -> in-batch negatives (the other rows' positive keys, all-gathered with
    gradients when gather_distributed, targets offset by rank*B); [M, D] -> the same M negatives
    for every query (e.g. a MoCo queue, never gathered); [B, M, D] -> per-query negatives.
    in_batch_negatives=True with negative_keys *adds* them to the in-batch ones (SimCSE hard
    negatives; [M, D] ones are then gathered too). normalize=True L2-normalises every input
    (cosine similarity). reduction: "mean" | "sum" | "none" ([B]).
    """
    _check_2d("query", query)
    b, d = query.shape
    _check_2d("positive_key", positive_key, b, d)
    _check_temperature(temperature)
    if negative_keys is not None and not (
        (negative_keys.dim() == 2 and negative_keys.shape[1] == d)
        or (negative_keys.dim() == 3 and negative_keys.shape[0] == b and negative_keys.shape[2] == d)
    ):
        raise ValueError(f"negative_keys must have shape [M, {d}] or [{b}, M, {d}]; got {tuple(negative_keys.shape)}")
    if in_batch_negatives is None:
        in_batch_negatives = negative_keys is None
    if not in_batch_negatives and negative_keys is None:
        raise ValueError("info_nce needs negative_keys when in_batch_negatives=False")
    if normalize:
        query, positive_key = F.normalize(query, dim=-1), F.normalize(positive_key, dim=-1)
        if negative_keys is not None:
            negative_keys = F.normalize(negative_keys, dim=-1)
    q = query / temperature  # [B, D]: scaling B*D entries is cheaper than scaling the logits

    if in_batch_negatives:
        keys = gather_with_grad(positive_key) if gather_distributed else positive_key  # [W*B, D]
        cols = [q @ keys.T]  # [B, W*B], the positive of row i sits at column rank*B + i
        targets = _local_rows(b, query.device, gather_distributed)
    else:
        cols = [(q * positive_key).sum(-1, keepdim=True)]  # [B, 1], positive at column 0
        targets = torch.zeros(b, dtype=torch.long, device=query.device)
    if negative_keys is not None and negative_keys.dim() == 2:
        if in_batch_negatives and gather_distributed:
            negative_keys = gather_with_grad(negative_keys)  # [W*M, D]
        cols.append(q @ negative_keys.T)  # [B, M]
    elif negative_keys is not None:
        cols.append(torch.einsum("bd,bmd->bm", q, negative_keys))  # [B, M]
    logits = cols[0] if len(cols) == 1 else torch.cat(cols, dim=1)
    return F.cross_entropy(logits, targets, reduction=reduction)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather_distributed: bool = False) -> torch.Tensor:
    """SimCLR's NT-Xent over 2N views (Algorithm 1); z1, z2 [B, D] are the two views of the same B samples -> scalar.

    l(i,j) = -log e^{s_ij/t} / sum_{k != i} e^{s_ik/t} with cosine s, averaged over all 2N anchors.
    """
    _check_2d("z1", z1)
    _check_2d("z2", z2, z1.shape[0], z1.shape[1])
    _check_temperature(temperature)
    b = z1.shape[0]
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    local = torch.cat([z1, z2], dim=0)  # [2B, D] this process's anchors
    if gather_distributed:
        g1, g2 = gather_with_grad(z1), gather_with_grad(z2)  # [W*B, D] each
        keys = torch.cat([g1, g2], dim=0)  # [2WB, D]: all first views, then all second views
    else:
        keys = local
    n = keys.shape[0] // 2  # W*B
    logits = (local / temperature) @ keys.T  # [2B, 2WB]
    rows = _local_rows(b, z1.device, gather_distributed)  # [B] this process's rows in g1 / g2
    self_idx = torch.cat([rows, rows + n])  # [2B] where each anchor meets itself
    pos_idx = torch.cat([rows + n, rows])  # [2B] where it meets its other view
    # in place is safe: mm's backward needs its inputs, not its output
    logits.index_put_((torch.arange(2 * b, device=z1.device), self_idx), logits.new_full((), float("-inf")))
    return F.cross_entropy(logits, pos_idx)


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float, gather_distributed: bool = False
) -> torch.Tensor:
    """CLIP's symmetric CE over logit_scale * image @ text.T; image_emb, text_emb [B, D] already L2-normalised -> scalar.

    The inputs are *not* normalised here (CLIP models normalise before the scale). logit_scale is
    the multiplier itself (e.g. exp of a learned log-scale), a float or a scalar tensor.
    Distributed: local rows against gathered columns (open_clip's local-loss regime), labels
    offset by rank*B; the mean over processes equals the full-batch loss.
    """
    _check_2d("image_emb", image_emb)
    _check_2d("text_emb", text_emb, image_emb.shape[0], image_emb.shape[1])
    if isinstance(logit_scale, torch.Tensor) and logit_scale.numel() != 1:
        raise ValueError(f"logit_scale must be a float or a scalar tensor; got shape {tuple(logit_scale.shape)}")
    b = image_emb.shape[0]
    labels = _local_rows(b, image_emb.device, gather_distributed)
    if not (gather_distributed and is_distributed()):  # one [B, B] matrix serves both directions: half the matmuls
        logits_per_image = logit_scale * image_emb @ text_emb.T  # [B, B]
        return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2
    all_img = gather_with_grad(image_emb)  # [W*B, D]
    all_txt = gather_with_grad(text_emb)  # [W*B, D]
    logits_per_image = logit_scale * image_emb @ all_txt.T  # [B, W*B]
    logits_per_text = logit_scale * text_emb @ all_img.T  # [B, W*B]
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def supcon_loss(
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 0.1,
    base_temperature: float | None = None,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out); features [B, V, D], labels [B] or None -> scalar.

    Every view is an anchor; its positives are the other views with the same label (labels=None:
    each sample is its own class, i.e. SimCLR's NT-Xent); the denominator is every view but the
    anchor itself. Anchors without any positive (only possible with V=1) are skipped: the mean is
    over the rest, 0 if none. The loss is scaled by temperature / base_temperature
    (base_temperature=None -> no scaling). Features are L2-normalised here. Distributed: the mean
    over processes equals the full-batch loss whenever every anchor has a positive (V >= 2).
    """
    if features.dim() != 3:
        raise ValueError(f"features must have shape [B, V, D]; got {tuple(features.shape)}")
    _check_temperature(temperature)
    b, v, _ = features.shape
    if labels is None:
        labels = _local_rows(b, features.device, gather_distributed)  # each sample its own class, globally unique
    elif labels.shape != (b,):
        raise ValueError(f"labels must have shape [{b}]; got {tuple(labels.shape)}")
    feats = F.normalize(features, dim=-1).transpose(0, 1).reshape(v * b, -1)  # [V*B, D], view-major
    anchor_labels = labels.repeat(v)  # [V*B]
    all_feats, all_labels = feats, anchor_labels
    if gather_distributed:
        all_feats = gather_with_grad(feats)  # [W*V*B, D], rank-ordered blocks of V*B
        all_labels = gather_no_grad(anchor_labels)  # [W*V*B]
    logits = (feats / temperature) @ all_feats.T  # [V*B, W*V*B]
    rows = torch.arange(v * b, device=feats.device)
    not_self = torch.ones_like(logits, dtype=torch.bool)
    not_self[rows, _local_rows(v * b, feats.device, gather_distributed)] = False
    pos = (anchor_labels[:, None] == all_labels[None, :]) & not_self  # [V*B, W*V*B]
    # finite mask value, not -inf: a lone anchor (B = V = 1) would otherwise get NaN gradients
    denom = torch.logsumexp(logits.masked_fill(~not_self, torch.finfo(logits.dtype).min), dim=1, keepdim=True)
    log_prob = logits - denom  # [V*B, W*V*B]
    n_pos = pos.sum(1)  # [V*B]
    mean_log_prob_pos = torch.where(pos, log_prob, 0.0).sum(1) / n_pos.clamp_min(1)  # [V*B], 0 where no positive
    n_valid = (n_pos > 0).sum().clamp_min(1)  # count without a host sync; all-skipped -> 0, not NaN
    scale = temperature / (base_temperature if base_temperature is not None else temperature)
    return -scale * mean_log_prob_pos.sum() / n_valid
