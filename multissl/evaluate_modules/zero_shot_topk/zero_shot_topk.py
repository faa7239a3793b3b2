"""Zero-shot top-k accuracy from image and class-text embeddings as a local `evaluate` module (wraps zero_shot)."""
from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate
import torch.nn.functional as F

from multissl.evaluation.evaluate_modules import as_matrix, as_vector
from multissl.evaluation.zero_shot import topk_accuracy

_DESCRIPTION = """Zero-shot classification accuracy of a dual encoder (CLIP): each image embedding is scored against
every class's text embedding by cosine similarity; top-k accuracy is the fraction of images whose label is among the
k best-scoring classes. Image rows stream in through add_batch; the class embeddings are given to compute."""

_KWARGS_DESCRIPTION = """
Args:
    image_embeddings: image rows [N, P] (the streamed input).
    labels: class ids [N] in [0, C).
    class_embeddings: one text embedding per class [C, P] (e.g. multissl.evaluation.zero_shot.class_embeddings),
        passed to compute.
    k: an int or a sequence of ints; default (1, 5). Any k > C is skipped.
Returns:
    top{k}: top-k accuracy for each k.
Example:
    >>> zs = evaluate.load(module_path("zero_shot_topk"))
    >>> zs.compute(image_embeddings=[[1.0, 0.0]], labels=[0], class_embeddings=[[1.0, 0.0], [0.0, 1.0]], k=1)
    {'top1': 1.0}
"""

_CITATION = """@inproceedings{radford2021learning,
  title={Learning Transferable Visual Models From Natural Language Supervision},
  author={Radford, Alec and Kim, Jong Wook and Hallacy, Chris and others},
  booktitle={ICML}, year={2021}
}"""


class ZeroShotTopk(evaluate.Metric):
    """evaluate.Metric over image rows; the math is multissl.evaluation.zero_shot.topk_accuracy."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"image_embeddings": datasets.Sequence(datasets.Value("float32")), "labels": datasets.Value("int64")}
            ),
        )

    def _compute(self, image_embeddings, labels, class_embeddings=None, k: int | Sequence[int] = (1, 5)) -> dict[str, float]:
        if class_embeddings is None:
            raise ValueError("class_embeddings [C, P] must be passed to compute()")
        images = as_matrix(image_embeddings, "image_embeddings")  # [N, P]
        classes = as_matrix(class_embeddings, "class_embeddings")  # [C, P]
        if images.shape[1] != classes.shape[1]:
            raise ValueError(f"image_embeddings [N, P] and class_embeddings [C, P] need the same P, got {images.shape[1]} and {classes.shape[1]}")
        # cosine logits, as zero_shot_classify scores (its positive logit scale never changes a ranking)
        logits = F.normalize(images, dim=1) @ F.normalize(classes, dim=1).T  # [N, C]
        ks = [k] if isinstance(k, int) else list(k)
        return topk_accuracy(logits, as_vector(labels, "labels"), ks)
