"""Our warpers produce the same filtered distributions as transformers' logits processors."""
import pytest
import torch
from transformers.generation.logits_process import (
    NoRepeatNGramLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from multissl.decoding import apply_temperature, ban_repeated_ngrams_, top_k_filter, top_p_filter, warp_scores


def scores(seed: int = 0, n: int = 6, v: int = 50) -> torch.Tensor:
    return torch.randn(n, v, generator=torch.Generator().manual_seed(seed)) * 3


def same_distribution(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(torch.isinf(a), torch.isinf(b)) and torch.allclose(a.softmax(-1), b.softmax(-1), atol=1e-7)


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_temperature(t):
    s = scores(1)
    assert same_distribution(apply_temperature(s, t), TemperatureLogitsWarper(t)(None, s))


@pytest.mark.parametrize("k,keep", [(1, 1), (5, 1), (3, 4), (50, 1), (80, 1)])
def test_top_k(k, keep):
    s = scores(2)
    ours = top_k_filter(s, k, keep)
    assert same_distribution(ours, TopKLogitsWarper(k, min_tokens_to_keep=keep)(None, s))
    assert (~torch.isinf(ours)).sum(-1).eq(min(max(k, keep), 50)).all()


@pytest.mark.parametrize("p,keep", [(0.05, 1), (0.5, 1), (0.9, 1), (0.9, 3), (0.999, 1)])
def test_top_p(p, keep):
    for seed in range(5):
        s = scores(seed)
        ours = top_p_filter(s, p, keep)
        assert same_distribution(ours, TopPLogitsWarper(p, min_tokens_to_keep=keep)(None, s))
        kept = ours.softmax(-1) > 0
        assert (s.softmax(-1) * kept).sum(-1).ge(p - 1e-6).all()  # the nucleus holds at least p of the mass


def test_top_k_then_top_p_with_temperature_matches_the_transformers_chain():
    s = scores(7)
    theirs = TopPLogitsWarper(0.8)(None, TopKLogitsWarper(10)(None, TemperatureLogitsWarper(0.7)(None, s)))
    assert same_distribution(warp_scores(s, temperature=0.7, top_k=10, top_p=0.8), theirs)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_repeat_ngram_matches_transformers(n):
    g = torch.Generator().manual_seed(n)
    seqs = torch.randint(0, 3, (5, 40), generator=g)  # 3-letter alphabet: many repeated n-grams
    s = scores(n, n=5, v=6)
    ours = ban_repeated_ngrams_(s.clone(), seqs, n)
    theirs = NoRepeatNGramLogitsProcessor(n)(seqs, s.clone())
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert torch.isinf(ours).any()


@pytest.mark.parametrize("call,message", [
    (lambda s: apply_temperature(s, 0.0), "temperature"),
    (lambda s: top_k_filter(s, -1), "top_k"),
    (lambda s: top_p_filter(s, 0.0), "top_p"),
    (lambda s: top_p_filter(s, 1.5), "top_p"),
])
def test_bad_warper_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call(scores())
