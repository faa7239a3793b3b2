"""Jigsaw puzzles (Noroozi & Favaro 2016): a permutation set of maximal Hamming distance, and shuffling tiles."""
from __future__ import annotations

import itertools
from functools import lru_cache

import torch


@lru_cache(maxsize=8)
def _all_permutations(n_tiles: int) -> torch.Tensor:
    """Every permutation of n_tiles as a [n_tiles!, n_tiles] int8 table (9! = 362880 rows, 3.3 MB)."""
    return torch.tensor(list(itertools.permutations(range(n_tiles))), dtype=torch.int8)


def maximal_hamming_permutations(num_permutations: int, n_tiles: int = 9, seed: int = 0) -> torch.Tensor:
    """A [P, n_tiles] set chosen greedily for maximal minimum Hamming distance (Noroozi & Favaro, Alg. 1).

    Starts from one random permutation; each next one maximises its minimum distance to those already chosen
    (ties broken by the seeded generator), so the classes are as different from each other as possible.
    """
    if n_tiles > 9:
        raise ValueError(f"n_tiles must be <= 9 (a 3x3 grid); got {n_tiles}")
    table = _all_permutations(n_tiles)  # [T, n]
    total = table.shape[0]
    if not 1 <= num_permutations <= total:
        raise ValueError(f"num_permutations must be in [1, {total}] for {n_tiles} tiles; got {num_permutations}")
    g = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(0, total, (1,), generator=g))]
    # min distance of every candidate to the chosen set, updated incrementally: O(P * T * n), vectorised over T.
    min_dist = (table != table[chosen[0]]).sum(1).to(torch.int16)  # [T]
    for _ in range(num_permutations - 1):
        best = min_dist.max()
        ties = torch.nonzero(min_dist == best).flatten()
        pick = int(ties[torch.randint(0, len(ties), (1,), generator=g)])
        chosen.append(pick)
        min_dist = torch.minimum(min_dist, (table != table[pick]).sum(1).to(torch.int16))
    return table[chosen].long()  # [P, n]


def shuffle_tiles(tiles: torch.Tensor, permutations: torch.Tensor,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder tiles [B, n, ...] by a random permutation of the set [P, n]: (shuffled [B, n, ...], label [B]).

    Position i of the shuffled puzzle holds original tile permutations[label][i].
    """
    b, n = tiles.shape[:2]
    if permutations.shape[1] != n:
        raise ValueError(f"permutations have {permutations.shape[1]} entries but there are {n} tiles")
    label = torch.randint(0, permutations.shape[0], (b,), generator=generator)  # [B]
    order = permutations[label].to(tiles.device)  # [B, n]
    ar = torch.arange(b, device=tiles.device)[:, None]
    return tiles[ar, order], label.to(tiles.device)
