"""Linear-probe accuracy of frozen features as a local `evaluate` module (wraps multissl.evaluation.linear_probe)."""
from __future__ import annotations

import datasets
import evaluate

from multissl.evaluation.defaults import PROTOCOL_DEFAULTS
from multissl.evaluation.evaluate_modules import as_matrix, as_vector
from multissl.evaluation.linear_probe import linear_probe_accuracy

_PROBE = PROTOCOL_DEFAULTS["linear-probe"]  # one table of defaults with `multissl eval` and the recipes

_DESCRIPTION = """Linear probe: multinomial logistic regression (scikit-learn, L-BFGS) fitted on standardised frozen
train features and scored on the test rows. Test rows stream in through add_batch; the train split is given to compute."""

_KWARGS_DESCRIPTION = """
Args:
    test_features: test rows [M, D] (the streamed input).
    test_labels: class ids [M] of the test rows.
    train_features: train rows [N, D], passed to compute.
    train_labels: class ids [N] (at least two classes), passed to compute.
    C: inverse L2 regularisation strength; default 1.0 (`multissl eval linear-probe`'s, from PROTOCOL_DEFAULTS).
    max_iter: L-BFGS iteration limit; default 1000 (the same table).
Returns:
    accuracy, train_accuracy, C, max_iter, n_iter (iterations the solver used).
Example:
    >>> probe = evaluate.load(module_path("linear_probe"))
    >>> probe.compute(test_features=test_x, test_labels=test_y, train_features=train_x, train_labels=train_y)["accuracy"]
"""

_CITATION = """@inproceedings{zhang2016colorful,
  title={Colorful Image Colorization},
  author={Zhang, Richard and Isola, Phillip and Efros, Alexei A.},
  booktitle={ECCV}, year={2016}
}"""


class LinearProbe(evaluate.Metric):
    """evaluate.Metric over test rows; the math is multissl.evaluation.linear_probe.linear_probe_accuracy."""

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
                 C: float = _PROBE["C"], max_iter: int = _PROBE["max_iter"]) -> dict[str, float]:
        if train_features is None or train_labels is None:
            raise ValueError("train_features [N, D] and train_labels [N] must be passed to compute()")
        return linear_probe_accuracy(
            as_matrix(train_features, "train_features"), as_vector(train_labels, "train_labels"),
            as_matrix(test_features, "test_features"), as_vector(test_labels, "test_labels"),
            C=C, max_iter=max_iter,
        )
