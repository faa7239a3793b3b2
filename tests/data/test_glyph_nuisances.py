"""glyph_nuisances replays the build's draws: its polarity flag must agree with the rendered pixels row by row."""
import numpy as np
import pytest

from multissl.data import glyphs
from multissl.data.glyph_nuisances import TEXTURES, glyph_nuisances


@pytest.mark.parametrize("split,seed", [("validation", 0), ("test", 5)])
def test_polarity_matches_the_rendered_rows(split, seed):
    arr = glyphs.build_split(split, 32, seed=seed, samples=1)
    nu = glyph_nuisances(split, seed=seed, samples=1)
    assert nu["letter_dark"].shape == nu["texture"].shape == (len(arr["image"]),)
    luma = arr["image"].astype(np.float32).mean(-1) / 255  # [N, S, S]
    corners = luma[:, [0, 0, -1, -1], [0, -1, 0, -1]].mean(1)  # background: the letter is centred, away from corners
    # A dark letter on a light ground: the darkest pixels (the letter) lie far below the corners, the lightest near them.
    dark_by_pixels = (corners - luma.min((1, 2))) > (luma.max((1, 2)) - corners)
    assert (dark_by_pixels == nu["letter_dark"]).mean() > 0.97
    assert 0.3 < nu["letter_dark"].mean() < 0.7 and set(np.unique(nu["texture"])) <= set(range(len(TEXTURES)))


def test_another_seed_gives_other_draws_and_bad_split_is_clear():
    a, b = glyph_nuisances("train"), glyph_nuisances("train", seed=1)
    assert len(a["letter_dark"]) == 4992 and (a["letter_dark"] != b["letter_dark"]).any()
    with pytest.raises(ValueError, match="all"):
        glyph_nuisances("all")
