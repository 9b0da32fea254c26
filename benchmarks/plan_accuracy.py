"""How close ``adapterxl plan --measure`` gets to the time a grid really takes: the quickstart grid
(configs/grids/quickstart.yaml, 16 jobs on the tiny backbone, the quickstart's shipped data) is
probed, planned, then run, in a temporary folder; prints the estimate, the measured wall time of
the run and their ratio.

    python benchmarks/plan_accuracy.py            # about 1.5 minutes on 2 CPU cores

Run it alone: another training on the machine slows one side and not the other.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import _common as C  # noqa: E402

from adapterxl import set_verbosity  # noqa: E402
from adapterxl.grid import load_grid, plan, plan_summary, probe, run_grid  # noqa: E402
from adapterxl.quickstart import write_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    set_verbosity("quiet")
    with tempfile.TemporaryDirectory(prefix="adapterxl-plan-") as tmp:
        os.chdir(tmp)
        os.environ["ADAPTERXL_STORE"] = f"{tmp}/store"
        write_data(Path("adapterxl-quickstart/data"))
        shutil.copy(ROOT / "configs" / "grids" / "quickstart.yaml", "grid.yaml")
        grid = load_grid("grid.yaml")
        start = time.perf_counter()
        probe(grid, echo=lambda *_: None)
        probe_seconds = time.perf_counter() - start
        estimate = plan_summary(plan(grid))["todo_estimate_seconds"]
        start = time.perf_counter()
        counts = run_grid(grid, progress=False, echo=lambda *_: None)
        measured = time.perf_counter() - start
    print(f"# {C.machine()}")
    print(f"# quickstart grid: {len(grid.jobs)} jobs ({counts}), probe {probe_seconds:.1f} s")
    print("| estimate (plan --measure) | measured (run) | estimate / measured |")
    print("|---:|---:|---:|")
    print(f"| {estimate:.1f} s | {measured:.1f} s | {estimate / measured:.2f} |")


if __name__ == "__main__":
    main()
