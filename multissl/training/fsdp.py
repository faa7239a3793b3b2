"""FSDP through an Accelerate config file: the checks and the one collective the loop needs (docs/performance.md).

`multissl train ... --accelerate-config fsdp.yaml` (or `accelerate launch --config_file fsdp.yaml -m multissl.cli
train ...`) shards parameters, gradients and optimizer state with PyTorch's FSDP2 (`fully_shard`), applied by
accelerator.prepare. What stays correct under sharded parameters, and why:

* EMA teachers (BYOL, MoCo, DINO): teacher and student are sharded alike (dim 0 of each tensor over the same
  ranks), so `target <- m target + (1 - m) online` is an elementwise update of local shards; no gather needed.
* MoCo's queue and DINO's centre are buffers, which FSDP does not shard; they are kept in step exactly as under DDP:
  the queue by all-gathering keys (KeyQueue.enqueue), the centre by an all-reduce of the teacher outputs' sum
  (update_center).
* Gathered losses (NT-Xent, InfoNCE, CLIP) gather embeddings, not parameters: unchanged.
* The final model: every rank joins one gather of the full state dict; the main process writes it.

Not yet: step checkpoints (save_every, stop_after_steps, --resume) hold the optimizer state, which FSDP shards and
multissl's safetensors checkpoints do not gather; a recipe asking for them under FSDP is refused up front.
"""
from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn

from multissl.training.config import TrainArgs


def is_fsdp(accelerator: Accelerator) -> bool:
    """Whether accelerator.prepare shards the model (an FSDP Accelerate config)."""
    return accelerator.distributed_type == DistributedType.FSDP


def check_launch(accelerator: Accelerator, args: TrainArgs, resume: bool) -> None:
    """Refuse launches that would train wrongly: processes that form no group, FSDP where Accelerate cannot give
    it, FSDP1, and FSDP with step checkpoints."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        why = (" Accelerate 1.15 turns an FSDP config into FSDP only on GPUs/XPUs/NPUs, not on CPU; on CPU use a "
               "MULTI_CPU (DDP) config." if _fsdp_requested() else "")
        raise ValueError(f"{launched} processes were launched but this one trains alone (Accelerate found no process "
                         f"group on {accelerator.device.type}): each would train the same run.{why}")
    if _fsdp_requested() and not is_fsdp(accelerator):
        raise ValueError(f"the Accelerate config asks for FSDP, but Accelerate set up {accelerator.distributed_type} "
                         f"on {accelerator.device.type} (it enables FSDP only on GPUs/XPUs/NPUs)")
    if not is_fsdp(accelerator):
        return
    if accelerator.state.fsdp_plugin.fsdp_version != 2:
        raise ValueError("FSDP: multissl trains with FSDP2 (per-parameter sharding, what EMA teachers need); set "
                         "`fsdp_version: 2` under fsdp_config in the Accelerate config")
    asked = [k for k, on in (("train.save_every", args.save_every), ("train.stop_after_steps", args.stop_after_steps),
                              ("--resume", resume)) if on]
    if asked:
        raise ValueError(f"FSDP: {', '.join(asked)} need step checkpoints, which multissl does not write under FSDP "
                         "yet (the optimizer state is sharded across processes); train without them, or with DDP")


def _fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def prepare_for_fsdp(model: nn.Module, accelerator: Accelerator) -> None:
    """Answer Accelerate's FSDP2 question about input/output embeddings (a method model has no single one: CLIP
    has two towers, BYOL two encoders) with None, so every parameter is sharded with its own block or the root."""
    if is_fsdp(accelerator):
        # transformers' default raises NotImplementedError for a model without base_model_prefix. Instance attributes,
        # so nothing changes outside FSDP; MethodModel could answer None itself (a base.py change for the lead).
        model.get_input_embeddings = lambda: None
        model.get_output_embeddings = lambda: None


def full_state_dict(accelerator: Accelerator, model: nn.Module) -> dict[str, torch.Tensor] | None:
    """Under FSDP, the whole model's state dict (on the CPU) on the main process, None on the others (every process
    must call this: it gathers); None outside FSDP, where the model's own state_dict is already complete.

    One all-gather per tensor, copied to the CPU at once, so the device holds one full tensor at a time. (Accelerate's
    get_state_dict returns views of FSDP's gather buffers when the device is the CPU, freed before they are saved.)
    """
    if not is_fsdp(accelerator):
        return None
    from torch.distributed.tensor import DTensor

    state = {}
    for name, value in model.state_dict().items():
        full = value.full_tensor() if isinstance(value, DTensor) else value  # collective: same order on every rank
        if accelerator.is_main_process:
            state[name] = full.detach().to("cpu", copy=True)
    return state if accelerator.is_main_process else None
