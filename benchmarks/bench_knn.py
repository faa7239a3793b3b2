"""Weighted k-NN (multissl.evaluation.knn_predict) vs lightly's knn_predict: same predictions, time ratio.

Goal: ours <= 1.0x (plus bounded memory: ours chunks the [M, N] similarity matrix).
Run: OMP_NUM_THREADS=1 python benchmarks/bench_knn.py
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from lightly.utils.benchmarking.knn import knn_predict as lightly_knn_predict

from multissl.evaluation import knn_predict


def median_time(fn, repeats: int) -> float:
    """Median wall seconds of fn() over `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    print(f"{'N':>6} {'M':>5} {'D':>4} {'k':>4} {'ours ms':>9} {'lightly ms':>11} {'ratio':>7} {'agree':>6}")
    for n, m, d, k in [(1438, 359, 64, 200), (10000, 2000, 128, 200), (50000, 2000, 256, 200)]:
        g = torch.Generator().manual_seed(0)
        train, test = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
        labels = torch.randint(0, 10, (n,), generator=g)

        def ours():
            return knn_predict(train, labels, test, 10, k=k, temperature=0.1)

        def theirs():  # lightly expects pre-normalised features and a [D, N] bank; include that work
            bank = F.normalize(train, dim=1).T
            return lightly_knn_predict(F.normalize(test, dim=1), bank, labels, 10, knn_k=k, knn_t=0.1)[:, 0]

        agree = (ours() == theirs()).float().mean().item()
        reps = 5 if n <= 10000 else 3
        t_ours, t_ref = median_time(ours, reps), median_time(theirs, reps)
        print(f"{n:>6} {m:>5} {d:>4} {k:>4} {t_ours * 1e3:>9.1f} {t_ref * 1e3:>11.1f} {t_ours / t_ref:>6.2f}x {agree:>6.3f}")


if __name__ == "__main__":
    main()
