"""Small data on a real encoder: which learning rate, schedule and number of epochs a few hundred
examples need (multilingual-e5-small, a seq_bn adapter, the quickstart's shipped data: 400 English
topic sentences with zero-shot evaluation on the 8 other languages' test sentences, or 480 English
NLI pairs; English dev for selection).

    python benchmarks/small_data.py                      # topics (about 7 minutes on 2 CPU cores)
    python benchmarks/small_data.py --task nli           # NLI pairs (about 8 minutes)
    python benchmarks/small_data.py --examples 100       # fewer training examples

Prints one row per setting: the English dev accuracy after each epoch (the schedule's own, so a
linear decay over 3 epochs is not the first 3 epochs of one over 10), the best dev score and the
epoch it came from, the zero-shot average of that checkpoint and the training seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import _common as C  # noqa: E402

from adapterxl import RunConfig, run  # noqa: E402
from adapterxl.backbones import E5_SMALL  # noqa: E402
from adapterxl.quickstart import quickstart_config, write_data  # noqa: E402
from adapterxl.tasks import BUILTIN  # noqa: E402

SETTINGS = {  # task -> [(scheduler, learning rate, epochs, batch size)]
    "topics": [
        *[("linear", lr, e, 16) for lr in (1e-4, 3e-4, 1e-3) for e in (3, 10)],
        *[("constant_with_warmup", lr, 10, 16) for lr in (1e-4, 3e-4, 1e-3, 3e-3)],
    ],
    "nli": [
        ("linear", 1e-3, 8, 16),
        ("constant_with_warmup", 3e-4, 8, 16),
        ("constant_with_warmup", 5e-4, 8, 8),
        ("constant_with_warmup", 1e-3, 8, 8),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(SETTINGS), default="topics")
    parser.add_argument("--examples", type=int, default=None, help="training examples (default: all 400)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_data(Path(tmp) / "data")
        registry = BUILTIN.declare(quickstart_config(paths, tmp, tmp, E5_SMALL)["tasks"], "small_data")
        print(f"# {C.machine()}")
        n = args.examples or {"topics": 400, "nli": 480}[args.task]
        print(f"# {E5_SMALL} (offline 4-bit copy), seq_bn adapter, warmup 10%, task {args.task}, "
              f"{n} English training examples, seed {args.seed}")  # fmt: skip
        print("| schedule | lr | epochs | batch | English dev after each epoch | best dev (epoch) | zero-shot avg "
              "| s |")  # fmt: skip
        print("|---|---:|---:|---:|---|---:|---:|---:|")
        if args.task == "topics":
            data = {"max_seq_length": 64, "eval_split": "test"}
        else:
            files = {"train": paths["nli_train"], "validation": paths["nli_validation"]}
            data = {"max_seq_length": 96, "languages": ["en"], "data_files": files}
        for scheduler, lr, epochs, batch in SETTINGS[args.task]:
            config = RunConfig.from_dict({
                "task": "topics" if args.task == "topics" else "mnli", "model": E5_SMALL, "store": f"{tmp}/store",
                "seed": args.seed, "overwrite": True, "save_as": "sweep", "output_dir": f"{tmp}/runs/sweep",
                "data": {**data, "max_train_examples": args.examples},
                "training": {"epochs": epochs, "batch_size": batch, "learning_rate": lr, "lr_scheduler": scheduler,
                             "logging_steps": 10_000},
            }, "small_data", registry)  # fmt: skip
            result = run(config)
            dev = result.manifest.dev
            curve = " ".join(f"{h[next(k for k in h if k.startswith('dev_'))]:.0f}" for h in dev["history"])
            best_epoch = next(h["epoch"] for h in dev["history"] if h["step"] == dev["best_step"])
            others = [lang for lang in result.metrics if lang != "en"]
            zero_shot = f"{sum(result.metrics[x]['accuracy'] for x in others) / len(others):.1f}" if others else "-"
            print(f"| {scheduler} | {lr:g} | {epochs} | {batch} | {curve} | {dev['best']:.1f} ({best_epoch:.0f}) | "
                  f"{zero_shot} | {result.manifest.train_seconds:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
