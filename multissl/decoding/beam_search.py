"""Beam search over a causal LM with a KV cache, vectorised over batch and beams.

Semantics follow the pinned transformers (5.24) so outputs are token-identical to `model.generate`:
* each step keeps the top 2K (K = num_beams, times 1 + number of eos ids) candidates of all K x V
  continuations; the best K that did not stop continue, candidates among the first K that stopped
  (eos or max length) become finished hypotheses scored sum(log p) / generated_length ** length_penalty;
* a batch row stops improving when its best running beam (scored at the current length, or at
  max length for early_stopping="never" with length_penalty > 0) cannot beat its worst finished one;
  early_stopping=True stops as soon as K hypotheses are finished.
"""
from __future__ import annotations

import torch

from multissl.decoding.cache import CausalLMStepper, prompt_positions, reorder_cache_
from multissl.decoding.logits_processors import ban_repeated_ngrams_

NEG = -1.0e9  # "impossible" score for beams that must not be picked (finite, as in transformers)


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t [B, M, ...] indexed along dim 1 by idx [B, J] -> [B, J, ...]."""
    while idx.dim() < t.dim():
        idx = idx.unsqueeze(-1)
    return torch.take_along_dim(t, idx, dim=1)


@torch.no_grad()
def beam_search(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    eos_token_id: torch.Tensor | None = None,
    fill_token_id: int = -1,
    no_repeat_ngram_size: int = 0,
) -> torch.Tensor:
    """Prompt [B, T] (left-padded, mask [B, T]) -> best hypotheses [B * num_return_sequences, T + t]."""
    b, t = input_ids.shape
    k, device = num_beams, input_ids.device
    n = b * k
    max_len = t + max_new_tokens
    n_eos = 0 if eos_token_id is None else eos_token_id.numel()
    width = max(2, 1 + n_eos) * k  # candidates kept per row: enough that K of them never stopped

    step = CausalLMStepper(model)
    ids = input_ids.repeat_interleave(k, dim=0)  # [N, T]
    beam_mask = attention_mask.repeat_interleave(k, dim=0)
    mask = None if bool(beam_mask.all()) else beam_mask
    positions = prompt_positions(beam_mask)  # [N, T]
    out = step(ids, mask, positions)

    running = torch.full((b, k, max_len), fill_token_id, dtype=torch.long, device=device)  # [B, K, L]
    running[:, :, :t] = input_ids[:, None, :]
    running_scores = torch.zeros(b, k, device=device)
    running_scores[:, 1:] = NEG  # all beams start identical: only beam 0 may expand at the first step
    finished = running.clone()  # [B, K, L] best finished hypotheses, sorted by score
    finished_scores = torch.full((b, k), NEG, device=device)
    finished_len = torch.zeros(b, k, dtype=torch.long, device=device)  # generated tokens per hypothesis
    is_finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    improvable = torch.ones(b, 1, dtype=torch.bool, device=device)
    batch_offset = torch.arange(b, device=device)[:, None] * k  # [B, 1]
    head = torch.zeros(width, dtype=torch.bool, device=device)
    head[:k] = True  # only the best K candidates may become finished hypotheses

    cur = t
    while True:
        cache = out.cache
        log_probs = torch.log_softmax(out.logits, dim=-1)  # [N, V]: the one [beams, vocab] tensor of this step
        del out  # free the logits before the next forward
        if no_repeat_ngram_size > 0:
            ban_repeated_ngrams_(log_probs, running.view(n, max_len)[:, :cur], no_repeat_ngram_size)
        vocab = log_probs.shape[-1]
        log_probs += running_scores.view(n, 1)  # in place: accumulated scores
        cand_scores, cand_idx = torch.topk(log_probs.view(b, k * vocab), width, dim=1)  # [B, W]
        del log_probs
        cand_beam, cand_token = cand_idx // vocab, cand_idx % vocab  # [B, W]
        stops = torch.zeros_like(cand_token, dtype=torch.bool) if cur + 1 < max_len else torch.ones_like(cand_token, dtype=torch.bool)
        if eos_token_id is not None:
            stops |= torch.isin(cand_token, eos_token_id)

        # Finished hypotheses: merge new ones into the sorted top K (skipped on the many steps with none).
        can_finish = stops & head & improvable & ~(is_finished.all(1, keepdim=True) & (early_stopping is True))
        if bool(can_finish.any()):
            new_scores = (cand_scores / float(cur + 1 - t) ** length_penalty).masked_fill(~can_finish, -float("inf"))
            merged = torch.cat([finished_scores, new_scores], dim=1)  # [B, K + W]
            finished_scores, win = torch.topk(merged, k, dim=1)  # [B, K]
            from_old = win < k
            j = (win - k).clamp(min=0)  # index among the candidates
            new_seq = _gather(running, _gather(cand_beam, j))
            new_seq[:, :, cur] = _gather(cand_token, j)
            finished = torch.where(from_old[..., None], _gather(finished, win.clamp(max=k - 1)), new_seq)
            finished_len = torch.where(from_old, _gather(finished_len, win.clamp(max=k - 1)), cur + 1 - t)
            is_finished = torch.where(from_old, _gather(is_finished, win.clamp(max=k - 1)), _gather(can_finish, j))

        # Running beams: the best K candidates that did not stop.
        run_scores, pick = torch.topk(cand_scores + stops.float() * NEG, k, dim=1)  # [B, K]
        src_beam = _gather(cand_beam, pick)  # [B, K] which old beam each new beam extends
        running = _gather(running, src_beam)
        running[:, :, cur] = _gather(cand_token, pick)
        running_scores = run_scores
        cur += 1

        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_len - t
        else:
            best_len = cur - t
        best_running = running_scores[:, :1] / float(best_len) ** length_penalty  # [B, 1]
        worst_finished = torch.where(is_finished, finished_scores.min(1, keepdim=True).values, NEG)  # [B, K]
        improvable &= (best_running > worst_finished).any(1, keepdim=True)
        done = (not bool(improvable.any())) or (early_stopping is True and bool(is_finished.all())) or bool(stops.all())
        if done:
            break
        mask = _grow(mask)
        positions = positions[:, -1:] + 1  # [N, 1]: every beam of a row shares the row's positions
        cache = reorder_cache_(cache, (src_beam + batch_offset).view(n))  # row i now continues beam src_beam[i]
        out = step(running[:, :, cur - 1].reshape(n, 1), mask, positions, cache)

    r = num_return_sequences
    length = t + int(finished_len[:, :r].max())
    return finished[:, :r, :length].reshape(b * r, length)


def _grow(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Append a column of ones (the token just generated) to a padding mask [N, L] -> [N, L + 1]."""
    return None if mask is None else torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
