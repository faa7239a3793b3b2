"""All-gather that keeps gradients: the one collective every contrastive loss uses (opt-in).

Every helper is the identity (or 1 / 0) when torch.distributed is unavailable, not initialised, or
has a single process, so the losses run unchanged without a process group. All processes must
pass tensors of the same shape (all_gather needs equal sizes).
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    """Forward: all_gather. Backward: all_reduce(sum) of the incoming gradient, then this rank's slice.

    Each rank's loss reads every rank's rows, so d(sum_r loss_r)/d(local rows) is the *sum over
    ranks* of their gradients w.r.t. those rows. Returning only the local slice without the
    all-reduce is the classic 1/world_size gradient bug. With DDP averaging parameter gradients
    over processes, the result is the gradient of the mean per-rank loss (= the full-batch loss
    for the local-rows-vs-global-batch losses in this package).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.batch = x.shape[0]
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out, dim=0)  # [W*B, ...]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # clone: all_reduce is in place and autograd may still hold the incoming gradient elsewhere
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """[B, ...] -> [world*B, ...] concatenated in rank order, differentiable; identity without a process group."""
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """[B, ...] -> [world*B, ...] in rank order, for tensors that need no gradient (labels); identity alone."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)
