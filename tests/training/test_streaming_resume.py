"""Streamed runs through the one loop: SimCLR on image shards, GPT on JSON-lines text (line by line) and GPT / BERT-MLM
on text packed into token blocks (grouping: group), stopped mid-stream and resumed, log the loss curve of the
uninterrupted run; the stream position is JSON in state.json."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from multissl.data.shard import shard_folder
from multissl.training import recipe_from_dict, train
from multissl.training.checkpoint import CHECKPOINT_FILES, checkpoint_dirs

TINY_RESNET = {"model_type": "resnet", "num_channels": 3, "embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1],
               "layer_type": "basic"}


@pytest.fixture(scope="module")
def image_shards(tmp_path_factory):
    """32 random 16x16 images in 2 classes, written as 4 parquet shards by `data shard`."""
    root = tmp_path_factory.mktemp("streaming")
    rng = np.random.default_rng(0)
    for i in range(32):
        folder = root / "src" / ("ab"[i % 2])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    shard_folder(root / "src", root / "shards", "images", shard_size=8)
    return root / "shards"


def _simclr(shards, **train_kw):
    train_args = {"max_steps": 6, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 1, "log_every": 1,
                  "save_every": 2, "num_workers": 2, "progress": False, **train_kw}
    return recipe_from_dict({"method": "simclr", "dataset": str(shards), "streaming": {"shuffle_buffer": 6},
                             "model": {"backbone_config": TINY_RESNET, "image_size": 16, "projection_hidden_dim": 16,
                                       "projection_dim": 8},
                             "train": train_args})


def _logged(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_streamed_simclr_killed_mid_stream_resumes_to_the_same_curve(image_shards, tmp_path):
    # 1 process x 2 loader streams of 16 rows = 2 batches of 8 per stream and epoch: 6 steps cross an epoch
    full = train(_simclr(image_shards), tmp_path / "full")
    assert len(full.losses) == 6

    part = train(_simclr(image_shards, stop_after_steps=3), tmp_path / "part")  # checkpoints step_2, step_3
    assert [p.name for p in checkpoint_dirs(tmp_path / "part")] == ["step_2", "step_3"]
    state = json.loads((tmp_path / "part" / "checkpoints" / "step_2" / "state.json").read_text())
    assert {p.name for p in (tmp_path / "part" / "checkpoints" / "step_2").iterdir()} == CHECKPOINT_FILES
    assert state["data"][0]["streams"] == 2 and all(p["epoch"] == 0 for p in state["data"][0]["positions"])
    # As if killed during step 3 before its checkpoint: the loader workers had read past step 2
    shutil.rmtree(tmp_path / "part" / "checkpoints" / "step_3")
    resumed = train(_simclr(image_shards, num_workers=1), tmp_path / "part", resume=True)  # 1 worker serves both streams
    assert part.losses[:2] + resumed.losses == pytest.approx(full.losses, abs=1e-6)
    assert _logged(tmp_path / "part") == pytest.approx(full.losses, abs=1e-6)


def _text_shards(folder):
    """3 JSON-lines files of 10 texts of 4..11 words each."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    rng = np.random.default_rng(1)
    folder.mkdir()
    for f in range(3):
        lines = [{"text": " ".join(rng.choice(words, size=rng.integers(4, 12)))} for _ in range(10)]
        (folder / f"part-{f}.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    return folder


def _text_recipe(method, folder, grouping, block_size, **train_kw):
    backbone = ({"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2} if method == "gpt_lm" else
                {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 64})
    return recipe_from_dict({"method": method, "dataset": str(folder), "streaming": {"shuffle_buffer": 4},
                             "model": {"backbone_config": backbone, "tokenizer_path": "trained:python_docs/bpe/320",
                                       "block_size": block_size, "grouping": grouping},
                             "train": {"max_steps": 6, "batch_size": 4, "warmup_steps": 1, "log_every": 1,
                                       "save_every": 2, "progress": False, **train_kw}})


def test_streamed_gpt_stopped_and_resumed_gives_the_same_losses(tmp_path):
    text = _text_shards(tmp_path / "text")
    full = train(_text_recipe("gpt_lm", text, "line", 32), tmp_path / "full")  # 30 texts / 4 per batch: step 6 is in epoch 2
    part = train(_text_recipe("gpt_lm", text, "line", 32, stop_after_steps=3), tmp_path / "part")
    resumed = train(_text_recipe("gpt_lm", text, "line", 32), tmp_path / "part", resume=True)
    assert part.losses + resumed.losses == pytest.approx(full.losses, abs=1e-6)
    import yaml

    assert yaml.safe_load((tmp_path / "part" / "recipe.yaml").read_text())["streaming"] == {"shuffle_buffer": 4}


@pytest.mark.parametrize("method", ["gpt_lm", "bert_mlm"])
def test_streamed_grouped_text_killed_mid_stream_resumes_to_the_same_curve(tmp_path, method):
    # grouping: group packs each of the 2 streams' texts into 32-token blocks: 15-16 blocks a stream and epoch, so 10
    # steps of 4 blocks (20 a stream) cross an epoch, and most positions carry tokens from one window into the next.
    text = _text_shards(tmp_path / "text")
    full = train(_text_recipe(method, text, "group", 32, max_steps=10, num_workers=2), tmp_path / "full")
    assert len(full.losses) == 10
    part = train(_text_recipe(method, text, "group", 32, max_steps=10, num_workers=2, stop_after_steps=5),
                 tmp_path / "part")
    assert [p.name for p in checkpoint_dirs(tmp_path / "part")] == ["step_4", "step_5"]
    state = json.loads((tmp_path / "part" / "checkpoints" / "step_4" / "state.json").read_text())
    positions = state["data"][0]["positions"]
    assert state["data"][0]["streams"] == 2 and all({"carry", "block"} <= set(p) for p in positions)
    shutil.rmtree(tmp_path / "part" / "checkpoints" / "step_5")  # as if killed during step 5: workers had read past 4
    resumed = train(_text_recipe(method, text, "group", 32, max_steps=10, num_workers=1), tmp_path / "part",
                    resume=True)  # 1 worker serves both streams
    assert part.losses[:4] + resumed.losses == pytest.approx(full.losses, abs=1e-6)
    assert _logged(tmp_path / "part") == pytest.approx(full.losses, abs=1e-6)


@pytest.mark.slow
def test_two_processes_stream_and_resume_to_the_same_curve(image_shards, tmp_path):
    """2 gloo processes: each process's stream position is gathered into the checkpoint and handed back on resume."""
    import os

    from tests.gloo import free_port, run_on_ranks

    port, tmp = free_port(), str(tmp_path)

    def worker(rank: int) -> dict:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        AcceleratorState._reset_state(reset_partial_state=True)  # a forked worker inherits the parent's singleton
        acc = Accelerator(cpu=True)
        assert acc.num_processes == 2
        # 2 processes x 1 stream of 16 rows = 2 batches of 8 per epoch: 4 steps cross an epoch
        full = train(_simclr(image_shards, max_steps=4, num_workers=1), f"{tmp}/full", accelerator=acc)
        part = train(_simclr(image_shards, max_steps=4, num_workers=1, stop_after_steps=3), f"{tmp}/part", accelerator=acc)
        acc.wait_for_everyone()
        state = json.loads((tmp_path / "part" / "checkpoints" / "step_2" / "state.json").read_text())
        acc.wait_for_everyone()
        if rank == 0:  # as if killed during step 3, before its checkpoint
            shutil.rmtree(tmp_path / "part" / "checkpoints" / "step_3")
        acc.wait_for_everyone()
        resumed = train(_simclr(image_shards, max_steps=4, num_workers=1), f"{tmp}/part", resume=True, accelerator=acc)
        return {"full": full.losses, "resumed": part.losses[:2] + resumed.losses, "data": state["data"]}

    for out in run_on_ranks(worker):
        assert out["resumed"] == pytest.approx(out["full"], abs=1e-6)
        assert [d["streams"] for d in out["data"]] == [1, 1]  # one entry per process, rank order
