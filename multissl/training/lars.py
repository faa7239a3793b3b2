"""LARS: SGD with momentum whose step for each weight tensor is scaled by a trust ratio (You et al., 2017).

Large-batch SimCLR and BYOL train with it: a learning rate scaled with the batch (lr = 0.3 x B / 256) would
blow up layers whose gradients are large next to their weights; the trust ratio ||w|| / ||g + wd w|| gives
every layer a step proportional to its own weight norm instead. As in SimCLR, biases and normalisation
weights (the loop's 1-D parameter group, `lars_adapt=False`) get neither weight decay nor the trust ratio.

For a parameter w with gradient g, per step (momentum buffer v, zero before the first step):

    d = g + wd * w
    d = eta * ||w|| / ||d|| * d      (groups with lars_adapt; the ratio is 1 when either norm is 0)
    v = momentum * v + d
    w = w - lr * v

The learning rate multiplies the buffer (PyTorch's SGD convention), so LARS with no adapted group is
torch.optim.SGD(momentum, weight_decay) exactly; SimCLR's TensorFlow code puts lr inside the buffer, which is the
same while lr is constant.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling over SGD with momentum; a param group with `lars_adapt=False` is plain SGD."""

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, lars_adapt: bool = True):
        if lr <= 0:
            raise ValueError(f"lr must be > 0; got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay}")
        if trust_coefficient <= 0:
            raise ValueError(f"trust_coefficient (LARS's eta) must be > 0; got {trust_coefficient}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        lars_adapt=lars_adapt)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 (torch's Optimizer.step signature)
        """One update of every parameter with a gradient; returns closure() when one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            wd = group["weight_decay"]
            # d = g + wd * w: new tensors, the .grad fields stay as backward left them
            steps = torch._foreach_add(grads, params, alpha=wd) if wd else [g.clone() for g in grads]
            if group["lars_adapt"]:
                torch._foreach_mul_(steps, self._trust_ratios(params, steps, group["trust_coefficient"]))
            bufs = []
            for p, d in zip(params, steps):  # a loop over parameter tensors (tens), not over data
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(d)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, steps)  # v = momentum * v + d
            torch._foreach_add_(params, bufs, alpha=-group["lr"])  # w = w - lr * v
        return loss

    @staticmethod
    def _trust_ratios(params: list[torch.Tensor], steps: list[torch.Tensor], eta: float) -> list[torch.Tensor]:
        """eta * ||w|| / ||d|| per tensor (a 0-d tensor each: no host sync), 1 where either norm is 0."""
        ratios = []
        for w_norm, d_norm in zip(torch._foreach_norm(params), torch._foreach_norm(steps)):
            usable = (w_norm > 0) & (d_norm > 0)
            ratios.append(torch.where(usable, eta * w_norm / torch.where(usable, d_norm, 1.0), 1.0))
        return ratios
