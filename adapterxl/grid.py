"""Experiment grids: intermediate task x target task x mode x seed (x backbone, x data size), from one
YAML file, resumable, with failures isolated.

A grid file names its axes; :func:`load_grid` expands them into *jobs*, each one
:class:`~adapterxl.config.RunConfig` (or one retrieval evaluation) with the jobs it needs:

- an **intermediate** job per backbone x intermediate variant x data size, trained once (seed
  ``intermediate_seed``) as an adapter (for modes stack / fuse / sequential) and / or fully
  fine-tuned (for mode full), and reused from the store by every target;
- a **target** job per backbone x target x seed x mode x intermediate (fuse: all intermediates at
  once), plus the no-intermediate **baselines** (``adapter``, ``full``);
- a **retrieval** job per backbone x retrieval task x intermediate (and the plain backbone).

Every finished job writes ``<results_dir>/jobs/<id>.json`` atomically; that file is the only
record of "done", so a grid killed at any moment and started again redoes no finished job. A job
that raises is recorded in ``jobs/<id>.error.json`` (with its traceback) and the grid goes on;
jobs that need it are skipped as blocked; ``retry_failed`` runs them again. Long trainings keep
checkpoints (``training.save_steps``) and continue from the last one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DataConfig, RunConfig, build, merge, read_yaml
from .cost import Throughput, dev_evaluations, estimated_tokens, run_epochs, run_seconds
from .errors import NAME_PATTERN, ConfigError, HubUnavailable, check_keys, first_line, suggest
from .executors import RayExecutor, parse_executor, run_local, run_ray
from .files import dump_yaml, write_json
from .locks import Lock
from .modes import BASELINES, GRID_MODES, MODE_NAMES, get_mode
from .tasks import BUILTIN, TaskRegistry

GRID_KEYS = {
    "grid": "name of the grid (prefix of its store entries)",
    "tasks": "tasks declared for this grid: {name: {family, languages, data, columns, ...}}",
    "results_dir": "where results, runs and logs go (default results/<grid>)",
    "defaults": "RunConfig fields for every run",
    "per_mode": "RunConfig fields for the runs of one mode: {full: {training: {learning_rate: 1e-5}}}",
    "models": "backbones (default: defaults.model)",
    "intermediates": "intermediate tasks: a list of task names, or {label: run fields}",
    "targets": "target tasks: a list of task names, or {label: run fields}",
    "modes": f"how targets use intermediates: {', '.join(GRID_MODES)}",
    "baselines": "targets without intermediate: adapter, full (default: one per kind of mode)",
    "seeds": "target-task seeds",
    "intermediate_seed": "seed of the intermediate trainings (default: the first seed)",
    "intermediate_sizes": "intermediate training-set sizes (null: all), the data-size axis",
    "retrieval": "retrieval tasks evaluated off every intermediate: a list, or {task: options}",
    "throughput": "real tokens per second for plan estimates: training by kind (adapter, full), and evaluation",
    "executor": "how jobs run: local (default: one after another in this process) or ray, with Ray's address "
    "and resources per job: {kind: ray, address: auto, gpus: 1, cpus: 4, retries: 3} (adapterxl.executors)",
    "questions": "research questions, each its own slice of the grid and its own report section: "
    "{label: {ask: ..., intermediates: [labels], targets: [labels], modes, intermediate_sizes, retrieval, ...}}",
}
QUESTION_KEYS = {
    "ask": "the question in one sentence (the title of its report section)",
    "intermediates": "labels of the grid's intermediates it uses (default: all)",
    "targets": "labels of the grid's targets it uses (default: all; [] for a retrieval-only question)",
    "modes": "its modes (default: the grid's)",
    "baselines": "its no-intermediate baselines (default: the grid's, else one per kind of mode)",
    "intermediate_sizes": "its intermediate data sizes (default: the grid's)",
    "retrieval": "its retrieval tasks (default: the grid's; a list inherits the grid's options)",
    "compare": "pairs of setups the report differences seed by seed: [[stack on a, stack on b], ...]",
    "figures": "the report's figures for it: heatmap, languages, uriel, scaling (default: all that apply)",
    "answer": "optional: what the grid's authors concluded, printed under the question in the report",
}
FIGURE_KINDS = ("heatmap", "languages", "uriel", "scaling", "distance")
JOB_KINDS = ("intermediate", "target", "retrieval")
RETRIEVAL_OPTIONS = ("data", "layer", "batch_size", "direction", "bucc_dir")


@dataclass
class Job:
    """One unit of a grid: a training run (``config``) or a retrieval evaluation (``retrieval``)."""

    id: str
    kind: str  # intermediate | target | retrieval
    backbone: str  # the grid's model id (a full-mode target's config.model is its intermediate's folder)
    labels: dict[str, Any]  # model, intermediate, target, mode, seed, size: what the report groups by
    needs: list[str] = field(default_factory=list)
    config: RunConfig | None = None
    retrieval: dict[str, Any] | None = None  # arguments of adapterxl.retrieve; "adapter_of" / "model_of": job ids
    registry: TaskRegistry = field(
        default=BUILTIN, repr=False
    )  # retrieval jobs: the grid's tasks (a run: config.registry)

    def describe(self) -> dict:
        """What defines the job's result; a finished job whose description changed is stale."""
        if self.config is not None:
            from .data import data_fingerprints

            spec = self.config.to_dict()
            spec.pop("overwrite", None)
            declared = self.config.declarations()
            prints = {
                path: digest
                for name, task in self.config.task_objects().items()
                for path, digest in data_fingerprints(task, self.config.data_for(name)).items()
            }
            if prints:  # local data files: a file changed in place makes the finished job stale
                spec["data_fingerprints"] = prints
        else:
            spec = dict(self.retrieval or {})
            declared = self.registry.declarations([spec.get("task_name")])
        if declared:  # a declared task is defined by its declaration (data files, columns, labels)
            spec["task_declarations"] = declared
        return spec


@dataclass
class Grid:
    name: str
    results_dir: Path
    jobs: list[Job]
    throughput: dict[str, float]
    source: dict = field(default_factory=dict, repr=False)
    registry: TaskRegistry = field(default=BUILTIN, repr=False)  # built-in tasks + the grid's tasks: block
    executor: RayExecutor | None = None  # None: one job after another in this process

    def job(self, job_id: str) -> Job:
        return next(j for j in self.jobs if j.id == job_id)

    @property
    def questions(self) -> dict[str, dict]:
        """The grid's research questions (``questions:``), by label."""
        return questions_of(self.source)

    def question_jobs(self, questions: tuple[str, ...]) -> set[str]:
        """The ids of the jobs of these questions and of every job they need."""
        unknown = [q for q in questions if q not in self.questions]
        if unknown:
            known = list(self.questions)
            raise ConfigError(
                f"question {unknown[0]!r} is not one of grid {self.name}'s questions{suggest(unknown[0], known)}: "
                f"use one of {known}"
                if known
                else f"grid {self.name} has no questions: block; drop --question"
            )
        wanted = {j.id for j in self.jobs if set(j.labels.get("questions", ())) & set(questions)}
        todo = list(wanted)
        while todo:
            for need in self.job(todo.pop()).needs:
                if need not in wanted:
                    wanted.add(need)
                    todo.append(need)
        return wanted

    def relabel(self) -> int:
        """Bring the ``questions`` label of finished job records up to the grid file (a question added
        or renamed later); labels are presentation, the record's results stay as they are. Returns the
        count of records rewritten."""
        changed = 0
        for job in self.jobs:
            record = read_record(self.result_path(job))
            if record is not None and record.get("labels", {}).get("questions") != job.labels.get("questions"):
                labels = {k: v for k, v in record.get("labels", {}).items() if k != "questions"}
                if job.labels.get("questions"):
                    labels["questions"] = job.labels["questions"]
                write_json(self.result_path(job), {**record, "labels": labels})
                changed += 1
        return changed

    # -- state on disk -----------------------------------------------------------------------------

    def result_path(self, job: Job) -> Path:
        return self.results_dir / "jobs" / f"{job.id}.json"

    def error_path(self, job: Job) -> Path:
        return self.results_dir / "jobs" / f"{job.id}.error.json"

    def status(self, job: Job) -> str:
        """``done``, ``failed`` or ``pending`` (a damaged record counts as not finished)."""
        if read_record(self.result_path(job)) is not None:
            return "done"
        if self.error_path(job).is_file():
            return "failed"
        return "pending"

    def results(self) -> dict[str, dict]:
        """Every finished job's record, by job id."""
        return {j.id: r for j in self.jobs if (r := read_record(self.result_path(j))) is not None}

    def stale(self) -> dict[str, list[str]]:
        """Finished jobs whose grid entry (or data files) changed since: {job id: changed keys}."""
        out = {}
        for job in self.jobs:
            finished = read_record(self.result_path(job))
            if finished is not None:
                old = finished.get("spec", {})
                new = json.loads(json.dumps(job.describe()))
                if "data_fingerprints" not in old:  # recorded before fingerprints: compare the rest
                    new.pop("data_fingerprints", None)
                changed = _diff(old, new)
                if changed:
                    out[job.id] = changed
        return out

    def damaged(self) -> list[Path]:
        """Job records that are not valid JSON (a write cut short by a full disk, an edit)."""
        jobs = self.results_dir / "jobs"
        if not jobs.is_dir():
            return []
        return [p for p in sorted(jobs.glob("*.json")) if p.is_file() and read_record(p) is None]

    def clean(self, echo=print) -> None:
        """Remove what interrupted writes left (``*.tmp``) and set damaged job records aside
        (``<id>.json.damaged``; their jobs run again), saying which."""
        for tmp in (self.results_dir / "jobs").glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        for path in self.damaged():
            aside = path.with_name(path.name + ".damaged")
            os.replace(path, aside)
            echo(f"Warning: {path} was damaged (not valid JSON); set aside as {aside.name}, its job runs again")

    def lock(self) -> Lock:
        """The lock of this results folder, held by the process that runs the grid (a Ray driver too)."""
        return Lock(self.results_dir / ".lock", f"grid results folder {str(self.results_dir)!r}")


def read_record(path: Path) -> dict | None:
    """A job record; None when it is missing or damaged (not valid JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def model_label(model: str) -> str:
    """A short, file-safe label of a backbone: its Hub name without the organisation."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(model).rstrip("/").split("/")[-1]).strip("-") or "model"


def _store_name(grid: str, job_id: str) -> str:
    name = f"{grid}--{job_id}"
    if len(name) > 100:  # store names are at most 100 characters: keep them unique with a hash
        name = f"{name[:87]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return name


def _variants(value: Any, key: str, where: str) -> dict[str, dict]:
    """``[mnli, squad]`` or ``{label: {task: ..., other run fields}}`` -> {label: run fields}."""
    if value is None:
        return {}
    if isinstance(value, list):
        value = {str(v): {"task": v} for v in value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a list of task names or a mapping {{label: run fields}}")
    out = {}
    for label, spec in value.items():
        spec = {"task": label} if spec is None else spec
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: {key}.{label} must be a mapping of run fields (task, data, training, ...)")
        if not NAME_PATTERN.match(str(label)) or "--" in str(label):
            raise ConfigError(f"{where}: {key} label {label!r}: use letters, digits, '_' and single '-' only")
        bad = [k for k in ("mode", "intermediate", "seed", "save_as", "output_dir", "model") if k in spec]
        if bad:
            raise ConfigError(
                f"{where}: {key}.{label} sets {bad}, which the grid decides (its axes models, modes, seeds): "
                "remove them, or put them in the grid's own keys"
            )
        out[str(label)] = {"task": label, **spec}
    return out


def _list(value: Any, key: str, where: str, default: list) -> list:
    if value is None:
        return list(default)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty list, got {value!r}")
    return value


def _axes(doc: dict, where: str, has_intermediates: bool, has_targets: bool) -> tuple[list, list, list, list]:
    """The modes, intermediate kinds, baselines and data sizes of a grid (or of one of its questions)."""
    if doc.get("modes") and not has_intermediates:
        raise ConfigError(f"{where}: modes {doc['modes']} need intermediates to build on: add intermediates")
    modes = _list(doc.get("modes"), "modes", where, ["stack"]) if has_intermediates else []
    bad = [m for m in modes if m not in GRID_MODES]
    if bad:
        raise ConfigError(
            f"{where}: modes {bad} are not grid modes{suggest(bad[0], GRID_MODES)}; choose from {list(GRID_MODES)} "
            f"(the no-intermediate runs are baselines: {list(BASELINES)})"
        )
    kinds = [k for k in BASELINES if k in {get_mode(m).kind for m in modes}]  # intermediates' kinds
    baselines = doc.get("baselines", (kinds or ["adapter"]) if has_targets else [])
    if not isinstance(baselines, list) or any(b not in BASELINES for b in baselines):
        raise ConfigError(f"{where}: baselines must be a list of {list(BASELINES)}, got {baselines!r}")
    sizes = _list(doc.get("intermediate_sizes"), "intermediate_sizes", where, [None])
    if any(s is not None and (not isinstance(s, int) or isinstance(s, bool) or s <= 0) for s in sizes):
        raise ConfigError(f"{where}: intermediate_sizes must be positive integers or null (all), got {sizes}")
    return modes, kinds, baselines, sizes


def _retrieval(value: Any, registry: TaskRegistry, where: str, options_of: dict | None = None) -> dict[str, dict]:
    """``[tatoeba]`` or ``{tatoeba: {options}}`` -> {task: options}, checked; ``options_of``: the grid's
    own retrieval options, which a question's list of names inherits."""
    value = value or {}
    if isinstance(value, list):
        value = {t: dict((options_of or {}).get(t) or {}) for t in value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: retrieval must be a list of tasks or {{task: options}}")
    retrieval_tasks = sorted(n for n, t in registry.items() if t.kind == "retrieval")
    for task, options in value.items():
        if task not in retrieval_tasks:
            raise ConfigError(
                f"{where}: retrieval task {task!r} is not a retrieval task{suggest(task, retrieval_tasks)}: use one of "
                f"{retrieval_tasks} (or declare one under tasks: with a retrieval family)"
            )
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"{where}: retrieval.{task}: a mapping of options {list(RETRIEVAL_OPTIONS)}")
        bad_options = [k for k in (options or {}) if k not in RETRIEVAL_OPTIONS]
        if bad_options:
            raise ConfigError(f"{where}: retrieval.{task} options {bad_options} unknown; use {list(RETRIEVAL_OPTIONS)}")
        if (options or {}).get("data") is not None:
            build(DataConfig, options["data"], f"{where}: retrieval.{task}.data")
    return {t: dict(o or {}) for t, o in value.items()}


def _subset(value: Any, pool: dict, key: str, where: str) -> list[str]:
    """A question's intermediates / targets: labels of the grid's own (default: all of them)."""
    if value is None:
        return list(pool)
    if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key}: a list of labels of the grid's {key} ({', '.join(pool) or 'none'})")
    unknown = [v for v in value if v not in pool]
    if unknown:
        raise ConfigError(
            f"{where}: {key} {unknown} are not among the grid's {key}{suggest(unknown[0], list(pool))}: "
            f"declare them under the grid's {key}: (one home per variant) and name them here"
        )
    return list(value)


def questions_of(data: dict, where: str = "grid") -> dict[str, dict]:
    """The grid's ``questions:`` block, checked: {label: {ask, compare, figures, ...}} (report metadata
    included; the axes are checked by :func:`parse_grid`)."""
    questions = data.get("questions")
    if questions is None:
        return {}
    if not isinstance(questions, dict) or not questions:
        raise ConfigError(f"{where}: questions: a mapping {{label: {{ask: ..., intermediates: [...], ...}}}}")
    out = {}
    for label, spec in questions.items():
        at = f"{where}: questions.{label}"
        if not NAME_PATTERN.match(str(label)) or "--" in str(label):
            raise ConfigError(f"{at}: a question label is letters, digits, '_' and single '-'")
        if not isinstance(spec, dict):
            raise ConfigError(f"{at}: a mapping with keys {sorted(QUESTION_KEYS)}")
        check_keys(spec, QUESTION_KEYS, at)
        if not isinstance(spec.get("ask"), str) or not spec["ask"].strip():
            raise ConfigError(f"{at}: ask: the question in one sentence (the report's section title)")
        compare = spec.get("compare") or []
        if not isinstance(compare, list) or any(
            not isinstance(p, list) or len(p) != 2 or not all(isinstance(x, str) for x in p) for p in compare
        ):
            raise ConfigError(
                f"{at}: compare: pairs of setups as the report names them, e.g. "
                "[[stack on nli-native, stack on nli-translated]]"
            )
        figures = spec.get("figures", list(FIGURE_KINDS))
        if not isinstance(figures, list) or any(f not in FIGURE_KINDS for f in figures):
            raise ConfigError(f"{at}: figures: a list of {list(FIGURE_KINDS)}, got {figures!r}")
        out[str(label)] = {**spec, "compare": compare, "figures": figures}
    return out


def parse_grid(data: Any, where: str = "grid") -> Grid:
    """Expand a grid document into jobs; every run config is validated here, before anything runs.

    With ``questions:``, each question expands its own choice of the grid's intermediates, targets,
    modes, sizes and retrieval tasks (the grid's axes are its defaults); a job two questions share
    is one job, labelled with both."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a grid file is a mapping with keys {sorted(GRID_KEYS)}")
    check_keys(data, GRID_KEYS, where)
    registry = BUILTIN.declare(data["tasks"], f"{where}: tasks") if data.get("tasks") is not None else BUILTIN
    name = data.get("grid")
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or "--" in name:
        raise ConfigError(f"{where}: grid: give the grid a name of letters, digits, '_' and '-' (got {name!r})")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}: defaults must be a mapping of run fields")
    for key in ("mode", "intermediate", "seed", "save_as", "output_dir", "task"):
        if key in defaults:
            raise ConfigError(f"{where}: defaults.{key} is decided by the grid's axes: remove it")
    models = _list(data.get("models"), "models", where, [defaults.get("model", "xlm-roberta-large")])
    per_mode = data.get("per_mode") or {}
    if not isinstance(per_mode, dict) or any(m not in MODE_NAMES for m in per_mode):
        raise ConfigError(f"{where}: per_mode maps modes ({', '.join(MODE_NAMES)}) to run fields, got {per_mode!r}")
    intermediates = _variants(data.get("intermediates"), "intermediates", where)
    targets = _variants(data.get("targets"), "targets", where)
    questions = questions_of(data, where)
    if not targets and not data.get("retrieval") and not any(q.get("retrieval") for q in questions.values()):
        raise ConfigError(f"{where}: list at least one target task (targets: [xnli, ...]) or retrieval task")
    seeds = _list(data.get("seeds"), "seeds", where, [42])
    if any(not isinstance(s, int) or isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds must be distinct integers, got {seeds}")
    inter_seed = data.get("intermediate_seed", seeds[0])
    retrieval = _retrieval(data.get("retrieval"), registry, where)
    throughput = data.get("throughput") or {}
    if not isinstance(throughput, dict) or any(
        k not in (*BASELINES, "evaluation") or not isinstance(v, (int, float)) or not v > 0
        for k, v in throughput.items()
    ):
        raise ConfigError(
            f"{where}: throughput maps adapter / full (training) and evaluation to tokens per second, e.g. "
            f"{{adapter: 30000, full: 20000, evaluation: 60000}} from benchmarks/training.py; got {throughput!r}"
        )
    results_dir = Path(data.get("results_dir") or Path("results") / name)
    axes_of = {k: data[k] for k in ("modes", "baselines", "intermediate_sizes") if k in data}
    # (question label or None, its intermediates, targets, axes document, retrieval tasks)
    parts = [(None, list(intermediates), list(targets), axes_of, retrieval)]
    if questions:
        parts = []
        for label, spec in questions.items():
            at = f"{where}: questions.{label}"
            inters = _subset(spec.get("intermediates"), intermediates, "intermediates", at)
            tgts = _subset(spec.get("targets"), targets, "targets", at)
            tasks = _retrieval(spec["retrieval"], registry, at, retrieval) if "retrieval" in spec else retrieval
            if not tgts and not tasks:
                raise ConfigError(f"{at}: it has no target and no retrieval task: name some (targets: [...])")
            doc = {**axes_of, **{k: spec[k] for k in ("modes", "baselines", "intermediate_sizes") if k in spec}}
            if not inters:
                doc.pop("modes", None)
            parts.append((label, inters, tgts, doc, tasks))

    jobs: dict[str, Job] = {}

    def run_config(job_id: str, fields: dict, label: str) -> RunConfig:
        fields = {
            **fields,
            "save_as": _store_name(name, job_id),
            "output_dir": str(results_dir / "runs" / job_id),
            "overwrite": True,  # the grid owns its entries; jobs/<id>.json says what is finished
        }
        return RunConfig.from_dict(fields, f"{where}: {label}", registry)

    def add(job: Job, question: str | None) -> Job:
        """Keep one job per id; a job that two questions share carries both labels."""
        if question is not None:
            job.labels["questions"] = [question]
        if job.id in jobs:
            kept = jobs[job.id]
            same = (kept.kind, kept.config.to_dict() if kept.config else kept.retrieval) == (
                job.kind,
                job.config.to_dict() if job.config else job.retrieval,
            )
            if not same:
                raise ConfigError(
                    f"{where}: several different jobs are named {job.id}: give the variants distinct labels"
                )
            if question is not None and question not in kept.labels["questions"]:
                kept.labels["questions"].append(question)
            return kept
        jobs[job.id] = job
        return job

    for question, inter_labels, target_labels, doc, retrieval_tasks in parts:
        at = where if question is None else f"{where}: questions.{question}"
        modes, kinds, baselines, sizes = _axes(doc, at, bool(inter_labels), bool(target_labels))
        for model in models:
            m_label = model_label(model)
            base = merge(defaults, {"model": model})
            inter_jobs: dict[tuple[str, Any, str], Job] = {}
            for i_label in inter_labels:
                spec = intermediates[i_label]
                for size in sizes:
                    sized = merge(spec, {"data": {"max_train_examples": size}}) if size is not None else spec
                    suffix = "" if size is None else f"--n{size}"
                    for kind in kinds:
                        job_id = f"{m_label}--{i_label}{suffix}--{kind}"
                        fields = merge(merge(base, sized), {**per_mode.get(kind, {}), "mode": kind, "seed": inter_seed})
                        labels = {"model": m_label, "intermediate": i_label, "size": size, "mode": kind}
                        job = Job(
                            job_id, "intermediate", model, labels,
                            config=run_config(job_id, fields, f"intermediates.{i_label}"),
                        )  # fmt: skip
                        inter_jobs[(i_label, size, kind)] = add(job, question)
            for t_label in target_labels:
                spec = targets[t_label]
                for seed in seeds:
                    target = merge(base, {**spec, "seed": seed})
                    for b in baselines:
                        job_id = f"{m_label}--{t_label}--{b}--s{seed}"
                        labels = {
                            "model": m_label,
                            "target": t_label,
                            "mode": b,
                            "intermediate": None,
                            "seed": seed,
                            "size": None,
                            "baseline": True,
                        }
                        fields = merge(target, {**per_mode.get(b, {}), "mode": b})
                        job = Job(
                            job_id, "target", model, labels, config=run_config(job_id, fields, f"targets.{t_label}")
                        )
                        add(job, question)
                    for size in sizes:
                        suffix = "" if size is None else f"--n{size}"
                        for mode in modes:
                            how = get_mode(mode)
                            groups = [list(inter_labels)] if how.all_intermediates else [[i] for i in inter_labels]
                            for group in groups:
                                needed = [inter_jobs[(i, size, how.kind)] for i in group]
                                on = how.grid_label(group[0])
                                if how.all_intermediates and group != list(intermediates):  # a question's subset
                                    on = "-".join([on, *group])
                                job_id = f"{m_label}--{t_label}--{mode}--on-{on}{suffix}--s{seed}"
                                if how.full:  # full fine-tuning continues from the intermediate's weights
                                    inter_dir = Path(needed[0].config.run_dir) / "model"
                                    fields = merge(
                                        target, {**per_mode.get(mode, {}), "mode": mode, "model": str(inter_dir)}
                                    )
                                else:
                                    names = [j.config.name for j in needed]
                                    fields = merge(
                                        target, {**per_mode.get(mode, {}), "mode": mode, "intermediate": names}
                                    )
                                labels = {
                                    "model": m_label,
                                    "target": t_label,
                                    "mode": mode,
                                    "intermediate": on,
                                    "seed": seed,
                                    "size": size,
                                    "baseline": False,
                                }
                                config = run_config(job_id, fields, f"targets.{t_label}")
                                job = Job(job_id, "target", model, labels, [j.id for j in needed], config=config)
                                add(job, question)
            for task, options in retrieval_tasks.items():
                sources: list[tuple[str, Any, Job | None]] = [("none", None, None)]
                sources += [(i, size, job) for (i, size, _kind), job in inter_jobs.items()]
                for i_label, size, job in sources:
                    kind = job.labels["mode"] if job else "base"
                    suffix = "" if size is None else f"--n{size}"
                    job_id = f"{m_label}--{task}--{i_label}{suffix}--{kind}"
                    args = {"task_name": task, "store": base.get("store"), **options}
                    if job is None:
                        args["model"] = model
                    elif get_mode(kind).full:
                        args["model"] = str(Path(job.config.run_dir) / "model")
                    else:
                        args["adapter"] = job.config.name
                    labels = {
                        "model": m_label,
                        "target": task,
                        "mode": kind if job else "base",
                        "intermediate": i_label,
                        "seed": job.config.seed if job else None,
                        "size": size,
                        "baseline": job is None,
                    }
                    needs = [job.id] if job else []
                    add(Job(job_id, "retrieval", model, labels, needs, retrieval=args, registry=registry), question)
    rates = {k: float(v) for k, v in throughput.items()}
    executor = parse_executor(data.get("executor"), where)
    return Grid(name, results_dir, list(jobs.values()), rates, data, registry, executor)


def load_grid(path: str | Path, results_dir: str | Path | None = None) -> Grid:
    """Read and expand a grid file. ``results_dir`` overrides the file's."""
    data = read_yaml(path, "grid file")
    if isinstance(data, dict) and results_dir is not None:
        data = {**data, "results_dir": str(results_dir)}
    if isinstance(data, dict) and "runs" in data:
        raise ConfigError(f"{path} is a list of runs, not a grid: run it with `adapterxl train {path}`")
    return parse_grid(data, str(path))


# -- running -----------------------------------------------------------------------------------------


def run_grid(
    grid: Grid,
    retry_failed: bool = False,
    only: tuple[str, ...] | None = None,
    echo=print,
    progress: bool = True,
    questions: tuple[str, ...] | None = None,
    ray: str | bool | None = None,
) -> dict[str, int]:
    """Run every job not yet finished. Returns the count of jobs by final status: done, failed,
    blocked (a needed job failed or is not finished), skipped (not selected). ``only``: the jobs of
    these kinds (intermediate, target, retrieval); ``questions``: the jobs of these questions (of
    the grid's ``questions:``), the jobs they need included. The results folder is locked while the
    grid runs: a second process on it is refused at once.

    Jobs run one after another in this process, or as Ray tasks (:mod:`adapterxl.executors`) when
    the grid's ``executor:`` says so or ``ray`` is given: True (a Ray instance on this machine, or
    the grid's address), ``"auto"`` or a cluster address."""
    stale = grid.stale()
    if stale:
        listing = "; ".join(f"{j}: {', '.join(keys[:4])}" for j, keys in list(stale.items())[:5])
        raise ConfigError(
            f"{len(stale)} finished job(s) of {grid.results_dir} were run with other settings ({listing}): "
            "give the changed grid its own results_dir, or move the old results away"
        )
    unknown = [k for k in only or () if k not in JOB_KINDS]
    if unknown:
        raise ConfigError(f"only: unknown job kind(s) {unknown}; use intermediate, target, retrieval")
    executor = grid.executor
    if ray:
        executor = executor or RayExecutor()
        if isinstance(ray, str):
            executor = dataclasses.replace(executor, address=ray, local_cpus=None, local_gpus=None)
    wanted = grid.question_jobs(questions) if questions else None
    mine = [j for j in grid.jobs if (not only or j.kind in only) and (wanted is None or j.id in wanted)]
    with grid.lock():
        todo, counts = _prepare(grid, mine, retry_failed, echo)
        if executor is None:
            return run_local(grid, todo, counts, echo, progress)
        return run_ray(grid, todo, counts, echo, progress, executor)


def _prepare(grid: Grid, mine: list[Job], retry_failed: bool, echo) -> tuple[list[Job], Counter]:
    """Before the first job: leftovers cleaned, the grid file kept, labels brought up to date, and
    every run that can start checked. Returns the jobs to run and the counts so far."""
    from .pipeline import check_runs

    grid.results_dir.mkdir(parents=True, exist_ok=True)
    grid.clean(echo)
    (grid.results_dir / "grid.yaml").write_text(dump_yaml(grid.source), encoding="utf-8")
    grid.relabel()
    status = {j.id: grid.status(j) for j in grid.jobs}  # each record read once
    todo = [j for j in mine if status[j.id] == "pending" or (retry_failed and status[j.id] == "failed")]
    # Every run that can start (its needs done or to do here) is checked before the first trains.
    will_exist = {j.id for j in grid.jobs if status[j.id] == "done"} | {j.id for j in todo}
    check_runs([j.config for j in todo if j.config is not None and set(j.needs) <= will_exist], check_data_files=True)
    counts = Counter(
        done=sum(status[j.id] == "done" for j in mine), failed=0, blocked=0, skipped=len(grid.jobs) - len(mine)
    )
    previously_failed = [j for j in mine if status[j.id] == "failed" and j not in todo]
    counts["failed"] += len(previously_failed)
    if previously_failed:
        echo(f"{len(previously_failed)} job(s) failed before (see jobs/*.error.json); --retry-failed runs them again")
    return todo, counts


# -- planning ----------------------------------------------------------------------------------------


def count_tokens(config: RunConfig, tokenizer_model: str) -> dict[str, int]:
    """Tokens of one run: its training set (one epoch, after truncation) and its evaluation sets."""
    import datasets

    from .data import load_task_data, with_labels
    from .tasks.common import token_count

    datasets.disable_progress_bars()  # plan prints one line per job instead
    tokenizer = _tokenizer(tokenizer_model)
    train = evaluation = dev = 0
    for name in config.tasks:
        data_config = config.data_for(name)
        task = with_labels(config.registry.get(name), data_config)
        data = load_task_data(task, data_config, seed=config.seed)
        train += token_count(task.family.encode(data.train, tokenizer, data_config, train=True))
        dev += token_count(task.family.encode(data.dev, tokenizer, data_config, train=False))
        evaluation += sum(
            token_count(task.family.encode(ds, tokenizer, data_config, train=False)) for ds in data.evaluation.values()
        )
    return {"train": train, "evaluation": evaluation, "dev": dev}


_TOKENIZERS: dict[str, Any] = {}


def _tokenizer(model: str):
    if model not in _TOKENIZERS:
        from transformers import AutoTokenizer

        from .backbones import resolve_model

        _TOKENIZERS[model] = AutoTokenizer.from_pretrained(resolve_model(model))
    return _TOKENIZERS[model]


def measured_throughput(grid: Grid) -> dict[tuple[str, str], float]:
    """Training tokens per second of the finished jobs, by (backbone label, adapter | full)."""
    tokens: Counter = Counter()
    seconds: Counter = Counter()
    for record in grid.results().values():
        if record.get("train_tokens") and record.get("train_seconds"):
            key = (record["labels"]["model"], get_mode(record["labels"]["mode"]).kind)
            tokens[key] += record["train_tokens"]
            seconds[key] += record["train_seconds"]
    return {k: tokens[k] / seconds[k] for k in tokens if seconds[k] > 0}


def plan(grid: Grid, count: bool = True, questions: tuple[str, ...] | None = None) -> list[dict]:
    """One row per job: id, kind, status, needs, and (``count``) training / evaluation tokens and an
    estimate of seconds (:func:`adapterxl.cost.run_seconds`) from measured throughput (finished jobs
    of the same backbone and kind) or the grid's ``throughput``. Token counts are cached in
    ``<results_dir>/plan-tokens.json``. ``questions``: only those questions' jobs (and what they need)."""
    cache_path = grid.results_dir / "plan-tokens.json"
    cache = _read(cache_path) if cache_path.is_file() else {}
    measured = measured_throughput(grid)
    probe_path = grid.results_dir / "plan-probe.json"
    probe = read_record(probe_path) or {}  # None when missing or damaged
    rows = []
    wanted = grid.question_jobs(questions) if questions else None
    for job in grid.jobs:
        if wanted is not None and job.id not in wanted:
            continue
        row = {"id": job.id, "kind": job.kind, "status": grid.status(job), "needs": job.needs, **job.labels}
        if count and job.config is not None:
            spec = job.config.to_dict()
            key = hashlib.sha256(
                json.dumps(
                    [spec["task"], spec["data"], spec["task_data"], job.labels["model"]]
                    + ([job.config.declarations()] if job.config.declarations() else []),
                    sort_keys=True,
                ).encode()
            ).hexdigest()[:16]
            if key not in cache:
                try:
                    cache[key] = count_tokens(job.config, job.backbone)
                except (OSError, HubUnavailable) as exc:  # no Hub access, no tokenizer: the table of dataset sizes
                    estimate = estimated_tokens(job.config)
                    if estimate is None:
                        raise ConfigError(
                            f"plan: cannot count the tokens of job {job.id} ({type(exc).__name__}: {first_line(exc)}) "
                            "and its task is not in the table of known dataset sizes: make its data and tokenizer "
                            "loadable here, or run plan with --no-count"
                        ) from exc
                    row["tokens_source"] = "estimate"  # from published sizes: not cached, counted when possible
                    tokens = estimate
                else:
                    tokens = cache[key]
            else:
                tokens = cache[key]
            row.setdefault("tokens_source", "counted")
            mode = get_mode(job.config.mode)
            row["train_tokens"] = int(tokens["train"] * run_epochs(job.config))
            # zero-shot evaluation + the English dev set at every dev evaluation
            row["eval_tokens"] = int(tokens["evaluation"] + tokens.get("dev", 0) * dev_evaluations(job.config))
            kind = mode.kind
            here = probe.get(f"{job.labels['model']}/{kind}")
            rate = measured.get((job.labels["model"], kind)) or (here or {}).get("train") or grid.throughput.get(kind)
            row["throughput_source"] = (
                "measured"
                if (job.labels["model"], kind) in measured
                else "probed"
                if here
                else ("configured" if rate else None)
            )
            if rate:
                evaluation = (here or {}).get("evaluation") or grid.throughput.get("evaluation")
                overhead = {kind: (here or {}).get("overhead", 0.0)}
                rates = Throughput({kind: rate}, evaluation, overhead)
                row["estimate_seconds"] = run_seconds(row["train_tokens"], row["eval_tokens"], kind, rates)
        rows.append(row)
    if count:
        write_json(cache_path, cache)
    return rows


def plan_summary(rows: list[dict], gpus: int | None = None) -> dict:
    """Totals of :func:`plan`'s rows: jobs by status and kind, and for the jobs still to do their
    training tokens, estimated seconds (of those with a throughput) and how many lack one. ``gpus``:
    also the wall time on that many GPUs, one job each, every job starting once its needs are done
    (:func:`adapterxl.cost.makespan`; as ``run --ray`` schedules them), when every job to do has an
    estimate (retrieval jobs: none, so they count as taking no time)."""
    from .cost import makespan

    todo = [r for r in rows if r["status"] != "done"]
    counted = [r for r in todo if "train_tokens" in r]
    estimated = [r["estimate_seconds"] for r in todo if "estimate_seconds" in r]
    parallel = None
    if gpus is not None and len(estimated) == len(counted):
        seconds = {r["id"]: r.get("estimate_seconds", 0.0) for r in todo}
        parallel = {"gpus": gpus, **makespan(seconds, {r["id"]: r["needs"] for r in todo}, gpus)}
    return {
        "parallel": parallel,
        "jobs": len(rows),
        "status": {k: sum(r["status"] == k for r in rows) for k in ("done", "failed", "pending")},
        "kinds": {k: sum(r["kind"] == k for r in rows) for k in JOB_KINDS},
        "todo_train_tokens": sum(r["train_tokens"] for r in counted),
        "todo_estimate_seconds": sum(estimated) if estimated else None,
        "todo_without_throughput": len(counted) - len(estimated),
    }


def probe(grid: Grid, steps: int = 50, echo=print) -> dict:
    """Time a short run of each job kind (adapter / full) per backbone on this machine: the seconds
    before training (model and data loading, tokenization), training tokens per second over
    ``steps`` steps and evaluation tokens per second. Saved as ``plan-probe.json``, which
    :func:`plan` uses for jobs that no finished job has measured. Trains nothing that is kept."""
    import tempfile

    from .pipeline import evaluate_stage, prepare, train_stage
    from .tasks.common import token_count

    out: dict[str, dict] = {}
    for job in grid.jobs:
        if job.config is None or job.needs:
            continue
        key = f"{job.labels['model']}/{get_mode(job.config.mode).kind}"
        if key in out:
            continue
        with tempfile.TemporaryDirectory(prefix="adapterxl-probe-") as tmp:
            training = dataclasses.replace(job.config.training, max_steps=steps, save_steps=None, report_to=[])
            config = dataclasses.replace(
                job.config, training=training, store=f"{tmp}/store", output_dir=f"{tmp}/run", save_as="probe",
                overwrite=True,
            )  # fmt: skip
            echo(f"probing {key} with {job.id} ({steps} steps) ...")
            start = time.perf_counter()
            prepared = prepare(config)
            overhead = time.perf_counter() - start
            trained = train_stage(prepared)
            encoded = [enc[0] for enc in prepared.encoded.values()]
            mean_tokens = sum(token_count(e) for e in encoded) / max(1, sum(len(e) for e in encoded))
            tokens = trained.last.steps * training.batch_size * training.gradient_accumulation_steps * mean_tokens
            start = time.perf_counter()
            evaluate_stage(prepared)
            eval_seconds = time.perf_counter() - start
            eval_tokens = sum(
                token_count(t.family.encode(ds, prepared.tokenizer, config.data_for(n), train=False))
                for n, t in prepared.tasks.items()
                for ds in prepared.data[n].evaluation.values()
            )
        evaluation = eval_tokens / max(eval_seconds, 1e-6)
        # train_stage's time includes the dev evaluation after the last step: take it out
        dev_tokens = sum(token_count(enc[1]) for enc in prepared.encoded.values())
        train_seconds = max(trained.last.seconds - dev_tokens / evaluation, 1e-6)
        out[key] = {
            "overhead": round(overhead, 2),
            "train": tokens / train_seconds,
            "evaluation": evaluation,
            "steps": trained.last.steps,
        }
    grid.results_dir.mkdir(parents=True, exist_ok=True)
    write_json(grid.results_dir / "plan-probe.json", out)
    return out
