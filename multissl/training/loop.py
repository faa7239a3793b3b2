"""The one Accelerate training loop every method trains through."""
from __future__ import annotations

import inspect
import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from multissl.errors import TrainingDivergedError
from multissl.models._backbones import load_pretrained_backbone
from multissl.registry import MethodSpec, get_method
from multissl.training.batches import BatchSource, RangeSampler, derive_seed, seed_everything
from multissl.training.checkpoint import CHECKPOINTS, atomic_dir, checkpoint_dirs, prune_checkpoints, read_state
from multissl.training.config import Recipe, RecipeError, TrainArgs
from multissl.training.metrics_log import MetricsLog, plot_loss_curve
from multissl.training.schedules import warmup_cosine


@dataclass
class TrainResult:
    """What a run produced: where, how far, the logged losses and any end-of-run evaluation."""

    output_dir: Path
    final_dir: Path | None
    steps: int
    losses: list[float] = field(default_factory=list)
    eval: dict = field(default_factory=dict)


def build_config(spec: MethodSpec, model_kwargs: dict, source: str = "recipe") -> Any:
    """The method's config from recipe kwargs; unknown keys are an error (PretrainedConfig would swallow them)."""
    params = inspect.signature(spec.config_class.__init__).parameters
    allowed = {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    unknown = set(model_kwargs) - allowed
    if unknown:
        raise RecipeError(f"{source}: unknown model key(s) {sorted(unknown)} for method {spec.name!r}; allowed: {sorted(allowed)}")
    return spec.config_class(**model_kwargs)


def build_model(spec: MethodSpec, config: Any) -> torch.nn.Module:
    """A fresh model for `config`, with its backbone loaded from config.backbone_path when set."""
    model = spec.model_class(config)
    if getattr(config, "backbone_path", None):
        load_pretrained_backbone(model, config.backbone_path)
    return model


def make_optimizer(model: torch.nn.Module, args: TrainArgs) -> torch.optim.Optimizer:
    """AdamW/SGD with no weight decay on biases and norm weights (1-D parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.learning_rate, momentum=args.momentum)
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=tuple(args.betas))


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _scalars(output: Any) -> dict[str, torch.Tensor]:
    """0-d tensors in a ModelOutput (loss and any per-method metrics such as accuracy)."""
    items = output.items() if hasattr(output, "items") else []
    return {k: v.detach().float() for k, v in items if isinstance(v, torch.Tensor) and v.dim() == 0}


def train(recipe: Recipe, output_dir: str | Path, resume: bool = False, accelerator: Accelerator | None = None) -> TrainResult:
    """Train `recipe` into `output_dir` (checkpoints/, metrics.jsonl, loss_curve.png, final/); resume from the newest checkpoint."""
    from multissl.data import load_dataset_by_name

    out = Path(output_dir)
    args = recipe.train
    spec = get_method(recipe.method)
    accelerator = accelerator or _make_accelerator(args.mixed_precision)
    seed_everything(args.seed)
    dataset_name = recipe.dataset or spec.default_dataset
    if dataset_name is None:
        raise RecipeError(f"{recipe.source}: no 'dataset' given and method {spec.name!r} has no default dataset")
    # The main process goes first: caches it fills (a trained tokenizer, a tokenised dataset) are
    # then read, not written concurrently, by the other processes of `accelerate launch`.
    with accelerator.main_process_first():
        config = build_config(spec, recipe.model, recipe.source)
        model = build_model(spec, config)
        dataset = load_dataset_by_name(dataset_name, split=recipe.dataset_split, **recipe.dataset_args)
        prepare = spec.extra.get("prepare_dataset")
        if prepare is not None:  # e.g. tokenise and group text into blocks once, before batching
            dataset = prepare(config, dataset)
    source = BatchSource(dataset, spec.make_collator(config, train=True), args.batch_size, args.seed,
                         accelerator.num_processes, accelerator.process_index)

    optimizer = make_optimizer(model, args)
    scheduler = LambdaLR(optimizer, lambda s: warmup_cosine(s, args.max_steps, args.warmup_steps, args.min_lr_ratio))
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)  # not prepared: Accelerate would step it once per process

    start_step = 0
    if resume:
        ckpts = checkpoint_dirs(out)
        if not ckpts:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {out / CHECKPOINTS}")
        try:
            accelerator.load_state(str(ckpts[-1]))
        except Exception as err:  # truncated / edited checkpoint: say which folder, keep the cause
            raise ValueError(
                f"--resume: checkpoint {ckpts[-1]} cannot be loaded ({type(err).__name__}: {err}); "
                f"delete that folder to resume from an older checkpoint"
            ) from err
        start_step = read_state(ckpts[-1])["step"]
        accelerator.print(f"resumed from {ckpts[-1]} at step {start_step}")
    elif checkpoint_dirs(out):  # every process checks, so none is left waiting for a main process that stopped
        raise FileExistsError(f"{out} already holds checkpoints; pass --resume to continue or choose a new --output-dir")

    log = MetricsLog(out / "metrics.jsonl", resume_step=start_step if resume else None) if accelerator.is_main_process else None
    if accelerator.is_main_process:
        (out / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    accum = args.gradient_accumulation_steps
    stop = min(args.max_steps, args.stop_after_steps or args.max_steps)
    loader = DataLoader(source, batch_size=None, sampler=RangeSampler(start_step * accum, stop * accum),
                        num_workers=args.num_workers, persistent_workers=False, prefetch_factor=4 if args.num_workers else None)
    batches = iter(loader)
    unwrapped = accelerator.unwrap_model(model)
    step_hook = getattr(unwrapped, "on_step_end", None)
    samples_per_step = args.batch_size * accum * accelerator.num_processes

    pbar = tqdm(total=stop, initial=start_step, desc=f"train {spec.name}", disable=not (args.progress and accelerator.is_local_main_process), dynamic_ncols=True)
    sums: dict[str, torch.Tensor] = {}
    n_sum, t_last, losses = 0, time.perf_counter(), []
    finite = torch.ones((), dtype=torch.bool, device=accelerator.device)
    batch = None
    for step in range(start_step, stop):
        model.train()
        for micro in range(accum):
            batch = _to_device(next(batches), accelerator.device)
            # Dropout / masking in forward is a function of (seed, step): resume replays it exactly.
            seed_everything(derive_seed(args.seed, step * accum + micro, accelerator.process_index, 2))
            sync = nullcontext() if micro == accum - 1 else accelerator.no_sync(model)
            with sync:
                output = model(**batch)
                finite &= torch.isfinite(output.loss.detach())
                accelerator.backward(output.loss / accum)
            for k, v in _scalars(output).items():
                sums[k] = sums.get(k, 0) + v / accum
        if args.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step_hook is not None:
            step_hook(step, args.max_steps)  # EMA teachers, queues, schedules
        n_sum += 1
        pbar.update(1)

        done = step + 1
        if done % args.log_every == 0 or done == stop or (args.save_every and done % args.save_every == 0):
            if not bool(finite):
                raise TrainingDivergedError(
                    f"loss became NaN/inf at or before step {done}; nothing was saved after the last good checkpoint "
                    f"({checkpoint_dirs(out)[-1] if checkpoint_dirs(out) else 'none'}). Lower the learning rate or check the data."
                )
            now = time.perf_counter()
            row = {k: accelerator.reduce(v / n_sum, "mean").item() for k, v in sorted(sums.items())}
            row.update(step=done, lr=scheduler.get_last_lr()[0], samples_per_s=round(samples_per_step * n_sum / (now - t_last), 2))
            losses.append(row["loss"])
            if log is not None:
                log.write(row)
            pbar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", sps=row["samples_per_s"])
            sums, n_sum, t_last = {}, 0, time.perf_counter()
        if (args.save_every and done % args.save_every == 0) or (done == stop and stop < args.max_steps):
            _save_checkpoint(accelerator, out, done, args.keep_checkpoints)
    pbar.close()

    result = TrainResult(output_dir=out, final_dir=None, steps=stop, losses=losses)
    accelerator.wait_for_everyone()
    if stop < args.max_steps:
        return result  # time-boxed: checkpoint written, no final model
    if accelerator.is_main_process:
        result.final_dir = atomic_dir(out / "final", lambda tmp: unwrapped.save_pretrained(tmp, safe_serialization=True))
        plot_loss_curve(log.rows(), out / "loss_curve.png", title=f"{spec.name} on {dataset_name}")
        end_hook = getattr(unwrapped, "on_train_end", None)
        if end_hook is not None and batch is not None:  # e.g. MAE's reconstruction grid from the last batch
            end_hook(out, batch)
        result.eval = _evaluate(recipe, result.final_dir, dataset_name)
        if result.eval:
            (out / "eval.json").write_text(json.dumps(result.eval, indent=2))
    accelerator.wait_for_everyone()
    return result


def _make_accelerator(mixed_precision: str) -> Accelerator:
    """An Accelerator; a second run in the same process may change the precision (Accelerate's state is a singleton)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", mixed_precision)) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)  # keeps the process group of `accelerate launch`
    return Accelerator(mixed_precision=mixed_precision)


def _save_checkpoint(accelerator: Accelerator, out: Path, step: int, keep: int) -> None:
    """Accelerate save_state into step_N.tmp, then rename: a crash mid-save never looks complete."""
    final, tmp = out / CHECKPOINTS / f"step_{step}", out / CHECKPOINTS / f"step_{step}.tmp"
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "state.json").write_text(json.dumps({"step": step}))
        if final.exists():
            import shutil

            shutil.rmtree(final)
        os.replace(tmp, final)
        prune_checkpoints(out, keep)
    accelerator.wait_for_everyone()


def _evaluate(recipe: Recipe, final_dir: Path, dataset_name: str) -> dict:
    """End-of-run evaluation declared in the recipe's `eval:` section (k-NN / linear probe)."""
    if not recipe.eval:
        return {}
    from multissl.evaluation import evaluate_model

    results = {}
    for protocol, kwargs in recipe.eval.items():
        kwargs = dict(kwargs or {})
        data = kwargs.pop("dataset", dataset_name)
        if data == dataset_name:  # evaluate on the data the run was trained on, with the same loader arguments
            kwargs.setdefault("dataset_args", dict(recipe.dataset_args))
        results[protocol] = evaluate_model(str(final_dir), data, protocol.replace("_", "-"), **kwargs)
    return results
