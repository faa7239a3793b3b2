"""Weighted k-NN accuracy of frozen features as a local `evaluate` module (wraps multissl.evaluation.knn)."""
from __future__ import annotations

import datasets
import evaluate

from multissl.evaluation.defaults import PROTOCOL_DEFAULTS
from multissl.evaluation.evaluate_modules import as_matrix, as_vector
from multissl.evaluation.knn import knn_accuracy

_KNN = PROTOCOL_DEFAULTS["knn"]  # one table of defaults with `multissl eval` and the recipes

_DESCRIPTION = """Top-1 accuracy of a weighted k-nearest-neighbour vote on frozen features (InstDisc; as used by DINO).
Each test row's k most cosine-similar train rows vote for their class with weight exp(similarity / temperature).
Test rows stream in through add_batch; the train bank (features + labels) is given to compute."""

_KWARGS_DESCRIPTION = """
Args:
    test_features: test rows [M, D] (one list of D floats per row; the streamed input).
    test_labels: class ids [M] of the test rows.
    train_features: the train bank [N, D] (array, tensor or list of rows), passed to compute.
    train_labels: class ids [N] of the train bank, passed to compute.
    k: number of neighbours (clipped to N); default 20 (`multissl eval knn`'s, from PROTOCOL_DEFAULTS).
    temperature: vote temperature (> 0); default 0.1 (the same table).
    num_classes: number of classes; default max label + 1.
Returns:
    accuracy: fraction of test rows whose predicted class equals their label.
Example:
    >>> knn = evaluate.load(module_path("knn_accuracy"))
    >>> knn.compute(test_features=[[1.0, 0.0]], test_labels=[0], train_features=[[1.0, 0.1], [0.0, 1.0]],
    ...             train_labels=[0, 1], k=1)
    {'accuracy': 1.0}
"""

_CITATION = """@inproceedings{wu2018unsupervised,
  title={Unsupervised Feature Learning via Non-Parametric Instance Discrimination},
  author={Wu, Zhirong and Xiong, Yuanjun and Yu, Stella X. and Lin, Dahua},
  booktitle={CVPR}, year={2018}
}"""


class KnnAccuracy(evaluate.Metric):
    """evaluate.Metric over test rows; the math is multissl.evaluation.knn.knn_accuracy."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"test_features": datasets.Sequence(datasets.Value("float32")), "test_labels": datasets.Value("int64")}
            ),
        )

    def _compute(self, test_features, test_labels, train_features=None, train_labels=None,
                 k: int = _KNN["k"], temperature: float = _KNN["temperature"], num_classes: int | None = None) -> dict[str, float]:
        if train_features is None or train_labels is None:
            raise ValueError("train_features [N, D] and train_labels [N] must be passed to compute()")
        accuracy = knn_accuracy(
            as_matrix(train_features, "train_features"), as_vector(train_labels, "train_labels"),
            as_matrix(test_features, "test_features"), as_vector(test_labels, "test_labels"),
            num_classes=num_classes, k=k, temperature=temperature,
        )
        return {"accuracy": accuracy}
