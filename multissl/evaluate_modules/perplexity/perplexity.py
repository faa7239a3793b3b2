"""Perplexity from token negative log-likelihoods as a local `evaluate` module (multissl.evaluation.perplexity's rule)."""
from __future__ import annotations

import math

import datasets
import evaluate
import torch

from multissl.evaluation.evaluate_modules import as_vector

_DESCRIPTION = """Perplexity = exp(total NLL / number of predicted tokens): every token weighs the same, whatever the
sequence or batch it came from (the rule of multissl.evaluation.perplexity.perplexity). The default config takes one
row per sequence or batch: its summed NLL (nats) and its token count (e.g. from multissl.evaluation.perplexity.token_nll).
The "per_token" config takes one NLL per predicted token."""

_KWARGS_DESCRIPTION = """
Args:
    nll: summed negative log-likelihood (natural log) of each row; with config "per_token", one token's NLL.
    tokens: number of predicted tokens behind each row's nll (default config only; > 0 in total).
Returns:
    perplexity: exp(sum(nll) / sum(tokens)); nll: the mean NLL per token; tokens: the token count.
Example:
    >>> ppl = evaluate.load(module_path("perplexity"))
    >>> ppl.compute(nll=[2.0, 4.0], tokens=[2, 4])["nll"]
    1.0
    >>> evaluate.load(module_path("perplexity"), "per_token").compute(nll=[0.5, 1.5])["nll"]
    1.0
"""

_CITATION = """@article{jelinek1977perplexity,
  title={Perplexity -- a measure of the difficulty of speech recognition tasks},
  author={Jelinek, Fred and Mercer, Robert L. and Bahl, Lalit R. and Baker, James K.},
  journal={The Journal of the Acoustical Society of America}, volume={62}, number={S1}, year={1977}
}"""

CONFIGS = ("default", "per_token")


class Perplexity(evaluate.Metric):
    """evaluate.Metric over NLL rows; config "default" (nll, tokens) or "per_token" (nll)."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in CONFIGS:
            raise ValueError(f"config_name must be one of {list(CONFIGS)}, got {self.config_name!r}")
        features = {"nll": datasets.Value("float64")}
        if self.config_name == "default":
            features["tokens"] = datasets.Value("int64")
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
                                   features=datasets.Features(features))

    def _compute(self, nll, tokens=None) -> dict[str, float]:
        nll_rows = as_vector(nll, "nll", torch.float64)  # [R]
        count = int(as_vector(tokens, "tokens").sum()) if tokens is not None else nll_rows.shape[0]
        if tokens is not None and bool((as_vector(tokens, "tokens") < 0).any()):
            raise ValueError("tokens must be >= 0 for every row")
        if count <= 0:
            raise ValueError("perplexity needs at least one predicted token (tokens sum to 0 or no rows were added)")
        # float64 sum, then one division, as perplexity() does
        mean = float(nll_rows.sum()) / count
        return {"perplexity": math.exp(mean), "nll": mean, "tokens": count}
