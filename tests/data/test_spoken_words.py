"""spoken_words: split-by-take rules, a tiny espeak-ng build (labels, splits, audio, determinism), the atomic cache, the CLI."""
import shutil

import numpy as np
import pytest

from multissl.data import spoken_words as sw
from multissl.data.espeak_voices import COMMAND_WORDS, DIGITS, SPOKEN_WORDS, SPOKEN_WORDS_ACCENTS, SPOKEN_WORDS_VARIANTS

TINY = {"accents": ("en", "en-us"), "variants": ("m1", "f1"), "words": ("one", "yes", "dog"), "takes": (1, 1, 1)}
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_default_corpus_is_48_speakers_30_words_split_by_take():
    assert len(sw.speakers_of(SPOKEN_WORDS_ACCENTS, SPOKEN_WORDS_VARIANTS)) == 48
    assert SPOKEN_WORDS == DIGITS + COMMAND_WORDS and len(set(SPOKEN_WORDS)) == 30
    assert sw.take_splits(sw.DEFAULT_TAKES) == ["train", "train", "validation", "test"]


def test_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTISSL_CACHE", str(tmp_path))
    for bad in ((2, 1), (2, 0, 1), (1.5, 1, 1)):
        with pytest.raises(ValueError, match="takes must be 3 positive ints"):
            sw.take_splits(bad)
    with pytest.raises(ValueError, match="no split 'dev'"):
        sw.load_spoken_words("dev")
    with pytest.raises(ValueError, match="non-empty"):
        sw.speakers_of((), ("m1",))
    with pytest.raises(FileNotFoundError, match="not on PATH.*apt-get install espeak-ng"):
        sw.cached_build(espeak="no-such-espeak-binary", **TINY)
    assert not list(tmp_path.rglob("*manifest*"))  # nothing that looks like a finished build


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MULTISSL_CACHE", str(cache))
        folder = sw.cached_build(progress=False, **TINY)
        splits = {s: sw.load_spoken_words(s, progress=False, **TINY) for s in ("train", "validation", "test", "all")}
    return cache, folder, splits


@needs_espeak
def test_tiny_build_every_speaker_and_word_in_every_split(tiny):
    _, folder, splits = tiny
    assert folder.parent.name == "spoken_words" and (folder / sw.MANIFEST).is_file()
    names = splits["train"].features["speaker"].names
    assert names == ["en+f1", "en+m1", "en-us+f1", "en-us+m1"] and splits["train"].features["word"].names == list(TINY["words"])
    for split, take in (("train", 0), ("validation", 1), ("test", 2)):
        ds = splits[split]
        assert len(ds) == 12 and set(ds["take"]) == {take}
        assert sorted(zip(ds["speaker"], ds["word"])) == [(s, w) for s in range(4) for w in range(3)]
        assert ds.features["speaker"].names == names
    assert len(splits["all"]) == 36


@needs_espeak
def test_audio_is_short_noisy_16k_speech(tiny):
    ds = tiny[2]["train"]
    for row in ds:
        wave = np.asarray(row["audio"]["array"], dtype=np.float32)
        assert row["audio"]["sampling_rate"] == 16000 and 3000 < wave.shape[0] <= 16000
        assert 0.3 - 1e-4 <= np.abs(wave).max() <= 0.9 + 1e-4  # peak-normalised into Degradation.peak
        assert 5.0 <= row["snr_db"] <= 20.0 and 0.1 <= row["rt60_s"] <= 0.5
    assert {n.split("(")[0] for n in ds["noise"]} <= {"babble", "coloured"}


@needs_espeak
def test_a_take_rebuilds_identically_and_the_cache_is_reused(tiny, monkeypatch):
    cache, folder, splits = tiny
    speakers = sw.speakers_of(TINY["accents"], TINY["variants"])
    again = sw.build_take(1, speakers, TINY["words"], sw.DEFAULT_SEED, sw.DEFAULT_DEGRADATION)
    val = splits["validation"]
    order = {(val.features["speaker"].int2str(s), val.features["word"].int2str(w)): i
             for i, (s, w) in enumerate(zip(val["speaker"], val["word"]))}
    for a, s, w in zip(again["audio"], again["speaker"], again["word"]):
        np.testing.assert_array_equal(np.asarray(val[order[(s, w)]]["audio"]["array"], dtype=np.float32), a["array"])
    monkeypatch.setenv("MULTISSL_CACHE", str(cache))
    monkeypatch.setattr(sw, "build_all", lambda *a, **k: pytest.fail("a complete cache must not be rebuilt"))
    assert sw.cached_build(progress=False, **TINY) == folder
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left behind


@needs_espeak
def test_cli_builds_into_the_cache(tmp_path, monkeypatch, capsys):
    from multissl.cli import main

    monkeypatch.setenv("MULTISSL_CACHE", str(tmp_path))
    argv = ["data", "build", "spoken_words", "--voices", "en", "--variants", "m1", "f1", "--words", "one", "go", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "spoken_words (2 speakers, 2 words): train 8, validation 4, test 4 clips" in out and str(tmp_path) in out
    assert main(argv + ["--out", str(tmp_path / "x")]) == 1
    assert "drop --out" in capsys.readouterr().err
