"""Oracle: our greedy / beam / sampling decoding is token-identical to the installed transformers' generate()."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from multissl.decoding import generate

PAD = 2


def tiny_gpt2(seed: int, vocab: int = 48, layers: int = 2) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=layers, n_head=2,
                     bos_token_id=0, eos_token_id=1, pad_token_id=PAD)
    return GPT2LMHeadModel(cfg).eval()


def left_padded_prompts(seed: int, vocab: int, batch: int = 3, length: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for row in range(1, batch):  # rows 1.. are shorter: left padding of 1, 2, ... tokens
        mask[row, : min(row, length - 1)] = 0
    return ids.masked_fill(mask == 0, PAD), mask


def eos_hit_midway(model, ids, mask, **kw) -> int:
    """A token transformers emits at step 3 of row 0, so using it as eos ends that row mid-way."""
    out = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=PAD, **kw)
    return int(out[0, ids.shape[1] + 3])


def both(model, ids, mask, **kw):
    ours = generate(model, ids, mask, **kw)
    theirs = model.generate(ids, attention_mask=mask, do_sample=kw.pop("do_sample", False), **kw)
    return ours, theirs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_identical_with_left_padding_and_eos_midway(seed):
    model = tiny_gpt2(seed)
    ids, mask = left_padded_prompts(seed, 48)
    eos = eos_hit_midway(model, ids, mask)
    ours, theirs = both(model, ids, mask, max_new_tokens=14, eos_token_id=eos, pad_token_id=PAD)
    assert torch.equal(ours, theirs)
    assert (ours[0, ids.shape[1]:] == eos).any()  # the row really stopped on eos and was padded afterwards


def test_greedy_identical_without_padding_and_with_no_repeat_ngram():
    model = tiny_gpt2(5, vocab=32)
    ids = torch.randint(3, 32, (2, 5), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    ours, theirs = both(model, ids, mask, max_new_tokens=20, eos_token_id=1, pad_token_id=PAD, no_repeat_ngram_size=2)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    "seed,kw",
    [
        (0, dict(num_beams=4)),
        (1, dict(num_beams=4, length_penalty=0.6, num_return_sequences=3)),
        (2, dict(num_beams=3, length_penalty=1.7, early_stopping=True)),
        (3, dict(num_beams=5, early_stopping="never", length_penalty=1.3, num_return_sequences=2)),
        (4, dict(num_beams=4, no_repeat_ngram_size=2, num_return_sequences=4)),
        (5, dict(num_beams=2, length_penalty=-0.5, early_stopping=True)),
    ],
)
def test_beam_search_identical(seed, kw):
    model = tiny_gpt2(seed, layers=1 + seed % 2)
    ids, mask = left_padded_prompts(seed + 10, 48, batch=3, length=6)
    eos = eos_hit_midway(model, ids, mask, num_beams=kw["num_beams"])
    ours, theirs = both(model, ids, mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD, **kw)
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)


def test_beam_search_identical_with_several_eos_ids_and_pad_zero():
    model = tiny_gpt2(7)
    ids, mask = left_padded_prompts(7, 48, batch=2, length=5)
    mask[:] = 1
    a = eos_hit_midway(model, ids, mask, num_beams=3)
    ours, theirs = both(model, ids, mask, max_new_tokens=10, num_beams=3, eos_token_id=[a, 1], pad_token_id=0,
                        num_return_sequences=3)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("kw", [dict(temperature=0.7), dict(top_k=5), dict(top_p=0.8), dict(top_k=10, top_p=0.9, temperature=1.3)])
def test_sampling_identical_to_transformers_with_the_same_seed(kw):
    model = tiny_gpt2(3)
    ids, mask = left_padded_prompts(3, 48)
    full = dict(temperature=1.0, top_k=0, top_p=1.0) | kw
    ours = generate(model, ids, mask, max_new_tokens=15, do_sample=True, eos_token_id=1, pad_token_id=PAD,
                    generator=torch.Generator().manual_seed(123), **full)
    torch.manual_seed(123)  # transformers samples from the global generator
    theirs = model.generate(ids, attention_mask=mask, max_new_tokens=15, do_sample=True, eos_token_id=1,
                            pad_token_id=PAD, **full)
    assert torch.equal(ours, theirs)


def test_sampling_is_reproducible_with_a_generator_and_varies_across_seeds():
    model = tiny_gpt2(4)
    ids, mask = left_padded_prompts(4, 48)

    def run(seed):
        return generate(model, ids, mask, max_new_tokens=20, do_sample=True, top_p=0.95,
                        generator=torch.Generator().manual_seed(seed), eos_token_id=None, pad_token_id=PAD)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_streamer_gets_prompt_then_every_token():
    class Recorder:
        def __init__(self):
            self.chunks, self.ended = [], False

        def put(self, value):
            self.chunks.append(value.clone())

        def end(self):
            self.ended = True

    model = tiny_gpt2(0)
    ids = torch.randint(3, 48, (1, 4), generator=torch.Generator().manual_seed(0))
    rec = Recorder()
    out = generate(model, ids, max_new_tokens=6, eos_token_id=None, pad_token_id=PAD, streamer=rec)
    assert rec.ended and torch.equal(rec.chunks[0], ids)
    assert torch.equal(torch.cat([c.flatten() for c in rec.chunks]), out.flatten())
