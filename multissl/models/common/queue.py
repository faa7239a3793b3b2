"""MoCo's FIFO queue of negative keys: a module holding [K, D] keys and a write pointer as buffers (saved with the model)."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """All processes' keys [B, D] -> [world * B, D] in rank order (no gradient); identity without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return keys
    parts = [torch.empty_like(keys) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, keys.contiguous())
    return torch.cat(parts)


class KeyQueue(nn.Module):
    """FIFO of `size` L2-normalised keys of width `dim`; the size is independent of the batch but must be divisible by it."""

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be >= 1; got size={size}, dim={dim}")
        self.size, self.dim = size, dim
        # Random unit vectors until real keys arrive (as MoCo): harmless negatives.
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def negatives(self) -> torch.Tensor:
        """A detached snapshot [K, D] of the queue (safe to use in a loss before enqueue changes the buffer)."""
        return self.keys.detach().clone()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, gather_distributed: bool = True) -> None:
        """Replace the oldest entries by keys [B, D] (gathered from every process when distributed, so all ranks agree)."""
        if keys.dim() != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"queue keys must be [B, {self.dim}]; got {tuple(keys.shape)}")
        keys = gather_keys(keys.detach()) if gather_distributed else keys.detach()
        n = keys.shape[0]
        if self.size % n:
            raise ValueError(
                f"queue size {self.size} must be divisible by the global batch size {n} (batch per process x processes) "
                f"so every write is one contiguous block; choose e.g. queue_size={max(n, self.size // n * n)}"
            )
        ptr = int(self.ptr)
        self.keys[ptr:ptr + n] = keys.to(self.keys.dtype)
        self.ptr.fill_((ptr + n) % self.size)
