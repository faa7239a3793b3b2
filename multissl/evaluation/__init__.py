"""Frozen-feature evaluation: feature extraction, k-NN, linear probe, retrieval recall@k, metric-learning R@k / MAP@R."""
from multissl.evaluation.features import extract_features
from multissl.evaluation.knn import knn_accuracy, knn_predict
from multissl.evaluation.linear_probe import linear_probe_accuracy
from multissl.evaluation.metric_retrieval import mean_average_precision_at_r, recall_at_k
from multissl.evaluation.protocols import PROTOCOLS, evaluate_model
from multissl.evaluation.retrieval import match_ranks, retrieval_metrics

__all__ = [
    "PROTOCOLS",
    "evaluate_model",
    "extract_features",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
    "match_ranks",
    "mean_average_precision_at_r",
    "recall_at_k",
    "retrieval_metrics",
]
