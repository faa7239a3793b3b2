"""GPU benchmark suite: multissl's training / decoding steps against the same work in a bare PyTorch loop; one table.

Workloads (full sizes; `--smoke` shrinks every one to seconds on a CPU):
  gpt      GPT-2 small (124M, 12 x 768, context 1024) causal-LM step: tokens/s and MFU
  bert     BERT-base (110M, 12 x 768, 512 tokens) masked-LM step: tokens/s and MFU
  simclr   SimCLR ResNet-50 at 224 px, two views made on the device by the batched augmentation from a uint8
           batch [B, 3, 256, 256] already on the device (decoding/resizing is the CPU workers' job): images/s
  clip     CLIP with ViT-B/32-sized towers (image 224 px, text 77 tokens): image-text pairs/s and MFU
  decode   greedy decoding with GPT-2 small and a KV cache (multissl.decoding.generate): new tokens/s

multissl's side is what the training loop runs per step: the method model built from its config, the recipe's
speed knobs (multissl.training.performance: sdpa attention, TF32, fused AdamW, channels_last for the ResNet,
--compile), Accelerate's bf16 autocast, backward, clipping to norm 1 and the optimizer step. The bare side
(benchmarks/_gpu_bare.py) is the same model size, batch and loss in plain nn.Modules with torch.autocast and fused
AdamW: ratio = multissl / bare throughput (1.0 = no overhead; the issue's goal for SimCLR: >= 1/1.2 = 0.83).

MFU = model FLOPs per second / the device's peak dense bf16 FLOPs. Transformer FLOPs per trained token are
6 N + 12 L T d (Kaplan et al. / PaLM: N = the matmul weights 12 L d^2 + the tied output head V d (+ d^2 for BERT's
head transform), L layers, width d, T tokens attended to), counted the same for both sides. Peaks (dense bf16,
NVIDIA datasheets): H100/H200 SXM 989.4 TFLOPS, H100 PCIe 756, A100 312; others need --peak-tflops.

Run on a GPU (minutes):   python benchmarks/gpu_suite.py --device cuda [--compile] [--json runs/gpu_suite.json]
CPU smoke (the tests):    OMP_NUM_THREADS=1 python benchmarks/gpu_suite.py --device cpu --smoke
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _gpu_bare as bare  # noqa: E402

PEAK_BF16_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0))
FULL = {
    "gpt": {"vocab": 50257, "d": 768, "layers": 12, "heads": 12, "batch": 16, "seq": 1024},
    "bert": {"vocab": 30522, "d": 768, "layers": 12, "heads": 12, "batch": 32, "seq": 512},
    "simclr": {"batch": 256, "source": 256, "size": 224},
    "clip": {"batch": 256, "image": 224, "seq": 77, "proj": 512, "vision": {"d": 768, "layers": 12, "heads": 12, "patch": 32},
             "text": {"vocab": 49408, "d": 512, "layers": 12, "heads": 8}},
    "decode": {"batch": 16, "prompt": 64, "new": 256},
}
SMOKE = {
    "gpt": {"vocab": 64, "d": 32, "layers": 2, "heads": 2, "batch": 2, "seq": 16},
    "bert": {"vocab": 64, "d": 32, "layers": 2, "heads": 2, "batch": 2, "seq": 16},
    "simclr": {"batch": 4, "source": 40, "size": 32},
    "clip": {"batch": 4, "image": 32, "seq": 8, "proj": 16, "vision": {"d": 32, "layers": 1, "heads": 2, "patch": 16},
             "text": {"vocab": 64, "d": 32, "layers": 1, "heads": 2}},
    "decode": {"batch": 2, "prompt": 4, "new": 8},
}
RESNET50 = {"model_type": "resnet", "num_channels": 3, "embedding_size": 64, "hidden_sizes": [256, 512, 1024, 2048],
            "depths": [3, 4, 6, 3], "layer_type": "bottleneck", "downsample_in_first_stage": False}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """--peak-tflops, else the table's entry for this GPU's name, else None (MFU not shown)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def transformer_flops_per_token(d: int, layers: int, vocab: int, context: int, head_transform: bool = False) -> float:
    """Training FLOPs per token: 6 N + 12 L T d with N = 12 L d^2 + V d (+ d^2)."""
    n = 12 * layers * d * d + vocab * d + (d * d if head_transform else 0)
    return 6 * n + 12 * layers * context * d


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(step: Callable[[], object], device: torch.device, warmup: int, steps: int) -> float:
    """Mean wall time of `steps` calls after `warmup` (compilation, cuDNN autotuning), synchronised."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


# ---- multissl's side ---------------------------------------------------------------------------------------

def multissl_step(model: torch.nn.Module, batch: dict, opts: argparse.Namespace, channels_last: bool = False):
    """The loop's per-step work on `model` with the recipe knobs a GPU run sets."""
    from accelerate import Accelerator

    from multissl.training.config import TrainArgs
    from multissl.training.performance import apply_model_settings, compile_backbones, make_optimizer

    bf16 = opts.precision == "bf16"
    args = TrainArgs(learning_rate=1e-4, fused=True, tf32=opts.device.type == "cuda", compile=opts.compile,
                     channels_last=channels_last, mixed_precision="bf16" if bf16 else "no",
                     attention="sdpa" if any(hasattr(getattr(m, "config", None), "num_attention_heads")
                                             for m in model.modules()) else None)
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=opts.device.type == "cpu")
    apply_model_settings(model, args, accelerator.device)
    optimizer = make_optimizer(model, args, accelerator.device)
    model, optimizer = accelerator.prepare(model, optimizer)
    compile_backbones(accelerator.unwrap_model(model), args)

    def step() -> None:
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _gpt_config(c: dict) -> dict:
    return {"model_type": "gpt2", "vocab_size": c["vocab"], "n_embd": c["d"], "n_layer": c["layers"], "n_head": c["heads"],
            "n_positions": max(c["seq"], c.get("context", 0), 64), "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}


def _ids(batch: int, seq: int, vocab: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed)).to(device)


def run_gpt(c: dict, o: argparse.Namespace) -> dict:
    from multissl.models.gpt_lm import GPTLMConfig, GPTLMModel

    ids = _ids(c["batch"], c["seq"], c["vocab"], o.device)
    ours = lambda: multissl_step(GPTLMModel(GPTLMConfig(backbone_config=_gpt_config(c), block_size=c["seq"])),  # noqa: E731
                                 {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, o)
    theirs = lambda: bare.gpt(c, ids, o.autocast, o.fused, o.compile)  # noqa: E731
    flops = ids.numel() * transformer_flops_per_token(c["d"], c["layers"], c["vocab"], c["seq"])
    return {"unit": "tokens/s", "work": ids.numel(), "flops": flops, "ours": ours, "bare": theirs}


def run_bert(c: dict, o: argparse.Namespace) -> dict:
    from multissl.models.bert_mlm import BertMLMConfig, BertMLMModel

    ids = _ids(c["batch"], c["seq"], c["vocab"], o.device)
    chosen = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)).to(o.device) < 0.15
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    bert_cfg = {"model_type": "bert", "vocab_size": c["vocab"], "hidden_size": c["d"], "num_hidden_layers": c["layers"],
                "num_attention_heads": c["heads"], "intermediate_size": 4 * c["d"], "max_position_embeddings": max(c["seq"], 64)}
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    ours = lambda: multissl_step(BertMLMModel(BertMLMConfig(backbone_config=bert_cfg, block_size=c["seq"])), batch, o)  # noqa: E731
    theirs = lambda: bare.bert(c, ids, labels, o.autocast, o.fused, o.compile)  # noqa: E731
    flops = ids.numel() * transformer_flops_per_token(c["d"], c["layers"], c["vocab"], c["seq"], head_transform=True)
    return {"unit": "tokens/s", "work": ids.numel(), "flops": flops, "ours": ours, "bare": theirs}


def run_simclr(c: dict, o: argparse.Namespace) -> dict:
    from multissl.modalities.image.batched_augment import BatchedViewAugment
    from multissl.modalities.image.transforms import SimCLRAugment
    from multissl.models.common.vision import TINY_RESNET
    from multissl.models.simclr import SimCLRConfig, SimCLRModel

    images = torch.randint(0, 256, (c["batch"], 3, c["source"], c["source"]), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0)).to(o.device)
    smoke = c["size"] < 224
    config = SimCLRConfig(backbone_config=TINY_RESNET if smoke else RESNET50, image_size=c["size"],
                          projection_hidden_dim=16 if smoke else 2048, projection_dim=8 if smoke else 128,
                          augment={"backend": "device"}, gather_distributed=False)
    augment = BatchedViewAugment.from_policy(SimCLRAugment(image_size=c["size"]), 2)
    ours = lambda: multissl_step(SimCLRModel(config), {"images": images}, o, channels_last=o.device.type == "cuda")  # noqa: E731
    theirs = lambda: bare.simclr(images, augment, smoke, o.autocast, o.fused, o.device.type == "cuda", o.compile)  # noqa: E731
    return {"unit": "images/s", "work": c["batch"], "flops": None, "ours": ours, "bare": theirs}


def run_clip(c: dict, o: argparse.Namespace) -> dict:
    from multissl.models.clip import ClipConfig, ClipModel

    v, t = c["vision"], c["text"]
    pixels = torch.randn(c["batch"], 3, c["image"], c["image"], generator=torch.Generator().manual_seed(0)).to(o.device)
    ids = _ids(c["batch"], c["seq"], t["vocab"], o.device)
    vision = {"model_type": "clip_vision_model", "hidden_size": v["d"], "num_hidden_layers": v["layers"],
              "num_attention_heads": v["heads"], "intermediate_size": 4 * v["d"], "image_size": c["image"],
              "patch_size": v["patch"]}
    text = {"model_type": "clip_text_model", "vocab_size": t["vocab"], "hidden_size": t["d"], "num_hidden_layers": t["layers"],
            "num_attention_heads": t["heads"], "intermediate_size": 4 * t["d"], "max_position_embeddings": c["seq"],
            "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    config = ClipConfig(vision_backbone_config=vision, text_backbone_config=text, image_size=c["image"],
                        projection_dim=c["proj"], max_seq_length=c["seq"], gather_distributed=False)
    ours = lambda: multissl_step(ClipModel(config), {"pixel_values": pixels, "input_ids": ids,  # noqa: E731
                                                     "attention_mask": torch.ones_like(ids)}, o)
    theirs = lambda: bare.clip(c, pixels, ids, o.autocast, o.fused, o.compile)  # noqa: E731
    patches = (c["image"] // v["patch"]) ** 2 + 1
    flops = c["batch"] * (patches * transformer_flops_per_token(v["d"], v["layers"], 0, patches)
                          + c["seq"] * transformer_flops_per_token(t["d"], t["layers"], 0, c["seq"]))
    return {"unit": "pairs/s", "work": c["batch"], "flops": flops, "ours": ours, "bare": theirs}


def run_decode(c: dict, o: argparse.Namespace) -> dict:
    from transformers import AutoModelForCausalLM

    from multissl.decoding import generate
    from multissl.models.common.backbones import config_from_dict

    g = FULL["gpt"] if not o.smoke else SMOKE["gpt"]
    cfg = dict(_gpt_config(dict(g, context=c["prompt"] + c["new"])), eos_token_id=None, bos_token_id=None)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config_from_dict(cfg), attn_implementation="sdpa")
    model = model.to(o.device, torch.bfloat16 if o.precision == "bf16" else torch.float32).eval()
    ids = _ids(c["batch"], c["prompt"], g["vocab"], o.device)
    mine = generate(model, ids, max_new_tokens=c["new"], eos_token_id=None, pad_token_id=0)
    same = (mine == bare.greedy_decode(model, ids, c["new"])).float().mean().item()
    if same < 1:  # bf16 near-ties of a random model's logits can break differently across attention kernels
        print(f"  decode: {100 * same:.1f}% of the tokens agree between multissl and the bare loop", flush=True)
    ours = lambda: lambda: generate(model, ids, max_new_tokens=c["new"], eos_token_id=None, pad_token_id=0)  # noqa: E731
    theirs = lambda: lambda: bare.greedy_decode(model, ids, c["new"])  # noqa: E731
    return {"unit": "new tokens/s", "work": c["batch"] * c["new"], "flops": None, "ours": ours, "bare": theirs}


WORKLOADS = {"gpt": run_gpt, "bert": run_bert, "simclr": run_simclr, "clip": run_clip, "decode": run_decode}


def measure(name: str, o: argparse.Namespace, peak: float | None) -> dict:
    """Build and time multissl's step, free it, then the bare one: a table row."""
    spec = WORKLOADS[name]((SMOKE if o.smoke else FULL)[name], o)
    row = {"workload": name, "unit": spec["unit"]}
    for side in ("ours", "bare"):
        torch.manual_seed(0)
        step = spec[side]()
        seconds = seconds_per_step(step, o.device, o.warmup, o.steps)
        row[side] = spec["work"] / seconds
        if spec["flops"] and peak:
            row[f"mfu_{side}"] = spec["flops"] / seconds / (peak * 1e12)
        del step
        if o.device.type == "cuda":  # free this side's model before the next is built (gc: closures hold cycles)
            gc.collect()
            row[f"peak_gib_{side}"] = torch.cuda.max_memory_allocated(o.device) / 2**30
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(o.device)
    row["ratio"] = row["ours"] / row["bare"]
    return row


def table(rows: list[dict]) -> str:
    """One fixed-width table: throughput of both sides, their ratio and MFU where known."""
    lines = [f"{'workload':<8} {'unit':<13} {'multissl':>12} {'bare torch':>12} {'ratio':>6} {'MFU ours':>9} {'MFU bare':>9}"]
    for r in rows:
        mfu = [f"{100 * r[k]:8.1f}%" if k in r else f"{'n/a':>9}" for k in ("mfu_ours", "mfu_bare")]
        lines.append(f"{r['workload']:<8} {r['unit']:<13} {r['ours']:>12,.1f} {r['bare']:>12,.1f} {r['ratio']:>6.2f} "
                     f"{mfu[0]} {mfu[1]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 warm-up + 2 timed steps (tests, CPU)")
    p.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), default=list(WORKLOADS))
    p.add_argument("--precision", choices=["bf16", "fp32"], default=None, help="default: bf16 on CUDA, fp32 elsewhere")
    p.add_argument("--compile", action="store_true", help="torch.compile both sides (multissl: train.compile)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for MFU")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the rows here")
    o = p.parse_args(argv)
    o.device = torch.device(o.device)
    if o.device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (use --device cpu --smoke)")
    o.precision = o.precision or ("bf16" if o.device.type == "cuda" else "fp32")
    o.warmup = o.warmup if o.warmup is not None else (1 if o.smoke else 5)
    o.steps = o.steps if o.steps is not None else (2 if o.smoke else 20)
    o.fused = True
    o.autocast = torch.autocast(o.device.type, torch.bfloat16) if o.precision == "bf16" else nullcontext()
    if o.device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # both sides: TF32 for any fp32 matmul left
        torch.backends.cudnn.benchmark = True  # both sides: fixed shapes, let cuDNN pick the fastest convolutions
    peak = peak_tflops(o.device, o.peak_tflops)
    name = torch.cuda.get_device_name(o.device) if o.device.type == "cuda" else "cpu"
    print(f"device: {name}; precision {o.precision}; compile {o.compile}; peak bf16 "
          f"{f'{peak} TFLOPS' if peak else 'unknown (MFU n/a; pass --peak-tflops)'}; {o.steps} steps after {o.warmup}")
    rows = []
    for workload in o.only:
        rows.append(measure(workload, o, peak))
        print(f"  {workload}: {rows[-1]['ours']:,.1f} vs {rows[-1]['bare']:,.1f} {rows[-1]['unit']}", flush=True)
    print(table(rows))
    if o.json:
        Path(o.json).parent.mkdir(parents=True, exist_ok=True)
        Path(o.json).write_text(json.dumps({"device": name, "precision": o.precision, "compile": o.compile, "rows": rows},
                                           indent=2))
    return rows


if __name__ == "__main__":
    main()
