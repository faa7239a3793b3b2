"""`glyphs`: the 26 capital letters rendered from matplotlib's bundled fonts, split by font (offline, seeded).

Each image is one letter in a random colour over a random textured background (smooth noise, a
gradient or stripes in other colours), under a random affine warp, blur and pixel noise
(multissl/data/glyph_render.py). Whole font files are assigned to train / validation / test by the
fixed FONTS table below, so test letters come from typefaces no model saw in training. The three
splits are built together and cached as one `datasets` folder under
`$MULTISSL_CACHE` (default `~/.cache/multissl`)/glyphs/, written to a temp folder and renamed, so an
interrupted build never leaves a cache that looks complete. See data_cards/glyphs.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from multissl.atomic import atomic_dir
from multissl.data.glyph_render import (
    LETTERS,
    GlyphStyle,
    glyph_masks,
    matplotlib_font_dir,
    render,
)
from multissl.data.splits import check_split
from multissl.paths import cache_dir

SPLITS = ("train", "validation", "test", "all")
BUILT_SPLITS = SPLITS[:3]
BUILD_VERSION = 1  # bump when rendering changes, so stale caches are not reused
MANIFEST = "glyphs_manifest.json"  # written last inside the cache folder; a folder without it is not trusted
DEFAULT_SAMPLES = (16, 8, 10)  # images per (font, letter) in train / validation / test
DEFAULT_SEED = 0
IMAGE_SIZES = (32, 64)
DEFAULT_STYLE = GlyphStyle()  # the tuned difficulty (see GlyphStyle and data_cards/glyphs.md)

# (file in matplotlib's mpl-data/fonts/ttf, style, split). The rule: every 4-face family (DejaVu Sans,
# DejaVu Sans Mono, DejaVu Serif, STIXGeneral) gives one face to validation, one to test and two to
# train, rotating which face goes where so that no split is all-bold or all-italic; of the 7 Computer
# Modern faces with Latin capitals, roman / bold / text italic / calligraphic (cmsy10) train, math
# italic (cmmi10) validates, and sans (cmss10) and typewriter (cmtt10) test. Excluded: cmex10 (no
# letters), LastResortHE (placeholder boxes), DejaVu *Display and STIX NonUni/Size* (symbols only).
FONTS = (
    ("DejaVuSans.ttf", "sans", "train"),
    ("DejaVuSans-Bold.ttf", "sans", "train"),
    ("DejaVuSans-Oblique.ttf", "sans", "validation"),
    ("DejaVuSans-BoldOblique.ttf", "sans", "test"),
    ("DejaVuSansMono.ttf", "sans", "test"),
    ("DejaVuSansMono-Bold.ttf", "sans", "train"),
    ("DejaVuSansMono-Oblique.ttf", "sans", "train"),
    ("DejaVuSansMono-BoldOblique.ttf", "sans", "validation"),
    ("DejaVuSerif.ttf", "serif", "validation"),
    ("DejaVuSerif-Bold.ttf", "serif", "test"),
    ("DejaVuSerif-Italic.ttf", "serif", "train"),
    ("DejaVuSerif-BoldItalic.ttf", "serif", "train"),
    ("STIXGeneral.ttf", "serif", "train"),
    ("STIXGeneralBol.ttf", "serif", "validation"),
    ("STIXGeneralItalic.ttf", "serif", "test"),
    ("STIXGeneralBolIta.ttf", "serif", "train"),
    ("cmr10.ttf", "serif", "train"),
    ("cmb10.ttf", "serif", "train"),
    ("cmti10.ttf", "serif", "train"),
    ("cmsy10.ttf", "script", "train"),
    ("cmmi10.ttf", "serif", "validation"),
    ("cmss10.ttf", "sans", "test"),
    ("cmtt10.ttf", "serif", "test"),
)


def fonts_for(split: str) -> list[str]:
    """The font files of one built split (train / validation / test), in FONTS order."""
    check_split("glyphs", split, BUILT_SPLITS)
    return [name for name, _, s in FONTS if s == split]


def _check_args(image_size: int, samples) -> tuple[int, int, int]:
    """Validate image_size and samples_per_pair; the latter as a tuple of 3 ints."""
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}; got {image_size!r}")
    ok = isinstance(samples, (tuple, list)) and len(samples) == 3
    if not ok or not all(isinstance(k, (int, np.integer)) and k >= 1 for k in samples):
        raise ValueError(f"samples_per_pair must be 3 positive ints (train, validation, test); got {samples!r}")
    return tuple(int(k) for k in samples)


def build_split(split: str, image_size: int = 32, seed: int = DEFAULT_SEED, samples: int | None = None,
                style: GlyphStyle = DEFAULT_STYLE, fonts: list[str] | None = None,
                font_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Render one split: {"image": uint8 [N, S, S, 3], "label": int64 [N], "font": str [N]} (rows shuffled).

    N = len(fonts) * 26 * samples. The generator is seeded with (seed, split index), so each split is
    reproducible on its own and independent of the others.
    """
    check_split("glyphs", split, BUILT_SPLITS)
    samples = DEFAULT_SAMPLES[BUILT_SPLITS.index(split)] if samples is None else samples
    _check_args(image_size, (samples,) * 3)
    fonts = fonts_for(split) if fonts is None else list(fonts)
    font_dir = font_dir or matplotlib_font_dir()
    canvas = style.supersample * image_size
    missing = [f for f in fonts if not (font_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"glyphs: fonts {missing} are not in {font_dir} (matplotlib's bundled fonts)")
    masks = np.concatenate([glyph_masks(font_dir / f, LETTERS, canvas, style.cap_height) for f in fonts])  # [F*26, R, R]
    rng, which = split_rows(split, seed, len(masks), samples)
    images = render(masks, which, rng, image_size, style)
    return {"image": images, "label": (which % len(LETTERS)).astype(np.int64),
            "font": np.array([Path(fonts[i]).stem for i in which // len(LETTERS)])}


def split_rows(split: str, seed: int, pairs: int, samples: int) -> tuple[np.random.Generator, np.ndarray]:
    """The split's generator, seeded with (seed, split index), and its shuffled rows: which (font, letter) pair
    [N = pairs * samples] each row shows. The generator is left where rendering starts drawing (glyph_nuisances
    replays it from here)."""
    rng = np.random.default_rng([seed, BUILT_SPLITS.index(split)])
    which = np.repeat(np.arange(pairs), samples)[rng.permutation(pairs * samples)]
    return rng, which


def to_dataset(arrays: dict[str, np.ndarray]):
    """A datasets.Dataset with `image` (PIL RGB), `label` (ClassLabel A..Z) and `font` (file stem)."""
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(LETTERS)),
                                  "font": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in arrays["image"]], "label": arrays["label"].tolist(),
         "font": arrays["font"].tolist()},
        features=features,
    )


def cache_key(image_size: int, seed: int, samples: tuple[int, int, int], style: GlyphStyle) -> dict:
    """Everything a cached build depends on (the manifest must equal this for the cache to be reused)."""
    import PIL
    from PIL import features

    return {"version": BUILD_VERSION, "image_size": image_size, "seed": seed, "samples": list(samples),
            "style": dataclasses.asdict(style), "fonts": [list(f) for f in FONTS],
            "pillow": PIL.__version__, "freetype": features.version("freetype2")}


def cache_path(key: dict) -> Path:
    """$MULTISSL_CACHE/glyphs/<size>px-seed<seed>-<sha1 of the key>."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "glyphs" / f"{key['image_size']}px-seed{key['seed']}-{digest}"


def is_complete(folder: Path, key: dict) -> bool:
    """True when `folder` holds a finished build of exactly `key` (its manifest, written last, matches)."""
    try:
        return json.loads((folder / MANIFEST).read_text()) == json.loads(json.dumps(key))
    except (OSError, ValueError):
        return False


def build_all(image_size: int = 32, seed: int = DEFAULT_SEED, samples: tuple[int, int, int] = DEFAULT_SAMPLES,
              style: GlyphStyle = DEFAULT_STYLE):
    """A datasets.DatasetDict with the train, validation and test splits (not cached)."""
    import datasets

    return datasets.DatasetDict({
        s: to_dataset(build_split(s, image_size, seed, k, style)) for s, k in zip(BUILT_SPLITS, samples)
    })


def cached_build(image_size: int, seed: int, samples: tuple[int, int, int], style: GlyphStyle) -> Path:
    """The cache folder of this build, rendering and writing it first (atomically) unless a complete one exists."""
    key = cache_key(image_size, seed, samples, style)
    target = cache_path(key)
    if is_complete(target, key):
        return target

    def write(tmp: Path) -> None:
        build_all(image_size, seed, samples, style).save_to_disk(str(tmp / "data"))
        (tmp / MANIFEST).write_text(json.dumps(key, sort_keys=True))  # last: marks the folder complete

    return atomic_dir(target, write)  # replaces an incomplete/stale folder only once the new one is whole


def load_glyphs(split: str = "train", image_size: int = 32, seed: int = DEFAULT_SEED,
                samples_per_pair: tuple[int, int, int] = DEFAULT_SAMPLES, cache: bool = True):
    """Glyphs as a datasets.Dataset: `image` (PIL RGB, S x S), `label` (ClassLabel A..Z), `font` (file stem).

    split: train | validation | test | all (the three concatenated). samples_per_pair: images per
    (font, letter) in train / validation / test. cache=False renders in memory without touching the cache.
    """
    check_split("glyphs", split, SPLITS)
    samples = _check_args(image_size, samples_per_pair)
    import datasets

    if not cache and split != "all":
        return to_dataset(build_split(split, image_size, seed, samples[BUILT_SPLITS.index(split)]))
    if cache:
        parts = datasets.load_from_disk(str(cached_build(image_size, seed, samples, DEFAULT_STYLE) / "data"))
    else:
        parts = build_all(image_size, seed, samples)
    if split == "all":
        return datasets.concatenate_datasets([parts[s] for s in BUILT_SPLITS])
    return parts[split]
