"""Metric-learning heads' losses vs pytorch-metric-learning: equal values (rel 1e-5) and forward+backward time ratio (goal <= 1.0x).

    OMP_NUM_THREADS=1 python benchmarks/bench_metric_losses.py

ArcFace, sub-center ArcFace (K=3), CosFace and N-pair are compared with pml's ArcFaceLoss,
SubCenterArcFaceLoss, CosFaceLoss and NPairsLoss (Sohn's unnormalised dot product) on the same
inputs and weights. pml has no center loss: it is timed against the usual plain-torch version
that builds the [B, C] distance matrix and masks it. Each repeat times ours then the peer
(alternated, so drift in machine load hits both); the table shows medians over repeats.
Needs `pip install --no-deps pytorch-metric-learning==2.9.0`.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch


def timed(fn, inner: int) -> float:
    """Seconds per call of fn over `inner` calls."""
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def compare(ours, theirs, repeats: int, inner: int) -> tuple[float, float]:
    """(median ours, median peer) seconds per call, the two alternated within every repeat, after a warm-up."""
    timed(ours, 1), timed(theirs, 1)
    t_ours, t_ref = [], []
    for _ in range(repeats):
        t_ours.append(timed(ours, inner))
        t_ref.append(timed(theirs, inner))
    return statistics.median(t_ours), statistics.median(t_ref)


def step(loss_fn, *leaves):
    """A closure: forward, backward, then drop the gradients so nothing accumulates across calls."""
    def run():
        loss_fn().backward()
        for t in leaves:
            t.grad = None
    return run


def plain_center_loss(x: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """The common plain-torch center loss: [B, C] squared distances, keep each row's own class, 1/2 mean."""
    distmat = x.pow(2).sum(1, keepdim=True) + centers.pow(2).sum(1)[None] - 2 * x @ centers.T  # [B, C]
    mask = labels[:, None] == torch.arange(centers.shape[0], device=x.device)[None]
    return 0.5 * (distmat * mask).sum() / x.shape[0]


def cases(b: int, d: int, c: int, g: torch.Generator):
    """(name, ours closure, peer closure, ours value, peer value) for one (B, D, C)."""
    from pytorch_metric_learning.distances import DotProductSimilarity
    from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss, NPairsLoss, SubCenterArcFaceLoss

    from multissl.objectives.center_loss import center_loss
    from multissl.objectives.margin_softmax import arcface_loss, cosface_loss
    from multissl.objectives.n_pair import n_pair_loss

    x = torch.randn(b, d, generator=g, requires_grad=True)
    y = torch.randint(0, c, (b,), generator=g)
    m, s = 0.5, 64.0
    out = []
    for name, k in (("arcface", 1), ("subcenter-arcface K=3", 3)):
        if k == 1:
            ref = ArcFaceLoss(num_classes=c, embedding_size=d, margin=math.degrees(m), scale=s)
        else:
            ref = SubCenterArcFaceLoss(num_classes=c, embedding_size=d, margin=math.degrees(m), scale=s, sub_centers=k)
        w = ref.W.detach().T.contiguous().requires_grad_(True)  # [C*K, D], the same weights
        out.append((name, step(lambda w=w, k=k: arcface_loss(x, y, w, m, s, k), x, w), step(lambda ref=ref: ref(x, y), x, ref.W),
                    arcface_loss(x, y, w, m, s, k).item(), ref(x, y).item()))
    ref = CosFaceLoss(num_classes=c, embedding_size=d, margin=0.35, scale=s)
    w = ref.W.detach().T.contiguous().requires_grad_(True)
    out.append(("cosface", step(lambda: cosface_loss(x, y, w, 0.35, s), x, w), step(lambda: ref(x, y), x, ref.W),
                cosface_loss(x, y, w, 0.35, s).item(), ref(x, y).item()))
    p = torch.randn(b, d, generator=g, requires_grad=True)
    npairs = NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))
    pair_labels = torch.arange(b).repeat(2)
    out.append(("n-pair (B pairs)", step(lambda: n_pair_loss(x, p), x, p),
                step(lambda: npairs(torch.cat([x, p]), pair_labels), x, p),
                n_pair_loss(x, p).item(), npairs(torch.cat([x, p]), pair_labels).item()))
    centers = torch.randn(c, d, generator=g)
    out.append(("center (peer: plain [B,C])", step(lambda: center_loss(x, y, centers), x),
                step(lambda: plain_center_loss(x, y, centers), x),
                center_loss(x, y, centers).item(), plain_center_loss(x, y, centers).item()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    print(f"{'loss':<28}{'B':>6}{'C':>6}{'ours ms':>10}{'peer ms':>10}{'ratio':>8}   (goal <= 1.0x; D={args.dim})")
    ratios = []
    for b in args.batches:
        for c in args.classes:
            for name, ours, theirs, v_ours, v_ref in cases(b, args.dim, c, g):
                if name.startswith("n-pair") and c != args.classes[0]:
                    continue  # N-pair has no classes: one row per batch size
                assert abs(v_ours - v_ref) <= 1e-5 * max(1.0, abs(v_ref)), (name, v_ours, v_ref)
                t_ours, t_ref = compare(ours, theirs, args.repeats, args.inner)
                ratios.append(t_ours / t_ref)
                c_col = "-" if name.startswith("n-pair") else str(c)
                print(f"{name:<28}{b:>6}{c_col:>6}{t_ours * 1e3:>10.3f}{t_ref * 1e3:>10.3f}{t_ours / t_ref:>7.2f}x")
    print(f"worst ratio {max(ratios):.2f}x, geometric mean {math.exp(statistics.mean(map(math.log, ratios))):.2f}x")


if __name__ == "__main__":
    main()
