"""`multissl generate` on a saved gpt_lm folder: streams text; unknown strategy and long prompts are clear errors."""
import pytest
import torch

from multissl.cli import main
from multissl.models.gpt_lm import GPTLMModel, tiny_gpt_lm_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gpt") / "final"
    GPTLMModel(tiny_gpt_lm_config()).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("strategy", ["greedy", "top-p", "beam"])
def test_generate_prints_the_prompt_and_a_continuation(model_dir, strategy, capsys):
    assert main(["generate", "--model", model_dir, "--prompt", "Return the", "--strategy", strategy,
                 "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Return the")
    if strategy != "beam":  # a random model's best beam may be '</s>' at once (printed without special tokens)
        assert len(out.strip()) > len("Return the")


def test_beam_with_several_sequences(model_dir, capsys):
    assert main(["generate", "--model", model_dir, "--prompt", "Open a", "--strategy", "beam", "--num-beams", "3",
                 "--num-return-sequences", "2", "--max-new-tokens", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[0] Open a") and lines[1].startswith("[1] Open a")


def test_unknown_strategy(model_dir, capsys):
    assert main(["generate", "--model", model_dir, "--prompt", "x", "--strategy", "nucleus"]) == 1
    assert "unknown decoding strategy 'nucleus'" in capsys.readouterr().err


def test_prompt_longer_than_the_context(model_dir, capsys):
    assert main(["generate", "--model", model_dir, "--prompt", "word " * 40, "--max-new-tokens", "5"]) == 1
    assert "the prompt has 120 tokens but the model's context is 64 positions" in capsys.readouterr().err


def test_beam_and_filter_options_reach_generate(model_dir, capsys, monkeypatch):
    import multissl.decoding as decoding

    seen = {}
    real = decoding.generate

    def spy(model, ids, **kwargs):
        seen.update(kwargs)
        return real(model, ids, **kwargs)

    monkeypatch.setattr(decoding, "generate", spy)
    assert main(["generate", "--model", model_dir, "--prompt", "Open a", "--strategy", "beam", "--num-beams", "3",
                 "--early-stopping", "never", "--length-penalty", "0.5", "--max-new-tokens", "3"]) == 0
    assert seen["early_stopping"] == "never" and seen["num_beams"] == 3 and seen["length_penalty"] == 0.5
    assert main(["generate", "--model", model_dir, "--prompt", "Open a", "--strategy", "top-p", "--top-p", "0.5",
                 "--min-tokens-to-keep", "3", "--max-new-tokens", "3"]) == 0
    assert seen["min_tokens_to_keep"] == 3 and seen["top_p"] == 0.5 and seen["do_sample"] is True
