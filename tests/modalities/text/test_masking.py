"""MLM masking: rate on non-special tokens, 80/10/10 split, whole words, fresh per batch, generator-reproducible."""
import pytest
import torch

from multissl.modalities.text.masking import mask_tokens, word_ids, word_start_table

MASK, V = 4, 1000


def batch(seed=0, b=64, t=128):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, V, (b, t), generator=g)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] / [SEP]
    special[: b // 2, -20:] = True  # padding
    return ids, special


def test_rate_and_80_10_10_split():
    ids, special = batch()
    regular = torch.arange(10, V)
    inputs, labels = mask_tokens(ids, special, MASK, regular, generator=torch.Generator().manual_seed(1))
    chosen = labels != -100
    assert not (chosen & special).any()  # special tokens and padding are never chosen
    rate = chosen.sum() / (~special).sum()
    assert abs(rate.item() - 0.15) < 0.01
    assert torch.equal(labels[chosen], ids[chosen])  # labels hold the original tokens
    masked = (inputs == MASK) & chosen
    kept = (inputs == ids) & chosen
    replaced = chosen & ~masked & ~kept
    n = chosen.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.03
    assert abs(replaced.sum().item() / n - 0.1) < 0.02
    assert abs(kept.sum().item() / n - 0.1) < 0.02  # (a random draw equal to the original counts as kept: p = 1/990)
    assert torch.equal(inputs[~chosen], ids[~chosen])  # unchosen tokens are untouched
    assert torch.isin(inputs[replaced], regular).all()  # random replacements never produce special tokens


def test_fresh_per_call_and_reproducible_with_a_generator():
    ids, special = batch()
    regular = torch.arange(10, V)
    a = mask_tokens(ids, special, MASK, regular, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, special, MASK, regular, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    c1 = mask_tokens(ids, special, MASK, regular, generator=g)
    c2 = mask_tokens(ids, special, MASK, regular, generator=g)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(c1[1], c2[1])  # the next batch gets a new mask


def test_whole_word_masking_masks_every_piece_of_a_chosen_word():
    vocab = ["<pad>", "<s>", "</s>", "<mask>"] + [f"▁w{i}" for i in range(50)] + [f"p{i}" for i in range(50)]
    starts = word_start_table(vocab)
    g = torch.Generator().manual_seed(0)
    ids = torch.where(torch.rand(32, 64, generator=g) < 0.5, torch.randint(4, 54, (32, 64), generator=g),
                      torch.randint(54, 104, (32, 64), generator=g))
    special = torch.zeros_like(ids, dtype=torch.bool)
    _, labels = mask_tokens(ids, special, 3, torch.arange(4, 104), word_starts=starts, generator=g)
    words = word_ids(ids, starts)
    chosen = labels != -100
    for row in range(ids.shape[0]):  # within a word the choice is all-or-nothing
        for w in words[row].unique():
            sel = chosen[row][words[row] == w]
            assert sel.all() or not sel.any()
    assert 0.08 < chosen.float().mean().item() < 0.22


def test_word_start_table_wordpiece():
    assert word_start_table(["[CLS]", "play", "##ing", "the"]).tolist() == [True, True, False, True]


@pytest.mark.parametrize("kw,message", [(dict(mlm_probability=0.0), "mlm_probability"),
                                        (dict(mask_replace_prob=0.9, random_replace_prob=0.2), "mask_replace_prob")])
def test_bad_probabilities(kw, message):
    ids, special = batch(b=2, t=8)
    with pytest.raises(ValueError, match=message):
        mask_tokens(ids, special, MASK, torch.arange(10, V), **kw)
