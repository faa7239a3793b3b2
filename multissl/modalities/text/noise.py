"""Token-level noise for text views in semi-supervised learning (UDA-style strong views, Noisy Student's input noise).

Per token, independently, with probabilities that sum to at most 1: delete it, replace it with a random
vocabulary id, or replace it with the mask id; then swap some neighbouring pairs. Special tokens ([CLS], [SEP],
padding, anything in special_mask / special_ids) are never deleted, replaced, masked or moved. Works on padded
id tensors [B, T] with their attention_mask, vectorised, with randomness from an injected torch.Generator.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def _protected(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_mask: torch.Tensor | None,
               special_ids: Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    protected = ~attention_mask.bool()  # padding
    if special_mask is not None:
        if special_mask.shape != input_ids.shape:
            raise ValueError(f"special_mask must be [B, T] = {tuple(input_ids.shape)}; got {tuple(special_mask.shape)}")
        protected |= special_mask.bool()
    if special_ids is not None:
        ids = torch.as_tensor(special_ids, dtype=input_ids.dtype, device=input_ids.device).reshape(-1)
        protected |= torch.isin(input_ids, ids)
    return protected  # [B, T]


def _adjacent_swap_index(editable: torch.Tensor, swap_prob: float, generator: torch.Generator | None) -> torch.Tensor:
    """Gather index [B, T] that swaps disjoint neighbouring pairs (i, i+1) of editable tokens.

    Each row draws an offset o in {0, 1} and is cut into aligned pairs (o, o+1), (o+2, o+3), ...; every pair whose
    two tokens are editable swaps with probability swap_prob. Aligned pairs never overlap, so no left-to-right
    scan is needed, and the random offset lets any two neighbours form a pair.
    """
    b, t = editable.shape
    base = torch.arange(t, device=editable.device).expand(b, t)
    if t < 2 or swap_prob == 0.0:
        return base.clone()
    offset = torch.randint(0, 2, (b, 1), generator=generator, device=_dev(generator, editable)).to(editable.device)
    draw = torch.rand((b, t - 1), generator=generator, device=_dev(generator, editable)).to(editable.device)
    aligned = (base[:, :-1] - offset) % 2 == 0  # [B, T-1]: i starts an aligned pair
    start = aligned & editable[:, :-1] & editable[:, 1:] & (draw < swap_prob)  # [B, T-1]: swap (i, i+1)
    index = base.clone()
    index[:, :-1] += start.long()  # i takes i+1
    index[:, 1:] -= start.long()  # i+1 takes i
    return index


def _dev(generator: torch.Generator | None, like: torch.Tensor) -> torch.device:
    return like.device if generator is None else generator.device


def noise_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, *, delete_prob: float = 0.0,
                 replace_prob: float = 0.0, mask_prob: float = 0.0, swap_prob: float = 0.0,
                 mask_token_id: int | None = None, random_token_ids: torch.Tensor | None = None,
                 pad_token_id: int = 0, special_mask: torch.Tensor | None = None,
                 special_ids: Sequence[int] | torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(noised input_ids [B, T], attention_mask [B, T]) from right-padded input_ids/attention_mask [B, T].

    Every non-special token draws one u ~ U(0, 1): u < delete_prob deletes it; the next replace_prob of the range
    replaces it with an id drawn uniformly from random_token_ids [V'] (e.g. every non-special id); the next
    mask_prob replaces it with mask_token_id. Then neighbouring pairs of non-special tokens swap with probability
    swap_prob (pairs aligned at a random offset per row, so they never overlap: _adjacent_swap_index).
    Random draws, in this order: u [B, T]; replacement picks [B, T] (if replace_prob > 0); swap offset [B, 1]
    and swap draws [B, T-1] (if swap_prob > 0 and T > 1). Deleted tokens close up to the left and the freed tail becomes pad_token_id with
    attention 0, so the output stays right-padded with the same T. A row whose tokens are all deletable can end
    up empty; keep a special token such as [CLS] in every row.
    """
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and attention_mask must both be [B, T]; got {tuple(input_ids.shape)} and "
                         f"{tuple(attention_mask.shape)}")
    probs = {"delete_prob": delete_prob, "replace_prob": replace_prob, "mask_prob": mask_prob,
             "swap_prob": swap_prob}
    for name, p in probs.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {p}")
    if delete_prob + replace_prob + mask_prob > 1.0 + 1e-9:
        raise ValueError(f"delete_prob + replace_prob + mask_prob must be <= 1; got "
                         f"{delete_prob + replace_prob + mask_prob}")
    if mask_prob > 0 and mask_token_id is None:
        raise ValueError("mask_prob > 0 needs mask_token_id")
    if replace_prob > 0 and (random_token_ids is None or random_token_ids.dim() != 1 or random_token_ids.numel() == 0):
        raise ValueError("replace_prob > 0 needs random_token_ids, a non-empty 1-D tensor of vocabulary ids")
    att = attention_mask.bool()
    if delete_prob > 0 and bool((att[:, 1:] & ~att[:, :-1]).any()):
        raise ValueError("deletion needs right-padded rows (attention_mask 1...1 0...0); got a 0 before a 1")

    device = input_ids.device
    b, t = input_ids.shape
    editable = ~_protected(input_ids, attention_mask, special_mask, special_ids)  # [B, T]
    u = torch.rand((b, t), generator=generator, device=_dev(generator, input_ids)).to(device)  # [B, T]
    delete = editable & (u < delete_prob)
    replace = editable & (u >= delete_prob) & (u < delete_prob + replace_prob)
    to_mask = editable & (u >= delete_prob + replace_prob) & (u < delete_prob + replace_prob + mask_prob)

    ids = input_ids
    if replace_prob > 0:
        pick = torch.randint(random_token_ids.numel(), (b, t), generator=generator,
                             device=_dev(generator, input_ids)).to(device)
        ids = torch.where(replace, random_token_ids.to(device=device, dtype=ids.dtype)[pick], ids)
    if mask_prob > 0:
        ids = torch.where(to_mask, torch.full_like(ids, mask_token_id), ids)

    swap = _adjacent_swap_index(editable, swap_prob, generator)  # [B, T]
    ids, delete = ids.gather(1, swap), delete.gather(1, swap)  # a deleted token stays deleted wherever it moved

    keep = att & ~delete  # [B, T]
    if not bool(delete.any()):
        return ids, attention_mask.clone()
    target = torch.where(keep, keep.long().cumsum(1) - 1, torch.full_like(ids, t))  # [B, T]; t = discard column
    out = torch.full((b, t + 1), pad_token_id, dtype=ids.dtype, device=device)
    out.scatter_(1, target, ids)  # kept tokens close up to the left in their original order
    lengths = keep.sum(1, keepdim=True)  # [B, 1]
    new_mask = (torch.arange(t, device=device)[None, :] < lengths).to(attention_mask.dtype)  # [B, T]
    return out[:, :t], new_mask
