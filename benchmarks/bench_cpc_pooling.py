"""CPC features pooled other ways, on the validation split only: is mean-pooled c_t what holds CPC back on speakers?

For each trained CPC run folder given, every spoken_words clip (train and validation) is embedded whole and the
frames of the context c_t and of the encodings z_t are pooled by mean and by mean + std over the valid frames; the
feature sets c mean (what CPCModel.embed returns), c mean+std, z mean+std and [c, z] mean+std are scored exactly as
benchmarks/bench_audio_table.py scores every row (speaker and word linear probes with C chosen on validation, k-NN).
The test split is never read. Its counterpart among the baselines is MFCC mean+std (bench_audio_table.py).

    OMP_NUM_THREADS=1 python benchmarks/bench_cpc_pooling.py runs/cpc_tune/w128_600/cpc-seed0 runs/cpc_tune/w64_1200/cpc-seed0
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


class MeanStdFrames(torch.nn.Module):
    """embed(input_values [B, L], lengths [B]) -> [mean c, mean z, std c, std z] over each clip's valid frames [B, 2(C+D)]."""

    def __init__(self, cpc: torch.nn.Module):
        super().__init__()
        self.cpc = cpc

    def embed(self, input_values: torch.Tensor, lengths: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        from multissl.modalities.audio.crops import frame_mask

        enc = self.cpc.encoder(input_values, lengths)
        h = torch.cat([enc.last_hidden_state, enc.encoder_hidden_state], dim=-1)  # [B, T, C + D]
        w = frame_mask(enc.frame_lengths, h.shape[1]).to(h.dtype).unsqueeze(-1)  # [B, T, 1]
        mean = (h * w).sum(1) / w.sum(1)
        var = ((h - mean[:, None]) ** 2 * w).sum(1) / w.sum(1)
        return torch.cat([mean, var.clamp_min(0).sqrt()], dim=1)


def column_sets(c: int, d: int) -> dict[str, list[int]]:
    """Columns of MeanStdFrames' output for each pooled feature set."""
    w = c + d
    return {"c mean": list(range(c)), "c mean+std": [*range(c), *range(w, w + c)],
            "z mean+std": [*range(c, w), *range(w + c, 2 * w)], "c,z mean+std": list(range(2 * w))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="CPC run folders (each with final/)")
    args = parser.parse_args()
    missing = [r for r in args.runs if not (Path(r) / "final" / "config.json").is_file()]
    if missing:
        raise SystemExit(f"no finished CPC run (final/config.json) in {', '.join(missing)}")
    import bench_audio_table as table

    from multissl.data import load_dataset_by_name
    from multissl.models.cpc import make_cpc_collator
    from multissl.models.loading import load_model

    torch.set_num_threads(1)
    splits = {s: load_dataset_by_name("spoken_words", split=s) for s in ("train", "validation")}
    for run in args.runs:
        model = load_model(Path(run) / "final").eval()
        collate = make_cpc_collator(model.config, train=False)
        with torch.no_grad():
            feats = table.features(MeanStdFrames(model), collate, splits)
        for name, cols in column_sets(model.config.context_dim, model.config.encoder_dim).items():
            result = table.scores({s: (x[:, cols], y) for s, (x, y) in feats.items()}, "validation")
            print(run, name, json.dumps({k: round(v, 3) for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
