"""Multi-class N-pair loss (Sohn 2016, seed 001 "InfoNCE (2018) - N-pair loss (2016)").

N pairs (x_i, x_i^+) from N different classes; every other pair's positive is a negative for x_i:

    L = 1/N sum_i log(1 + sum_{j != i} exp(f_i . f_j^+ - f_i . f_i^+))  =  mean_i CE([f_i . f_j^+]_j, i)
        + l2_reg * mean over all 2N embeddings of ||f||^2

Similarities are raw inner products by default (temperature 1), as in Sohn, who keeps the embeddings
small with the L2 term instead; normalize=True uses cosines (pytorch-metric-learning's NPairsLoss
default, whose DotProductSimilarity normalises unless told not to). This is InfoNCE with those settings, so it reuses `info_nce`
(and its all-gather of the positives with `gather_distributed`).
"""
from __future__ import annotations

import torch

from multissl.objectives.contrastive import info_nce


def n_pair_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    l2_reg: float = 0.0,
    normalize: bool = False,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """Multi-class N-pair loss; anchors, positives [B, D], row i of both from class i (all classes distinct) -> scalar.

    l2_reg multiplies the mean squared L2 norm of the 2B raw (unnormalised) embeddings; this is
    TensorFlow's npairs_loss with reg_lambda = 2 * l2_reg, and pytorch-metric-learning's
    NPairsLoss with LpRegularizer(power=2) and embedding_reg_weight = l2_reg. With
    gather_distributed the positives of every process are negatives too; the L2 term stays local
    (its mean over processes is the global mean).
    """
    if anchors.dim() != 2:
        raise ValueError(f"anchors must have shape [B, D]; got {tuple(anchors.shape)}")
    if positives.shape != anchors.shape:
        raise ValueError(f"positives must have the anchors' shape {list(anchors.shape)} ([B, D]); got {tuple(positives.shape)}")
    if not l2_reg >= 0:
        raise ValueError(f"l2_reg must be >= 0; got {l2_reg}")
    loss = info_nce(anchors, positives, temperature=1.0, normalize=normalize, gather_distributed=gather_distributed)
    if l2_reg:
        loss = loss + l2_reg * 0.5 * (anchors.pow(2).sum(1).mean() + positives.pow(2).sum(1).mean())
    return loss
