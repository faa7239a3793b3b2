"""Linear probe: separable data is learned, shuffled labels stay near chance, train-only scaling."""
import pytest
import torch

from multissl.evaluation import linear_probe_accuracy
from multissl.evaluation.linear_probe import tuned_linear_probe


def blobs(n_per_class, num_classes, dim, generator, offset=4.0):
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    centres = torch.randn(num_classes, dim, generator=generator) * offset
    return centres[labels] + torch.randn(len(labels), dim, generator=generator), labels


def test_separable_data_beats_chance():
    g = torch.Generator().manual_seed(0)
    x, y = blobs(60, 4, 10, g)
    xt, yt = x[::3] + 0.1 * torch.randn(x[::3].shape, generator=g), y[::3]
    out = linear_probe_accuracy(x, y, xt, yt)
    assert out["accuracy"] > 0.95 and out["train_accuracy"] > 0.95
    assert set(out) >= {"accuracy", "train_accuracy", "C", "max_iter"}


def test_shuffled_labels_are_near_chance():
    g = torch.Generator().manual_seed(1)
    x_all = torch.randn(800, 10, generator=g)
    y_all = (x_all @ torch.randn(10, 4, generator=g)).argmax(1)  # a linear rule: learnable by the probe
    x, y, xt, yt = x_all[:400], y_all[:400], x_all[400:], y_all[400:]
    assert linear_probe_accuracy(x, y, xt, yt)["accuracy"] > 0.85
    y_shuffled = y[torch.randperm(len(y), generator=g)]  # breaks the link between features and labels
    chance = torch.bincount(yt).max().item() / len(yt)
    acc = linear_probe_accuracy(x, y_shuffled, xt, yt)["accuracy"]
    assert abs(acc - 0.25) < 0.1 and acc < chance + 0.05


def test_standardisation_makes_scale_irrelevant():
    g = torch.Generator().manual_seed(2)
    x_all, y_all = blobs(60, 3, 6, g, offset=1.0)  # overlapping, so accuracy is not trivially 1
    x, y, xt, yt = x_all[::2], y_all[::2], x_all[1::2], y_all[1::2]
    a = linear_probe_accuracy(x, y, xt, yt)["accuracy"]
    b = linear_probe_accuracy(x * 1000 + 5, y, xt * 1000 + 5, yt)["accuracy"]
    assert a == pytest.approx(b)


def test_single_class_is_a_clear_error():
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe_accuracy(torch.randn(5, 2), torch.zeros(5), torch.randn(2, 2), torch.zeros(2))


def test_tuned_probe_picks_the_best_validation_C_and_reads_test_once(monkeypatch):
    """C is chosen by validation accuracy alone; the test split is scored with that C only."""
    import multissl.evaluation.linear_probe as lp

    g = torch.Generator().manual_seed(0)
    xtr, xva, xte = (torch.randn(n, 6, generator=g) for n in (60, 30, 30))
    ytr, yva, yte = ((x[:, 0] > 0).long() for x in (xtr, xva, xte))
    calls = []
    real = lp.linear_probe_accuracy

    def spy(a, b, c, d, C=1.0, max_iter=1000):
        calls.append((c.data_ptr(), C))
        return real(a, b, c, d, C=C, max_iter=max_iter)

    monkeypatch.setattr(lp, "linear_probe_accuracy", spy)
    out = lp.tuned_linear_probe(xtr, ytr, xva, yva, xte, yte, grid=(0.001, 1.0, 10.0))
    expected = {c: real(xtr, ytr, xva, yva, C=c)["accuracy"] for c in (0.001, 1.0, 10.0)}
    assert out["validation_by_C"] == expected
    assert out["validation_accuracy"] == max(expected.values())
    assert expected[out["C"]] == max(expected.values())
    test_calls = [c for ptr, c in calls if ptr == xte.data_ptr()]
    assert test_calls == [out["C"]]
    assert out["accuracy"] == real(xtr, ytr, xte, yte, C=out["C"])["accuracy"]


def test_tuned_probe_rejects_bad_grid():
    x, y = torch.randn(8, 2), torch.tensor([0, 1] * 4)
    with pytest.raises(ValueError, match="grid"):
        tuned_linear_probe(x, y, x, y, grid=(0.0,))
