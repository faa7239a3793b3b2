"""Bad decoding input gets clear errors: unknown strategy, prompt longer than the context, bad padding."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from multissl.decoding import STRATEGIES, generate, strategy_kwargs


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown decoding strategy 'nucleus'.*greedy, sample, top-k, top-p, beam"):
        strategy_kwargs("nucleus")


def test_strategy_presets_and_overrides():
    assert strategy_kwargs("beam", num_beams=6)["num_beams"] == 6
    assert strategy_kwargs("top-p")["top_p"] == 0.9 and strategy_kwargs("top-k")["top_k"] == 40
    assert set(STRATEGIES) == {"greedy", "sample", "top-k", "top-p", "beam"}


def test_prompt_longer_than_context(model):
    ids = torch.randint(0, 40, (1, 14))
    with pytest.raises(ValueError, match="exceeds the model's context of 16 positions.*lower max_new_tokens to 2"):
        generate(model, ids, max_new_tokens=5)
    assert generate(model, ids, max_new_tokens=2, eos_token_id=None).shape == (1, 16)
    with pytest.raises(ValueError, match="the prompt has 16 tokens but the model's context is 16 positions"):
        generate(model, torch.randint(0, 40, (1, 16)), max_new_tokens=1)


@pytest.mark.parametrize("kw,message", [
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(num_beams=2, num_return_sequences=3), "num_return_sequences"),
    (dict(num_beams=2, do_sample=True), "beam sampling"),
    (dict(num_return_sequences=2), "greedy decoding returns one sequence"),
    (dict(early_stopping="sometimes", num_beams=2), "early_stopping"),
])
def test_bad_arguments(model, kw, message):
    with pytest.raises(ValueError, match=message):
        generate(model, torch.randint(0, 40, (1, 3)), **({"max_new_tokens": 4} | kw))


def test_right_padding_is_rejected(model):
    ids = torch.randint(0, 40, (2, 4))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with pytest.raises(ValueError, match="left-padded"):
        generate(model, ids, mask)


def test_does_not_leave_the_model_in_eval_mode(model):
    model.train()
    generate(model, torch.randint(0, 40, (1, 3)), max_new_tokens=2)
    assert model.training
    model.eval()
