"""The speed knobs of a recipe's `train:` section, set up once per run (docs/performance.md).

`check_mixed_precision` runs before anything is built (fp16 on a CPU is refused). The loop then calls three
functions: `make_optimizer` (adamw | sgd | lars, fused / foreach kernels), `apply_model_settings` before the
optimizer exists (TF32, attention implementation, gradient checkpointing, channels_last) and `compile_backbones`
after accelerator.prepare. Each knob either takes effect or fails with one ValueError naming the key; none is
silently skipped. Settings that have no effect on this device (TF32 without CUDA) say so in the line the run prints.
"""
from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import nn
from transformers import PreTrainedModel

from multissl.training.config import TrainArgs
from multissl.training.lars import LARS


def check_mixed_precision(accelerator: Accelerator) -> None:
    """Refuse fp16 on a CPU. Accelerate enables fp16 (autocast + grad scaler) only on accelerators; on a CPU it
    keeps the setting's name and trains in fp32, so a run would say fp16 and be fp32. bf16 autocast does run there."""
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        import accelerate

        raise ValueError(f"train.mixed_precision: fp16 does not run on a CPU (Accelerate {accelerate.__version__} would "
                         "silently train in fp32); use bf16, which works on CPU, or no")


def make_optimizer(model: nn.Module, args: TrainArgs, device: torch.device | str | None = None) -> torch.optim.Optimizer:
    """AdamW / SGD / LARS with no weight decay (and, for LARS, no trust ratio) on biases and norm weights (1-D).

    `device` is where the parameters will train (the accelerator's device; default: where they are now): a fused
    kernel is checked against it, since the optimizer is built before Accelerate moves the model.
    """
    groups = param_groups(model, args)
    if args.optimizer == "lars":
        return LARS(groups, lr=args.learning_rate, momentum=args.momentum, trust_coefficient=args.lars_trust_coefficient)
    kernels = _kernel_kwargs(args, torch.device(device) if device is not None else _params_device(model))
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.learning_rate, momentum=args.momentum, **kernels)
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=tuple(args.betas), **kernels)


def param_groups(model: nn.Module, args: TrainArgs) -> list[dict]:
    """Optimizer groups: matrices with weight decay, then 1-D parameters (biases, norm weights) without, and for each
    prefix in the model's `lr_scales()` the same two with lr = learning_rate x scale (LambdaLR keeps the ratio)."""
    scales = model.lr_scales() if hasattr(model, "lr_scales") else {}
    buckets: dict[tuple[float, bool], list[nn.Parameter]] = {(1.0, True): [], (1.0, False): []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            scale = next((float(v) for prefix, v in scales.items() if name.startswith(prefix)), 1.0)
            buckets.setdefault((scale, param.dim() > 1), []).append(param)
    groups = []
    for (scale, matrix), params in buckets.items():  # a scaled bucket exists only once a parameter fell into it
        group = {"params": params, "weight_decay": args.weight_decay if matrix else 0.0}
        if scale != 1.0:
            group["lr"] = args.learning_rate * scale
        if args.optimizer == "lars" and not matrix:
            group["lars_adapt"] = False  # SimCLR: biases and BN parameters are excluded from the adaptation
        groups.append(group)
    return groups


def _params_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _kernel_kwargs(args: TrainArgs, device: torch.device) -> dict:
    """fused= / foreach= for torch's AdamW and SGD. An unsupported fused device is an error, not a quiet fallback:
    a recipe that asks for the fused kernel is usually being timed, and a silent foreach run would mislead."""
    from torch.optim.optimizer import _get_fused_kernels_supported_devices

    if args.fused:
        supported = _get_fused_kernels_supported_devices()
        if device.type not in supported:
            raise ValueError(f"train.fused: torch {torch.__version__} has no fused {args.optimizer} kernel for "
                             f"{device.type} (it has one for {supported}); drop `fused: true` or use `foreach: true`")
        return {"fused": True}
    return {} if args.foreach is None else {"foreach": args.foreach}


def backbones(model: nn.Module) -> list[tuple[str, PreTrainedModel]]:
    """The outermost Hugging Face models inside a method (its backbone(s), a BYOL target, CLIP's two towers)."""
    found = []
    for name, child in model.named_children():
        if isinstance(child, PreTrainedModel):
            found.append((name, child))
        else:
            found += [(f"{name}.{n}", m) for n, m in backbones(child)]
    return found


def _transformers(model: nn.Module) -> list[tuple[str, PreTrainedModel]]:
    """Backbones with attention layers (their config names a head count: BERT, GPT-2, ViT, CLIP towers)."""
    return [(n, m) for n, m in backbones(model) if hasattr(m.config, "num_attention_heads")]


def apply_model_settings(model: nn.Module, args: TrainArgs, device: torch.device) -> list[str]:
    """Turn on tf32 / attention / gradient_checkpointing / channels_last for `model` (in place, before the
    optimizer is built); returns one phrase per knob that is set, for the run's log line."""
    notes = []
    if args.tf32:
        # New-style flags only: torch >= 2.9 refuses to read the TF32 state once old- and new-style setters are mixed.
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        notes.append("tf32" if device.type == "cuda" else f"tf32 (no effect on {device.type})")
    if args.attention is not None:
        notes.append(set_attention(model, args.attention, device))
    if args.gradient_checkpointing:
        notes.append(enable_gradient_checkpointing(model))
    if args.channels_last:
        if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
            raise ValueError(f"train.channels_last: {type(model).__name__} has no 2-D convolution to lay out as NHWC")
        model.to(memory_format=torch.channels_last)  # conv weights NHWC; cuDNN then runs the convs channels-last
        notes.append("channels_last")
    return notes


def set_attention(model: nn.Module, implementation: str, device: torch.device) -> str:
    """attn_implementation=`implementation` on every transformer backbone; an error if there is none, or if the
    implementation cannot run here (flash_attention_2 needs CUDA and the flash-attn package)."""
    towers = _transformers(model)
    if not towers:
        raise ValueError(f"train.attention: {type(model).__name__} has no transformer backbone (found "
                         f"{[type(m).__name__ for _, m in backbones(model)] or 'none'}); remove the key")
    if implementation == "flash_attention_2" and device.type != "cuda":
        raise ValueError(f"train.attention: flash_attention_2 runs on CUDA GPUs only; this run is on {device.type} "
                         "(use sdpa)")
    for name, tower in towers:
        try:
            tower.set_attn_implementation(implementation)
        except (ImportError, ValueError) as err:  # e.g. flash-attn not installed, an architecture without sdpa
            raise ValueError(f"train.attention: {implementation} for {name} ({type(tower).__name__}): "
                             f"{str(err).splitlines()[0]}") from err
        if tower.config._attn_implementation != implementation:  # transformers only warns for older modelling code
            raise ValueError(f"train.attention: {type(tower).__name__} cannot switch to {implementation}")
    return f"attention={implementation} ({', '.join(n for n, _ in towers)})"


def enable_gradient_checkpointing(model: nn.Module) -> str:
    """Hugging Face activation checkpointing on every trainable backbone that supports it (CLIP's transformer text
    tower beside a ResNet image tower, say); an error when none does."""
    trainable = [(n, m) for n, m in backbones(model) if any(p.requires_grad for p in m.parameters())]  # not EMA targets
    able = [(n, m) for n, m in trainable if m.supports_gradient_checkpointing]
    unable = [f"{n} ({type(m).__name__})" for n, m in trainable if not m.supports_gradient_checkpointing]
    if not able:
        raise ValueError(f"train.gradient_checkpointing: no backbone of {type(model).__name__} supports it "
                         f"({', '.join(unable) or 'none found'}); transformers checkpoints transformer layers, not "
                         "e.g. ResNet stages")
    for _, m in able:
        # Non-reentrant: the checkpointed input needs no requires_grad, and it composes with DDP and compile.
        m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    skipped = f"; not {', '.join(unable)}" if unable else ""
    return f"gradient_checkpointing ({', '.join(n for n, _ in able)}{skipped})"


# torch.compile's options for `compile: true` (inductor, the default). Tests swap in a backend that skips code
# generation: inductor builds C++ kernels with gcc, minutes for even a tiny ResNet on a shared 2-core CPU.
COMPILE_OPTIONS: dict = {}


def compile_backbones(model: nn.Module, args: TrainArgs) -> list[str]:
    """torch.compile each backbone in place (Module.compile: same object, same state_dict keys, so saving and
    resuming are unchanged). The method's forward (losses, all-gathers, queues) and the hooks stay eager:
    collectives and data-dependent queue pointers would only break the graph."""
    if not args.compile:
        return []
    found = backbones(model)
    if not found:
        raise ValueError(f"train.compile: {type(model).__name__} has no Hugging Face backbone to compile")
    for _, m in found:
        m.compile(**COMPILE_OPTIONS)
    return [f"compile ({', '.join(n for n, _ in found)})"]
