"""Weighted k-NN against a direct per-row loop, a separable case and k clipping."""
import math

import pytest
import torch

from multissl.evaluation import knn_accuracy, knn_predict


def knn_loop(train, labels, test, num_classes, k, t):
    """Reference: one test row at a time, plain Python sums."""
    preds = []
    for x in test:
        sims = [float(torch.dot(x / x.norm(), y / y.norm())) for y in train]
        order = sorted(range(len(sims)), key=lambda j: -sims[j])[: min(k, len(sims))]
        votes = [0.0] * num_classes
        for j in order:
            votes[int(labels[j])] += math.exp(sims[j] / t)
        preds.append(max(range(num_classes), key=lambda c: (votes[c], -c)))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.07), (20, 1.0), (60, 0.5)])
def test_matches_direct_loop(k, t):
    g = torch.Generator().manual_seed(k)
    train, test = torch.randn(60, 8, generator=g), torch.randn(25, 8, generator=g)
    labels = torch.randint(0, 4, (60,), generator=g)
    got = knn_predict(train, labels, test, num_classes=4, k=k, temperature=t, chunk_size=7)  # several chunks
    assert torch.equal(got, knn_loop(train, labels, test, 4, k, t))


def test_separable_clusters_are_perfect():
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 16) * 10
    labels = torch.arange(3).repeat_interleave(30)
    train = centres[labels] + torch.randn(90, 16, generator=g)
    test_labels = torch.arange(3).repeat(10)
    test = centres[test_labels] + torch.randn(30, 16, generator=g)
    assert knn_accuracy(train, labels, test, test_labels, k=10) == 1.0
    shuffled = labels[torch.randperm(90, generator=g)]
    assert knn_accuracy(train, shuffled, test, test_labels, k=10) < 0.7


def test_k_is_clipped_to_train_size():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    labels = torch.tensor([0, 1, 1])
    test = torch.tensor([[1.0, 0.05]])
    # k=200 > N=3: every train row votes. Class 1 gets e^(s1/T)+e^(s2/T) which beats class 0 at T=10.
    assert knn_predict(train, labels, test, 2, k=200, temperature=10.0).tolist() == [1]
    assert knn_predict(train, labels, test, 2, k=200, temperature=10.0).tolist() == knn_loop(train, labels, test, 2, 3, 10.0).tolist()
    assert knn_predict(train, labels, test, 2, k=1, temperature=10.0).tolist() == [0]


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="same D"):
        knn_predict(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 5), 2)
    with pytest.raises(ValueError, match=r"num_classes=2"):
        knn_predict(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.randn(2, 3), 2)
    with pytest.raises(ValueError, match="temperature"):
        knn_predict(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), 2, temperature=0)


def test_matches_lightly_reference():
    lightly_knn = pytest.importorskip("lightly.utils.benchmarking.knn").knn_predict
    g = torch.Generator().manual_seed(3)
    train, test = torch.randn(300, 16, generator=g), torch.randn(50, 16, generator=g)
    labels = torch.randint(0, 5, (300,), generator=g)
    ours = knn_predict(train, labels, test, 5, k=20, temperature=0.1)
    bank = torch.nn.functional.normalize(train, dim=1).T  # lightly wants a normalised [D, N] bank
    theirs = lightly_knn(torch.nn.functional.normalize(test, dim=1), bank, labels, 5, knn_k=20, knn_t=0.1)[:, 0]
    assert torch.equal(ours, theirs)
