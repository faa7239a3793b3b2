"""Grid tiles with gaps/jitter, relative patch pairs, patchify, and the jigsaw permutation set."""
import itertools

import pytest
import torch

from multissl.modalities.image.jigsaw import maximal_hamming_permutations, shuffle_tiles
from multissl.modalities.image.patches import NEIGHBOURS_3X3, grid_tiles, patchify, relative_patch_pairs, unpatchify


def _coords(b=2, s=12):
    """Images whose pixel value encodes its (row, col): [B, 2, S, S]."""
    r = torch.arange(s).view(1, s, 1).expand(b, s, s)
    c = torch.arange(s).view(1, 1, s).expand(b, s, s)
    return torch.stack([r, c], 1).float()


def test_grid_tiles_positions_gaps_and_jitter():
    imgs = _coords()
    g = torch.Generator().manual_seed(0)
    tiles = grid_tiles(imgs, grid=3, gap=1, jitter=True, generator=g)  # cells of 4 px, tiles of 4 - 2*1 = 2 px
    assert tiles.shape == (2, 9, 2, 2, 2)
    for k in range(9):
        top, left = tiles[:, k, 0, 0, 0], tiles[:, k, 1, 0, 0]
        cell_top, cell_left = (k // 3) * 4, (k % 3) * 4  # offset in gap // 2 + {0..gap} = {0, 1}
        assert ((top >= cell_top) & (top <= cell_top + 1)).all() and ((left >= cell_left) & (left <= cell_left + 1)).all()
        # each tile is a contiguous crop of the image
        assert torch.equal(tiles[:, k, 0, :, 0] - top[:, None], torch.arange(2.0).expand(2, 2))
    fixed = grid_tiles(imgs, grid=3, gap=1, jitter=False)
    assert torch.equal(fixed[0, 4, :, 0, 0], torch.tensor([5.0, 5.0]))  # centred: offset gap = 1 in the 4-px cell


@pytest.mark.parametrize("gap,jitter", [(1, True), (2, True), (3, True), (2, False)])
def test_neighbouring_tiles_are_always_at_least_gap_apart(gap, jitter):
    """Over many random draws, the blank strip between any two horizontally/vertically adjacent tiles is >= gap."""
    s, grid = 3 * (2 * gap + 3) + 2, 3  # a couple of spare pixels past the last cell, as with real image sizes
    imgs = _coords(b=500, s=s)
    tiles = grid_tiles(imgs, grid=grid, gap=gap, jitter=jitter, generator=torch.Generator().manual_seed(gap))
    t = tiles.shape[-1]
    top = tiles[:, :, 0, 0, 0].view(-1, grid, grid)  # [B, row, col]
    left = tiles[:, :, 1, 0, 0].view(-1, grid, grid)
    sep_x = left[:, :, 1:] - (left[:, :, :-1] + t)  # blank columns between a tile and its right neighbour
    sep_y = top[:, 1:, :] - (top[:, :-1, :] + t)  # blank rows between a tile and the one below
    seps = torch.cat([sep_x.flatten(), sep_y.flatten()])
    assert int(seps.min()) >= gap
    if jitter:  # the whole window is used: separations span gap .. 3*gap
        assert int(seps.min()) == gap and int(seps.max()) == 3 * gap
    else:
        assert (seps == 2 * gap).all()
    assert int(top.max()) + t <= s and int(left.max()) + t <= s


def test_grid_tiles_deterministic_with_generator():
    imgs = torch.randn(3, 3, 12, 12)
    a = grid_tiles(imgs, 3, 1, generator=torch.Generator().manual_seed(5))
    b = grid_tiles(imgs, 3, 1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_image_too_small_for_grid_is_a_clear_error():
    with pytest.raises(ValueError, match="Image too small for the crop or jigsaw grid"):
        grid_tiles(torch.zeros(1, 3, 8, 8), grid=3, gap=2)


def test_relative_patch_pairs_label_is_neighbour_position():
    imgs = _coords(b=64)
    centre, neighbour, label = relative_patch_pairs(imgs, gap=1, jitter=False, generator=torch.Generator().manual_seed(0))
    assert centre.shape == neighbour.shape == (64, 2, 2, 2) and label.shape == (64,)
    assert set(label.tolist()) == set(range(8))
    grid_idx = torch.tensor(NEIGHBOURS_3X3)[label]
    assert torch.equal(neighbour[:, 0, 0, 0], (grid_idx // 3) * 4.0 + 1)  # centred: offset gap = 1 in its cell
    assert torch.equal(neighbour[:, 1, 0, 0], (grid_idx % 3) * 4.0 + 1)
    assert torch.equal(centre[:, :, 0, 0], torch.full((64, 2), 5.0))


def test_patchify_roundtrip_and_layout():
    x = torch.randn(2, 3, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 4, 48)
    assert torch.equal(p[:, 1].view(2, 4, 4, 3).permute(0, 3, 1, 2), x[:, :, :4, 4:])  # patch 1 = top-right
    assert torch.equal(unpatchify(p, 4, 3), x)
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.zeros(1, 3, 10, 10), 4)


def test_permutation_set_has_maximal_min_hamming_distance():
    perms = maximal_hamming_permutations(10, n_tiles=4, seed=0)  # 24 candidates: check against brute force
    assert perms.shape == (10, 4) and len({tuple(p) for p in perms.tolist()}) == 10
    assert all(sorted(p) == list(range(4)) for p in perms.tolist())
    dist = (perms[:, None] != perms[None]).sum(-1)
    min_d = int(dist[~torch.eye(10, dtype=torch.bool)].min())
    # Greedy: the 2nd permutation is at the largest possible distance (4) from the first; no duplicates anywhere.
    assert int(dist[0, 1]) == 4 and min_d >= 2
    all_p = torch.tensor(list(itertools.permutations(range(4))))
    assert all((all_p == p).all(1).any() for p in perms)


def test_permutation_set_for_nine_tiles_is_deterministic_and_spread():
    a = maximal_hamming_permutations(20, seed=3)
    assert torch.equal(a, maximal_hamming_permutations(20, seed=3))
    d = (a[:, None] != a[None]).sum(-1)
    assert int(d[~torch.eye(20, dtype=torch.bool)].min()) >= 7  # random sets of 20 typically hit 4-5
    with pytest.raises(ValueError, match="num_permutations"):
        maximal_hamming_permutations(0)


def test_shuffle_tiles_applies_the_labelled_permutation():
    tiles = torch.arange(9.0).view(1, 9, 1).expand(5, 9, 1)
    perms = maximal_hamming_permutations(4, seed=0)
    shuffled, label = shuffle_tiles(tiles, perms, generator=torch.Generator().manual_seed(1))
    assert torch.equal(shuffled[..., 0], perms[label].float())
