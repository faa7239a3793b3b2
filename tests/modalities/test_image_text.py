"""Image–caption collator: mixed sizes/modes, truncation, missing captions, caption lists; local captioned folders."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from multissl.data import load_dataset_by_name
from multissl.modalities.image_text import ImageCaptionCollator, random_square_crop
from multissl.modalities.text.sentences import load_tokenizer
from multissl.paths import MINILM


def _collator(**kw):
    return ImageCaptionCollator(MINILM, image_size=12, max_length=kw.pop("max_length", 16), **kw)


def _images():
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L"),
        Image.fromarray(rng.integers(0, 256, (13, 20, 4), dtype=np.uint8), mode="RGBA"),
        Image.fromarray(rng.integers(0, 256, (30, 7, 3), dtype=np.uint8), mode="RGB").convert("P"),
        Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8), mode="RGB").convert("CMYK"),
    ]


def test_mixed_sizes_and_modes_become_one_batch():
    rows = [{"image": im, "caption": f"picture {i}"} for i, im in enumerate(_images())]
    for train in (True, False):
        batch = _collator(train=train)(rows, generator=torch.Generator().manual_seed(0))
        assert batch["pixel_values"].shape == (4, 3, 12, 12)
        assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1
        assert batch["input_ids"].shape[0] == 4 and batch["attention_mask"].shape == batch["input_ids"].shape


def test_long_captions_are_truncated_to_max_length_keeping_sep():
    tok = load_tokenizer(MINILM)
    long = " ".join(["seven"] * 100)
    batch = _collator(max_length=10, train=False)([{"image": _images()[0], "caption": long},
                                                   {"image": _images()[0], "caption": "a seven"}])
    assert batch["input_ids"].shape == (2, 10)
    assert batch["input_ids"][0, -1].item() == tok.sep_token_id
    assert batch["attention_mask"][1].sum().item() == len(tok("a seven")["input_ids"])  # short one padded, not cut


@pytest.mark.parametrize("caption,match", [(None, "missing caption"), ("  ", "blank"), (7, "must be a string"),
                                           ([], "empty list"), ("MISSING", "missing caption")])
def test_bad_captions_name_the_row_and_column(caption, match):
    row = {"image": _images()[0]}
    if caption != "MISSING":
        row["caption"] = caption
    with pytest.raises(ValueError, match=f"row 1.*{match}|{match}") as err:
        _collator()([{"image": _images()[0], "caption": "ok"}, row])
    assert "row 1" in str(err.value) and "'caption'" in str(err.value)


def test_missing_image_is_an_error():
    with pytest.raises(ValueError, match="row 0.*missing image"):
        _collator()([{"caption": "no image"}])


def test_caption_lists_random_in_training_first_in_eval():
    tok = load_tokenizer(MINILM)
    rows = [{"image": _images()[0], "caption": ["one", "two", "three", "four"]}] * 8
    eval_ids = _collator(train=False)(rows)["input_ids"]
    assert all(tok.decode(ids, skip_special_tokens=True) == "one" for ids in eval_ids)
    picks = {tok.decode(ids, skip_special_tokens=True)
             for ids in _collator()(rows, generator=torch.Generator().manual_seed(3))["input_ids"]}
    assert len(picks) > 1 and picks <= {"one", "two", "three", "four"}


def test_random_square_crop_bounds_and_generator():
    x = torch.arange(3 * 10 * 6).view(3, 10, 6)
    a = random_square_crop(x, (0.5, 0.5), torch.Generator().manual_seed(0))
    side = round((0.5 ** 0.5) * 6)
    assert a.shape == (3, side, side)
    assert torch.equal(a, random_square_crop(x, (0.5, 0.5), torch.Generator().manual_seed(0)))
    assert random_square_crop(x, (1.0, 1.0), None).shape == (3, 6, 6)


def test_bad_collator_settings():
    with pytest.raises(ValueError, match="crop_scale"):
        _collator(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="tokenizer_path"):
        ImageCaptionCollator(None, 12, 16)


def test_local_imagefolder_with_caption_metadata(tmp_path):
    rng = np.random.default_rng(0)
    captions = ["a red square", "a noisy picture", "grey static"]
    with open(tmp_path / "metadata.jsonl", "w") as f:
        for i, cap in enumerate(captions):
            Image.fromarray(rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
            f.write(json.dumps({"file_name": f"img{i}.png", "caption": cap}) + "\n")
    ds = load_dataset_by_name(str(tmp_path))
    assert set(ds.column_names) >= {"image", "caption"} and sorted(ds["caption"]) == sorted(captions)
    batch = _collator(train=False)([ds[i] for i in range(len(ds))])
    assert batch["pixel_values"].shape == (3, 3, 12, 12)
