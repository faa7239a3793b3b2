"""Token noise (delete / replace / mask / swap) vs a per-row loop; special tokens and padding never touched."""
import pytest
import torch

from multissl.modalities.text.noise import noise_tokens

CLS, SEP, PAD, MASK = 101, 102, 0, 103


def _batch():
    ids = torch.tensor([
        [CLS, 11, 12, 13, 14, 15, SEP, PAD, PAD],
        [CLS, 21, 22, SEP, PAD, PAD, PAD, PAD, PAD],
        [CLS, 31, 32, 33, 34, 35, 36, 37, SEP],
    ])
    return ids, (ids != PAD).long()


def _reference(ids, att, seed, delete_prob, replace_prob, mask_prob, swap_prob, vocab):
    """Loop form of the documented rule, redrawing the documented random numbers in the documented order."""
    g = torch.Generator().manual_seed(seed)
    b, t = ids.shape
    u = torch.rand((b, t), generator=g)
    pick = torch.randint(len(vocab), (b, t), generator=g) if replace_prob > 0 else None
    offset = torch.randint(0, 2, (b, 1), generator=g) if swap_prob > 0 else None
    draw = torch.rand((b, t - 1), generator=g) if swap_prob > 0 else None
    out_ids, out_att = [], []
    for r in range(b):
        editable = [bool(att[r, i]) and int(ids[r, i]) not in (CLS, SEP) for i in range(t)]
        toks, dele = [], []
        for i in range(t):
            x, v = int(ids[r, i]), float(u[r, i])
            d = editable[i] and v < delete_prob
            if editable[i] and delete_prob <= v < delete_prob + replace_prob:
                x = int(vocab[pick[r, i]])
            elif editable[i] and delete_prob + replace_prob <= v < delete_prob + replace_prob + mask_prob:
                x = MASK
            toks.append(x)
            dele.append(d)
        if swap_prob > 0:
            for i in range(int(offset[r, 0]), t - 1, 2):
                if editable[i] and editable[i + 1] and float(draw[r, i]) < swap_prob:
                    toks[i], toks[i + 1] = toks[i + 1], toks[i]
                    dele[i], dele[i + 1] = dele[i + 1], dele[i]
        kept = [x for i, x in enumerate(toks) if att[r, i] and not dele[i]]
        out_ids.append(kept + [PAD] * (t - len(kept)))
        out_att.append([1] * len(kept) + [0] * (t - len(kept)))
    return torch.tensor(out_ids), torch.tensor(out_att)


@pytest.mark.parametrize("probs", [(0.2, 0.2, 0.2, 0.5), (0.0, 0.3, 0.0, 0.0), (0.5, 0.0, 0.0, 1.0),
                                   (0.1, 0.1, 0.1, 0.0), (0.0, 0.0, 0.0, 0.7)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_per_row_loop(probs, seed):
    ids, att = _batch()
    vocab = torch.arange(200, 220)
    pd, pr, pm, ps = probs
    got = noise_tokens(ids, att, delete_prob=pd, replace_prob=pr, mask_prob=pm, swap_prob=ps, mask_token_id=MASK,
                       random_token_ids=vocab, pad_token_id=PAD, special_ids=[CLS, SEP],
                       generator=torch.Generator().manual_seed(seed))
    ref = _reference(ids, att, seed, pd, pr, pm, ps, vocab)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_no_noise_is_identity_and_inputs_are_untouched():
    ids, att = _batch()
    snapshot = ids.clone()
    out, mask = noise_tokens(ids, att, special_ids=[CLS, SEP], generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, ids) and torch.equal(mask, att)
    noise_tokens(ids, att, delete_prob=0.5, mask_prob=0.5, mask_token_id=MASK, special_ids=[CLS, SEP],
                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, snapshot)


def test_certain_mask_hits_every_ordinary_token_and_no_special_one():
    ids, att = _batch()
    out, mask = noise_tokens(ids, att, mask_prob=1.0, mask_token_id=MASK, special_ids=[CLS, SEP])
    special = (ids == CLS) | (ids == SEP) | (att == 0)
    assert torch.equal(out[special], ids[special]) and bool((out[~special] == MASK).all())
    assert torch.equal(mask, att)


def test_certain_deletion_leaves_only_specials_right_padded():
    ids, att = _batch()
    out, mask = noise_tokens(ids, att, delete_prob=1.0, special_ids=[CLS, SEP], pad_token_id=PAD)
    assert out[:, :2].tolist() == [[CLS, SEP]] * 3 and bool((out[:, 2:] == PAD).all())
    assert mask.sum(1).tolist() == [2, 2, 2] and mask.dtype == att.dtype


def test_certain_swap_swaps_every_aligned_pair_and_keeps_the_multiset():
    ids, att = _batch()
    out, _ = noise_tokens(ids, att, swap_prob=1.0, special_ids=[CLS, SEP], generator=torch.Generator().manual_seed(3))
    for r in range(3):
        assert sorted(out[r].tolist()) == sorted(ids[r].tolist())
        moved = (out[r] != ids[r]).sum().item()
        n_ordinary = int(((ids[r] != CLS) & (ids[r] != SEP) & (att[r] == 1)).sum())
        assert moved >= 2 * ((n_ordinary - 1) // 2)  # every aligned pair of ordinary tokens swapped
    special = (ids == CLS) | (ids == SEP) | (att == 0)
    assert torch.equal(out[special], ids[special])


def test_special_mask_argument_and_replacement_vocabulary():
    ids, att = _batch()
    special = (ids == CLS) | (ids == SEP)
    vocab = torch.tensor([500, 501])
    out, _ = noise_tokens(ids, att, replace_prob=1.0, random_token_ids=vocab, special_mask=special,
                          generator=torch.Generator().manual_seed(4))
    ordinary = ~special & (att == 1)
    assert bool(torch.isin(out[ordinary], vocab).all()) and torch.equal(out[~ordinary], ids[~ordinary])


def test_seeded_generator_is_deterministic():
    ids, att = _batch()
    kw = {"delete_prob": 0.2, "mask_prob": 0.2, "swap_prob": 0.3, "mask_token_id": MASK, "special_ids": [CLS, SEP]}
    a = noise_tokens(ids, att, generator=torch.Generator().manual_seed(5), **kw)
    b = noise_tokens(ids, att, generator=torch.Generator().manual_seed(5), **kw)
    c = noise_tokens(ids, att, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_bad_input_is_named():
    ids, att = _batch()
    with pytest.raises(ValueError, match="both be"):
        noise_tokens(ids, att[:, :4])
    with pytest.raises(ValueError, match="must be <= 1"):
        noise_tokens(ids, att, delete_prob=0.6, mask_prob=0.6, mask_token_id=MASK)
    with pytest.raises(ValueError, match="mask_token_id"):
        noise_tokens(ids, att, mask_prob=0.1)
    with pytest.raises(ValueError, match="random_token_ids"):
        noise_tokens(ids, att, replace_prob=0.1)
    with pytest.raises(ValueError, match="swap_prob"):
        noise_tokens(ids, att, swap_prob=1.5)
    with pytest.raises(ValueError, match="right-padded"):
        noise_tokens(ids.flip(1), att.flip(1), delete_prob=0.1)
    with pytest.raises(ValueError, match="special_mask"):
        noise_tokens(ids, att, special_mask=torch.zeros(3, 2, dtype=torch.bool))
