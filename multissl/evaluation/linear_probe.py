"""Linear probe: multinomial logistic regression on frozen, standardised features (scikit-learn, L-BFGS)."""
from __future__ import annotations

import torch


def linear_probe_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    C: float = 1.0,
    max_iter: int = 1000,
) -> dict[str, float]:
    """Fit on train_feats [N, D] / train_labels [N], score test_feats [M, D]: {"accuracy", "train_accuracy", ...}.

    Features are standardised with the train split's mean/std (the test split never leaks into the
    scaler). scikit-learn's L-BFGS solver is deterministic, so the result needs no seed.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if train_feats.ndim != 2 or test_feats.ndim != 2 or train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            f"expected train_feats [N, D] and test_feats [M, D] with the same D, "
            f"got {tuple(train_feats.shape)} and {tuple(test_feats.shape)}"
        )
    if train_labels.shape != (train_feats.shape[0],) or test_labels.shape != (test_feats.shape[0],):
        raise ValueError("expected train_labels [N] and test_labels [M] matching the feature rows")
    y_train = train_labels.long().cpu().numpy()
    if len(set(y_train.tolist())) < 2:
        raise ValueError("a linear probe needs at least two classes in the training labels")
    scaler = StandardScaler().fit(train_feats.double().cpu().numpy())
    x_train = scaler.transform(train_feats.double().cpu().numpy())
    x_test = scaler.transform(test_feats.double().cpu().numpy())
    clf = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs")
    clf.fit(x_train, y_train)
    return {
        "accuracy": float(clf.score(x_test, test_labels.long().cpu().numpy())),
        "train_accuracy": float(clf.score(x_train, y_train)),
        "C": float(C),
        "max_iter": int(max_iter),
        "n_iter": int(clf.n_iter_.max()),
    }


C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths tried on the validation split (log-spaced)


def tuned_linear_probe(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor,
    test_feats: torch.Tensor | None = None,
    test_labels: torch.Tensor | None = None,
    grid: tuple[float, ...] = C_GRID,
    max_iter: int = 1000,
) -> dict:
    """Choose C on the validation split, then score the test split once with that C.

    Fits one probe per C in `grid` on train_feats [N, D] and scores val_feats [V, D]; the best validation
    accuracy wins (ties: the smaller C, i.e. the stronger regularisation). The test split [M, D], when
    given, is read only for the chosen C, so no test number ever picks a setting. Returns
    {"C", "validation_accuracy", "validation_by_C": {C: acc}, and with a test split "accuracy", "train_accuracy"}.
    """
    if not grid or any(c <= 0 for c in grid):
        raise ValueError(f"grid must be positive C values; got {grid!r}")
    by_c = {float(c): linear_probe_accuracy(train_feats, train_labels, val_feats, val_labels, C=c, max_iter=max_iter)["accuracy"]
            for c in sorted(grid)}
    best = max(by_c, key=lambda c: (by_c[c], -c))
    out = {"C": best, "validation_accuracy": by_c[best], "validation_by_C": by_c}
    if test_feats is not None:
        if test_labels is None:
            raise ValueError("test_labels is required with test_feats")
        res = linear_probe_accuracy(train_feats, train_labels, test_feats, test_labels, C=best, max_iter=max_iter)
        out.update(accuracy=res["accuracy"], train_accuracy=res["train_accuracy"])
    return out
