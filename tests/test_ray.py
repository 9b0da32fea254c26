"""Grids on Ray (adapterxl.executors): a local Ray instance with 2 CPUs started here, no GPU.

The quickstart grid gives the sequential runner's metrics on Ray, also after its driver is
killed mid-grid and the grid is run again; targets start as soon as their intermediate is done; a
worker killed mid-job is run again by Ray and continues from its checkpoint; two drivers on one
results folder are refused.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from test_grid import _events, _metrics, grid_doc, write_grid

from adapterxl.errors import ConfigError
from adapterxl.grid import load_grid, parse_grid, run_grid
from adapterxl.locks import LockedError, _alive
from adapterxl.quickstart import write_data
from adapterxl.training import SELECTION_STATE

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray instance on this machine with 2 CPUs, for this module's tests; its address."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def quickstart_grid(root: Path, data: Path) -> Path:
    """configs/grids/quickstart.yaml (one seed) with its data, results and store under ``root``."""
    text = (ROOT / "configs" / "grids" / "quickstart.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text.replace("adapterxl-quickstart/data", str(data)))
    doc["results_dir"] = str(root / "results")
    doc["defaults"]["store"] = str(root / "store")
    doc["seeds"] = [1]
    root.mkdir(parents=True, exist_ok=True)
    return write_grid(root, doc)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The quickstart grid's data, and its metrics from the sequential runner."""
    root = tmp_path_factory.mktemp("quickstart")
    write_data(root / "data")
    grid = load_grid(quickstart_grid(root / "sequential", root / "data"))
    assert run_grid(grid, progress=False)["done"] == 10
    return root, _metrics(grid.results_dir)


def _time(event: dict) -> datetime:
    return datetime.fromisoformat(event["time"])


def _done_once(results: Path) -> Counter:
    return Counter(e["job"] for e in _events(results) if e["event"] == "done")


def test_the_quickstart_grid_on_ray_gives_the_sequential_metrics(ray_cluster, quickstart, tmp_path):
    root, sequential = quickstart
    grid = load_grid(quickstart_grid(tmp_path, root / "data"))
    counts = run_grid(grid, ray=True, progress=False)
    assert counts == {"done": 10, "failed": 0, "blocked": 0, "skipped": 0}
    assert _metrics(grid.results_dir) == sequential
    events = _events(grid.results_dir)
    starts = {e["job"]: e for e in events if e["event"] == "start"}
    done = {e["job"]: e for e in events if e["event"] == "done"}
    assert len(starts) == len(done) == 10 and set(_done_once(grid.results_dir).values()) == {1}
    assert len({e["pid"] for e in starts.values()}) >= 2  # on Ray's worker processes, not the driver's
    assert os.getpid() not in {e["pid"] for e in starts.values()}
    # two jobs at a time: some job started before another had finished
    assert any(_time(starts[a]) < _time(done[b]) < _time(done[a]) for a in starts for b in starts if a != b)
    for job in grid.jobs:  # a target never starts before the jobs it needs are done
        assert all(_time(done[need]) <= _time(starts[job.id]) for need in job.needs)
    assert run_grid(grid, ray=True, progress=False)["done"] == 10  # finished: nothing runs again
    assert len(_events(grid.results_dir)) == len(events)


def _wait(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def test_a_killed_driver_is_rerun_to_the_same_metrics_and_a_second_driver_is_refused(ray_cluster, quickstart, tmp_path):
    root, sequential = quickstart
    path = quickstart_grid(tmp_path, root / "data")
    results = tmp_path / "results"
    driver = subprocess.Popen(
        [sys.executable, "-m", "adapterxl.cli", "run", str(path), "--ray", ray_cluster],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(lambda: (results / "events.jsonl").is_file() and sum(_done_once(results).values()) >= 3, 240, "3 jobs")
        with pytest.raises(LockedError, match=f"in use by another adapterxl process \\(pid {driver.pid}"):
            run_grid(load_grid(path), ray=True, progress=False)  # a second driver on the same results
        assert driver.poll() is None, driver.stderr.read().decode()
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    events = _events(results)
    finished_before = set(_done_once(results))
    assert 3 <= len(finished_before) < 10
    # Ray ends a dead driver's tasks: their workers go before the rerun takes over the results folder.
    cut = {e["pid"] for e in events if e["event"] == "start" and e["job"] not in finished_before}
    _wait(lambda: not any(_alive(pid) for pid in cut), 60, f"the killed driver's workers {cut} to end")

    counts = run_grid(load_grid(path), ray=True, progress=False)
    assert counts == {"done": 10, "failed": 0, "blocked": 0, "skipped": 0}
    assert set(_done_once(results).values()) == {1}  # every job finished exactly once
    starts = Counter(e["job"] for e in _events(results) if e["event"] == "start")
    assert all(starts[job] == 1 for job in finished_before)  # no finished job ran twice
    assert _metrics(results) == sequential


def test_targets_start_when_their_intermediate_is_done_and_a_killed_worker_resumes(
    ray_cluster, tmp_path, nli_files, panx_files
):
    """One slow intermediate (checkpoints every 10 steps) and one fast: the fast one's target starts
    while the slow one trains; the slow one's worker is SIGKILLed mid-training, Ray runs it again,
    it continues from its checkpoint and every result equals the sequential runner's."""
    doc = grid_doc(tmp_path, nli_files, panx_files, seeds=[1], baselines=[])  # 2 intermediates, 2 targets
    doc["targets"].pop("panx")
    slow = {"data": {"data_files": nli_files["mnli"], "max_train_examples": 192}, "training": {"epochs": 12}}
    doc["intermediates"]["mnli"] = {"task": "mnli", **slow}
    doc["defaults"]["training"] = {**doc["defaults"]["training"], "save_steps": 10}
    (tmp_path / "seq").mkdir()
    sequential = load_grid(write_grid(tmp_path / "seq", {**doc, "results_dir": str(tmp_path / "seq" / "results")}))
    assert run_grid(sequential, progress=False)["done"] == 4
    reference = _metrics(sequential.results_dir)

    (tmp_path / "ray").mkdir()
    doc = {**doc, "results_dir": str(tmp_path / "ray" / "results"), "executor": {"kind": "ray", "retries": 2}}
    doc["defaults"] = {**doc["defaults"], "store": str(tmp_path / "ray" / "store")}
    grid = load_grid(write_grid(tmp_path / "ray", doc))
    slow_job = grid.job("tiny-xlmr--mnli--adapter")
    results = grid.results_dir

    def kill_slow_worker():  # once it has a checkpoint, mid-training
        events = _events(results) if (results / "events.jsonl").is_file() else []
        start = next((e for e in events if e["event"] == "start" and e["job"] == slow_job.id), None)
        # a whole checkpoint: the Trainer's files, then the dev-selection state adapterxl adds last
        checkpoints = list(Path(slow_job.config.run_dir).glob(f"trainer/*/checkpoint-*/{SELECTION_STATE}"))
        if start and checkpoints:
            os.kill(start["pid"], signal.SIGKILL)
            return start["pid"]
        return None

    killed = []
    killer = threading.Thread(target=lambda: killed.append(_wait_quiet(kill_slow_worker, 240)), daemon=True)
    killer.start()
    counts = run_grid(grid, progress=False)  # the grid's executor: block says Ray
    killer.join(timeout=5)
    assert killed and killed[0], "the slow intermediate's worker was never killed"
    assert counts == {"done": 4, "failed": 0, "blocked": 0, "skipped": 0}

    events = _events(results)
    starts = Counter(e["job"] for e in events if e["event"] == "start")
    assert starts[slow_job.id] == 2 and set(_done_once(results).values()) == {1}
    record = json.loads((results / "jobs" / f"{slow_job.id}.json").read_text())
    manifest = json.loads((Path(record["run_dir"]) / "manifest.json").read_text())
    assert manifest.get("resumed_from_step"), "the retried intermediate did not continue from its checkpoint"
    fast_target = "tiny-xlmr--xnli--stack--on-mnli-small--s1"
    first = {(e["event"], e["job"]): e for e in reversed(events)}  # the first event of each kind and job
    assert _time(first["start", fast_target]) < _time(first["done", slow_job.id])
    assert _metrics(results) == reference


def _wait_quiet(condition, seconds: float):
    try:
        return _wait(condition, seconds, "")
    except AssertionError:
        return None


def test_jobs_get_the_executors_resources_and_impossible_ones_are_refused_before_anything_runs(
    ray_cluster, tmp_path, nli_files, panx_files
):
    doc = grid_doc(tmp_path, nli_files, panx_files, seeds=[1], executor={"kind": "ray", "gpus": {"intermediate": 1,
                   "target": 0.5, "retrieval": 0}, "cpus": 2})  # fmt: skip
    grid = load_grid(write_grid(tmp_path, doc))
    assert grid.executor.resources("target", cluster_gpus=1) == {"num_cpus": 2.0, "num_gpus": 0.5}
    with pytest.raises(ConfigError, match="needs 2 CPUs and 1 GPUs, but the Ray cluster has 2 CPUs and 0 GPUs"):
        run_grid(grid, progress=False)
    assert not list((grid.results_dir / "jobs").glob("*.json"))


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ("slurm", "local or ray, got 'slurm'"),
        ({"kind": "ray", "gpu": 1}, "unknown key 'gpu'"),
        ({"kind": "ray", "gpus": -1}, "must be a number >= 0"),
        ({"kind": "ray", "gpus": 1.5}, "Ray takes whole numbers only"),
        ({"kind": "ray", "gpus": {"target": 0.5}}, "names some job kinds but not 'intermediate'"),
        ({"kind": "ray", "cpus": 0}, "must be above 0"),
        ({"kind": "ray", "retries": -1}, "whole number >= 0"),
        ({"kind": "ray", "address": "auto", "local_cpus": 4}, "a cluster (auto) has its own resources"),
        ({"kind": "local", "gpus": 1}, "are Ray settings: set kind: ray"),
    ],
)
def test_bad_executor_blocks_are_named_errors(tmp_path, nli_files, panx_files, executor, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_grid(grid_doc(tmp_path, nli_files, panx_files, executor=executor))


def test_defaults_one_gpu_per_job_where_there_are_gpus_else_none(tmp_path, nli_files, panx_files):
    grid = parse_grid(grid_doc(tmp_path, nli_files, panx_files, executor="ray"))
    assert grid.executor.resources("intermediate", cluster_gpus=8) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert grid.executor.resources("retrieval", cluster_gpus=0) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert parse_grid(grid_doc(tmp_path, nli_files, panx_files)).executor is None  # the local runner by default


def test_without_ray_installed_the_error_says_how_to_get_it(tmp_path, nli_files, panx_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    grid = load_grid(write_grid(tmp_path, grid_doc(tmp_path, nli_files, panx_files, seeds=[1])))
    with pytest.raises(ConfigError, match=re.escape("pip install 'adapterxl[ray]'")):
        run_grid(grid, ray=True, progress=False)


def test_shard_names_what_replaced_it(tmp_path, nli_files, panx_files):
    from click.testing import CliRunner

    from adapterxl.cli import main

    path = write_grid(tmp_path, grid_doc(tmp_path, nli_files, panx_files))
    result = CliRunner().invoke(main, ["run", str(path), "--shard", "0/4"])
    assert result.exit_code == 2 and "--shard is gone" in result.output and "--ray" in result.output
