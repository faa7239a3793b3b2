"""Image->text and text->image retrieval of a dual encoder: recall@k and median rank (pair i matches pair i)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from multissl.evaluation.dual_encoder import encode_images, encode_texts
from multissl.evaluation.retrieval import retrieval_metrics
from multissl.modalities.image_text import pick_caption


def bidirectional_retrieval(image_emb: torch.Tensor, text_emb: torch.Tensor,
                            ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """{"image_to_text": {...}, "text_to_image": {...}} with recall@k, median_rank, mean_rank; inputs [N, P] paired by row.

    Ties (e.g. identical captions) count in the query's favour, as in retrieval.match_ranks.
    """
    return {"image_to_text": retrieval_metrics(image_emb, text_emb, ks),
            "text_to_image": retrieval_metrics(text_emb, image_emb, ks)}


def evaluate_retrieval(model: Any, dataset: Any, image_column: str = "image", caption_column: str = "caption",
                       ks: Sequence[int] = (1, 5, 10), batch_size: int = 256) -> dict[str, Any]:
    """Embed every (image, caption) row of a datasets.Dataset (first caption when a row has several) and score both directions."""
    for col in (image_column, caption_column):
        if col not in dataset.column_names:
            raise ValueError(f"dataset has no column {col!r}; columns: {', '.join(dataset.column_names)}")
    rows = dataset.select_columns([caption_column])
    captions = [pick_caption(r, i, caption_column, train=False, generator=None) for i, r in enumerate(rows)]
    images = dataset[image_column]
    result: dict[str, Any] = bidirectional_retrieval(encode_images(model, images, batch_size),
                                                     encode_texts(model, captions, batch_size), ks)
    result["n"] = len(captions)
    return result
