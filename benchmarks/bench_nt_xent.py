"""nt_xent forward+backward vs lightly's NTXentLoss on the same inputs (values equal to 1e-5, time ratio).

Goal: ours <= 1.0x.   Run: OMP_NUM_THREADS=1 python benchmarks/bench_nt_xent.py
"""
from __future__ import annotations

import time

import torch
from lightly.loss import NTXentLoss

from multissl.objectives import nt_xent


def timed(fn, z1, z2, repeats: int) -> float:
    """Median seconds of forward+backward."""
    times = []
    for _ in range(repeats):
        a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
        t0 = time.perf_counter()
        fn(a, b).backward()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ref = NTXentLoss(temperature=0.5)
    print(f"{'B':>6} {'D':>5} {'ours ms':>9} {'lightly ms':>11} {'ratio':>7} {'|diff|':>9}")
    for b, d in [(256, 128), (1024, 128), (2048, 256)]:
        g = torch.Generator().manual_seed(0)
        z1, z2 = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
        ours_v, ref_v = nt_xent(z1, z2, 0.5).item(), ref(z1, z2).item()
        assert abs(ours_v - ref_v) < 1e-5, (ours_v, ref_v)
        reps = 20 if b <= 1024 else 8
        for _ in range(2):  # warm-up
            timed(lambda x, y: nt_xent(x, y, 0.5), z1, z2, 1), timed(ref, z1, z2, 1)
        t_ours = timed(lambda x, y: nt_xent(x, y, 0.5), z1, z2, reps)
        t_ref = timed(ref, z1, z2, reps)
        print(f"{b:>6} {d:>5} {t_ours * 1e3:>9.2f} {t_ref * 1e3:>11.2f} {t_ours / t_ref:>6.2f}x {abs(ours_v - ref_v):>9.1e}")


if __name__ == "__main__":
    main()
