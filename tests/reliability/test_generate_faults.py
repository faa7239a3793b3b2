"""`multissl generate` faults: a wrong --model folder and decoding arguments out of range. One line naming the folder or
argument, exit 1 (argparse's own type errors: exit 2), and the model folder is never written to."""
import json

import pytest
import torch

from multissl.models.gpt_lm import GPTLMModel, tiny_gpt_lm_config
from tests.reliability import one_line_error, snapshot


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory):
    """A tiny random gpt_lm saved as a run's final/ folder (its tokenizer is the cached 320-piece BPE)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gpt") / "final"
    GPTLMModel(tiny_gpt_lm_config()).save_pretrained(path)
    return path


def _generate(cli, model, *args):
    return cli("generate", "--model", model, "--prompt", "Return the", "--max-new-tokens", "3", *args)


@pytest.mark.parametrize("args, needles", [
    (["--strategy", "nucleus"], ["unknown decoding strategy 'nucleus'", "top-p"]),
    (["--max-new-tokens", "-5"], ["max_new_tokens must be >= 1", "-5"]),
    (["--max-new-tokens", "0"], ["max_new_tokens must be >= 1", "got 0"]),
    (["--strategy", "top-p", "--top-p", "1.5"], ["top_p must be in (0, 1]", "1.5"]),
    (["--strategy", "top-p", "--top-p", "0"], ["top_p must be in (0, 1]"]),
    (["--strategy", "sample", "--temperature", "0"], ["temperature must be > 0"]),
    (["--strategy", "sample", "--temperature", "nan"], ["temperature must be > 0", "nan"]),
    (["--strategy", "top-k", "--top-k", "-1"], ["top_k must be >= 0", "-1"]),
    (["--strategy", "beam", "--num-beams", "0"], ["num_beams must be >= 1", "got 0"]),
    (["--strategy", "beam", "--num-beams", "2", "--num-return-sequences", "3"], ["num_return_sequences (3) must be <= num_beams (2)"]),
    (["--num-return-sequences", "2"], ["greedy decoding returns one sequence"]),
], ids=["strategy", "negative-max-new-tokens", "zero-max-new-tokens", "top-p-1.5", "top-p-0", "temperature-0", "temperature-nan",
        "top-k-negative", "num-beams-0", "more-sequences-than-beams", "sequences-with-greedy"])
def test_a_bad_decoding_argument_is_one_line(cli, gpt_dir, args, needles):
    before = snapshot(gpt_dir)
    one_line_error(_generate(cli, gpt_dir, *args), "generate", *needles)
    assert snapshot(gpt_dir) == before


@pytest.mark.parametrize("args", [["--strategy", "top-p", "--top-p", "1.5"], ["--strategy", "sample", "--temperature", "0"],
                                  ["--strategy", "top-k", "--top-k", "-1"]], ids=["top-p", "temperature", "top-k"])
def test_a_bad_decoding_argument_prints_nothing_on_stdout(cli, gpt_dir, args):
    result = _generate(cli, gpt_dir, *args)
    assert result.code == 1 and result.out == "", f"stdout: {result.out!r}"


@pytest.mark.parametrize("args, needle", [
    (["--strategy", "beam", "--top-p", "1.5"], "top_p"),
    (["--no-repeat-ngram-size", "-1"], "no_repeat_ngram_size"),
], ids=["top-p-with-beam", "negative-ngram-size"])
def test_an_out_of_range_argument_is_refused_whatever_the_strategy(cli, gpt_dir, args, needle):
    one_line_error(_generate(cli, gpt_dir, *args), "generate", needle)


@pytest.mark.parametrize("args, message", [
    (["--max-new-tokens", "abc"], "multissl generate: error: argument --max-new-tokens: invalid int value: 'abc'"),
    (["--early-stopping", "sometimes"], "multissl generate: error: argument --early-stopping: invalid choice: 'sometimes'"),
], ids=["not-an-int", "bad-choice"])
def test_argparse_type_errors_exit_2_with_the_error_on_the_last_line(cli, gpt_dir, args, message):
    result = _generate(cli, gpt_dir, *args)
    # argparse's convention: a usage block, then the one error line.
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip().splitlines()[-1].startswith(message)


def test_a_missing_model_folder_is_one_line(cli, tmp_path):
    one_line_error(_generate(cli, tmp_path / "runs" / "gpt" / "final"), "generate", "runs/gpt/final", "no config.json")
    assert not (tmp_path / "runs").exists()


def test_an_empty_model_folder_is_one_line(cli, tmp_path):
    one_line_error(_generate(cli, tmp_path), "generate", str(tmp_path), "no config.json")


def test_a_model_that_is_not_a_causal_lm_is_one_line(cli, finished_run_template):
    final = finished_run_template[0] / "final"
    before = snapshot(final)
    one_line_error(_generate(cli, final), "generate", "is a multissl_simclr model, not a causal LM", "gpt_lm")
    assert snapshot(final) == before


def test_truncated_weights_are_one_line_naming_the_file(cli, gpt_dir, tmp_path):
    broken = tmp_path / "final"
    broken.mkdir()
    for p in gpt_dir.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    one_line_error(_generate(cli, broken), "generate", str(weights), "corrupt or truncated")


def test_a_corrupt_config_json_is_one_line_naming_it(cli, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2",')
    one_line_error(_generate(cli, tmp_path), "generate", str(tmp_path / "config.json"))


def test_a_config_json_of_an_unknown_model_type_is_one_line(cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "nosuchlm"}))
    one_line_error(_generate(cli, tmp_path), "generate", "nosuchlm")
