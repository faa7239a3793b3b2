"""Retrieval recall@k of paired query/gallery embeddings as a local `evaluate` module (wraps evaluation.retrieval)."""
from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate

from multissl.evaluation.evaluate_modules import as_matrix
from multissl.evaluation.retrieval import retrieval_metrics

_DESCRIPTION = """Retrieval recall@k for paired embeddings: query i's true match is gallery item i (an image and its
caption, two views of one clip). Recall@k is the fraction of queries whose match ranks in the top k of all gallery items
by cosine similarity (ties count in the query's favour); median and mean rank are reported too. One direction only:
swap the inputs for the other."""

_KWARGS_DESCRIPTION = """
Args:
    query_embeddings: query rows [N, D] (streamed).
    gallery_embeddings: gallery rows [N, D]; row i is query i's match (streamed alongside).
    k: an int or a sequence of ints; default (1, 5, 10).
    normalize: score by cosine similarity (True, default) or by the raw dot product.
Returns:
    recall@k for each k, median_rank, mean_rank.
Example:
    >>> rr = evaluate.load(module_path("retrieval_recall"))
    >>> rr.compute(query_embeddings=[[1.0, 0.0], [0.0, 1.0]], gallery_embeddings=[[1.0, 0.1], [0.1, 1.0]], k=1)
    {'recall@1': 1.0, 'median_rank': 1.0, 'mean_rank': 1.0}
"""

_CITATION = """@inproceedings{radford2021learning,
  title={Learning Transferable Visual Models From Natural Language Supervision},
  author={Radford, Alec and Kim, Jong Wook and Hallacy, Chris and others},
  booktitle={ICML}, year={2021}
}"""


class RetrievalRecall(evaluate.Metric):
    """evaluate.Metric over query/gallery pairs; the math is multissl.evaluation.retrieval.retrieval_metrics."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "query_embeddings": datasets.Sequence(datasets.Value("float32")),
                "gallery_embeddings": datasets.Sequence(datasets.Value("float32")),
            }),
        )

    def _compute(self, query_embeddings, gallery_embeddings, k: int | Sequence[int] = (1, 5, 10),
                 normalize: bool = True) -> dict[str, float]:
        ks = [k] if isinstance(k, int) else list(k)
        return retrieval_metrics(as_matrix(query_embeddings, "query_embeddings"),
                                 as_matrix(gallery_embeddings, "gallery_embeddings"), ks=ks, normalize=normalize)
