"""Zero-shot evaluation throughput across many languages.

An adapter-mode model (random weights, shape ``--shape``) is scored on one MNLI-like dataset per
XNLI language (lengths scaled by a per-language factor between 0.9 and 1.4, standing in for the
tokenizer's fertility), through adapterxl's own path (``adapterxl.evaluation.predict``: sorted by
length, longest first, ``torch.inference_mode``, bf16 autocast on a GPU, ``eval_batch_size``
rows), against a plain loop (random order, the training batch size, ``torch.no_grad``, float32),
and at other batch sizes. Setups are interleaved round after round; speed-ups are medians of
per-round ratios.

    python benchmarks/evaluation.py                        # 15 languages x 200 rows on a CPU
    python benchmarks/evaluation.py --per-language 5010     # XNLI test size (GPU)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _common as C  # noqa: E402

XNLI = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")


def datasets_for(shape: C.Shape, languages, per_language: int, max_length: int):
    import datasets

    rng = np.random.default_rng(0)
    out = {}
    for i, language in enumerate(languages):
        factor = rng.uniform(0.9, 1.4)
        base = C.mnli_like_lengths(per_language, seed=100 + i, max_length=10_000)
        lengths = np.minimum(np.ceil(np.asarray(base) * factor), max_length).astype(int)
        ids = [[0, *rng.integers(5, shape.vocab, size=n - 2).tolist(), 2] for n in lengths]
        out[language] = datasets.Dataset.from_dict(
            {
                "input_ids": ids,
                "attention_mask": [[1] * len(x) for x in ids],
                "labels": rng.integers(0, 3, len(ids)).tolist(),
                "length": lengths.tolist(),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(C.SHAPES), default="mid")
    parser.add_argument("--languages", type=int, default=len(XNLI))
    parser.add_argument("--per-language", type=int, default=None, help="rows per language (CPU 200, GPU 5010)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64, help="adapterxl's default eval_batch_size")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[256], help="more eval batch sizes to try")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import datasets
    from transformers import AutoTokenizer

    from adapterxl.evaluation import predict
    from adapterxl.fixtures import build_tiny_backbone
    from adapterxl.tasks import get_task

    datasets.disable_progress_bars()
    gpu = torch.cuda.is_available()
    shape = C.SHAPES[args.shape]
    per_language = args.per_language or (5010 if gpu else 200)
    languages = XNLI[: args.languages]
    data = datasets_for(shape, languages, per_language, args.max_length)
    tokens = sum(sum(ds["length"]) for ds in data.values())
    rows = sum(len(ds) for ds in data.values())
    family = get_task("xnli").family
    collator = family.collator(AutoTokenizer.from_pretrained(build_tiny_backbone("tiny-xlmr")))  # pads with id 1
    torch.manual_seed(0)
    model = C.build(shape, "adapter")

    def adapterxl_path(batch_size: int):
        def run():
            for ds in data.values():
                predict(model, ds, family, collator, batch_size, bf16="auto", desc="bench")

        return run

    def plain_loop():
        generator = torch.Generator().manual_seed(0)
        model.eval()
        with torch.no_grad():
            for ds in data.values():
                order = torch.randperm(len(ds), generator=generator).tolist()
                for start in range(0, len(order), args.train_batch_size):
                    batch = collator(ds.select(order[start : start + args.train_batch_size]).to_list())
                    inputs = {k: v.to(C.device()) for k, v in batch.items() if k != "labels"}
                    model(**inputs).logits.float().cpu()

    setups = {f"plain loop (random order, batch {args.train_batch_size}, no_grad, fp32)": plain_loop}
    setups[f"adapterxl predict (sorted, batch {args.eval_batch_size}{', bf16' if gpu else ''})"] = adapterxl_path(
        args.eval_batch_size
    )
    for size in args.batch_sizes:
        setups[f"adapterxl predict, batch {size}"] = adapterxl_path(size)
    times: dict[str, list[float]] = {name: [] for name in setups}
    print(f"# {C.machine()}")
    print(f"# shape {shape}, {len(languages)} languages x {per_language} rows = {rows:,} rows, {tokens:,} real tokens")
    for r in range(args.rounds):
        for name, run in setups.items():
            C.sync()
            start = time.perf_counter()
            run()
            C.sync()
            times[name].append(time.perf_counter() - start)
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    plain = times[next(iter(setups))]
    print("| evaluation | seconds | examples/s | real tokens/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        t = statistics.median(values)
        ratio = statistics.median(p / v for p, v in zip(plain, values, strict=True))
        print(f"| {name} | {t:.1f} | {rows / t:,.0f} | {tokens / t:,.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
