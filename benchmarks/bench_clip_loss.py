"""clip_loss vs open_clip's ClipLoss: (1) fwd+bwd time and values on one process; (2) peak memory of the
2-process local-loss path vs the global-matrix path at the same global batch.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_clip_loss.py [--repeats 15] [--skip-memory]

(1) Same L2-normalised features and logit scale (a leaf tensor, as in training); the loss values
    must agree to 1e-5 and the gradients (features and scale) to 1e-5. Timed alternately (ours,
    open_clip, ours, ...), median of the repeats. Goal: ratio <= 1.0x.
(2) Two gloo processes on CPU, each holding B = N / 2 rows of a global batch of N pairs:
      local  = multissl clip_loss(gather_distributed=True): [B, N] logits per rank;
      global = open_clip ClipLoss(local_loss=False, gather_with_grad=True): [N, N] logits per rank;
      (open_clip's own local_loss=True is listed too.)
    Memory: each measurement runs in freshly spawned processes with MALLOC_MMAP_THRESHOLD_ fixed
    at 64 KiB, so every tensor above that size is its own mmap and freeing it returns it to the OS:
    the resident set then follows live tensor memory. After a small warm-up (kernels, gloo buffers)
    a rank resets the kernel's high-water mark to its current resident set R0 (writing 5 to
    /proc/self/clear_refs), runs one forward+backward and reports VmHWM - R0 from /proc/self/status:
    the peak extra memory of that step, gather buffers and autograd intermediates included.
    Goal: local / global <= 0.6x.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SIZES = [(256, 128), (1024, 256), (4096, 512)]
MEM_SIZES = [(2048, 256), (8192, 256)]  # (global batch N, D)
WORLD = 2


def _features(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    txt = F.normalize(img + 0.5 * torch.randn(n, d, generator=g), dim=-1)
    return img, txt, torch.tensor(1 / 0.07)


def fwd_bwd(fn, img, txt, scale):
    """Seconds of one forward+backward, the loss and the gradients (image, text, scale)."""
    a, b, s = img.clone().requires_grad_(True), txt.clone().requires_grad_(True), scale.clone().requires_grad_(True)
    t0 = time.perf_counter()
    loss = fn(a, b, s)
    loss.backward()
    return time.perf_counter() - t0, loss.item(), (a.grad, b.grad, s.grad)


def bench_time(repeats: int) -> None:
    from open_clip.loss import ClipLoss

    from multissl.objectives import clip_loss

    ref = ClipLoss()
    print(f"(1) fwd+bwd, torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {repeats}")
    print(f"{'B':>6} {'D':>5} {'ours ms':>9} {'open_clip ms':>13} {'ratio':>7} {'|loss diff|':>12} {'max|grad diff|':>15}")
    for b, d in SIZES:
        img, txt, scale = _features(b, d)
        _, v_ours, g_ours = fwd_bwd(clip_loss, img, txt, scale)  # also the warm-up
        _, v_ref, g_ref = fwd_bwd(ref, img, txt, scale)
        loss_diff = abs(v_ours - v_ref)
        grad_diff = max((x - y).abs().max().item() for x, y in zip(g_ours, g_ref))
        assert loss_diff < 1e-5 and grad_diff < 1e-5, (b, d, loss_diff, grad_diff)
        t_ours, t_ref = [], []
        for _ in range(repeats):
            t_ours.append(fwd_bwd(clip_loss, img, txt, scale)[0])
            t_ref.append(fwd_bwd(ref, img, txt, scale)[0])
        m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
        print(f"{b:>6} {d:>5} {m_ours * 1e3:>9.2f} {m_ref * 1e3:>13.2f} {m_ours / m_ref:>6.2f}x "
              f"{loss_diff:>12.1e} {grad_diff:>15.1e}")


def _loss_fn(path: str, rank: int):
    from open_clip.loss import ClipLoss

    from multissl.objectives import clip_loss

    if path == "local (multissl)":
        return lambda a, b, s: clip_loss(a, b, s, gather_distributed=True)
    return ClipLoss(local_loss=path == "local (open_clip)", gather_with_grad=True, rank=rank, world_size=WORLD)


def _status_kib(field: str) -> int:
    """VmRSS / VmHWM of this process in KiB (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _mem_worker(rank: int, port: int, path: str, n: int, d: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    fn, b = _loss_fn(path, rank), n // WORLD
    warm_img, warm_txt, scale = _features(64, d, seed=1)
    fwd_bwd(fn, warm_img[rank * 32:(rank + 1) * 32], warm_txt[rank * 32:(rank + 1) * 32], scale)  # warm-up
    img, txt, _ = _features(n, d)
    local_img, local_txt = img[rank * b:(rank + 1) * b].clone(), txt[rank * b:(rank + 1) * b].clone()
    del img, txt
    Path("/proc/self/clear_refs").write_text("5")  # high-water mark := current resident set
    base = _status_kib("VmRSS")
    seconds, loss, _ = fwd_bwd(fn, local_img, local_txt, scale)
    peak = _status_kib("VmHWM")
    Path(out_dir, f"{rank}.txt").write_text(f"{peak - base} {loss!r} {seconds}")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_memory() -> None:
    import torch.multiprocessing as mp

    from multissl.objectives import clip_loss

    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)  # read by the spawned children's malloc at start-up
    os.environ["OMP_NUM_THREADS"] = "1"
    paths = ["local (multissl)", "global (open_clip)", "local (open_clip)"]
    print("\n(2) 2 gloo processes, peak resident memory added by one fwd+bwd (MiB, mean over ranks)")
    print(f"{'N':>6} {'D':>4} {'path':<20} {'peak MiB':>9} {'vs global':>10} {'loss (mean over ranks)':>24} {'s':>6}")
    for n, d in MEM_SIZES:
        img, txt, scale = _features(n, d)
        full = clip_loss(img, txt, scale).item()
        results = {}
        for path in paths:
            with tempfile.TemporaryDirectory() as tmp:
                mp.start_processes(_mem_worker, args=(_free_port(), path, n, d, tmp), nprocs=WORLD, join=True,
                                   start_method="spawn")
                rows = [Path(tmp, f"{r}.txt").read_text().split() for r in range(WORLD)]
            peak = statistics.mean(int(r[0]) for r in rows) / 1024
            loss = statistics.mean(float(r[1]) for r in rows)
            assert abs(loss - full) < 1e-5, (path, loss, full)  # every path is the same objective
            results[path] = (peak, loss, max(float(r[2]) for r in rows))
        for path, (peak, loss, secs) in results.items():
            ratio = peak / results["global (open_clip)"][0]
            print(f"{n:>6} {d:>4} {path:<20} {peak:>9.1f} {ratio:>9.2f}x {loss:>24.6f} {secs:>6.2f}")
        print(f"{'':>12}single-process full-batch loss {full:.6f}; logits matrices: global [N, N] "
              f"{n * n * 4 / 2**20:.0f} MiB, local [N/2, N] {n * n * 2 / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    bench_time(args.repeats)
    if not args.skip_memory:
        bench_memory()


if __name__ == "__main__":
    main()
