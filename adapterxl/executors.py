"""How a grid's jobs run: one after another in this process (the default), or as Ray tasks.

Both executors get the jobs still to do, in the grid's order (a job's needs come first), run each
one through :func:`attempt` (its record, its error record, its events) and return
the count of jobs by final status. A job whose need failed, or is not finished and not to be run
here, is *blocked*: logged, not run.

**Ray** (``adapterxl run GRID --ray [ADDRESS]``, or the grid's ``executor:``): every job becomes a
Ray task with its own resources (by default one GPU per job where the cluster has GPUs, else one
CPU), submitted as soon as the jobs it needs have finished, so a target starts the moment its
intermediate is done and as many jobs run at once as the cluster's resources allow. Ray reruns a
job whose worker process died (``retries``); a training with ``training.save_steps`` continues
from its last checkpoint. The driver (the ``adapterxl run`` process) holds the results folder's
lock, shows the one progress bar, and cancels its tasks on Ctrl-C; Ray ends a dead driver's tasks.
Workers need the results folder, the store and the data at the same paths as the driver (one
machine, or shared storage), and adapterxl installed; the driver's ``ADAPTERXL_*``, ``HF_*`` and
``TRANSFORMERS_*`` environment variables are passed on to them.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .config import DataConfig, build
from .errors import ConfigError, check_keys
from .files import write_json

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

if TYPE_CHECKING:
    from .grid import Grid, Job

EXECUTOR_KEYS = {
    "kind": "local (default: one job after another in this process) or ray",
    "address": "ray: null (a Ray instance on this machine), auto (the cluster `ray start` runs here), "
    "or a cluster address (host:6379, ray://host:10001)",
    "gpus": "ray: GPUs per job (a fraction shares a GPU), or by kind {intermediate: 1, target: 0.5, retrieval: 0.25}; "
    "default 1 where the cluster has GPUs, else 0",
    "cpus": "ray: CPUs per job, or by kind (default 1)",
    "retries": "ray: how often a job whose worker process died is run again (default 3)",
    "local_cpus": "ray, address null: the CPUs of this machine Ray may use (default: all)",
    "local_gpus": "ray, address null: the GPUs of this machine Ray may use (default: all)",
}
KINDS = ("intermediate", "target", "retrieval")
LOCAL = "local"  # one job after another in this process
EXECUTOR_KINDS = (LOCAL, "ray")
FORWARDED_ENV = ("ADAPTERXL_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")


@dataclass(frozen=True)
class RayExecutor:
    """Where and with what resources a grid's jobs run as Ray tasks (the grid's ``executor:``)."""

    address: str | None = None  # None: start Ray on this machine; "auto"; "host:6379"; "ray://host:10001"
    gpus: dict[str, float] | None = None  # per job kind; None: 1 where the cluster has GPUs, else 0
    cpus: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 1.0))
    retries: int = 3
    local_cpus: int | None = None
    local_gpus: int | None = None

    def resources(self, kind: str, cluster_gpus: float) -> dict[str, float]:
        """The ``num_cpus`` / ``num_gpus`` of one job of this kind on a cluster with ``cluster_gpus``."""
        gpus = self.gpus[kind] if self.gpus is not None else (1.0 if cluster_gpus > 0 else 0.0)
        return {"num_cpus": self.cpus[kind], "num_gpus": gpus}


def _per_kind(value: Any, key: str, where: str) -> dict[str, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = dict.fromkeys(KINDS, value)
    if not isinstance(value, dict) or any(k not in KINDS for k in value):
        kinds = ", ".join(KINDS)
        raise ConfigError(f"{where}: executor.{key}: a number per job, or by kind {{{kinds}}}: got {value!r}")
    out = {k: value.get(k, 1.0 if key == "cpus" else None) for k in KINDS}
    for kind, n in out.items():
        if n is None and key == "gpus":
            raise ConfigError(f"{where}: executor.gpus names some job kinds but not {kind!r}: give all of {KINDS}")
        if not isinstance(n, (int, float)) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"{where}: executor.{key}.{kind} must be a number >= 0, got {n!r}")
        if n > 1 and n != int(n):
            raise ConfigError(f"{where}: executor.{key}.{kind} = {n}: above 1, Ray takes whole numbers only")
    return {k: float(v) for k, v in out.items()}


def parse_executor(value: Any, where: str = "grid") -> RayExecutor | None:
    """The grid's ``executor:`` block, checked: None for the local runner, else a :class:`RayExecutor`."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: executor must be local, ray, or a mapping with keys {sorted(EXECUTOR_KEYS)}")
    check_keys(value, EXECUTOR_KEYS, f"{where}: executor")
    kind = value.get("kind", "ray" if set(value) - {"kind"} else LOCAL)
    if kind not in EXECUTOR_KINDS:
        raise ConfigError(f"{where}: executor.kind must be local or ray, got {kind!r}")
    if kind == LOCAL:
        extra = sorted(set(value) - {"kind"})
        if extra:
            raise ConfigError(f"{where}: executor {extra} are Ray settings: set kind: ray, or remove them")
        return None
    address = value.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigError(f"{where}: executor.address must be auto, host:port or ray://host:port, got {address!r}")
    retries = value.get("retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"{where}: executor.retries must be a whole number >= 0, got {retries!r}")
    local = {}
    for key in ("local_cpus", "local_gpus"):
        n = value.get(key)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < (1 if key == "local_cpus" else 0)):
            raise ConfigError(f"{where}: executor.{key} must be a whole number (CPUs >= 1, GPUs >= 0), got {n!r}")
        local[key] = n
    if address is not None and any(v is not None for v in local.values()):
        raise ConfigError(
            f"{where}: executor.local_cpus / local_gpus size a Ray instance on this machine; a cluster "
            f"({address}) has its own resources: remove them"
        )
    cpus = _per_kind(value.get("cpus", 1), "cpus", where)
    if any(v <= 0 for v in cpus.values()):
        raise ConfigError(f"{where}: executor.cpus must be above 0 (a job needs a CPU to run on), got {cpus}")
    gpus = _per_kind(value["gpus"], "gpus", where) if value.get("gpus") is not None else None
    return RayExecutor(address=address, gpus=gpus, cpus=cpus, retries=retries, **local)


# -- one job ------------------------------------------------------------------------------------------


def now() -> str:
    """The time of an event or record: UTC, ISO 8601, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def log_event(grid: Grid, event: str, job: Job, **extra) -> None:
    """Append one line to ``events.jsonl`` (what started, finished, failed, when)."""
    grid.results_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": now(), "event": event, "job": job.id, **extra}) + "\n"
    with (grid.results_dir / "events.jsonl").open("a", encoding="utf-8") as f:
        if fcntl is not None:  # Ray workers append at once: one whole line each
            fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line)


def execute(job: Job) -> dict:
    """Run one job; returns what its record keeps (metrics, summary and the run's key facts)."""
    from .pipeline import retrieve, run

    if job.config is not None:
        result = run(job.config)
        m = result.manifest
        return {
            "metrics": result.metrics,
            "summary": result.summary,
            "store_entry": result.store_entry,
            "model_dir": result.model_dir,
            "run_dir": result.run_dir,
            "train_seconds": m.train_seconds,
            "train_tokens": m.train_tokens,
            "train_examples": m.data_sizes.get("train") if isinstance(m.data_sizes.get("train"), int) else None,
            "parameters": m.parameters,
            "dev": {k: m.dev.get(k) for k in ("best", "best_step", "steps")},
            "fusion_attention": (m.fusion or {}).get("attention"),
        }
    args = dict(job.retrieval or {})
    if args.get("data") is not None:
        args["data"] = build(DataConfig, args["data"], f"retrieval.{args['task_name']}.data")
    out = retrieve(**args, tasks=job.registry)
    return {k: v for k, v in out.items() if k in ("metrics", "summary", "layer", "by_script", "by_family", "note")}


def attempt(grid: Grid, job: Job, echo=print) -> str:
    """Run one job and record the outcome: ``jobs/<id>.json`` (done) or ``jobs/<id>.error.json``
    (failed, with the traceback). A KeyboardInterrupt is logged and re-raised."""
    grid.error_path(job).unlink(missing_ok=True)
    log_event(grid, "start", job, host=socket.gethostname(), pid=os.getpid())
    started = time.perf_counter()
    try:
        record = execute(job)
    except KeyboardInterrupt:
        log_event(grid, "interrupted", job)
        raise
    except Exception as exc:  # isolate the failure: record it and go on
        error = f"{type(exc).__name__}: {exc}"
        seconds = round(time.perf_counter() - started, 2)
        failure = {"job": job.id, "labels": job.labels, "error": error, "traceback": traceback.format_exc()}
        write_json(grid.error_path(job), {**failure, "seconds": seconds, "time": now()})
        log_event(grid, "failed", job, error=error)
        echo(f"FAILED {job.id}: {error}")
        return "failed"
    seconds = round(time.perf_counter() - started, 2)
    head = {"job": job.id, "kind": job.kind, "labels": job.labels, "spec": job.describe()}
    write_json(grid.result_path(job), {**head, "seconds": seconds, "time": now(), **record})
    log_event(grid, "done", job, seconds=seconds)
    return "done"


# -- the local runner --------------------------------------------------------------------------------


def _outcomes_before(grid: Grid, todo: list[Job]) -> dict[str, str]:
    """The status of every job ``todo`` needs that is not itself to do: read once, before the first
    job (the results folder is locked, so it cannot change meanwhile)."""
    ids = {j.id for j in todo}
    return {n: grid.status(grid.job(n)) for j in todo for n in j.needs if n not in ids}


def _blocking(job: Job, outcome: dict[str, str], coming: set[str]) -> list[str] | None:
    """The needs that block ``job`` (failed, blocked, or not finished and not coming), None when
    it can start now, [] when it must wait for needs still coming."""
    missing = [n for n in job.needs if outcome.get(n) != "done"]
    blocked = [n for n in missing if n not in coming or outcome.get(n) in ("failed", "blocked")]
    if blocked:
        return blocked
    return [] if missing else None


def _bar(grid: Grid, total: int, progress: bool):
    """The grid's progress bar: the console's (a terminal, not --quiet), or none."""
    from tqdm.auto import tqdm

    from . import console

    if not progress:
        return tqdm(total=total, disable=True)
    return console.progress(total=total, desc=f"grid {grid.name}", unit="job")


def run_local(grid: Grid, todo: list[Job], counts: Counter, echo, progress: bool) -> dict[str, int]:
    """Run ``todo`` one after another in this process."""
    bar = _bar(grid, len(todo), progress)
    outcome = _outcomes_before(grid, todo)
    for n, job in enumerate(todo):
        blocked = _blocking(job, outcome, set())
        if blocked:
            counts["blocked"] += 1
            outcome[job.id] = "blocked"
            log_event(grid, "blocked", job, needs=blocked)
        else:
            bar.set_postfix_str(
                f"done {counts['done']}, running 1, failed {counts['failed']}, remaining {len(todo) - n - 1}: {job.id}"
            )
            outcome[job.id] = attempt(grid, job, echo)
            counts[outcome[job.id]] += 1
        bar.update(1)
    bar.close()
    return dict(counts)


# -- Ray ---------------------------------------------------------------------------------------------


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "running a grid on Ray needs Ray: pip install 'adapterxl[ray]' (or run without --ray / executor: ray, "
            "one job after another)"
        ) from None
    return ray


def _ray_job(grid: Grid, job_id: str, cwd: str, verbosity: str) -> str:
    """A grid job inside a Ray worker: the driver's working folder, a quiet console, one attempt."""
    from . import console

    if os.path.isdir(cwd):
        os.chdir(cwd)  # the grid's relative paths (data, results, store) mean what they mean to the driver
    console.set_verbosity("verbose" if verbosity == "verbose" else "quiet")
    return attempt(grid, grid.job(job_id), echo=lambda *_: None)


class _Events:
    """Follows ``events.jsonl`` from the driver: which submitted jobs have started on a worker."""

    def __init__(self, path):
        self.path = path
        self.offset = path.stat().st_size if path.is_file() else 0
        self.started: set[str] = set()

    def poll(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line being written is read next time
        self.offset += end
        for line in chunk[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "start":
                self.started.add(event.get("job"))


def _connect(ray, executor: RayExecutor, echo) -> bool:
    """Start or join Ray; True when this call did (and so ends it)."""
    if ray.is_initialized():
        return False
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    options: dict[str, Any] = {
        "runtime_env": {"env_vars": env},
        "include_dashboard": False,
        "logging_level": "WARNING",
        "log_to_driver": True,
    }
    if executor.address is None:
        options.update(address="local", num_cpus=executor.local_cpus, num_gpus=executor.local_gpus)
    else:
        options["address"] = executor.address
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise ConfigError(
            f"no Ray cluster at {executor.address!r} ({exc}): start one (`ray start --head` on its head node), "
            "give its address (--ray HOST:6379), or run --ray without an address for a Ray instance on this machine"
        ) from None
    where = "this machine" if executor.address is None else executor.address
    resources = ray.cluster_resources()
    echo(f"Ray on {where}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
    return True


def run_ray(
    grid: Grid, todo: list[Job], counts: Counter, echo, progress: bool, executor: RayExecutor
) -> dict[str, int]:
    """Run ``todo`` as Ray tasks, each submitted once the jobs it needs are done."""
    from . import console

    ray = _import_ray()
    started_here = _connect(ray, executor, echo)
    try:
        resources = ray.cluster_resources()
        cluster_cpus, cluster_gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        kinds = {j.kind for j in todo}
        for kind in (k for k in KINDS if k in kinds):
            need = executor.resources(kind, cluster_gpus)
            if need["num_gpus"] > cluster_gpus or need["num_cpus"] > cluster_cpus:
                raise ConfigError(
                    f"executor: a {kind} job needs {need['num_cpus']:g} CPUs and {need['num_gpus']:g} GPUs, but "
                    f"the Ray cluster has {cluster_cpus:g} CPUs and {cluster_gpus:g} GPUs: it would wait forever; "
                    "lower executor.cpus / gpus"
                )
        # a GPU job gets a fresh worker process, which frees its GPU memory when it ends
        tasks = {False: ray.remote(_ray_job), True: ray.remote(max_calls=1)(_ray_job)}
        grid_ref = ray.put(grid)
        cwd = os.getcwd()
        verbosity = console.level()
        coming = {j.id for j in todo}
        waiting = list(todo)
        inflight: dict[Any, Job] = {}
        outcome = _outcomes_before(grid, todo)
        events = _Events(grid.results_dir / "events.jsonl")
        bar = _bar(grid, len(todo), progress)
        lines = progress and bar.disable and console.level() != "quiet"  # no bar (a pipe, a log file): a line per job

        def settle(job: Job, status: str) -> None:
            outcome[job.id] = status
            counts[status] += 1
            coming.discard(job.id)
            bar.update(1)
            if lines:
                echo(f"[{len(todo) - len(coming)}/{len(todo)}] {status} {job.id}")

        def release() -> None:
            """Submit every waiting job whose needs are done; block those whose needs cannot be."""
            changed = True
            while changed:
                changed = False
                for job in list(waiting):
                    blocked = _blocking(job, outcome, coming)
                    if blocked:
                        waiting.remove(job)
                        log_event(grid, "blocked", job, needs=blocked)
                        settle(job, "blocked")
                        changed = True  # its own dependants are blocked in turn
                    elif blocked is None:
                        waiting.remove(job)
                        options = executor.resources(job.kind, cluster_gpus)
                        ref = (
                            tasks[bool(options["num_gpus"])]
                            .options(**options, max_retries=executor.retries, retry_exceptions=False, name=job.id)
                            .remote(grid_ref, job.id, cwd, verbosity)
                        )
                        inflight[ref] = job

        def show() -> None:
            events.poll()
            running = sum(j.id in events.started for j in inflight.values())
            bar.set_postfix_str(
                f"done {counts['done']}, running {running}, waiting {len(inflight) - running + len(waiting)}, "
                f"failed {counts['failed']}, remaining {len(coming)}"
            )

        try:
            release()
            while inflight:
                show()
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    job = inflight.pop(ref)
                    try:
                        status = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died more often than retries allow
                        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
                        failure = {"job": job.id, "labels": job.labels, "error": error, "traceback": str(exc)}
                        write_json(grid.error_path(job), {**failure, "time": now()})
                        log_event(grid, "failed", job, error=error)
                        status = "failed"
                    if status == "failed":
                        record = _read_error(grid.error_path(job))
                        echo(f"FAILED {job.id}: {record.get('error', '?')}")
                    settle(job, status)
                release()
            show()
        except KeyboardInterrupt:
            events.poll()
            for ref, job in inflight.items():
                ray.cancel(ref, force=True)
                if job.id in events.started:
                    log_event(grid, "interrupted", job)
            raise
        finally:
            bar.close()
        return dict(counts)
    finally:
        if started_here:
            ray.shutdown()


def _read_error(path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
