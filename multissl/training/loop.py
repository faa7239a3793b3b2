"""The one Accelerate training loop every method trains through.

Order of a run, so that a bad value costs seconds and a user's folder is never touched in vain:
lock the run folder -> check it (artefacts, writability) -> build config, model and data -> check the
eval section against the data -> load the checkpoint (--resume) -> draw the first batch -> only now
move an old run aside (--overwrite), clean stale temp folders, write recipe.yaml / metrics.jsonl -> train.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm

from multissl.atomic import apply_umask, atomic_dir, atomic_write_text
from multissl.data.batches import BatchLoader, DataRequest, derive_seed, open_batches, seed_everything
from multissl.errors import TrainingDivergedError
from multissl.models.base import MethodConfig, MethodModel, config_keys
from multissl.registry import MethodSpec, get_method
from multissl.schedules import warmup_cosine
from multissl.training import run_dir
from multissl.training.checkpoint import CHECKPOINTS, checkpoint_dirs, load_checkpoint, prune_checkpoints, read_state, replace_dir, save_checkpoint
from multissl.training.config import Recipe, RecipeError, TrainArgs
from multissl.training.fsdp import check_launch, full_state_dict, prepare_for_fsdp
from multissl.training.interrupt import RunInterrupted, StopRequests, ignore_interrupts_in_worker
from multissl.training.metrics_log import MetricsLog, plot_loss_curve
from multissl.training.performance import apply_model_settings, check_mixed_precision, compile_backbones
from multissl.training.performance import make_optimizer as _make_optimizer
from multissl.training.recipe_checks import build_method_config, config_errors
from multissl.training.resume import check_resume_recipe
from multissl.training.run_eval import check_eval, evaluate_run
from multissl.training.tracking import check_trackers, finish_trackers, with_trackers


@dataclass
class TrainResult:
    """What a run produced: where, how far, the logged losses and any end-of-run evaluation."""

    output_dir: Path
    final_dir: Path | None
    steps: int
    losses: list[float] = field(default_factory=list)
    eval: dict = field(default_factory=dict)
    moved_aside: Path | None = None  # where --overwrite moved the previous run


def build_config(spec: MethodSpec, model_kwargs: dict, source: str = "recipe") -> MethodConfig:
    """The method's config from recipe kwargs; unknown keys are an error (PretrainedConfig would swallow them)."""
    allowed = config_keys(spec.config_class)
    unknown = set(model_kwargs) - allowed
    if unknown:
        raise RecipeError(f"{source}: unknown model key(s) {sorted(unknown)} for method {spec.name!r}; allowed: {sorted(allowed)}")
    return build_method_config(spec.config_class, model_kwargs, source)  # values checked by type, errors name the key


def build_model(spec: MethodSpec, config: MethodConfig) -> MethodModel:
    """A fresh model for `config`, its pretrained backbone loaded when the config names one (MethodModel.build)."""
    return spec.model_class.build(config)


def make_optimizer(model: torch.nn.Module, args: TrainArgs, device: torch.device | str | None = None) -> torch.optim.Optimizer:
    """AdamW/SGD/LARS with no weight decay on biases and norm weights (1-D parameters); fused/foreach kernels."""
    return _make_optimizer(model, args, device)


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
    return {k: v.detach().float() for k, v in output.items() if isinstance(v, torch.Tensor) and v.dim() == 0}


def train(recipe: Recipe, output_dir: str | Path, resume: bool = False, overwrite: bool = False,
          accelerator: Accelerator | None = None) -> TrainResult:
    """Train `recipe` into `output_dir` (checkpoints/, metrics.jsonl, loss_curve.png, final/); resume from the newest checkpoint.

    A folder that already holds a run is refused unless `resume` (continue it) or `overwrite` (move it aside
    to a sibling `<dir>.replaced-<time>` folder first; nothing is deleted).
    """
    out = Path(output_dir)
    args = recipe.train
    spec = get_method(recipe.method)  # imports only this method's module
    dataset_name = recipe.dataset or spec.default_dataset
    if dataset_name is None:
        raise RecipeError(f"{recipe.source}: no 'dataset' given and method {spec.name!r} has no default dataset")
    accelerator = accelerator or _make_accelerator(args.mixed_precision)
    check_launch(accelerator, args, resume)  # e.g. an FSDP config on a CPU: refused before anything is built
    check_mixed_precision(accelerator)  # fp16 on a CPU would silently train in fp32
    check_trackers(args.report_to)  # a tracker's missing package: before the output folder is touched
    if not args.progress:  # progress: false silences the libraries' bars too (dataset builds, weight loading)
        _quiet_library_progress_bars()
    main = accelerator.is_main_process
    if main:
        run_dir.check_writable(out)
    with run_dir.RunLock(out) if main else nullcontext():
        if main:  # leftovers of a killed run go first: restoring a `.final.old-*` can bring final/ back
            run_dir.clean_stale_temps(out)
        # Every process checks (read-only), so none is left waiting for a main process that refused.
        run_dir.check_run_dir(out, resume=resume, overwrite=overwrite)
        return _train_locked(recipe, out, spec, str(dataset_name), accelerator, resume, overwrite)


def _train_locked(recipe: Recipe, out: Path, spec: MethodSpec, dataset_name: str, accelerator: Accelerator,
                  resume: bool, overwrite: bool) -> TrainResult:
    args, main = recipe.train, accelerator.is_main_process
    if resume:
        check_resume_recipe(out, recipe)
    # Every default and --set override resolved, before any work: what this run trains is on screen (and in recipe.yaml).
    accelerator.print(f"resolved recipe ({recipe.source}):\n{yaml.safe_dump(recipe.to_dict(), sort_keys=False).rstrip()}")
    seed_everything(args.seed)
    # The main process goes first: caches it fills (a trained tokenizer, a tokenised dataset) are
    # then read, not written concurrently, by the other processes of `accelerate launch`.
    with accelerator.main_process_first():
        config = build_config(spec, recipe.model, recipe.source)
        with config_errors(recipe.source):  # e.g. an unknown backbone model_type: name the recipe
            model = build_model(spec, config)
        data = DataRequest(dataset_name, recipe.dataset_split, dict(recipe.dataset_args), recipe.streaming)
        source = spec.model_class.make_batch_source(config, data, batch_size=args.batch_size, seed=args.seed,
                                                    world_size=accelerator.num_processes, rank=accelerator.process_index)
    if main:
        check_eval(recipe, dataset_name)

    speed = apply_model_settings(model, args, accelerator.device)
    prepare_for_fsdp(model, accelerator)
    optimizer = make_optimizer(model, args, accelerator.device)
    scheduler = LambdaLR(optimizer, lambda s: warmup_cosine(s, args.max_steps, args.warmup_steps, args.min_lr_ratio))
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler is ours: Accelerate would step it per process
    unwrapped: MethodModel = accelerator.unwrap_model(model)
    speed += compile_backbones(unwrapped, args)
    if speed:
        accelerator.print(f"speed settings: {'; '.join(speed)}")
    start_step, data_state = 0, None
    if resume:
        ckpt = checkpoint_dirs(out)[-1]
        start_step = load_checkpoint(ckpt, unwrapped, optimizer, scheduler, accelerator.scaler, method=spec.name)
        data_state = read_state(ckpt).get("data")  # a stream's position (None for indexed data: the step says it)
        accelerator.print(f"resumed from {ckpt} at step {start_step}")

    accum = args.gradient_accumulation_steps
    stop = min(args.max_steps, args.stop_after_steps or args.max_steps)
    batches = open_batches(source, start_step * accum, stop * accum, num_workers=args.num_workers,
                           worker_init_fn=ignore_interrupts_in_worker, state=data_state)
    first = next(batches) if stop > start_step else None  # the data can produce a batch: only now touch the folder

    result = TrainResult(output_dir=out, final_dir=None, steps=stop)
    log = None
    if main:
        result.moved_aside = run_dir.move_aside(out) if overwrite else None
        if not resume:
            atomic_write_text(out / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        log = with_trackers(MetricsLog(out / "metrics.jsonl", resume_step=start_step if resume else None), args.report_to,
                            out, spec.name, recipe.to_dict(), start_step if resume else None)
    accelerator.wait_for_everyone()

    stops = StopRequests()
    try:
        with stops.installed():  # still installed while stopping: a second signal during the save stops at once, cleanly
            done, batch, stopped = _run_steps(recipe, spec, accelerator, model, unwrapped, optimizer, scheduler, batches,
                                              first, start_step, stop, log, result, stops, out)
            if stopped:  # (a request during the last step lets the run finish: the final model is moments away)
                _stop_cleanly(recipe, spec, accelerator, unwrapped, optimizer, scheduler, out, done, log, dataset_name,
                              stops, batches)
    finally:  # every step is logged: trackers finish (trackio's run, TensorBoard's file) also when a run stops or fails
        finish_trackers(log)

    accelerator.wait_for_everyone()
    if stop < args.max_steps:
        return result  # time-boxed: checkpoint written, no final model
    state = full_state_dict(accelerator, model)  # FSDP: every process joins the gather; None otherwise
    if main:
        from multissl.models.export import CardContext, refresh_final_card, save_final

        card = CardContext(recipe=recipe.to_dict(), dataset=dataset_name)  # weights, processor/tokenizer, README.md
        result.final_dir = atomic_dir(out / "final", lambda tmp: save_final(unwrapped, tmp, state_dict=state, context=card))
        plot_loss_curve(log.rows(), out / "loss_curve.png", title=f"{spec.name} on {dataset_name}")
        if batch is not None:  # e.g. MAE's reconstruction grid from the last batch
            unwrapped.on_train_end(out, batch)
        result.eval = evaluate_run(recipe, result.final_dir, dataset_name)
        if result.eval:
            atomic_write_text(out / "eval.json", json.dumps(result.eval, indent=2))
            card.eval_results = result.eval
            refresh_final_card(result.final_dir, unwrapped, card)  # the model card gains eval.json's metrics
    accelerator.wait_for_everyone()
    return result


def _run_steps(recipe, spec, accelerator, model, unwrapped, optimizer, scheduler, batches, first, start_step, stop,
               log, result, stops, out) -> tuple[int, Any, bool]:
    """Optimizer steps start_step .. stop-1; returns (steps done, last batch, stopped early on a stop request)."""
    args = recipe.train
    accum = args.gradient_accumulation_steps
    samples_per_step = args.batch_size * accum * accelerator.num_processes
    show = args.progress and accelerator.is_local_main_process
    pbar = tqdm(total=stop, initial=start_step, desc=f"train {spec.name}", disable=not show, dynamic_ncols=True)
    sums: dict[str, torch.Tensor] = {}
    n_sum, t_last = 0, time.perf_counter()
    finite = torch.ones((), dtype=torch.bool, device=accelerator.device)
    batch, done = None, start_step
    for step in range(start_step, stop):
        model.train()
        for micro in range(accum):
            raw = first if first is not None else next(batches)
            first = None
            batch = _to_device(raw, accelerator.device)
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
        unwrapped.on_step_end(step, args.max_steps)  # EMA teachers, queues, schedules
        n_sum += 1
        done = step + 1
        pbar.update(1)

        logging = done % args.log_every == 0 or done == stop or (args.save_every and done % args.save_every == 0)
        if logging:
            now = time.perf_counter()
            row = {k: accelerator.reduce(v / n_sum, "mean").item() for k, v in sorted(sums.items())}
            bad = sorted(k for k, v in row.items() if not math.isfinite(v))
            if not bool(finite) or bad:
                ckpts = checkpoint_dirs(out)
                raise TrainingDivergedError(
                    f"{', '.join(bad) or 'loss'} became NaN/inf at or before step {done}; nothing was saved after the last "
                    f"good checkpoint ({ckpts[-1] if ckpts else 'none'}). Lower the learning rate or check the data.")
            row.update(step=done, lr=scheduler.get_last_lr()[0], samples_per_s=round(samples_per_step * n_sum / (now - t_last), 2))
            result.losses.append(row["loss"])
            if log is not None:
                log.write(row)
            pbar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", sps=row["samples_per_s"])
            sums, n_sum, t_last = {}, 0, time.perf_counter()
        if (args.save_every and done % args.save_every == 0) or (done == stop and stop < args.max_steps):
            _save_checkpoint(accelerator, out, done, args.keep_checkpoints, unwrapped, optimizer, scheduler, spec.name,
                             batches)
        # One process decides alone; several agree at log steps (a collective every step would cost a sync).
        if done < stop and stops.should_stop(accelerator, at_sync_point=bool(logging)):
            pbar.close()
            return done, batch, True
    pbar.close()
    return done, batch, False


def _stop_cleanly(recipe, spec, accelerator, unwrapped, optimizer, scheduler, out, done, log, dataset_name, stops,
                  batches) -> None:
    """After Ctrl-C / SIGTERM: a checkpoint at the last finished step, the loss plot, one line on how to resume."""
    if not any(p.name == f"step_{done}" for p in checkpoint_dirs(out)):
        _save_checkpoint(accelerator, out, done, recipe.train.keep_checkpoints, unwrapped, optimizer, scheduler, spec.name,
                         batches)
    if accelerator.is_main_process and log is not None:
        plot_loss_curve(log.rows(), out / "loss_curve.png", title=f"{spec.name} on {dataset_name} (stopped at step {done})")
    raise RunInterrupted(stops.requested, f"stopped at step {done}; checkpoint {out / CHECKPOINTS / f'step_{done}'}; continue with "
                                          f"`multissl train {recipe.source} --output-dir {out} --resume`")


def _quiet_library_progress_bars() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _make_accelerator(mixed_precision: str) -> Accelerator:
    """An Accelerator; a second run in the same process may change the precision (Accelerate's state is a singleton)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", mixed_precision)) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)  # keeps the process group of `accelerate launch`
    # Several processes (torchrun, or a MULTI_CPU accelerate config) on a machine with no GPU: Accelerate forms the
    # gloo group only when told the run is on CPU; without this each process would train the whole run alone.
    cpu_group = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu_group)


def _save_checkpoint(accelerator: Accelerator, out: Path, step: int, keep: int, model: MethodModel,
                     optimizer: torch.optim.Optimizer, scheduler: Any, method: str, batches: BatchLoader | None = None) -> None:
    """Write step_N.tmp, then rename: a crash mid-save never looks complete. Every process holds the same state
    (DDP), so the main process writes it; a stream's position differs per process, so it is gathered first."""
    accelerator.wait_for_everyone()
    position = batches.state_dict() if batches is not None else None  # None on every process, or on none
    data_state = None if position is None else gather_object([position]) if accelerator.num_processes > 1 else [position]
    if accelerator.is_main_process:
        final, tmp = out / CHECKPOINTS / f"step_{step}", out / CHECKPOINTS / f"step_{step}.tmp"
        if tmp.exists():  # left by a process killed mid-save
            shutil.rmtree(tmp)
        try:
            save_checkpoint(tmp, model, optimizer, scheduler, accelerator.scaler, step=step, method=method, data_state=data_state)
            apply_umask(tmp)  # safetensors writes its files 0o600
        except BaseException:  # disk full, permission, ...: leave no half-written folder behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_dir(tmp, final)
        prune_checkpoints(out, keep)
    accelerator.wait_for_everyone()
