"""Leave-one-out Recall@k and MAP@R against per-query loops and pytorch-metric-learning's AccuracyCalculator."""
import pytest
import torch

from multissl.evaluation.metric_retrieval import mean_average_precision_at_r, recall_at_k


def _ranked_others(x, i, normalize):
    """Indices of every sample but i, nearest first (cosine or euclidean), by a plain sort of a Python list."""
    def score(j):
        if normalize:
            return float(x[i] @ x[j] / (x[i].norm() * x[j].norm()))
        return -float((x[i] - x[j]).norm())
    return sorted((j for j in range(len(x)) if j != i), key=score, reverse=True)


def _direct(x, y, k, normalize):
    """(recall@k, MAP@R) with one query at a time; queries without another same-label sample skipped."""
    hits, aps, n = 0, 0.0, 0
    for i in range(len(x)):
        r = sum(1 for j in range(len(x)) if j != i and y[j] == y[i])
        if r == 0:
            continue
        n += 1
        ranked = _ranked_others(x, i, normalize)
        hits += any(y[j] == y[i] for j in ranked[:k])
        correct, ap = 0, 0.0
        for pos, j in enumerate(ranked[:r], start=1):
            if y[j] == y[i]:
                correct += 1
                ap += correct / pos
        aps += ap / r
    return hits / n, aps / n


def _data(n=40, d=4, classes=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    y[0] = 100  # a lone query: excluded from both means
    return torch.randn(n, d, generator=g, dtype=torch.float64) + 0.8 * torch.randn(101, d, generator=g)[y], y


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_metrics_equal_per_query_loops(normalize, chunk_size):
    x, y = _data()
    for k in (1, 3):
        recall, map_r = _direct(x, y.tolist(), k, normalize)
        assert recall_at_k(x, y, k, normalize, chunk_size) == pytest.approx(recall, abs=1e-12)
        assert mean_average_precision_at_r(x, y, normalize, chunk_size) == pytest.approx(map_r, abs=1e-12)
    assert 0 < map_r < recall_at_k(x, y, 1, normalize) < 1  # not a degenerate case


def test_analytic_values():
    # two tight clusters far apart: perfect retrieval
    x = torch.tensor([[0.0, 1.0], [0.1, 1.0], [0.3, 1.0], [1.0, 0.0], [1.0, 0.1]])
    y = torch.tensor([0, 0, 0, 1, 1])
    assert recall_at_k(x, y, 1) == 1.0 and mean_average_precision_at_r(x, y) == 1.0
    # swap the labels of points 1 and 3 (cosine order from 0: 1, 2, 4, 3; from 2: 1, 0; from 3: 4, 2)
    y_bad = torch.tensor([0, 1, 0, 0, 1])
    # 0 (R=2): 1 wrong, 2 right -> (1/2)/2; 2 likewise (1, 0); 3 (R=2): 4 wrong, 2 right; 1 and 4 (R=1): wrong first
    ap = [0.25, 0.0, 0.25, 0.25, 0.0]
    assert mean_average_precision_at_r(x, y_bad) == pytest.approx(sum(ap) / 5)
    assert recall_at_k(x, y_bad, 1) == 0.0 and recall_at_k(x, y_bad, 2) == pytest.approx(3 / 5)


@pytest.mark.parametrize("normalize", [True, False])
def test_metrics_match_pytorch_metric_learning(normalize):
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    x, y = _data(n=80, seed=1)
    x = x.float()
    # CustomKNN: exact k-NN in torch, so no faiss is needed; k="max_bin_count" is what MAP@R requires
    distance = CosineSimilarity() if normalize else LpDistance(normalize_embeddings=False)
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                              device=torch.device("cpu"), knn_func=CustomKNN(distance))
    ref = calc.get_accuracy(x, y)
    assert recall_at_k(x, y, 1, normalize) == pytest.approx(ref["precision_at_1"], abs=1e-9)
    assert mean_average_precision_at_r(x, y, normalize, chunk_size=16) == pytest.approx(
        ref["mean_average_precision_at_r"], abs=1e-9)


@pytest.mark.parametrize("call,match", [
    (lambda: recall_at_k(torch.randn(5), torch.zeros(5, dtype=torch.long)), r"embeddings must have shape \[N, D\]"),
    (lambda: recall_at_k(torch.randn(5, 2), torch.zeros(4, dtype=torch.long)), r"labels must be an integer tensor of shape \[5\]"),
    (lambda: mean_average_precision_at_r(torch.randn(5, 2), torch.zeros(5)), r"labels must be an integer tensor"),
    (lambda: recall_at_k(torch.randn(5, 2), torch.zeros(5, dtype=torch.long), k=5), r"k must be an int in \[1, N-1\] = \[1, 4\]"),
    (lambda: recall_at_k(torch.randn(1, 2), torch.zeros(1, dtype=torch.long)), r"at least 2 embeddings"),
    (lambda: mean_average_precision_at_r(torch.randn(4, 2), torch.arange(4)), r"no class has two samples"),
    (lambda: recall_at_k(torch.randn(4, 2), torch.arange(4)), r"no class has two samples"),
    (lambda: recall_at_k(torch.randn(4, 2), torch.zeros(4, dtype=torch.long), chunk_size=0), r"chunk_size must be an int >= 1"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
