"""The token-noise policy: knobs validated once, vocabulary tables from a real tokenizer, weak/strong sentence views."""
import pytest
import torch

from multissl.modalities.text.noise import noise_tokens
from multissl.modalities.text.sentences import SentenceCollator, load_tokenizer
from multissl.modalities.text.token_noise import TokenNoise, WeakStrongSentences, vocabulary_tables
from multissl.paths import MINILM

ROWS = [{"text": "Return the absolute value of the number given as argument.", "label": 3},
        {"text": "Open a file.", "label": 1},
        {"text": "The event loop runs asynchronous tasks and callbacks, performs network IO operations.", "label": 0}]
NOISE = TokenNoise(delete_prob=0.2, replace_prob=0.2, mask_prob=0.2, swap_prob=0.5)


def test_vocabulary_tables_of_minilm_exclude_specials_and_placeholders():
    tok = load_tokenizer(MINILM)
    t = vocabulary_tables(tok)
    assert set(t.special_ids.tolist()) == set(tok.all_special_ids)
    assert t.mask_token_id == tok.mask_token_id and t.pad_token_id == tok.pad_token_id
    names = tok.convert_ids_to_tokens(t.replacement_ids.tolist())
    assert not set(t.replacement_ids.tolist()) & set(tok.all_special_ids)
    assert not any(n.startswith("[unused") for n in names) and "the" in names and "##s" in names
    unused = sum(n.startswith("[unused") for n in tok.get_vocab())
    assert unused > 900 and len(names) == len(tok) - unused - len(set(tok.all_special_ids))


def test_the_policy_is_noise_tokens_with_the_tables_and_is_deterministic_by_generator():
    tables = vocabulary_tables(load_tokenizer(MINILM))
    batch = SentenceCollator(MINILM, 24)(ROWS)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    got = NOISE(ids, mask, tables, torch.Generator().manual_seed(7))
    want = noise_tokens(ids, mask, delete_prob=0.2, replace_prob=0.2, mask_prob=0.2, swap_prob=0.5,
                        mask_token_id=tables.mask_token_id, random_token_ids=tables.replacement_ids,
                        pad_token_id=tables.pad_token_id, special_ids=tables.special_ids,
                        generator=torch.Generator().manual_seed(7))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    again = NOISE(ids, mask, tables, torch.Generator().manual_seed(7))
    other = NOISE(ids, mask, tables, torch.Generator().manual_seed(8))
    assert torch.equal(got[0], again[0]) and not torch.equal(got[0], other[0])
    assert not torch.equal(got[0], ids)  # the noise did something


def test_weak_view_is_the_sentence_and_the_strong_view_keeps_cls_sep_and_padding():
    tok = load_tokenizer(MINILM)
    views = WeakStrongSentences(MINILM, 24, TokenNoise(replace_prob=0.5, mask_prob=0.5))  # every ordinary token changes
    out = views(ROWS, generator=torch.Generator().manual_seed(0))
    plain = SentenceCollator(MINILM, 24)(ROWS)
    assert torch.equal(out["weak_input_ids"], plain["input_ids"]) and torch.equal(out["weak_attention_mask"], plain["attention_mask"])
    ids, strong = plain["input_ids"], out["strong_input_ids"]
    special = torch.isin(ids, torch.tensor(tok.all_special_ids)) | (plain["attention_mask"] == 0)  # [CLS], [SEP], [PAD]
    assert bool(special[:, 0].all()) and bool((~special).any())
    assert torch.equal(strong[special], ids[special]) and torch.equal(out["strong_attention_mask"], plain["attention_mask"])
    assert bool((strong[~special] != ids[~special]).float().mean() > 0.8)  # replaced or masked (a draw may repeat the id)
    # deletion shortens rows but keeps them right-padded with their specials at both ends
    short = WeakStrongSentences(MINILM, 24, TokenNoise(delete_prob=1.0))(ROWS)
    assert short["strong_attention_mask"].sum(1).tolist() == [2, 2, 2]
    assert short["strong_input_ids"][:, :2].tolist() == [[tok.cls_token_id, tok.sep_token_id]] * 3


def test_the_views_read_only_the_text_column():
    views = WeakStrongSentences(MINILM, 24, NOISE)
    with_labels = views(ROWS, generator=torch.Generator().manual_seed(1))
    without = views([{"text": r["text"]} for r in ROWS], generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(with_labels[k], without[k]) for k in without) and len(without) == 4


@pytest.mark.parametrize("knobs, match", [
    ({"delete": 0.1}, r"noise: unknown key\(s\) \['delete'\]"),
    ({"mask_prob": 1.5}, "noise.mask_prob must be a probability in"),
    ({"swap_prob": True}, "noise.swap_prob must be a probability in"),
    ({"delete_prob": 0.5, "replace_prob": 0.4, "mask_prob": 0.2}, "delete_prob \\+ replace_prob \\+ mask_prob must be <= 1"),
])
def test_bad_knobs_are_one_clear_error(knobs, match):
    with pytest.raises(ValueError, match=match):
        TokenNoise.from_dict(knobs)


def test_round_trip_through_a_dict():
    assert TokenNoise.from_dict(NOISE.to_dict()) == NOISE and TokenNoise.from_dict(None) == TokenNoise()
