"""Data faults (a wrong path or name, empty / non-UTF-8 / malformed text files, broken images, an eval section the data
cannot serve): one line naming the file or name and what was expected, before anything in --output-dir is touched.
Every case points --overwrite at a finished run, which must stay exactly as it was. 16-bit PNGs are not a fault."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from tests.reliability import TINY_SIMCSE, assert_untouched, litter, one_line_error, recipe, replaced, write_recipe


def _image_folder(root, n: int = 8, mode: str = "RGB", split: str = "train"):
    """root/<split>/{a,b}/*.png: n small random images in `mode` (I;16 for 16-bit greyscale)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / split / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        if mode == "I;16":
            img = Image.fromarray(rng.integers(0, 65536, (20, 20), dtype=np.uint16))
        else:
            img = Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
        img.save(folder / f"{i}.png")
    return root


def _train(cli, tmp_path, finished_run, data: dict):
    return cli("train", write_recipe(tmp_path / "data.yaml", data), "--output-dir", finished_run.dir, "--overwrite")


@pytest.mark.parametrize("dataset, needles", [
    ("./no/such/folder", ["'./no/such/folder'", "does not exist"]),
    ("digit", ["'digit'", "did you mean 'digits'?"]),
    ("Digits", ["'Digits'", "did you mean 'digits'?"]),
], ids=["missing-path", "unknown-name", "wrong-case-name"])
def test_a_dataset_that_is_not_there_is_one_line(cli, finished_run, tmp_path, dataset, needles):
    one_line_error(_train(cli, tmp_path, finished_run, recipe(dataset=dataset)), "train", *needles)
    assert_untouched(finished_run.dir, finished_run.before)


def _empty(path):
    path.write_text("")


def _latin1(path):
    path.write_bytes("first paragraph\n\ncaf\xe9 au lait\n\n".encode("latin-1") * 4)


def _bad_jsonl(path):
    path.write_text('{"text": "a"}\n{"text": "b"\n{"text": "c"}\n')


@pytest.mark.parametrize("name, make, needles", [
    ("notes.txt", _empty, ["notes.txt' is empty", "UTF-8 text"]),
    ("notes.txt", _latin1, ["notes.txt' is not utf-8 text", "byte 0xe9", "line 3"]),
    ("rows.jsonl", _bad_jsonl, ["rows.jsonl' line 2 is not valid JSON", "one JSON object per line"]),
], ids=["empty-text", "latin1-text", "malformed-jsonl"])
def test_a_bad_text_file_is_one_line_naming_the_file(cli, finished_run, tmp_path, name, make, needles):
    make(tmp_path / name)
    result = _train(cli, tmp_path, finished_run, recipe(TINY_SIMCSE, dataset=str(tmp_path / name)))
    one_line_error(result, "train", *needles)
    assert_untouched(finished_run.dir, finished_run.before)


def test_an_image_pil_cannot_open_is_named(cli, finished_run, tmp_path):
    images = _image_folder(tmp_path / "imgs")
    (images / "train" / "a" / "scan.png").write_bytes(b"this is not a png")
    result = _train(cli, tmp_path, finished_run, recipe(dataset=str(images)))
    one_line_error(result, "train", f"{images / 'train' / 'a' / 'scan.png'}'", "PIL cannot open it")
    assert_untouched(finished_run.dir, finished_run.before)


def _truncated_image_folder(root):
    """8 good images (one batch) of which one is cut after its header: PIL opens it, decoding fails."""
    images = _image_folder(root)
    good = (images / "train" / "a" / "0.png").read_bytes()
    (images / "train" / "a" / "0.png").write_bytes(good[:80])
    return images


def test_a_truncated_image_is_named(cli, finished_run, tmp_path):
    images = _truncated_image_folder(tmp_path / "imgs")
    result = _train(cli, tmp_path, finished_run, recipe(dataset=str(images)))
    try:
        one_line_error(result, "train", "0.png")
    finally:
        assert_untouched(finished_run.dir, finished_run.before)


def test_a_data_error_in_a_loader_worker_is_one_line_without_the_worker_traceback(cli, finished_run, tmp_path):
    images = _truncated_image_folder(tmp_path / "imgs")
    result = _train(cli, tmp_path, finished_run, recipe(dataset=str(images), **{"train.num_workers": 1}))
    try:
        one_line_error(result, "train", "truncated")
    finally:
        assert_untouched(finished_run.dir, finished_run.before)


def test_an_eval_section_naming_a_missing_split_fails_before_training(cli, finished_run, tmp_path):
    images = _image_folder(tmp_path / "imgs", n=16)  # train/ only
    result = _train(cli, tmp_path, finished_run, recipe(dataset=str(images), eval={"knn": {"k": 3, "split": "test"}}))
    one_line_error(result, "train", "eval knn", "split 'test'", "available splits: train")
    assert_untouched(finished_run.dir, finished_run.before)


def test_an_eval_section_on_data_with_no_held_out_split_is_skipped_with_a_line(cli, tmp_path):
    """A recipe pointed at one's own train-only folder trains, and says why nothing was scored (docs/own_data.md)."""
    images = _image_folder(tmp_path / "imgs", n=16)  # train/ only
    out = tmp_path / "run"
    result = cli("train", write_recipe(tmp_path / "r.yaml", recipe(dataset=str(images), eval={"knn": {"k": 3}})),
                 "--output-dir", out)
    assert result.code == 0, result.err[-2000:]
    assert "eval knn skipped" in result.out and (out / "final" / "config.json").is_file()


def test_a_typo_in_dataset_args_names_the_section(cli, finished_run, tmp_path):
    result = _train(cli, tmp_path, finished_run, recipe(dataset_args={"bogus": 1}))
    try:
        one_line_error(result, "train", "dataset_args", "'bogus'")
    finally:
        assert_untouched(finished_run.dir, finished_run.before)


def test_16_bit_pngs_train_fine(cli, tmp_path):
    images = _image_folder(tmp_path / "imgs", n=16, mode="I;16")
    assert Image.open(images / "train" / "a" / "0.png").mode == "I;16"
    out = tmp_path / "run"
    result = cli("train", write_recipe(tmp_path / "png16.yaml", recipe(dataset=str(images))), "--output-dir", out)
    assert result.code == 0, result.err[-2000:]
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert (out / "final" / "model.safetensors").is_file() and not litter(out) and not replaced(out)
