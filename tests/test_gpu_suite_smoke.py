"""benchmarks/gpu_suite.py runs end to end on the CPU (`--device cpu --smoke`), and its FLOP count is GPT-2's."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("_gpu_bare", None)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # the suite's Accelerator(cpu=True) is not the loop's


def test_smoke_run_prints_one_row_per_workload(suite, capsys):
    rows = suite.main(["--device", "cpu", "--smoke", "--peak-tflops", "1.0"])
    out = capsys.readouterr().out
    assert [r["workload"] for r in rows] == ["gpt", "bert", "simclr", "clip", "decode"]
    for r in rows:
        assert r["ours"] > 0 and r["bare"] > 0 and math.isclose(r["ratio"], r["ours"] / r["bare"])
        assert ("mfu_ours" in r) == (r["workload"] in ("gpt", "bert", "clip"))  # FLOPs known for transformers only
    assert out.count("\n") >= 7 and "MFU ours" in out and "decode   new tokens/s" in out


def test_flops_per_token_count_every_gpt2_matmul_weight(suite):
    from transformers import GPT2Config, GPT2LMHeadModel

    d, layers, vocab, context = 48, 3, 100, 16
    model = GPT2LMHeadModel(GPT2Config(n_embd=d, n_layer=layers, n_head=4, vocab_size=vocab, n_positions=context))
    # matmul weights: 2-D tensors but the position table (a lookup); wte counts once, as the tied LM head
    matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "wpe" not in n)
    assert suite.transformer_flops_per_token(d, layers, vocab, context) == 6 * matmul + 12 * layers * context * d


def test_peak_table_and_override(suite):
    assert suite.peak_tflops(torch.device("cpu"), None) is None
    assert suite.peak_tflops(torch.device("cpu"), 123.0) == 123.0
    assert dict(suite.PEAK_BF16_TFLOPS)["H200"] == 989.4
