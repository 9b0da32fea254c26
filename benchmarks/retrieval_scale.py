"""Bitext mining at corpus scale: time, peak memory and achieved GFLOP/s.

For each size n, mines n x n random unit vectors (d=1024) with adapterxl.embeddings.margin_mine
(k=4 in both directions: one tiled pass over the n x n similarity matrix, 2 n^2 d FLOPs) in float32
and in bf16-search-with-float32-rescoring, and, where the whole matrix fits in memory, a naive
baseline (full similarity matrix, then top-k both ways). Every measurement runs in a fresh
subprocess, so "peak" is that run's own maximum resident memory.

    python benchmarks/retrieval_scale.py                       # 10k, 50k, 200k
    python benchmarks/retrieval_scale.py --sizes 10000 --methods tiled-fp32 naive
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np

DIM = 1024
NAIVE_MAX_BYTES = 12 * 2**30  # the full n x n float32 matrix must fit in 12 GiB


def measure(method: str, n: int, seed: int = 0) -> dict:
    import torch

    from adapterxl.embeddings import margin_mine, normalize  # imported before the clock starts

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    y = rng.standard_normal((n, DIM), dtype=np.float32)
    start = time.perf_counter()
    if method == "naive":
        sims = torch.from_numpy(normalize(x)) @ torch.from_numpy(normalize(y)).T
        fwd = torch.topk(sims, 4, dim=1)
        bwd = torch.topk(sims, 4, dim=0)
        pairs = len(fwd.indices) + bwd.indices.shape[1]
    else:
        precision = "bfloat16" if method == "tiled-bf16" else "float32"
        pairs = len(margin_mine(x, y, k=4, threshold=-1.0, precision=precision))
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "method": method,
        "n": n,
        "seconds": round(seconds, 2),
        "peak_gib": round(peak_gib, 2),
        "gflops": round(2 * n * n * DIM / seconds / 1e9, 1),
        "pairs": pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["tiled-fp32", "tiled-bf16", "naive"],
        choices=["tiled-fp32", "tiled-bf16", "naive"],
    )
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, cuda={torch.cuda.is_available()}"
    )
    print(f"{'method':12} {'n':>8} {'seconds':>9} {'peak GiB':>9} {'GFLOP/s':>9}")
    for n in args.sizes:
        for method in args.methods:
            if method == "naive" and n * n * 4 > NAIVE_MAX_BYTES:
                print(
                    f"{method:12} {n:>8} {'(full matrix needs ' + str(round(n * n * 4 / 2**30)) + ' GiB: skipped)':>30}"
                )
                continue
            out = subprocess.run([sys.executable, __file__, "--child", method, str(n)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{method:12} {n:>8} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['method']:12} {r['n']:>8} {r['seconds']:>9} {r['peak_gib']:>9} {r['gflops']:>9}", flush=True)


if __name__ == "__main__":
    main()
