"""The generated `glyphs` dataset: determinism, font-disjoint splits, shapes, balance, and an atomic, trusted cache."""
import json
from collections import Counter

import datasets
import numpy as np
import pytest

from multissl.data import glyphs
from multissl.data.glyph_render import (
    LETTERS,
    GlyphStyle,
    gaussian_blur,
    glyph_masks,
    matplotlib_font_dir,
    sample_params,
    with_luma,
)
from multissl.registry import DATASETS

SMALL = (1, 1, 1)  # one image per (font, letter) per split: 598 images, fast enough for unit tests


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTISSL_CACHE", str(tmp_path))
    return tmp_path / "glyphs"


@pytest.fixture(scope="module")
def small():
    return {s: glyphs.load_glyphs(s, samples_per_pair=SMALL, cache=False) for s in ("train", "validation", "test")}


def test_font_table_is_a_partition_with_serif_and_sans_in_every_split():
    names = [f for f, _, _ in glyphs.FONTS]
    assert len(names) == len(set(names)) == 23
    assert all((matplotlib_font_dir() / f).is_file() for f in names)
    per_split = {s: glyphs.fonts_for(s) for s in ("train", "validation", "test")}
    assert sum(len(v) for v in per_split.values()) == 23
    assert not set(per_split["test"]) & (set(per_split["train"]) | set(per_split["validation"]))
    assert not set(per_split["train"]) & set(per_split["validation"])
    styles = {s: {k for f, k, split in glyphs.FONTS if split == s} for s in per_split}
    assert all({"serif", "sans"} <= v for v in styles.values())
    assert [len(v) for v in per_split.values()] == [12, 5, 6]


def test_rows_are_split_by_font_and_balanced(small):
    fonts = {s: set(ds["font"]) for s, ds in small.items()}
    assert fonts["test"].isdisjoint(fonts["train"] | fonts["validation"])
    assert fonts["train"].isdisjoint(fonts["validation"])
    for split, ds in small.items():
        assert len(ds) == 26 * len(glyphs.fonts_for(split))
        assert set(Counter(ds["label"]).values()) == {len(glyphs.fonts_for(split))}  # every letter equally often
        assert Counter(zip(ds["font"], ds["label"])).most_common(1)[0][1] == 1  # one image per (font, letter)


def test_columns_and_modes(small):
    feats = small["train"].features
    assert isinstance(feats["image"], datasets.Image)
    assert isinstance(feats["label"], datasets.ClassLabel) and feats["label"].names == list(LETTERS)
    row = small["test"][0]
    assert row["image"].mode == "RGB" and row["image"].size == (32, 32)
    assert isinstance(row["label"], int) and row["font"] in {f[:-4] for f in glyphs.fonts_for("test")}


def test_64px_has_the_same_draws_as_32px():
    fonts = ["DejaVuSans.ttf", "cmr10.ttf"]
    a32, a64 = (glyphs.build_split("train", size, samples=1, fonts=fonts) for size in (32, 64))
    assert a32["image"].shape == (52, 32, 32, 3) and a64["image"].shape == (52, 64, 64, 3)
    assert a32["image"].dtype == a64["image"].dtype == np.uint8
    np.testing.assert_array_equal(a32["label"], a64["label"])
    np.testing.assert_array_equal(a32["font"], a64["font"])
    # Same letter pose and colours at twice the resolution: 2x2-averaged 64 px is close to 32 px (noise differs).
    down = a64["image"].astype(float).reshape(52, 32, 2, 32, 2, 3).mean((2, 4))
    assert np.abs(down - a32["image"]).mean() < 12
    assert np.abs(down - a32["image"][::-1]).mean() > 2 * np.abs(down - a32["image"]).mean()


def test_two_builds_are_identical_and_seed_changes_them():
    fonts = ["DejaVuSerif.ttf", "cmss10.ttf"]
    a, b = (glyphs.build_split("validation", 32, seed=3, samples=2, fonts=fonts) for _ in range(2))
    for key in ("image", "label", "font"):
        np.testing.assert_array_equal(a[key], b[key])
    c = glyphs.build_split("validation", 32, seed=4, samples=2, fonts=fonts)
    assert (a["image"] != c["image"]).mean() > 0.5


def test_images_vary_within_a_font_letter_pair():
    arr = glyphs.build_split("train", 32, samples=4, fonts=["DejaVuSans.ttf"])
    first_a = arr["image"][arr["label"] == 0].astype(float)  # 4 draws of "A"
    assert first_a.shape[0] == 4
    assert min(np.abs(first_a[i] - first_a[j]).mean() for i in range(4) for j in range(i + 1, 4)) > 10


def test_glyph_masks_centred_and_sized():
    masks = glyph_masks(matplotlib_font_dir() / "DejaVuSans.ttf", ("H", "O"), 64, cap_height=0.5)
    ys, xs = np.nonzero(masks[0] > 127)
    assert abs((ys.min() + ys.max()) / 2 - 31.5) <= 1 and abs((xs.min() + xs.max()) / 2 - 31.5) <= 1
    assert abs((ys.max() - ys.min() + 1) - 32) <= 1  # cap height = 0.5 * canvas


def test_with_luma_hits_the_target_luminance():
    rng = np.random.default_rng(0)
    rgb, target = rng.random((100, 3)), rng.random(100)
    out = with_luma(rgb, target)
    np.testing.assert_allclose(out @ np.array([0.299, 0.587, 0.114]), target, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1


def test_letter_contrast_respects_min_contrast():
    style = GlyphStyle()
    p = sample_params(np.random.default_rng(1), 2000, style)
    gap = np.abs(p["bg_luma"] - p["fg_luma"][:, None]).min(1)
    assert gap.min() >= style.min_contrast - 1e-9
    assert 0.4 < (p["fg_luma"] < p["bg_luma"][:, 0]).mean() < 0.6  # both polarities


def test_blur_matches_a_direct_convolution():
    rng = np.random.default_rng(0)
    img, sigma = rng.random((2, 9, 9, 3)), np.array([0.0, 0.8])
    out = gaussian_blur(img, sigma)
    np.testing.assert_allclose(out[0], img[0], atol=1e-12)  # sigma 0 leaves the image unchanged
    r = 3
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / 0.8) ** 2)
    taps /= taps.sum()
    want = np.zeros((9, 9, 3))
    for y in range(9):
        for x in range(9):
            for i, dy in enumerate(range(-r, r + 1)):
                for j, dx in enumerate(range(-r, r + 1)):
                    want[y, x] += taps[i] * taps[j] * img[1, min(max(y + dy, 0), 8), min(max(x + dx, 0), 8)]
    np.testing.assert_allclose(out[1], want, atol=1e-12)


def test_cache_is_written_once_and_reused(cache, monkeypatch):
    first = glyphs.load_glyphs("validation", samples_per_pair=SMALL)
    folders = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1 and (folders[0] / glyphs.MANIFEST).is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp folder left behind

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although a complete cache exists")

    monkeypatch.setattr(glyphs, "build_all", fail)
    again = glyphs.load_glyphs("validation", samples_per_pair=SMALL)
    assert again["label"] == first["label"]
    assert np.array_equal(np.asarray(again[5]["image"]), np.asarray(first[5]["image"]))
    assert len(glyphs.load_glyphs("all", samples_per_pair=SMALL)) == 23 * 26


def test_partial_or_stale_cache_is_rebuilt(cache, monkeypatch):
    key = glyphs.cache_key(32, 0, SMALL, GlyphStyle())
    target = glyphs.cache_path(key)
    (target / "data").mkdir(parents=True)  # a folder without the manifest, as a crash before the rename would look
    calls = []
    real = glyphs.build_all
    monkeypatch.setattr(glyphs, "build_all", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert len(glyphs.load_glyphs("test", samples_per_pair=SMALL)) == 6 * 26
    assert calls == [1] and glyphs.is_complete(target, key)
    (target / glyphs.MANIFEST).write_text(json.dumps(dict(key, version=-1)))  # a manifest of another build
    glyphs.load_glyphs("test", samples_per_pair=SMALL)
    assert calls == [1, 1]


def test_interrupted_build_leaves_no_cache(cache, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(glyphs, "build_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        glyphs.load_glyphs("train", samples_per_pair=SMALL)
    assert not cache.exists() or not list(cache.iterdir())


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="glyphs.*'val'.*train, validation, test, all"):
        glyphs.load_glyphs("val")
    with pytest.raises(ValueError, match="image_size must be one of"):
        glyphs.load_glyphs("train", image_size=48)
    with pytest.raises(ValueError, match="samples_per_pair"):
        glyphs.load_glyphs("train", samples_per_pair=(1, 0, 1))
    with pytest.raises(ValueError, match="samples_per_pair"):
        glyphs.load_glyphs("train", samples_per_pair=4)


@pytest.mark.skipif("glyphs" not in DATASETS, reason="the glyphs row is not yet in multissl.registry.DATASETS")
def test_loads_by_name(cache):
    from multissl.data import load_dataset_by_name

    ds = load_dataset_by_name("glyphs", split="test", samples_per_pair=SMALL)
    assert len(ds) == 6 * 26 and ds.features["label"].names == list(LETTERS)
