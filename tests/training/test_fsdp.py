"""FSDP (Accelerate's FSDP2 plugin) against DDP: 2 gloo processes, the same seed, the same losses and final weights.

Accelerate 1.15 turns an FSDP config into FSDP only on GPUs/XPUs/NPUs (AcceleratorState sets DistributedType.FSDP
for those alone), while PyTorch's `fully_shard` itself runs on CPU with gloo. So these tests build a 2-process CPU
Accelerator and switch its state to FSDP with the plugin an FSDP config file would give: accelerator.prepare then
runs Accelerate's own FSDP2 path (fsdp2_prepare_model -> fully_shard) and the loop trains with sharded parameters.
What a real launch on CPU does instead (each process trains alone) is refused, and tested below.
"""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType

from multissl.cli import build_parser
from multissl.commands.train import launch_command
from multissl.models.base import config_keys
from multissl.registry import METHODS
from multissl.training.config import TrainArgs
from multissl.training.fsdp import check_launch
from tests.gloo import free_port, run_on_ranks


def _tiny_recipe(name: str, **train_keys) -> dict:
    spec = METHODS[name]
    params = config_keys(spec.config_class)
    model = {k: v for k, v in spec.model_class.tiny_config().to_diff_dict().items() if k in params}
    return {"method": name, "model": model, "train": {"max_steps": 3, "batch_size": 4, "log_every": 1,
                                                      "learning_rate": 1e-2, "progress": False, **train_keys}}


def _accelerator(rank: int, port: int, fsdp: bool):
    """A 2-process CPU Accelerator on the gloo group tests.gloo started; with fsdp, switched to Accelerate's FSDP2."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import FullyShardedDataParallelPlugin

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    AcceleratorState._reset_state(reset_partial_state=True)  # a forked worker inherits the parent's singleton
    accelerator = Accelerator(cpu=True)
    assert accelerator.distributed_type == DistributedType.MULTI_CPU and accelerator.num_processes == 2
    if fsdp:
        AcceleratorState().fsdp_plugin = FullyShardedDataParallelPlugin(fsdp_version=2, reshard_after_forward=True)
        for shared in (AcceleratorState._shared_state, PartialState._shared_state):  # both: prepare re-reads one
            shared["distributed_type"] = DistributedType.FSDP
    return accelerator


def _ddp_then_fsdp(name: str, train_keys: dict, tmp: str, port: int):
    def worker(rank: int) -> dict:
        from safetensors.torch import load_file

        from multissl.training import recipe_from_dict, train

        out = {}
        for mode in ("ddp", "fsdp"):
            accelerator = _accelerator(rank, port, fsdp=mode == "fsdp")
            result = train(recipe_from_dict(_tiny_recipe(name, **train_keys)), f"{tmp}/{mode}", accelerator=accelerator)
            sharded = [type(p).__name__ for p in accelerator._models[0].parameters()]
            accelerator.wait_for_everyone()
            weights = load_file(f"{tmp}/{mode}/final/model.safetensors")  # written by rank 0 from the gathered state
            out[mode] = {"losses": result.losses, "param_types": sorted(set(sharded)),
                         "weights": {k: v.double().flatten().tolist() for k, v in weights.items()}}
        return out

    return worker


# (method, train keys, state-dict prefixes that must be in the weight comparison: the EMA teachers, buffers kept
# in step by a collective; SimCLR has none: its gathered NT-Xent is checked through the losses and student weights)
CASES = [("byol", {}, ("target_",)), ("moco", {}, ("key_", "queue.")),
         ("byol", {"optimizer": "lars", "learning_rate": 0.5, "weight_decay": 1e-4}, ("target_",)),
         ("simclr", {}, ()), ("dino", {}, ("teacher_backbone.", "teacher_head.", "center"))]


@pytest.mark.slow
@pytest.mark.parametrize("name,train_keys,teacher", CASES,
                         ids=["byol-adamw", "moco-adamw", "byol-lars", "simclr-adamw", "dino-adamw"])
def test_fsdp_trains_the_ddp_losses_and_weights(name, train_keys, teacher, tmp_path):
    """EMA targets (updated shard by shard), MoCo's queue and DINO's centre (buffers all-reduced or gathered), the
    gathered NT-Xent (SimCLR) and LARS's per-layer norms (over the whole tensor, not a shard) must all equal the
    unsharded run."""
    r0, r1 = run_on_ranks(_ddp_then_fsdp(name, train_keys, str(tmp_path), free_port()), 2)
    assert r0["fsdp"]["param_types"] == ["DTensor"] and r0["ddp"]["param_types"] == ["Parameter"]
    assert r0["fsdp"]["losses"] == r1["fsdp"]["losses"]  # logged losses are the mean over both processes
    assert len(r0["ddp"]["losses"]) == 3
    assert r0["fsdp"]["losses"] == pytest.approx(r0["ddp"]["losses"], rel=1e-4, abs=1e-5)
    ddp, fsdp = r0["ddp"]["weights"], r0["fsdp"]["weights"]
    assert fsdp.keys() == ddp.keys()
    assert all(any(k.startswith(prefix) for k in ddp) for prefix in teacher)  # the teacher state is compared too
    compared = [k for k in ddp if not _feeds_batchnorm(k, ddp)]
    assert len(compared) > len(ddp) // 2
    for key in compared:
        torch.testing.assert_close(torch.tensor(fsdp[key]), torch.tensor(ddp[key]), rtol=1e-4, atol=1e-5, msg=key)


def _feeds_batchnorm(key: str, state: dict) -> bool:
    """True for a Linear/Conv bias whose next module (index + 1 in the same Sequential) is a BatchNorm.

    BatchNorm subtracts the batch mean, so that bias's gradient is zero in exact arithmetic: what Adam sees is
    rounding noise, which it normalises to steps of ~lr whose sign differs between DDP's and FSDP's reductions.
    The bias has no effect on the output (BN removes it in training and, through running_mean, in eval).
    """
    parts = key.split(".")
    if parts[-1] != "bias" or len(parts) < 3 or not parts[-2].isdigit():
        return False
    return ".".join([*parts[:-2], str(int(parts[-2]) + 1), "running_mean"]) in state


# ---- what is refused, and the --accelerate-config plumbing ----------------------------------------------------

def _fake(distributed_type=DistributedType.NO, processes=1, fsdp_version=2):
    return SimpleNamespace(num_processes=processes, distributed_type=distributed_type, device=torch.device("cpu"),
                           state=SimpleNamespace(fsdp_plugin=SimpleNamespace(fsdp_version=fsdp_version)))


def test_an_fsdp_config_on_cpu_is_refused_not_run_twice(monkeypatch):
    # What `accelerate launch --config_file fsdp.yaml` gives on a CPU machine: 2 processes, each with no group.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match=r"2 processes were launched but this one trains alone .* not on CPU"):
        check_launch(_fake(), TrainArgs(), resume=False)


def test_fsdp1_and_fsdp_checkpoints_are_refused(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    with pytest.raises(ValueError, match="set `fsdp_version: 2`"):
        check_launch(_fake(DistributedType.FSDP, 2, fsdp_version=1), TrainArgs(), resume=False)
    with pytest.raises(ValueError, match=r"FSDP: train.save_every, --resume need step checkpoints"):
        check_launch(_fake(DistributedType.FSDP, 2), TrainArgs(save_every=5), resume=True)
    check_launch(_fake(DistributedType.FSDP, 2), TrainArgs(), resume=False)  # FSDP2 without checkpoints: fine
    check_launch(_fake(DistributedType.MULTI_CPU, 2), TrainArgs(save_every=5), resume=True)  # DDP: anything goes


def test_accelerate_config_relaunches_the_same_command():
    args = build_parser().parse_args(["train", "r.yaml", "--output-dir", "runs/x", "--resume", "--set", "train.seed=1",
                                      "model.note=a b", "--report-to", "tensorboard", "--accelerate-config", "f.yaml"])
    cmd = launch_command(args)
    assert cmd[:7] == [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file", "f.yaml", "-m"]
    again = build_parser().parse_args(cmd[cmd.index("train"):])  # what the launched processes parse
    assert (again.recipe, again.output_dir, again.resume, again.overrides, again.report_to, again.accelerate_config) == (
        "r.yaml", "runs/x", True, ["train.seed=1", "model.note=a b"], ["tensorboard"], None)


def test_accelerate_config_must_exist(tmp_path):
    from multissl.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: simclr\n")
    assert main(["train", str(recipe), "--output-dir", str(tmp_path / "o"), "--accelerate-config",
                 str(tmp_path / "missing.yaml")]) == 1
    assert not (tmp_path / "o").exists()
