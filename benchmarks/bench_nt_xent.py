"""nt_xent forward+backward vs lightly's NTXentLoss on the same inputs: values (1e-5) and gradients agree; time ratio.

Goal: ours <= 1.0x.   Run: OMP_NUM_THREADS=1 python benchmarks/bench_nt_xent.py [--repeats 15]
The two are timed alternately (ours, lightly, ours, ...) so load from other jobs hits both alike;
each figure is the median over the repeats.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from lightly.loss import NTXentLoss

from multissl.objectives import nt_xent

SIZES = [(256, 128), (1024, 128), (2048, 128), (2048, 256)]
TEMPERATURE = 0.5


def fwd_bwd(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z1: torch.Tensor, z2: torch.Tensor):
    """Seconds of one forward+backward, the loss value and the input gradients."""
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    t0 = time.perf_counter()
    loss = fn(a, b)
    loss.backward()
    return time.perf_counter() - t0, loss.item(), a.grad, b.grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    ref = NTXentLoss(temperature=TEMPERATURE)
    ours = lambda x, y: nt_xent(x, y, TEMPERATURE)  # noqa: E731
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), temperature {TEMPERATURE}")
    print(f"{'B':>6} {'D':>5} {'ours ms':>9} {'lightly ms':>11} {'ratio':>7} {'|loss diff|':>12} {'max|grad diff|':>15}")
    for b, d in SIZES:
        g = torch.Generator().manual_seed(0)
        z1, z2 = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
        _, v_ours, ga, gb = fwd_bwd(ours, z1, z2)  # also the warm-up
        _, v_ref, ra, rb = fwd_bwd(ref, z1, z2)
        loss_diff = abs(v_ours - v_ref)
        grad_diff = max((ga - ra).abs().max().item(), (gb - rb).abs().max().item())
        assert loss_diff < 1e-5, (b, d, v_ours, v_ref)
        assert grad_diff < 1e-6, (b, d, grad_diff)
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours.append(fwd_bwd(ours, z1, z2)[0])
            t_ref.append(fwd_bwd(ref, z1, z2)[0])
        m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
        print(f"{b:>6} {d:>5} {m_ours * 1e3:>9.2f} {m_ref * 1e3:>11.2f} {m_ours / m_ref:>6.2f}x "
              f"{loss_diff:>12.1e} {grad_diff:>15.1e}")


if __name__ == "__main__":
    main()
