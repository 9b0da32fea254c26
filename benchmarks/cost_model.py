"""GPU-hours of the paper's whole grid, full fine-tuning against stacked adapters.

The grid is configs/grids/paper-adapters.yaml (9 intermediate tasks x 7 XTREME target tasks, every
language, BUCC + Tatoeba off every intermediate) in two arms: ``stack`` (an adapter per
intermediate task, a target adapter stacked on it) and ``full`` (the paper: the whole model per
intermediate task, then again per target task). Each job's time is
``adapterxl.cost.run_seconds(train tokens x epochs, evaluation tokens, kind, throughput)``.

Token counts: ``--count`` tokenizes the real datasets with the backbone's tokenizer (the grid's
``adapterxl plan`` path; needs the Hub or local copies); otherwise the table below: training-set
sizes from the datasets' cards, XLM-R tokens per example *estimated* from the datasets' published
mean lengths (not counted: the Hub is unreachable where this was written).

Throughput: ``--throughput FILE`` (rows written by ``benchmarks/training.py mfu --json``, measured on
the GPU: tokens/s of ``adapter@S`` / ``full@S`` at each job's sequence length), else a projection at
``--mfu`` of ``--peak-tflops`` (labelled as such, never a measurement).

    python benchmarks/cost_model.py                                  # estimated tokens, projected rates
    python benchmarks/cost_model.py --throughput h100.json           # measured rates
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from adapterxl.cost import run_epochs
from adapterxl.modes import get_mode

ROOT = Path(__file__).resolve().parents[1]


def job_tokens(job) -> tuple[float, float, int]:
    """(training tokens over all epochs, evaluation tokens, sequence length) of a grid job, from
    the table of dataset sizes (adapterxl.cost.TOKENS)."""
    from adapterxl.cost import TOKENS, estimated_tokens

    if job.retrieval is not None:
        task = job.retrieval["task_name"]
        return 0.0, TOKENS[task][2] * TOKENS[task][3], 128
    tokens = estimated_tokens(job.config)
    return tokens["train"] * run_epochs(job.config), tokens["evaluation"], job.config.data.max_seq_length or 128


def rates_for(seq: int, measured: dict | None, args):
    from adapterxl.cost import XLMR_LARGE, Throughput, projected_throughput

    if measured:
        best = min({r["seq"] for r in measured["rows"]}, key=lambda s: abs(s - seq))
        rows = {r["setup"].split("@")[0]: r["tokens_per_s"] for r in measured["rows"] if r["seq"] == best}
        return Throughput({k: rows[k] for k in ("adapter", "full") if k in rows})
    return projected_throughput(XLMR_LARGE, seq, args.peak_tflops * 1e12, args.mfu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=str(ROOT / "configs/grids/paper-adapters.yaml"))
    parser.add_argument("--throughput", help="JSON from benchmarks/training.py mfu --json (measured)")
    parser.add_argument("--mfu", type=float, default=0.40, help="projection: model FLOP utilisation")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="projection: H100 / H200 dense bf16")
    parser.add_argument("--count", action="store_true", help="tokenize the real datasets (needs them)")
    parser.add_argument("--gpus", default="1,2,4,8,16", help="wall time on these GPU counts (run --ray's schedule)")
    args = parser.parse_args()
    gpu_counts = [int(n) for n in args.gpus.split(",")]

    from adapterxl.config import read_yaml
    from adapterxl.cost import makespan, run_seconds
    from adapterxl.grid import count_tokens, parse_grid

    measured = json.loads(Path(args.throughput).read_text()) if args.throughput else None
    source = (
        f"measured ({measured['machine']})"
        if measured
        else (f"PROJECTED at {args.mfu:.0%} MFU of {args.peak_tflops:.0f} TFLOP/s (not measured)")
    )
    doc = read_yaml(args.grid)
    arms = {
        "stack": {**doc, "modes": ["stack"], "baselines": ["adapter"]},
        "full": {**doc, "modes": ["full"], "baselines": ["full"], "per_mode": doc.get("per_mode", {})},
    }
    print(f"# grid {args.grid}; throughput {source}; tokens {'counted' if args.count else 'ESTIMATED (table)'}")
    print("| arm | jobs | training tokens | evaluation tokens | GPU-hours: intermediate | target | retrieval | total |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = {}
    walls = {}
    for arm, grid_doc in arms.items():
        grid = parse_grid(grid_doc, args.grid)
        hours = defaultdict(float)
        per_job = {}
        train_sum = eval_sum = 0.0
        for job in grid.jobs:
            if args.count and job.config is not None:
                counted = count_tokens(job.config, job.backbone)
                train, evaluation = counted["train"] * job.config.training.epochs, counted["evaluation"]
                seq = job.config.data.max_seq_length or 128
            else:
                train, evaluation, seq = job_tokens(job)
            kind = get_mode(job.labels["mode"]).kind if job.labels["mode"] != "base" else "adapter"
            seconds = run_seconds(train, evaluation, kind, rates_for(seq, measured, args))
            hours[job.kind] += seconds / 3600
            per_job[job.id] = seconds
            train_sum += train
            eval_sum += evaluation
        totals[arm] = sum(hours.values())
        needs = {j.id: j.needs for j in grid.jobs}
        walls[arm] = {n: makespan(per_job, needs, n) for n in gpu_counts}
        print(
            f"| {arm} | {len(grid.jobs)} | {train_sum / 1e9:.2f}G | {eval_sum / 1e9:.2f}G | "
            f"{hours['intermediate']:.1f} | {hours['target']:.1f} | {hours['retrieval']:.1f} | {totals[arm]:.1f} |"
        )
    print(f"# full / stack: {totals['full'] / totals['stack']:.2f}x the GPU-hours")
    print()
    print("Wall hours on N GPUs, one job per GPU, each job as soon as its needs are done (`run --ray`):")
    print("| arm | " + " | ".join(f"{n} GPU{'s' if n > 1 else ''}" for n in gpu_counts) + " | critical path |")
    print("|---|" + "---:|" * (len(gpu_counts) + 1))
    for arm, by_n in walls.items():
        cells = " | ".join(f"{w['seconds'] / 3600:.2f} ({w['busy']:.0%})" for w in by_n.values())
        print(f"| {arm} | {cells} | {by_n[gpu_counts[0]]['critical_path'] / 3600:.2f} |")
    print("# (in brackets: the share of GPU time spent on jobs)")


if __name__ == "__main__":
    main()
