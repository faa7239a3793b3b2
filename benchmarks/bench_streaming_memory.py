"""Peak memory of a streamed corpus vs its size: multissl's streaming loader against loading the corpus whole.

Generates parquet corpora of 1x, 3x and 10x a base size (rows of 8 KiB incompressible bytes, the size of a small
encoded image, plus a short text), then, each in a fresh process, (a) streams every row once through the loader a
`streaming:` recipe uses (RowStream -> StreamBatchSource -> open_batches, 1000-row shuffle windows, batches of 64)
and (b) reads the same files whole with pyarrow (what a map-style dataset held in memory costs). Prints peak RSS
(ru_maxrss) per size and the ratio largest / smallest for each: flat streaming memory is a ratio near 1.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_streaming_memory.py            # 32 / 96 / 320 MiB, ~3 CPU min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_streaming_memory.py --base-mib 8   # a quick look
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW_BYTES = 8 * 1024
ROWS_PER_FILE = 2000  # 16 MiB parquet files


def generate(folder: Path, mib: int) -> int:
    """Write `mib` MiB of rows as parquet shards under `folder`; returns the row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    rows = mib * 1024 * 1024 // ROW_BYTES
    folder.mkdir(parents=True)
    for f, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        n = min(ROWS_PER_FILE, rows - start)
        blobs = rng.integers(0, 256, (n, ROW_BYTES), dtype=np.uint8)
        table = pa.table({"id": np.arange(start, start + n), "blob": [b.tobytes() for b in blobs],
                          "text": [f"row {i}" for i in range(start, start + n)]})
        pq.write_table(table, folder / f"part-{f:05d}.parquet", row_group_size=256)
    return rows


def _count(rows: list[dict], generator=None) -> dict:
    import torch

    return {"ids": torch.tensor([r["id"] for r in rows]), "bytes": torch.tensor(sum(len(r["blob"]) for r in rows))}


def measure(folder: str, mode: str, rows: int) -> dict:
    """Run in a child process: read every row once, return peak RSS and its growth over the RSS after the imports
    (MiB), seconds and rows seen. Both modes import the same libraries, so their baselines match."""
    import pyarrow.parquet as pq

    from multissl.data.batches import BatchSource, open_batches
    from multissl.data.streaming import open_stream

    base = _rss_mib()
    start = time.perf_counter()
    if mode == "stream":
        source = BatchSource(open_stream(folder, options={"shuffle_buffer": 1000}), _count, 64, 0)
        seen = sum(len(b["ids"]) for b in open_batches(source, 0, rows // 64))
    else:
        table = pq.read_table(folder)  # the whole corpus in memory, as a map-style dataset held in RAM
        seen = sum(len(b) for b in table.column("blob").chunks)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_mib": round(peak, 1), "growth_mib": round(peak - base, 1), "seconds": round(time.perf_counter() - start, 1),
            "rows": seen}


def _rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-mib", type=int, default=32, help="size of the 1x corpus (default 32 MiB)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--child", nargs=3, metavar=("FOLDER", "MODE", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], int(args.child[2]))))
        return
    results: dict[str, dict[int, dict]] = {"stream": {}, "whole": {}}
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        for scale in args.scales:
            folder = Path(tmp) / f"x{scale}"
            rows = generate(folder, args.base_mib * scale)
            for mode in results:
                out = subprocess.run([sys.executable, __file__, "--child", str(folder), mode, str(rows)], cwd=ROOT,
                                     capture_output=True, text=True, check=True)
                results[mode][scale] = {**json.loads(out.stdout.strip().splitlines()[-1]), "corpus_mib": args.base_mib * scale}
                r = results[mode][scale]
                print(f"  {mode:6s} {scale:>3}x  corpus {r['corpus_mib']:>5} MiB  rows {r['rows']:>7}  "
                      f"peak RSS {r['peak_mib']:>7.1f} MiB (+{r['growth_mib']:.1f} over imports)  {r['seconds']:>6.1f} s", flush=True)
            for path in folder.iterdir():  # free the disk before the next size
                path.unlink()
    lo, hi = min(args.scales), max(args.scales)
    print("\n| corpus (MiB) | streamed: peak RSS (MiB) | streamed: growth over imports | loaded whole: peak RSS (MiB) "
          "| loaded whole: growth over imports |")
    print("|---:|---:|---:|---:|---:|")
    for scale in args.scales:
        s, w = results["stream"][scale], results["whole"][scale]
        print(f"| {s['corpus_mib']} | {s['peak_mib']:.0f} | {s['growth_mib']:.0f} | {w['peak_mib']:.0f} | {w['growth_mib']:.0f} |")
    for mode, label in (("stream", "streamed"), ("whole", "loaded whole")):
        ratio = results[mode][hi]["peak_mib"] / results[mode][lo]["peak_mib"]
        print(f"{label}: peak RSS at {hi}x / at {lo}x = {ratio:.2f} (corpus ratio {hi / lo:.0f}); growth over imports "
              f"{results[mode][lo]['growth_mib']:.0f} -> {results[mode][hi]['growth_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
