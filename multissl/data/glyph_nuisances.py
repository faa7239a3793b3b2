"""The nuisance draws behind each `glyphs` row (polarity, background texture), recomputed from the seed.

Not columns of the dataset: a model never trains on them. They exist to ask what a frozen encoder encodes besides
the letter (benchmarks/bench_vision_spectrum.py): glyphs' light-on-dark vs dark-on-light coin flip survives every
crop, colour jitter and grayscale, so a method that learns only what two views share can learn it first.
"""
from __future__ import annotations

import numpy as np

from multissl.data.glyph_render import LETTERS, TEXTURES, GlyphStyle, sample_params
from multissl.data.glyphs import BUILT_SPLITS, DEFAULT_SAMPLES, DEFAULT_SEED, DEFAULT_STYLE, fonts_for, split_rows
from multissl.data.splits import check_split


def glyph_nuisances(split: str, seed: int = DEFAULT_SEED, samples: int | None = None,
                    style: GlyphStyle = DEFAULT_STYLE) -> dict[str, np.ndarray]:
    """{"letter_dark": bool [N], "texture": int64 [N] (index into TEXTURES)} in the row order of
    `load_glyphs(split)` built with the same seed, samples and style.

    Replays build_split's generator (split_rows, then the image parameters render draws first), without rendering.
    letter_dark: the letter is the darker side of the luminance pair (its background is light).
    """
    check_split("glyphs", split, BUILT_SPLITS)
    samples = DEFAULT_SAMPLES[BUILT_SPLITS.index(split)] if samples is None else samples
    rng, which = split_rows(split, seed, len(fonts_for(split)) * len(LETTERS), samples)  # as build_split draws them
    p = sample_params(rng, len(which), style)  # render()'s first draws: the parameters build_split used
    # The letter's luminance is one end of the pair and every background pixel lies beyond the gap from it.
    return {"letter_dark": p["fg_luma"] < p["bg_luma"].min(1), "texture": p["texture"].astype(np.int64)}


__all__ = ["TEXTURES", "glyph_nuisances"]
