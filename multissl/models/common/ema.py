"""Momentum (EMA) teachers: target <- m * target + (1 - m) * online, vectorised with torch._foreach_*."""
from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(online: nn.Module) -> nn.Module:
    """A frozen deep copy of `online` (requires_grad False): the EMA target/teacher/key encoder."""
    teacher = copy.deepcopy(online)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float, copy_buffers: bool = False) -> None:
    """target params <- momentum * target + (1 - momentum) * online, in two fused foreach kernels; momentum from the caller.

    copy_buffers=True also copies float buffers (e.g. BatchNorm running stats) from online to target.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1]; got {momentum}")
    t_params, o_params = list(target.parameters()), list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError(f"EMA target has {len(t_params)} parameters but online has {len(o_params)}")
    if t_params:
        torch._foreach_mul_(t_params, momentum)
        torch._foreach_add_(t_params, [p.detach() for p in o_params], alpha=1.0 - momentum)
    if copy_buffers:
        for tb, ob in zip(target.buffers(), online.buffers()):
            tb.copy_(ob)
