"""Padding waste: real tokens / computed tokens of the batches adapterxl trains and evaluates on.

For a length distribution (MNLI-like pairs by default, or ``--lengths FILE``: a JSON list of real
token counts), the batches of each batching policy are formed by adapterxl's own code and every
batch costs ``rows x longest row`` computed tokens (dynamic padding, as adapterxl's collators do),
or ``rows x max_seq_length`` when padding to the maximum:

- pad to max_seq_length: fixed-shape batches in random order (the naive figure);
- dynamic padding, random order: padding to each batch's longest row;
- length-grouped (training default): ``adapterxl.training.SeededLengthGroupedSampler``
  (mega-batches of 50 batches sorted by length, in random order);
- sorted by length (evaluation): ``adapterxl.evaluation.predict``'s order, longest first.

    python benchmarks/padding.py                        # MNLI-like, batch 32, max length 128
    python benchmarks/padding.py --batch-size 8 --accumulation 4 --max-length 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _common as C  # noqa: E402


def efficiency(lengths: np.ndarray, order: np.ndarray, batch_size: int, pad_to: int | None = None) -> float:
    """Real tokens / computed tokens of the batches that ``order`` cuts into ``batch_size`` rows."""
    computed = 0
    for start in range(0, len(order), batch_size):
        rows = lengths[order[start : start + batch_size]]
        computed += len(rows) * (pad_to or rows.max())
    return lengths.sum() / computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", help="JSON list of real token counts (default: the MNLI-like model)")
    parser.add_argument("--n", type=int, default=392_702, help="rows of the modelled distribution (MNLI train)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accumulation", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from adapterxl.evaluation import length_order
    from adapterxl.training import SeededLengthGroupedSampler

    lengths = np.asarray(C.read_lengths(args.lengths, args.n, args.seed, args.max_length))
    bs = args.batch_size
    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(args.seed)).numpy()
    # the Trainer builds the sampler with batch x accumulation, then cuts per-device batches of bs
    sampler = SeededLengthGroupedSampler(lengths.tolist(), bs * args.accumulation, args.seed)
    grouped = np.asarray(list(iter(sampler)))
    source = args.lengths or f"MNLI-like model, {len(lengths):,} pairs"
    print(
        f"# {source}: mean {lengths.mean():.1f} tokens, median {np.median(lengths):.0f}, "
        f"p95 {np.percentile(lengths, 95):.0f}, max {lengths.max()}, "
        f"{(lengths >= args.max_length).mean():.2%} truncated at {args.max_length}"
    )
    print(f"# training batch {bs} (x {args.accumulation} accumulation), evaluation batch {args.eval_batch_size}")
    rows = [
        ("pad to max_seq_length, random order", efficiency(lengths, random_order, bs, args.max_length)),
        ("dynamic padding, random order", efficiency(lengths, random_order, bs)),
        ("length-grouped (adapterxl training)", efficiency(lengths, grouped, bs)),
        ("sorted by length (adapterxl evaluation)", efficiency(lengths, length_order(lengths), args.eval_batch_size)),
        ("evaluation, unsorted (for comparison)", efficiency(lengths, random_order, args.eval_batch_size)),
    ]
    print("| batching | real / computed tokens | computed tokens per real token |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.1%} | {1 / value:.2f} |")


if __name__ == "__main__":
    main()
