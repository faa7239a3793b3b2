"""Perplexity: exp(total token NLL / number of predicted tokens) of a causal or masked LM over a dataset."""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


def token_nll(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL, number of predicted tokens) of one batch; logits [B, T, V].

    With `labels` (masked LM) the predicted tokens are the labelled positions; otherwise (causal LM)
    token t+1 is predicted from positions <= t and padding (attention_mask == 0) is skipped.
    """
    if "labels" in batch:
        targets, scores = batch["labels"], logits  # [B, T]
    else:
        targets, scores = batch["input_ids"][:, 1:].clone(), logits[:, :-1]  # [B, T-1]
        if "attention_mask" in batch:
            targets[batch["attention_mask"][:, 1:] == 0] = -100
    nll = F.cross_entropy(scores.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="sum")
    return nll, (targets != -100).sum()


@torch.no_grad()
def perplexity(model: torch.nn.Module, dataset: Any, collate_fn: Callable[..., dict[str, torch.Tensor]],
               batch_size: int = 32, device: str | torch.device | None = None, progress: bool = True,
               seed: int = 0) -> dict[str, float]:
    """{"perplexity", "nll" (mean per token), "tokens"}: every token weighs the same, whatever its batch.

    `model(**batch)` must return `.logits` [B, T, V] (a multissl LM, or any HF causal LM given
    causal batches). Collators that draw random masks get a generator seeded with `seed`. For masked
    batches (with `labels`) the result adds "masked_token_accuracy": argmax hits / masked tokens.
    Only the token logits are scored, so a BERT trained with next-sentence prediction gets its MLM
    perplexity: the NSP term of its loss never enters.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:
        raise ValueError("cannot compute perplexity on an empty dataset")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    try:
        takes_generator = "generator" in inspect.signature(collate_fn).parameters
    except (TypeError, ValueError):
        takes_generator = False
    total, count, hits, masked = torch.zeros((), dtype=torch.float64), 0, 0, False
    try:
        for start in tqdm(range(0, len(dataset), batch_size), desc="perplexity", disable=not progress):
            columns = dataset[start : start + batch_size]
            rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
            batch = collate_fn(rows, generator=generator) if takes_generator else collate_fn(rows)
            batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            # The whole batch goes in: an NSP-trained bert_mlm requires next_sentence_label in forward even
            # though only its token logits are scored here.
            logits = model(**batch).logits  # [B, T, V]
            nll, n = token_nll(logits, batch)
            total += nll.double().cpu()
            count += int(n)
            if "labels" in batch:
                masked = True
                labels = batch["labels"]  # [B, T], -100 where nothing is predicted
                hits += int(((logits.argmax(-1) == labels) & (labels != -100)).sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no predicted tokens in the dataset (all texts empty or fully masked out)")
    mean = float(total) / count
    result = {"perplexity": math.exp(mean), "nll": mean, "tokens": count}
    if masked:
        result["masked_token_accuracy"] = hits / count
    return result


def evaluate_perplexity(model_dir: str, dataset_name: str, split: str = "test", batch_size: int = 32,
                        block_size: int | None = None, device: str | None = None, progress: bool = True,
                        seed: int = 0, dataset_args: dict | None = None) -> dict[str, Any]:
    """Perplexity of a saved multissl LM (bert_mlm / gpt_lm run folder) or a plain HF causal-LM folder."""
    import json
    from pathlib import Path

    from multissl.data import load_dataset_by_name

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model folder {str(path)!r} has no config.json")
    dataset = load_dataset_by_name(dataset_name, split=split, **(dataset_args or {}))
    model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
    if model_type.startswith("multissl_"):
        from multissl.evaluation.protocols import load_model, method_spec_for

        model, _ = load_model(str(path))
        spec = method_spec_for(model)
        if block_size is not None:
            model.config.block_size = block_size
        collate = spec.model_class.make_collator(model.config, train=True)
        method = spec.name
    else:
        from transformers import AutoModelForCausalLM

        from multissl.modalities.text.collators import CausalLMCollator

        model = AutoModelForCausalLM.from_pretrained(path)
        collate = CausalLMCollator(str(path.resolve()), block_size or 128)
        method = "causal_lm"
    if device is not None:
        model.to(device)
    result = perplexity(model, dataset, collate, batch_size=batch_size, device=device, progress=progress, seed=seed)
    return {"protocol": "perplexity", "model": str(path), "method": method, "dataset": dataset_name, "split": split,
            **result}
