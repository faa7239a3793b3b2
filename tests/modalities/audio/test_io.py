"""Audio loading: formats, resampling, mono mix-down, the dataset value forms, and clear errors on bad input."""
import io

import numpy as np
import pytest
import soundfile as sf
import torch

from multissl.modalities.audio.io import check_waveform, decode_audio, load_audio, resample, to_mono


def _tone(sr: int, seconds: float = 0.25, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_roundtrip_wav_flac(tmp_path, fmt):
    x = _tone(16000)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, x, 16000, format=fmt, subtype="PCM_16")
    wave, sr = load_audio(path, target_sr=16000)
    assert sr == 16000 and wave.dtype == torch.float32 and wave.shape == (4000,)
    torch.testing.assert_close(wave, torch.from_numpy(x), atol=1e-4, rtol=0)


def test_wrong_rate_is_resampled_and_keeps_pitch(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(8000, 0.5), 8000)
    wave, sr = load_audio(tmp_path / "a.wav", target_sr=16000)
    assert sr == 16000 and wave.shape == (8000,)
    spectrum = torch.fft.rfft(wave).abs()
    assert abs(int(spectrum.argmax()) * 16000 / 8000 - 440) < 4  # the 440 Hz peak survives resampling


def test_stereo_is_mixed_down(tmp_path):
    left, right = _tone(16000, freq=300), _tone(16000, freq=500)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wave, _ = load_audio(tmp_path / "s.wav")
    torch.testing.assert_close(wave, torch.from_numpy((left + right) / 2))
    # a dataset array with channels first, [C, T], is mixed down the same way
    torch.testing.assert_close(decode_audio({"array": np.stack([left, right]), "sampling_rate": 16000}, 16000), wave)


def test_dataset_value_forms(tmp_path):
    x = _tone(16000)
    sf.write(tmp_path / "a.flac", x, 16000)
    ref = load_audio(tmp_path / "a.flac")[0]
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="FLAC")
    forms = [str(tmp_path / "a.flac"), {"path": str(tmp_path / "a.flac"), "bytes": None},
             {"path": "a.flac", "bytes": buf.getvalue()}, {"array": x.tolist(), "sampling_rate": 16000}]
    for value in forms:
        torch.testing.assert_close(decode_audio(value, 16000), ref, atol=1e-4, rtol=0)
    assert decode_audio({"array": x, "sampling_rate": 8000}, 16000).shape == (8000,)


def test_silent_clip_is_kept():
    wave = decode_audio({"array": np.zeros(1600, dtype=np.float32), "sampling_rate": 16000}, 16000)
    assert wave.shape == (1600,) and torch.count_nonzero(wave) == 0


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio")
    with pytest.raises(ValueError, match=r"notes\.wav: not a readable audio file"):
        load_audio(tmp_path / "notes.wav")
    good = io.BytesIO()
    sf.write(good, _tone(16000), 16000, format="WAV")
    (tmp_path / "cut.wav").write_bytes(good.getvalue()[:30])  # truncated inside the header
    with pytest.raises(ValueError, match=r"cut\.wav"):
        load_audio(tmp_path / "cut.wav")
    with pytest.raises(FileNotFoundError, match=r"missing\.flac: no such audio file"):
        load_audio(tmp_path / "missing.flac")
    with pytest.raises(ValueError, match="clip7: not a readable audio file"):
        decode_audio({"path": "clip7", "bytes": b"garbage bytes"}, 16000)


def test_bad_arrays_are_rejected():
    with pytest.raises(ValueError, match="row 3: audio contains NaN"):
        decode_audio({"array": np.array([0.0, np.nan, 0.1] * 100), "sampling_rate": 16000}, 16000, source="row 3")
    with pytest.raises(ValueError, match="empty audio"):
        check_waveform(torch.zeros(0), "x.wav")
    with pytest.raises(ValueError, match="no 'sampling_rate'"):
        decode_audio({"array": [0.0, 1.0]}, 16000)
    with pytest.raises(ValueError, match="bare array has no sampling rate"):
        decode_audio(np.zeros(100), 16000)
    with pytest.raises(TypeError, match="cannot read audio from a int"):
        decode_audio(5, 16000)
    with pytest.raises(ValueError, match="expected a"):
        to_mono(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="sampling rates must be positive"):
        resample(torch.zeros(10), 0, 16000)


def test_audio_folder_without_torchcodec(tmp_path):
    from multissl.data.audio_folder import load_audio_folder
    from multissl.modalities.audio.collators import AudioCollator

    for split, spk, n in [("train", "alice", 1600), ("train", "bob", 2400), ("test", "bob", 800)]:
        (tmp_path / split / spk).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / split / spk / f"{n}.wav", _tone(16000, n / 16000), 16000)
    (tmp_path / "train" / "alice" / "notes.txt").write_text("ignored")
    train, test = load_audio_folder(tmp_path, "train"), load_audio_folder(tmp_path, "test")
    assert len(train) == 2 and len(test) == 1 and len(load_audio_folder(tmp_path, "all")) == 3
    assert train.features["label"].names == ["alice", "bob"] and test[0]["label"] == 1
    batch = AudioCollator(train=False)([train[0], train[1]])
    assert batch["lengths"].tolist() == [1600, 2400]
    with pytest.raises(ValueError, match="no split 'validation'"):
        load_audio_folder(tmp_path, "validation")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_audio_folder(tmp_path / "nope")
