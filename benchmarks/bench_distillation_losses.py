"""DINO and BYOL losses vs lightly's DINOLoss / NegativeCosineSimilarity: equal values (1e-5) and time ratio (goal <= 1.0x).

    OMP_NUM_THREADS=1 python benchmarks/bench_distillation_losses.py
"""
from __future__ import annotations

import argparse
import time

import torch


def best_time(fn, repeats: int, inner: int) -> float:
    """Best of `repeats` timings of `inner` calls, seconds per call (forward + backward)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out-dim", type=int, default=4096)
    parser.add_argument("--local-views", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from lightly.loss import DINOLoss, NegativeCosineSimilarity

    from multissl.objectives.distillation import byol_loss, dino_loss, update_center

    g = torch.Generator().manual_seed(0)
    b, k, v = args.batch, args.out_dim, 2 + args.local_views
    student = torch.randn(v, b, k, generator=g, requires_grad=True)
    teacher = torch.randn(2, b, k, generator=g)
    center = torch.zeros(k)
    ref = DINOLoss(output_dim=k, warmup_teacher_temp=0.04, teacher_temp=0.04, student_temp=0.1, center_momentum=0.9)

    ours_v = dino_loss(student, teacher, center, 0.1, 0.04)
    ref_v = ref(list(teacher), list(student), teacher_temp=0.04)
    update_center(center, teacher, 0.9)
    assert abs(ours_v.item() - ref_v.item()) < 1e-5, (ours_v.item(), ref_v.item())
    assert torch.allclose(center, ref.center.flatten(), atol=1e-6)

    def ours_dino():
        loss = dino_loss(student, teacher, center, 0.1, 0.04)
        update_center(center, teacher, 0.9)  # lightly updates its centre inside forward: time both the same way
        loss.backward()

    def lightly_dino():
        ref(list(teacher), list(student), teacher_temp=0.04).backward()

    p = torch.randn(b, 256, generator=g, requires_grad=True)
    z = torch.randn(b, 256, generator=g)
    neg_cos = NegativeCosineSimilarity()
    assert abs(byol_loss(p, z).item() - neg_cos(p, z.detach()).item()) < 1e-5

    def ours_byol():
        byol_loss(p, z).backward()

    def lightly_byol():
        neg_cos(p, z.detach()).backward()

    print(f"values: dino ours {ours_v.item():.6f} lightly {ref_v.item():.6f} | byol ours {byol_loss(p, z).item():.6f} "
          f"lightly {neg_cos(p, z).item():.6f}")
    for name, ours, theirs, inner in (("dino", ours_dino, lightly_dino, 5), ("byol", ours_byol, lightly_byol, 200)):
        best_time(ours, 1, inner), best_time(theirs, 1, inner)  # warm-up
        t_ours, t_ref = best_time(ours, args.repeats, inner), best_time(theirs, args.repeats, inner)
        print(f"{name}: ours {t_ours * 1e3:.3f} ms, lightly {t_ref * 1e3:.3f} ms, ratio {t_ours / t_ref:.2f}x (goal <= 1.0x)")


if __name__ == "__main__":
    main()
