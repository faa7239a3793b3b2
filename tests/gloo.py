"""The harness of every multi-process test: run a function on W gloo processes (CPU), collect each rank's result.

Workers are forked where the platform allows (no re-import of the package: seconds instead of
~30 s), each with one thread and its own gloo group; a worker returns any JSON-able value.
"""
from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on localhost that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn: Callable[[int], Any], port: int, out_dir: str, world: int) -> None:
    torch.set_num_threads(1)  # forked child: keep OpenMP out of it
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        result = fn(rank)
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))


def run_on_ranks(fn: Callable[[int], Any], world: int = 2) -> list[Any]:
    """[fn(0), ..., fn(world-1)], each computed in its own process of one gloo group (rank order)."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_entry, args=(fn, free_port(), out, world), nprocs=world, join=True, start_method=method)
        return [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(world)]
