"""`spoken_words`: 30 words x 48 espeak-ng speakers in noisy, reverberant rooms, split by take (offline, seeded).

Speaker = espeak-ng English accent + voice variant (8 x 6); word = one of the ten digits or 20 Speech
Commands words (multissl/data/espeak_voices.py). Each (speaker, word) is spoken in `sum(takes)` takes,
each with its own seeded speed and pitch (spoken_digits.clip_settings), then put in a synthetic room
(exponentially decaying impulse response), mixed with coloured noise or babble of other speakers at a
random SNR and peak-normalised (multissl/data/room_noise.py). Takes 0..1 train, 2 validation, 3 test by
default, so every speaker and every word is in every split (the CPC paper's speaker-ID protocol).

Built with espeak-ng at first use and cached as one `datasets` folder under
`$MULTISSL_CACHE` (default `~/.cache/multissl`)/spoken_words/, written to a temp folder and renamed with a
manifest written last (like glyphs), so an interrupted build never looks complete. See data_cards/spoken_words.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from multissl.atomic import atomic_dir
from multissl.data.espeak_voices import SPOKEN_WORDS, SPOKEN_WORDS_ACCENTS, SPOKEN_WORDS_VARIANTS
from multissl.data.room_noise import Degradation
from multissl.data.splits import check_split
from multissl.paths import cache_dir

SAMPLE_RATE = 16000
SPLITS = ("train", "validation", "test", "all")
BUILT_SPLITS = SPLITS[:3]
DEFAULT_TAKES = (2, 1, 1)  # takes per (speaker, word) in train / validation / test
DEFAULT_SEED = 0
DEFAULT_DEGRADATION = Degradation()
BUILD_VERSION = 1  # bump when synthesis or degradation changes, so stale caches are not reused
MANIFEST = "spoken_words_manifest.json"  # written last inside the cache folder; a folder without it is not trusted
CHUNK = 128  # clips degraded at once (bounds the babble index tensor to ~50 MB)


def take_splits(takes: Sequence[int]) -> list[str]:
    """The split of each take index: takes=(2, 1, 1) -> ["train", "train", "validation", "test"]."""
    ok = isinstance(takes, (tuple, list)) and len(takes) == 3
    if not ok or not all(isinstance(k, (int, np.integer)) and k >= 1 for k in takes):
        raise ValueError(f"takes must be 3 positive ints (train, validation, test takes per speaker and word); got {takes!r}")
    return [s for s, k in zip(BUILT_SPLITS, takes) for _ in range(int(k))]


def speakers_of(accents: Sequence[str], variants: Sequence[str]) -> list[str]:
    """Speaker names "accent+variant" (espeak-ng voice strings), accent-major."""
    if not accents or not variants:
        raise ValueError(f"accents and variants must be non-empty; got {list(accents)} and {list(variants)}")
    return [f"{a}+{v}" for a in accents for v in variants]


def _espeak_or_raise(espeak: str) -> None:
    if shutil.which(espeak) is None:
        raise FileNotFoundError(
            f"spoken_words is generated at first use with {espeak!r}, which is not on PATH: install it "
            f"(e.g. `apt-get install espeak-ng`), or use the shipped corpus `spoken_digits`"
        )


def espeak_version(espeak: str = "espeak-ng") -> str:
    """First line of `espeak-ng --version` (recorded in the cache's build info)."""
    return subprocess.run([espeak, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def synthesize_clean(jobs: list[tuple[str, str, int, int]], espeak: str = "espeak-ng", workers: int = 4) -> list[np.ndarray]:
    """Speak each (voice, word, speed, pitch) job: trimmed 16 kHz float32 waveforms [T_i], in job order.

    espeak-ng runs as parallel subprocesses (threads wait on them); one cached resampler serves every clip.
    """
    import torch
    import torchaudio

    from multissl.data.spoken_digits import synthesize_raw, trim_silence

    with ThreadPoolExecutor(max_workers=workers) as pool:
        raw = list(pool.map(lambda j: synthesize_raw(j[1], j[0], j[2], j[3], espeak=espeak), jobs))
    resamplers: dict[int, torchaudio.transforms.Resample] = {}
    out = []
    for wave, sr in raw:
        if sr not in resamplers:
            resamplers[sr] = torchaudio.transforms.Resample(sr, SAMPLE_RATE)
        with torch.no_grad():
            out.append(trim_silence(resamplers[sr](torch.from_numpy(wave)).numpy()))
    return out


def build_take(take: int, speakers: list[str], words: Sequence[str], seed: int, spec: Degradation,
               espeak: str = "espeak-ng", workers: int = 4) -> dict[str, list]:
    """Every (speaker, word) clip of one take, degraded: column lists (audio arrays float32 [T_i], labels, draws)."""
    import torch

    from multissl.data.room_noise import degrade
    from multissl.data.spoken_digits import clip_settings

    pairs = [(s, w) for s in speakers for w in words]  # clip i = speaker i // W, word i % W
    settings = [clip_settings(seed, s, w, take) for s, w in pairs]
    clean = synthesize_clean([(s, w, sp, pi) for (s, w), (sp, pi) in zip(pairs, settings)], espeak, workers)
    max_len = int(spec.max_seconds * SAMPLE_RATE)
    lengths = torch.tensor([min(len(c), max_len) for c in clean])
    padded = torch.zeros(len(clean), int(lengths.max()))
    for i, c in enumerate(clean):
        padded[i, : lengths[i]] = torch.from_numpy(c[:max_len])
    rng = np.random.default_rng([seed, take, 20240])  # one stream per take: every take reproducible alone
    S, W, K = len(speakers), len(words), spec.babble_talkers
    spk = np.arange(len(pairs)) // W
    # babble talkers: other speakers (offset 1..S-1 from the clip's own), any word, from the same take
    other = (spk[:, None] + rng.integers(1, max(S, 2), size=(len(pairs), K))) % S
    sources = other * W + rng.integers(0, W, size=(len(pairs), K))  # [N, K] clip indices
    cols: dict[str, list] = {k: [] for k in ("audio", "speaker", "word", "accent", "variant", "take", "speed", "pitch",
                                             "noise", "snr_db", "rt60_s")}
    for start in range(0, len(pairs), CHUNK):
        part = slice(start, start + CHUNK)
        noisy, out_len, draws = degrade(padded[part], lengths[part], padded, sources[part], rng, spec, SAMPLE_RATE)
        for j, i in enumerate(range(start, min(start + CHUNK, len(pairs)))):
            s, w = pairs[i]
            cols["audio"].append({"array": noisy[j, : out_len[j]].numpy(), "sampling_rate": SAMPLE_RATE})
            cols["speaker"].append(s)
            cols["word"].append(w)
            cols["accent"].append(s.partition("+")[0])
            cols["variant"].append(s.partition("+")[2])
            cols["take"].append(take)
            cols["speed"].append(settings[i][0])
            cols["pitch"].append(settings[i][1])
            cols["noise"].append("babble" if draws["babble"][j] else f"coloured(beta={draws['noise_beta'][j]:.2f})")
            cols["snr_db"].append(round(float(draws["snr_db"][j]), 2))
            cols["rt60_s"].append(round(float(draws["rt60_s"][j]), 3))
    return cols


def build_all(seed: int = DEFAULT_SEED, accents: Sequence[str] = SPOKEN_WORDS_ACCENTS,
              variants: Sequence[str] = SPOKEN_WORDS_VARIANTS, words: Sequence[str] = SPOKEN_WORDS,
              takes: Sequence[int] = DEFAULT_TAKES, spec: Degradation = DEFAULT_DEGRADATION,
              espeak: str = "espeak-ng", progress: bool = True):
    """A datasets.DatasetDict with train / validation / test (not cached); needs espeak-ng."""
    import datasets
    from tqdm.auto import tqdm

    _espeak_or_raise(espeak)
    speakers, words = speakers_of(accents, variants), list(words)
    if not words:
        raise ValueError("words must be non-empty")
    per_take = take_splits(takes)
    parts: dict[str, dict[str, list]] = {s: {} for s in BUILT_SPLITS}
    for take in tqdm(range(len(per_take)), desc="spoken-words takes", disable=not progress):
        cols = build_take(take, speakers, words, seed, spec, espeak)
        for k, v in cols.items():
            parts[per_take[take]].setdefault(k, []).extend(v)
    features = datasets.Features({
        "audio": {"array": datasets.Sequence(datasets.Value("float32")), "sampling_rate": datasets.Value("int32")},
        "speaker": datasets.ClassLabel(names=sorted(speakers)), "word": datasets.ClassLabel(names=words),
        "accent": datasets.Value("string"), "variant": datasets.Value("string"), "take": datasets.Value("int32"),
        "speed": datasets.Value("int32"), "pitch": datasets.Value("int32"), "noise": datasets.Value("string"),
        "snr_db": datasets.Value("float32"), "rt60_s": datasets.Value("float32"),
    })
    return datasets.DatasetDict({s: datasets.Dataset.from_dict(cols, features=features) for s, cols in parts.items()})


def cache_key(seed: int, accents: Sequence[str], variants: Sequence[str], words: Sequence[str],
              takes: Sequence[int], spec: Degradation) -> dict:
    """Everything a cached build depends on (the manifest must equal this for the cache to be reused)."""
    return {"version": BUILD_VERSION, "seed": int(seed), "accents": list(accents), "variants": list(variants),
            "words": list(words), "takes": [int(k) for k in takes], "degradation": dataclasses.asdict(spec)}


def cache_path(key: dict) -> Path:
    """$MULTISSL_CACHE/spoken_words/seed<seed>-<sha1 of the key>."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "spoken_words" / f"seed{key['seed']}-{digest}"


def is_complete(folder: Path, key: dict) -> bool:
    """True when `folder` holds a finished build of exactly `key` (its manifest, written last, matches)."""
    try:
        return json.loads((folder / MANIFEST).read_text()) == json.loads(json.dumps(key))
    except (OSError, ValueError):
        return False


def cached_build(seed: int = DEFAULT_SEED, accents: Sequence[str] = SPOKEN_WORDS_ACCENTS,
                 variants: Sequence[str] = SPOKEN_WORDS_VARIANTS, words: Sequence[str] = SPOKEN_WORDS,
                 takes: Sequence[int] = DEFAULT_TAKES, spec: Degradation = DEFAULT_DEGRADATION,
                 progress: bool = True, espeak: str = "espeak-ng") -> Path:
    """The cache folder of this build, generating and writing it first (atomically) unless a complete one exists."""
    take_splits(takes)
    key = cache_key(seed, accents, variants, words, takes, spec)
    target = cache_path(key)
    if is_complete(target, key):
        return target
    _espeak_or_raise(espeak)

    def write(tmp: Path) -> None:
        build_all(seed, accents, variants, words, takes, spec, espeak, progress).save_to_disk(str(tmp / "data"))
        (tmp / "build_info.json").write_text(json.dumps({"espeak": espeak_version(espeak)}))
        (tmp / MANIFEST).write_text(json.dumps(key, sort_keys=True))  # last: marks the folder complete

    return atomic_dir(target, write)  # replaces an incomplete/stale folder only once the new one is whole


def load_spoken_words(split: str = "train", seed: int = DEFAULT_SEED, accents: Sequence[str] = SPOKEN_WORDS_ACCENTS,
                      variants: Sequence[str] = SPOKEN_WORDS_VARIANTS, words: Sequence[str] = SPOKEN_WORDS,
                      takes: Sequence[int] = DEFAULT_TAKES, cache: bool = True, progress: bool = True):
    """spoken_words as a datasets.Dataset: audio {"array": float32 [T], "sampling_rate": 16000}, speaker, word, ...

    split: train | validation | test | all (the three concatenated). speaker / word are ClassLabels with the
    same names in every split. The first call builds the corpus with espeak-ng (about 5 CPU minutes for the
    default 5,760 clips) and caches it; cache=False builds in memory without touching the cache.
    """
    check_split("spoken_words", split, SPLITS)
    import datasets

    accents, variants, words, takes = tuple(accents), tuple(variants), tuple(words), tuple(takes)
    if cache:
        parts = datasets.load_from_disk(str(cached_build(seed, accents, variants, words, takes, progress=progress) / "data"))
    else:
        parts = build_all(seed, accents, variants, words, takes, progress=progress)
    if split == "all":
        return datasets.concatenate_datasets([parts[s] for s in BUILT_SPLITS])
    return parts[split]
