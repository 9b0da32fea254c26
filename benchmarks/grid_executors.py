"""The quickstart grid (configs/grids/quickstart.yaml: 16 jobs on the tiny backbone, the quickstart's
shipped data) run one job after another and on Ray, each through the command line in a fresh
temporary folder: prints wall times (the whole command, Ray's start included, and the span from the
first job's start to the last job's end in events.jsonl), whether the metrics are identical, and
what the schedule model of ``plan --gpus`` predicts for N workers from the sequential jobs' seconds.

    python benchmarks/grid_executors.py                 # Ray with 2 workers; about 3 minutes on 2 cores
    python benchmarks/grid_executors.py --workers 4     # Ray with 4 CPUs (workers) on a bigger machine

The sequential runner's jobs use every core (torch's threads); each Ray job gets one CPU (Ray sets
OMP_NUM_THREADS to the job's CPUs), so on a CPU machine the gain is only the overlap of one job's
loading and evaluation with another's training. On GPUs each job gets its own GPU. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import _common as C  # noqa: E402
import yaml  # noqa: E402

from adapterxl.cost import makespan  # noqa: E402
from adapterxl.grid import load_grid  # noqa: E402
from adapterxl.quickstart import write_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(folder: Path, args: list[str]) -> tuple[float, float, dict]:
    """One ``adapterxl run`` of the quickstart grid in ``folder``: (command seconds, job span, metrics)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "adapterxl", "--quiet", "run", "grid.yaml", *args], cwd=folder, check=True,
                   env={**os.environ, "ADAPTERXL_STORE": str(folder / "store")}, stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - start
    results = folder / "results" / "quickstart"
    events = [json.loads(line) for line in (results / "events.jsonl").read_text().splitlines()]
    times = [datetime.fromisoformat(e["time"]) for e in events]
    span = (max(times) - min(times)).total_seconds()
    metrics = {p.name: json.loads(p.read_text())["metrics"] for p in sorted((results / "jobs").glob("*.json"))}
    return seconds, span, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance (one job each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adapterxl-executors-") as tmp:
        rows = {}
        for name in ("sequential", "ray"):
            folder = Path(tmp) / name
            write_data(folder / "adapterxl-quickstart" / "data")
            doc = yaml.safe_load((ROOT / "configs" / "grids" / "quickstart.yaml").read_text(encoding="utf-8"))
            if name == "ray":
                doc["executor"] = {"kind": "ray", "local_cpus": args.workers}
            (folder / "grid.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
            rows[name] = run(folder, [])  # the grid file says which runner
            if name == "sequential":  # the schedule model (plan --gpus) on the jobs' measured seconds
                grid = load_grid(folder / "grid.yaml", folder / "results" / "quickstart")
                records = {j.id: json.loads(grid.result_path(j).read_text()) for j in grid.jobs}
                seconds = {j.id: records[j.id]["seconds"] for j in grid.jobs}
                predicted = makespan(seconds, {j.id: j.needs for j in grid.jobs}, args.workers)
    seq, ray = rows["sequential"], rows["ray"]
    print(f"# {C.machine()}")
    print(f"# quickstart grid, {len(seq[2])} jobs; Ray: a local instance with {args.workers} CPUs, one job per CPU")
    print("| runner | command wall s | first start to last end s | speed-up (command) |")
    print("|---|---:|---:|---:|")
    print(f"| sequential | {seq[0]:.1f} | {seq[1]:.1f} | 1.00 |")
    print(f"| ray, {args.workers} workers | {ray[0]:.1f} | {ray[1]:.1f} | {seq[0] / ray[0]:.2f} |")
    print(f"metrics identical: {seq[2] == ray[2]}")
    print(
        f"schedule model (adapterxl.cost.makespan, as plan --gpus) on the sequential jobs' seconds, {args.workers} "
        f"workers: {predicted['seconds']:.1f} s of jobs (critical path {predicted['critical_path']:.1f} s)"
    )


if __name__ == "__main__":
    main()
