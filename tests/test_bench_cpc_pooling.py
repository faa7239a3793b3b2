"""benchmarks/bench_cpc_pooling.py: its 'c mean' columns are CPCModel.embed, and the std columns are the frame std."""
import sys
from pathlib import Path

import torch

from multissl.models.cpc import CPCModel, tiny_cpc_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_cpc_pooling import MeanStdFrames, column_sets  # noqa: E402


def test_pooled_columns_match_embed_and_the_masked_frame_statistics():
    torch.manual_seed(0)
    model = CPCModel(tiny_cpc_config()).eval()
    c, d = model.config.context_dim, model.config.encoder_dim
    audio, lengths = torch.randn(3, 4000), torch.tensor([4000, 2600, 1500])
    with torch.no_grad():
        pooled = MeanStdFrames(model).embed(audio, lengths)
        enc = model.encoder(audio, lengths)
    cols = column_sets(c, d)
    assert pooled.shape == (3, 2 * (c + d)) and len(cols["c,z mean+std"]) == 2 * (c + d)
    torch.testing.assert_close(pooled[:, cols["c mean"]], model.embed(audio, lengths))
    n = int(enc.frame_lengths[1])  # the second clip: only its valid frames count
    z = enc.encoder_hidden_state[1, :n]  # [n, D]
    torch.testing.assert_close(pooled[1, cols["z mean+std"]], torch.cat([z.mean(0), z.std(0, unbiased=False)]))
