"""Locks: two real processes writing one store entry or one grid: one works, the other is refused
at once with a clear message, and nothing is lost. Stale locks of dead processes are taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adapterxl.locks import STALE_AFTER, Lock, LockedError, is_stale


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", "from adapterxl.cli import main; main()", *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the first process ended before taking the lock:\n{process.stdout.read()}")
        if time.time() > deadline:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.05)


def test_a_lock_refuses_a_second_holder_and_is_released(tmp_path):
    path = tmp_path / ".lock-x"
    with Lock(path, "store entry 'x'"):
        owner = json.loads(path.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with Lock(path, "store entry 'x'"):  # the same process again: reentrant
            pass
        assert path.exists()  # still held by the outer one
        child = subprocess.run(
            [sys.executable, "-c", f"from adapterxl.locks import Lock; Lock({str(path)!r}, 'store entry x').acquire()"],
            capture_output=True,
            text=True,
        )
        assert child.returncode != 0 and "is in use by another adapterxl process" in child.stderr
        assert f"pid {os.getpid()}" in child.stderr
    assert not path.exists()


def test_stale_locks_of_dead_processes_are_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": 0}))
    assert is_stale(path)
    with Lock(path, "grid results folder"):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    # Another machine's lock: live while its heartbeat is fresh, stale once it is old.
    path.write_text(json.dumps({"pid": 1, "host": "other-machine", "started": time.time()}))
    with pytest.raises(LockedError, match="on other-machine"):
        Lock(path, "grid results folder").acquire()
    old = time.time() - STALE_AFTER - 60
    os.utime(path, (old, old))
    with Lock(path, "grid results folder"):
        pass


def test_two_runs_with_one_save_as_one_trains_the_other_is_refused_at_once(tmp_path, nli_files):
    config = {
        "task": "mnli",
        "model": "tiny-xlmr",
        "store": "st",
        "save_as": "same",
        "data": {"data_files": nli_files["mnli"], "languages": ["en"]},
        "training": {"epochs": 40, "batch_size": 8},  # long enough for the second process to meet the first
    }
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**config, "seed": 7}))
    first = _cli("train", "a.yaml", cwd=tmp_path)
    _wait_for(tmp_path / "st" / ".lock-same", first)
    started = time.time()
    second = _cli("train", "b.yaml", cwd=tmp_path)
    out_second = second.communicate(timeout=120)[0]
    refused_after = time.time() - started
    out_first = first.communicate(timeout=600)[0]
    assert second.returncode == 2, out_second
    assert "is in use by another adapterxl process" in out_second and f"pid {first.pid}" in out_second
    assert "Traceback" not in out_second and refused_after < 60  # at once, before any training
    assert first.returncode == 0, out_first
    assert "Saved:" in out_first
    manifest = json.loads((tmp_path / "st" / "same" / "manifest.json").read_text())
    assert manifest["seed"] == 42  # the first run's result is the one in the store, whole
    assert not list((tmp_path / "st").glob(".lock-*")) and not list((tmp_path / "st").glob(".tmp-*"))


def test_two_processes_on_one_grid_one_runs_it_the_other_is_refused(tmp_path, nli_files):
    doc = {
        "grid": "g",
        "results_dir": "res",
        "defaults": {
            "model": "tiny-xlmr",
            "store": "st",
            "data": {"max_seq_length": 48},
            "training": {"epochs": 30, "batch_size": 8},  # long enough for the second process to meet the first
        },  # fmt: skip
        "intermediates": {"mnli": {"task": "mnli", "data": {"data_files": nli_files["mnli"], "languages": ["en"]}}},
        "targets": {"xnli": {"task": "xnli", "data": {"data_files": nli_files["xnli"], "languages": ["en", "de"]}}},
        "seeds": [1],
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(doc))
    first = _cli("run", "g.yaml", cwd=tmp_path)
    _wait_for(tmp_path / "res" / ".lock", first)
    second = _cli("run", "g.yaml", cwd=tmp_path)
    out_second = second.communicate(timeout=120)[0]
    out_first = first.communicate(timeout=600)[0]
    assert second.returncode == 2 and "grid results folder" in out_second and "in use" in out_second, out_second
    assert first.returncode == 0, out_first
    events = [json.loads(line) for line in (tmp_path / "res" / "events.jsonl").read_text().splitlines()]
    done = [e["job"] for e in events if e["event"] == "done"]
    assert len(done) == len(set(done)) == 3  # every job once: intermediate, baseline, stacked target
    assert not (tmp_path / "res" / ".lock").exists()


def test_a_killed_owner_not_yet_reaped_counts_as_gone(tmp_path):
    """A zombie (ended, its parent has not waited for it) still answers kill(pid, 0): its lock is stale."""
    from adapterxl.locks import _alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while time.time() < deadline and Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        time.sleep(0.05)
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(), "started": time.time()}))
    try:
        assert not _alive(child.pid) and is_stale(lock)
        with Lock(lock, "the thing"):
            assert json.loads(lock.read_text())["pid"] == os.getpid()  # taken over
    finally:
        child.wait()
    assert _alive(os.getpid())
