"""Crops, padding, conv frame arithmetic, MFCC/log-mel features and the audio collator."""
import numpy as np
import pytest
import torch
import torchaudio

from multissl.modalities.audio.collators import AudioCollator
from multissl.modalities.audio.crops import conv_output_length, frame_mask, pad_batch, random_crop_batch, receptive_field
from multissl.modalities.audio.features import log_mel, masked_mean, mfcc, pooled_mfcc

KERNELS, STRIDES = (10, 8, 4, 4, 4), (5, 4, 2, 2, 2)


def test_cpc_encoder_geometry_matches_a_real_conv_stack():
    convs = torch.nn.Sequential(*[torch.nn.Conv1d(1, 1, k, s) for k, s in zip(KERNELS, STRIDES)])
    for n in (465, 466, 624, 625, 8000, 16000):
        assert convs(torch.zeros(1, 1, n)).shape[-1] == int(conv_output_length(torch.tensor([n]), KERNELS, STRIDES))
    assert receptive_field(KERNELS, STRIDES) == 465
    assert int(conv_output_length(torch.tensor([464]), KERNELS, STRIDES)) <= 0  # shorter than the receptive field
    # one frame per 160 samples (10 ms at 16 kHz)
    assert int(conv_output_length(torch.tensor([16160]), KERNELS, STRIDES) - conv_output_length(torch.tensor([16000]), KERNELS, STRIDES)) == 1


def test_random_crop_is_reproducible_and_inside_the_clip():
    waves = [torch.arange(1000, dtype=torch.float32), torch.arange(300, dtype=torch.float32) + 5000]
    a, la = random_crop_batch(waves, 400, torch.Generator().manual_seed(0))
    b, lb = random_crop_batch(waves, 400, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (2, 400) and la.tolist() == [400, 300]
    assert torch.equal(a[0], a[0, 0] + torch.arange(400.0))  # a contiguous span of clip 0
    assert torch.equal(a[1, :300], waves[1]) and torch.count_nonzero(a[1, 300:]) == 0  # short clip: whole, then zeros
    starts = {int(random_crop_batch(waves[:1], 400, torch.Generator().manual_seed(s))[0][0, 0]) for s in range(40)}
    assert len(starts) > 20 and min(starts) >= 0 and max(starts) <= 600
    with pytest.raises(ValueError, match="crop window must be positive"):
        random_crop_batch(waves, 0)


def test_pad_batch_and_mask():
    batch, lengths = pad_batch([torch.ones(3), torch.ones(5)], min_length=8)
    assert batch.shape == (2, 8) and lengths.tolist() == [3, 5] and batch.sum() == 8
    assert frame_mask(torch.tensor([1, 3]), 4).tolist() == [[True, False, False, False], [True, True, True, False]]


def test_mfcc_matches_torchaudio_and_pools_valid_frames():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4000, generator=g)
    feats, frames = mfcc(x, torch.tensor([4000, 2400]))
    ref = torchaudio.transforms.MFCC(16000, n_mfcc=13, melkwargs={"n_fft": 400, "win_length": 400, "hop_length": 160, "n_mels": 40})(x)
    torch.testing.assert_close(feats, ref.transpose(1, 2))
    assert feats.shape == (2, 26, 13) and frames.tolist() == [26, 16]
    pooled = pooled_mfcc(x, torch.tensor([4000, 2400]))
    torch.testing.assert_close(pooled[1], feats[1, :16].mean(0))
    torch.testing.assert_close(masked_mean(feats, torch.tensor([26, 1])), torch.stack([feats[0].mean(0), feats[1, 0]]))


def test_log_mel_of_silence_is_finite():
    feats, frames = log_mel(torch.zeros(1, 1600), torch.tensor([1600]))
    assert feats.shape == (1, 11, 40) and torch.isfinite(feats).all()


def _rows():
    rng = np.random.default_rng(0)
    return [{"audio": {"array": rng.standard_normal(n).astype(np.float32), "sampling_rate": 16000}, "file": f"c{n}.flac"}
            for n in (3000, 200, 5000)]


def test_collator_train_and_eval():
    rows = _rows()
    train = AudioCollator(crop_samples=1000, min_samples=465, train=True, generator=torch.Generator().manual_seed(0))(rows)
    assert train["input_values"].shape == (3, 1000) and train["lengths"].tolist() == [1000, 200, 1000]
    ev = AudioCollator(min_samples=465, train=False)(rows)
    assert ev["input_values"].shape == (3, 5000) and ev["lengths"].tolist() == [3000, 200, 5000]
    torch.testing.assert_close(ev["input_values"][0, :3000], torch.from_numpy(rows[0]["audio"]["array"]))
    tiny = AudioCollator(min_samples=465, train=False)([rows[1]])  # a clip shorter than the receptive field is padded
    assert tiny["input_values"].shape == (1, 465) and tiny["lengths"].tolist() == [200]
    capped = AudioCollator(train=False, max_samples=1000)(rows)
    assert capped["input_values"].shape == (3, 1000)
    resampled = AudioCollator(sample_rate=8000, train=False)(rows)
    assert resampled["lengths"].tolist() == [1500, 100, 2500]


def test_collator_errors_name_the_row():
    rows = _rows()
    rows[2]["audio"] = {"path": "broken.flac", "bytes": b"not audio"}
    with pytest.raises(ValueError, match=r"broken\.flac: not a readable audio file"):
        AudioCollator(train=False)(rows)
    with pytest.raises(KeyError, match="row 0: no 'audio' column"):
        AudioCollator()([{"sound": 1}])
    with pytest.raises(ValueError, match="empty list"):
        AudioCollator()([])


def test_collator_takes_a_per_call_generator():
    rows = _rows()
    collate = AudioCollator(crop_samples=1000, train=True)
    a = collate(rows, generator=torch.Generator().manual_seed(5))["input_values"]
    b = collate(rows, generator=torch.Generator().manual_seed(5))["input_values"]
    c = collate(rows, generator=torch.Generator().manual_seed(6))["input_values"]
    assert torch.equal(a, b) and not torch.equal(a, c)
