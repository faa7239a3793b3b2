"""Spoken digits: a multi-speaker corpus spoken by espeak-ng voices, built offline, with a small copy shipped.

Speaker = espeak-ng accent + voice variant (e.g. "en-gb-scotland+m3"); word = the digit word.
Every (speaker, word) pair is spoken `repeats` times with a different, seeded speed and pitch;
the last repeat(s) form the test split, so every speaker and every word is in both splits
(the speaker-ID protocol of the CPC paper's linear probes). The validation split is carved out of
the train takes when loading (`assign_validation`), so test rows never change. See data_cards/spoken_digits.md.
"""
from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from multissl.data.espeak_voices import ALL_ACCENTS, ALL_VARIANTS, DIGITS

SAMPLE_RATE = 16000
SHIPPED_REPEATS = 2  # with espeak_voices.SHIPPED_ACCENTS x SHIPPED_VARIANTS: the copy in assets/spoken_digits
ASSET_DIR = Path(__file__).parent / "assets" / "spoken_digits"
METADATA = "metadata.jsonl"
SPLITS = ("train", "validation", "test")
# Validation when a (speaker, word) pair has a single train take (the shipped copy): speaker #i (sorted names) and
# word #j (label order) go to validation when (i + j) % VALIDATION_PERIOD == VALIDATION_PERIOD - 1, i.e. 2 of the
# 10 digits per speaker, every digit for 4-5 of the 24 speakers; a corpus with < 5 words or speakers may get none.
VALIDATION_PERIOD = 5


def num_test_repeats(repeats: int) -> int:
    """How many of the `repeats` takes of each (speaker, word) go to the test split (>= 1)."""
    if repeats < 2:
        raise ValueError(f"repeats must be >= 2 so that every speaker and word is in train and test; got {repeats}")
    return max(1, repeats // 4)


def clip_settings(seed: int, speaker: str, word: str, repeat: int) -> tuple[int, int]:
    """Seeded espeak-ng (speed in words/min, pitch 0-99) for one take: the same on every machine."""
    rng = random.Random(f"{seed}:{speaker}:{word}:{repeat}")  # str seeds hash deterministically (sha512)
    return rng.randint(140, 210), rng.randint(35, 65)


def trim_silence(wave: np.ndarray, threshold: float = 1e-3, pad: int = 320) -> np.ndarray:
    """Cut leading/trailing silence of a [T] waveform, keeping `pad` samples (20 ms at 16 kHz) each side."""
    loud = np.flatnonzero(np.abs(wave) > threshold)
    if loud.size == 0:
        return wave
    return wave[max(0, loud[0] - pad): loud[-1] + 1 + pad]


def synthesize_raw(text: str, voice: str, speed: int, pitch: int, espeak: str = "espeak-ng") -> tuple[np.ndarray, int]:
    """Speak `text` with espeak-ng: (float32 mono waveform [T] at espeak's own rate, that rate), untrimmed."""
    import soundfile as sf

    if shutil.which(espeak) is None:
        raise FileNotFoundError(
            f"{espeak!r} not found on PATH; install it (e.g. `apt-get install espeak-ng`) to build spoken_digits, "
            f"or use the shipped copy: load_dataset_by_name('spoken_digits')"
        )
    proc = subprocess.run(
        [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True, check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}, text {text!r}: {proc.stderr.decode(errors='replace')}")
    # --stdout writes a WAV whose header has no final size; patch the RIFF/data sizes so libsndfile reads it all.
    raw = bytearray(proc.stdout)
    raw[4:8] = (len(raw) - 8).to_bytes(4, "little")
    data_at = raw.find(b"data")
    raw[data_at + 4: data_at + 8] = (len(raw) - data_at - 8).to_bytes(4, "little")
    wave, sr = sf.read(io.BytesIO(bytes(raw)), dtype="float32")
    return wave, int(sr)


def synthesize(text: str, voice: str, speed: int, pitch: int, espeak: str = "espeak-ng") -> np.ndarray:
    """Speak `text` with espeak-ng and return a trimmed 16 kHz mono float32 waveform [T]."""
    import torch

    from multissl.modalities.audio.io import resample

    wave, sr = synthesize_raw(text, voice, speed, pitch, espeak=espeak)
    wave16 = resample(torch.from_numpy(wave), sr, SAMPLE_RATE).numpy()
    return trim_silence(wave16)


def build_spoken_digits(
    out_dir: str | os.PathLike,
    accents: Sequence[str] = ALL_ACCENTS,
    variants: Sequence[str] = ALL_VARIANTS,
    words: Sequence[str] = DIGITS,
    repeats: int = 4,
    seed: int = 0,
    progress: bool = True,
    espeak: str = "espeak-ng",
) -> Path:
    """Generate the corpus into `out_dir` (audio/<speaker>/<word>_<r>.flac + metadata.jsonl); returns out_dir.

    Written into a temporary sibling folder and renamed at the end, so a half-built corpus never
    appears under `out_dir`.
    """
    import soundfile as sf
    from tqdm.auto import tqdm

    n_test = num_test_repeats(repeats)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    jobs = [(a, v, w, r) for a in accents for v in variants for w in words for r in range(repeats)]
    rows = []
    try:
        for accent, variant, word, rep in tqdm(jobs, desc="spoken-digits", disable=not progress, unit="clip"):
            speaker = f"{accent}+{variant}"
            speed, pitch = clip_settings(seed, speaker, word, rep)
            wave = synthesize(word, speaker, speed, pitch, espeak=espeak)
            rel = Path("audio") / speaker / f"{word}_{rep}.flac"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(tmp / rel, wave, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            rows.append({
                "file": rel.as_posix(), "speaker": speaker, "word": word, "accent": accent, "variant": variant,
                "repeat": rep, "split": "test" if rep >= repeats - n_test else "train",
                "speed": speed, "pitch": pitch, "num_samples": int(wave.shape[0]),
            })
        (tmp / METADATA).write_text("".join(json.dumps(r) + "\n" for r in rows))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_metadata(root: str | os.PathLike) -> list[dict]:
    """The rows of `root/metadata.jsonl`, with a clear error when the folder is not a spoken-digits corpus."""
    path = Path(root) / METADATA
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {METADATA}; build a corpus with `multissl data build spoken_digits --out DIR`")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = {"file", "speaker", "word", "split"} - set(row)
        if missing:
            raise ValueError(f"{path}:{n}: missing fields {sorted(missing)}")
        rows.append(row)
    return rows


def assign_validation(rows: list[dict]) -> list[dict]:
    """Copies of `rows` with some train rows relabelled split="validation"; test rows are never touched.

    A (speaker, word) pair with >= 2 train takes gives its last train take to validation (split by take,
    like test); a pair with one train take (the shipped copy) goes to validation whole when its
    (speaker index + word index) % VALIDATION_PERIOD == VALIDATION_PERIOD - 1, so every speaker keeps
    most of its words in train and every speaker and word appears in validation. Metadata that already
    has validation rows is returned as it is.
    """
    if any(r["split"] == "validation" for r in rows):
        return [dict(r) for r in rows]
    train_at = [i for i, r in enumerate(rows) if r["split"] == "train"]
    key = lambda r: (r["speaker"], r["word"])  # noqa: E731
    takes = Counter(key(rows[i]) for i in train_at)
    last_take = {key(rows[i]): i for i in train_at}  # row index of each pair's last train take
    speaker_id = {n: i for i, n in enumerate(sorted({r["speaker"] for r in rows}))}
    word_id = {n: i for i, n in enumerate(_ordered_names(r["word"] for r in rows))}
    out = [dict(r) for r in rows]
    for i in train_at:
        r = out[i]
        if takes[key(r)] >= 2:
            held = last_take[key(r)] == i
        else:
            held = (speaker_id[r["speaker"]] + word_id[r["word"]]) % VALIDATION_PERIOD == VALIDATION_PERIOD - 1
        if held:
            r["split"] = "validation"
    return out


def _select(rows: list[dict], split: str) -> list[dict]:
    """Rows of one split; 'all' or 'train+test' give every row."""
    if split in ("all", "train+test"):
        return rows
    if split not in SPLITS:
        raise ValueError(f"spoken_digits has splits {SPLITS} (or 'all'); got {split!r}")
    return [r for r in rows if r["split"] == split]


def load_spoken_digits(split: str = "train", path: str | os.PathLike | None = None, labels_as: str = "class") -> datasets.Dataset:  # noqa: F821
    """The corpus at `path` (default: the shipped copy) as a datasets.Dataset with columns audio, speaker, word, ...

    split: train | validation | test | all (validation comes out of the train takes, see `assign_validation`).

    `audio` is {"array": float32 [T], "sampling_rate": 16000}. speaker/word are ClassLabel ints
    (`labels_as="class"`, names shared by both splits) or plain strings (`labels_as="str"`).
    """
    import datasets

    from multissl.modalities.audio.io import load_audio

    root = Path(path) if path is not None else ASSET_DIR
    all_rows = assign_validation(read_metadata(root))
    rows = _select(all_rows, split)
    cols: dict[str, list] = {k: [] for k in ("audio", "speaker", "word", "accent", "variant", "file")}
    for r in rows:
        wave, sr = load_audio(root / r["file"], target_sr=SAMPLE_RATE)
        cols["audio"].append({"array": wave.numpy(), "sampling_rate": sr})
        for k in ("speaker", "word", "file"):
            cols[k].append(r[k])
        cols["accent"].append(r.get("accent", r["speaker"].split("+")[0]))
        cols["variant"].append(r.get("variant", r["speaker"].partition("+")[2]))
    features = {
        "audio": {"array": datasets.Sequence(datasets.Value("float32")), "sampling_rate": datasets.Value("int32")},
        "accent": datasets.Value("string"), "variant": datasets.Value("string"), "file": datasets.Value("string"),
    }
    if labels_as == "class":
        for k in ("speaker", "word"):
            names = _ordered_names(r[k] for r in all_rows)
            index = {n: i for i, n in enumerate(names)}
            cols[k] = [index[v] for v in cols[k]]
            features[k] = datasets.ClassLabel(names=names)
    elif labels_as == "str":
        features.update(speaker=datasets.Value("string"), word=datasets.Value("string"))
    else:
        raise ValueError(f"labels_as must be 'class' or 'str'; got {labels_as!r}")
    return datasets.Dataset.from_dict(cols, features=datasets.Features(features))


def _ordered_names(values: Iterable[str]) -> list[str]:
    """Label names: digits in numeric order when they are digit words, otherwise sorted."""
    uniq = set(values)
    if uniq <= set(DIGITS):
        return [d for d in DIGITS if d in uniq]
    return sorted(uniq)
