"""One path from a run config to a trained, evaluated and stored result.

``run(config)``: check everything that can be checked (task, languages, adapter config, store
entries, base-model match, data loadable with the right columns and labels) *before* training;
then build the model for the mode, train on English with English dev selection, evaluate zero-shot
on every language, save the adapter (or setup) atomically to the store, and write a manifest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import console
from .backbones import backbone_source, resolve_model, source_files
from .config import DataConfig, RunConfig, check_data, dump_runs, load_runs, parse_sampling
from .data import load_task_data, training_languages, with_labels
from .errors import AdapterXLError, ConfigError, StoreError
from .evaluation import FusionAttention, evaluate_dataset, evaluate_languages, summarize
from .files import save_model_folder, write_json
from .locks import Lock
from .manifest import ADAPTER_ENTRY, Manifest, git_commit, versions
from .modeling import (
    check_compatible,
    compose,
    count_parameters,
    entry_kind,
    load_backbone,
    load_stored,
    model_identity,
    pinned_source,
    save_to_folder,
    setup_mode,
    start_fusion,
)
from .modes import get_mode, parse_adapter_config
from .store import AdapterStore, StoreEntry, model_card
from .tasks import BUILTIN, Task, TaskRegistry
from .tasks.common import token_count
from .training import TaskBatchCollator, TrainResult, multitask_batches, train


@dataclass
class RunResult:
    """What a run produced: metrics per language and where its artefacts are."""

    name: str
    task: str
    mode: str
    metrics: dict[str, dict[str, float]]
    summary: dict[str, float]
    run_dir: str
    store_entry: str | None = None
    model_dir: str | None = None
    manifest: Manifest | None = field(default=None, repr=False)
    reused: bool = False  # a finished run of the same config, not run again (run_all)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("manifest", "reused")}


@dataclass
class Inputs:
    """The store entries a run builds on, checked against its backbone."""

    intermediates: list[StoreEntry]
    languages: dict[str, StoreEntry]  # language -> language adapter
    source: str | None = None  # the backbone's source these entries were trained on (backbones.resolve_model)


def preflight(config: RunConfig, produced: dict[str, Manifest] | None = None) -> Inputs:
    """Every check that needs no model and no data: adapter config, store entries, base-model
    match, composition (stack, fusion), language adapters, store and run folder writable.
    ``produced``: entries that earlier runs of the same file will save (checked by their planned
    manifests, as they do not exist yet)."""
    store = AdapterStore(config.store)
    mode = get_mode(config.mode)
    check_paths(config)
    if not mode.full:
        parse_adapter_config(config.adapter)
        store.check_writable(config.name, config.overwrite)

    def entry(name: str) -> StoreEntry:
        if produced and name in produced:
            return StoreEntry(name, store.path(name), produced[name])
        return store.verify(name)

    intermediates = [entry(name) for name in config.intermediate]
    languages = {lang: entry(name) for lang, name in config.language_adapters.items()}
    source = pinned_source([*intermediates, *languages.values()])
    for entry in [*intermediates, *languages.values()]:
        check_compatible(entry, config.model, source)
    for lang, entry in languages.items():
        trained_on = entry.manifest.train_languages
        if trained_on and lang not in trained_on:
            raise ConfigError(
                f"language_adapters maps {lang!r} to {entry.name!r}, a language adapter trained on {trained_on}: "
                f"give {lang!r} an adapter trained on {lang} text (task mlm, data.train_languages: [{lang}])"
            )
    mode.preflight(config.adapter, intermediates)
    _check_sequence_length(config)
    if (config.run_dir / "manifest.json").is_file() and not config.overwrite:
        raise ConfigError(
            f"run folder {str(config.run_dir)!r} already holds a finished run: choose another save_as "
            "or output_dir, or set overwrite: true"
        )
    return Inputs(intermediates, languages, source)


def head_names(name: str, tasks: dict[str, Task]) -> tuple[dict[str, Task], dict[str, str]]:
    """``({head: task}, {task: head})``: one run, one head named after it; multi-task, one head per
    task (``NAME-TASK``), except that classification tasks with one label set share one head (as
    ANLI+ shares its NLI head)."""
    if len(tasks) == 1:
        task = next(iter(tasks.values()))
        return {name: task}, {task.name: name}
    heads: dict[str, Task] = {}
    task_head: dict[str, str] = {}
    for task in tasks.values():
        shared = [
            h
            for h, t in heads.items()
            if task.family.name == "classification" and t.family is task.family and t.labels == task.labels
        ]
        if shared:
            task_head[task.name] = shared[0]
        else:
            task_head[task.name] = f"{name}-{task.name}"
            heads[task_head[task.name]] = task
    return heads, task_head


# -- the stages of a run -----------------------------------------------------------------------------


@dataclass
class Prepared:
    """A run ready to train: checked inputs, data, encodings, and the model set up for its mode."""

    config: RunConfig
    inputs: Inputs
    tasks: dict[str, Task]
    data: dict  # task -> data.TaskData
    encoded: dict  # task -> (encoded train, encoded dev)
    model: Any
    tokenizer: Any
    core: Any  # the mode's composition of the run's adapters (modeling.setup_mode)
    heads: dict[str, Task]  # head -> task
    task_head: dict[str, str]  # task -> head
    train_language: str | None  # the language adapter under the task adapters in training (MAD-X)
    parameters: dict[str, int]

    @property
    def primary(self) -> Task:
        return self.tasks[self.config.tasks[0]]


@dataclass
class Trained:
    """What training did, phase by phase (``train``, and ``fusion`` for a fusion mode)."""

    phases: dict[str, TrainResult]
    parameters: dict[str, int]  # trainable / total of the last phase
    sampling: dict | None = None  # multi-task: the sampling spec, probabilities and batches seen

    @property
    def last(self) -> TrainResult:
        return self.phases[list(self.phases)[-1]]


@dataclass
class Evaluated:
    """Zero-shot results: per task (or, for one task, directly) per language."""

    metrics: dict
    summary: dict
    fusion_attention: dict[str, dict] = field(default_factory=dict)
    language_adapters: dict[str, str] = field(default_factory=dict)  # language -> adapter used


def prepare(config: RunConfig) -> Prepared:
    """Check everything, load the data (every data error surfaces here, before training), load the
    backbone and set the mode up on it, and encode the training and dev data."""
    from transformers import set_seed

    inputs = preflight(config)
    tasks = {name: with_labels(task, config.data_for(name)) for name, task in config.task_objects().items()}
    data = {name: load_task_data(task, config.data_for(name), seed=config.seed) for name, task in tasks.items()}
    primary = tasks[config.tasks[0]]
    set_seed(config.seed)
    model, tokenizer = load_backbone(config.model, inputs.source)
    heads, task_head = head_names(config.name, tasks)
    language_entry = inputs.languages.get(primary.train_language)
    train_language = language_entry and language_entry.name
    core = setup_mode(model, config.mode, config.name, primary, config.adapter, inputs.intermediates, heads=heads,
                      language_adapters=list(inputs.languages.values()), language=train_language)  # fmt: skip
    parameters = count_parameters(model)
    encoded = {
        name: (
            task.family.encode(data[name].train, tokenizer, config.data_for(name), train=True),
            task.family.encode(data[name].dev, tokenizer, config.data_for(name), train=False),
        )
        for name, task in tasks.items()
    }
    return Prepared(config, inputs, tasks, data, encoded, model, tokenizer, core, heads, task_head, train_language,
                    parameters)  # fmt: skip


def train_stage(run: Prepared) -> Trained:
    """Train on English (or the configured training languages) with dev selection; a fusion mode
    then trains its fusion layer as a second phase."""
    config, model, train_cfg = run.config, run.model, run.config.training

    def evaluate_dev(m) -> dict[str, float]:
        scores = {}
        for name, task in run.tasks.items():
            m.active_head = run.task_head[name]
            result = evaluate_dataset(m, run.tokenizer, task, run.data[name].dev, task.train_language or "dev",
                                      config.data_for(name), train_cfg.eval_batch_size, train_cfg.bf16,
                                      encoded=run.encoded[name][1])  # fmt: skip
            scores[name] = result[task.metric]
        m.active_head = next(iter(run.heads))
        return {dev_metric: sum(scores.values()) / len(scores)}

    dev_metric = "mean" if config.multitask else run.primary.metric  # of the tasks' metrics, multi-task

    sampling = None
    if config.multitask:
        sizes = {name: len(run.encoded[name][0]) for name in run.tasks}
        train_ds = multitask_batches(sizes, parse_sampling(config.sampling, config.tasks), train_cfg, config.seed)
        collator = TaskBatchCollator(
            {name: enc[0] for name, enc in run.encoded.items()},
            {name: task.family.collator(run.tokenizer) for name, task in run.tasks.items()},
            {name: run.task_head[name] for name in run.tasks},
        )
        sampling = {"spec": config.sampling, "train_sizes": sizes, "probabilities": train_ds.probabilities,
                    "batches_drawn": train_ds.counts}  # fmt: skip
    else:
        train_ds, collator = run.encoded[run.primary.name][0], run.primary.family.collator(run.tokenizer)
    label_names = tuple(dict.fromkeys(n for t in run.tasks.values() for n in t.family.label_names))
    trainer_dir = _trainer_dir(config)

    def phase(name: str, **schedule) -> TrainResult:
        return train(model, train_ds, collator, train_cfg, config.mode, trainer_dir / name, config.seed,
                     evaluate_dev, dev_metric, label_names, **schedule, label=config.name,
                     logging_dir=config.run_dir / "logs" / name)  # fmt: skip

    phases = {"train": phase("train")}
    parameters = run.parameters
    if get_mode(config.mode).fusion:  # the target adapter trained first; now the fusion layer
        start_fusion(model, run.core, config.name, config.fusion.config, config.fusion.joint, run.train_language)
        parameters = count_parameters(model)
        phases["fusion"] = phase("fusion", learning_rate=config.fusion.learning_rate, epochs=config.fusion.epochs)
    if sampling:
        seen = collator.seen
        sampling = {**sampling, "batches_seen": seen, "shares_seen": _shares(seen)}
    return Trained(phases, parameters, sampling)


def evaluate_stage(run: Prepared) -> Evaluated:
    """Zero-shot evaluation of every task on every language; with language adapters, each
    language's own (MAD-X); with fusion, the attention each language gives each adapter."""
    config, model = run.config, run.model
    mode = get_mode(config.mode)
    metrics, summary, attention, used = {}, {}, {}, {}
    for name, task in run.tasks.items():
        model.active_head = run.task_head[name]
        task_data = run.data[name]
        # The English evaluation set is often the dev set itself: reuse its encoding.
        reuse = {lang: run.encoded[name][1] for lang, ds in task_data.evaluation.items() if ds is task_data.dev}

        def per_language(lang: str):
            if run.inputs.languages:  # MAD-X: the language's own adapter when it has one
                entry = run.inputs.languages.get(lang, run.inputs.languages.get(run.primary.train_language))
                used[lang] = entry.name
                model.active_adapters = compose(run.core, entry.name)
            if mode.fusion:
                attention[lang] = FusionAttention()
                return attention[lang]
            return None

        metrics[name] = evaluate_languages(model, run.tokenizer, task, task_data.evaluation, config.data_for(name),
                                           config.training.eval_batch_size, config.training.bf16, encoded=reuse,
                                           per_language=per_language)  # fmt: skip
        summary[name] = summarize(metrics[name], task)
    if not mode.full:
        model.active_adapters = compose(run.core, run.train_language)
    model.active_head = next(iter(run.heads))
    if not config.multitask:
        metrics, summary = metrics[run.primary.name], summary[run.primary.name]
    else:
        summary = {"metric": "mean", "avg": sum(s["avg"] for s in summary.values()) / len(summary), "tasks": summary}
    return Evaluated(metrics, summary, {lang: obs.result() for lang, obs in attention.items()}, used)


def manifest_for(run: Prepared, trained: Trained, evaluated: Evaluated) -> Manifest:
    """The run's :class:`~adapterxl.manifest.Manifest` (without the store's checksums)."""
    config, model, primary, mode = run.config, run.model, run.primary, get_mode(run.config.mode)
    train_cfg, phases = config.training, trained.phases
    adapter_config = None if mode.full else config.adapter
    if mode.continues_intermediate:
        adapter_config = run.inputs.intermediates[0].manifest.adapter_config or config.adapter
    encoded = [enc[0] for enc in run.encoded.values()]
    examples_per_step = train_cfg.batch_size * train_cfg.gradient_accumulation_steps
    mean_tokens = sum(token_count(e) for e in encoded) / max(1, sum(len(e) for e in encoded))
    resumed = {k: p.resumed_from for k, p in phases.items() if p.resumed_from is not None}
    return Manifest(
        name=config.name,
        task="+".join(config.tasks),
        tasks=config.tasks,
        task_family=primary.family.name,
        labels=list(primary.labels),
        task_declarations={name: t.declaration for name, t in run.tasks.items() if t.declaration},
        mode=config.mode,
        adapter_config=adapter_config,
        base_model=config.model,
        base_model_source=backbone_source(config.model, run.inputs.source),
        base_model_revision=getattr(model.config, "_commit_hash", None),
        setup=None if mode.full else setup_names(model.active_adapters),
        composition=None if mode.full else str(model.active_adapters),
        head=config.name,
        heads={head: task.name for head, task in run.heads.items()},
        seed=config.seed,
        license=config.license,
        config=config.to_dict(),
        versions=versions(),
        git_commit=git_commit(),
        device=str(next(model.parameters()).device),
        parameters=trained.parameters,
        data_sizes={n: d.sizes() for n, d in run.data.items()} if config.multitask else run.data[primary.name].sizes(),
        train_languages=list(training_languages(primary, config.data_for(primary.name))),
        dev={
            "metric": "mean of the tasks' " if config.multitask else primary.metric,
            "best": trained.last.best_dev,
            "best_step": trained.last.best_step,
            "steps": trained.last.steps,
            "history": trained.last.history,
        },
        eval_split=config.data.eval_split,
        metrics=evaluated.metrics,
        summary=evaluated.summary,
        train_seconds=round(sum(p.seconds for p in phases.values()), 2),
        train_tokens=int(sum(p.steps for p in phases.values()) * examples_per_step * mean_tokens),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        kind=None if mode.full else entry_kind(model.active_adapters),
        fusion={
            "phases": {k: {"best": v.best_dev, "steps": v.steps, "history": v.history} for k, v in phases.items()},
            "attention": evaluated.fusion_attention,
        }
        if mode.fusion
        else None,
        initialized_from=run.inputs.intermediates[0].name if mode.continues_intermediate else None,
        resumed_from_step=resumed or None,
        sampling=trained.sampling,
        language_adapters=evaluated.language_adapters or None,
    )


def record(run: Prepared, trained: Trained, evaluated: Evaluated, started: float) -> RunResult:
    """Save the adapter (or setup) to the store, or the full model to the run folder, atomically;
    then the run's config and manifest; the Trainer's checkpoints go."""
    config, model = run.config, run.model
    manifest = manifest_for(run, trained, evaluated)
    result = RunResult(config.name, manifest.task, config.mode, evaluated.metrics, evaluated.summary,
                       str(config.run_dir))  # fmt: skip
    if get_mode(config.mode).full:
        provenance = source_files(config.model, run.inputs.source)  # fine-tuned from the offline copy: say so
        target = config.run_dir / "model"
        result.model_dir = str(save_model_folder(model, run.tokenizer, target, provenance, replace=True))
    else:
        setup, store = model.active_adapters, AdapterStore(config.store)
        entry = store.save(
            config.name,
            lambda folder: save_to_folder(model, setup, config.name, folder, list(run.heads)),
            manifest,
            model_card(manifest, location=str(store.path(config.name))),  # manifest_for set its kind
        )
        result.store_entry = str(entry.path)
    manifest.wall_seconds = round(time.perf_counter() - started, 2)
    dump_runs([config], config.run_dir / "config.yaml")
    write_json(config.run_dir / "manifest.json", manifest.to_dict())
    shutil.rmtree(_trainer_dir(config, create=False), ignore_errors=True)  # checkpoints only continue this run
    result.manifest = manifest
    return result


def run(config: RunConfig) -> RunResult:
    """Train and evaluate one run: prepare, train, evaluate, record (see the module docstring).
    The run's store entry and run folder are locked throughout: a second process writing the same
    name is refused at once (:mod:`adapterxl.locks`)."""
    started = time.perf_counter()
    with run_locks(config), console.run_log(config.run_dir / "log.txt"):
        prepared = prepare(config)
        trained = train_stage(prepared)
        evaluated = evaluate_stage(prepared)
        return record(prepared, trained, evaluated, started)


@contextlib.contextmanager
def run_locks(config: RunConfig):
    """Hold the locks of what ``config`` writes: its run folder and (adapter modes) its store entry."""
    check_paths(config)
    with contextlib.ExitStack() as stack:
        run_dir = config.run_dir
        stack.enter_context(Lock(run_dir.with_name(f".{run_dir.name}.lock"), f"run folder {str(run_dir)!r}"))
        if not get_mode(config.mode).full:
            stack.enter_context(AdapterStore(config.store).lock(config.name))
        yield


def check_paths(config: RunConfig) -> None:
    """The store and run folder can be created and written (a file in their way is an error)."""
    for what, path in (("store", Path(config.store)), ("run folder", config.run_dir)):
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise ConfigError(
                f"{what} {str(path)!r} cannot be created: {str(blocking)!r} is a file. Point "
                f"{'store' if what == 'store' else 'output_dir / save_as'} at a folder"
            )
        existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
        if not os.access(existing, os.W_OK):
            raise ConfigError(f"{what} {str(path)!r} is not writable ({str(existing)!r} is read-only)")


def _trainer_dir(config: RunConfig, create: bool = True) -> Path:
    """The run's scratch folder for Trainer checkpoints (``training.save_steps``). Checkpoints left
    by an interrupted run of the *same* config are kept (training continues from them); those of
    another config are removed."""
    trainer_dir = config.run_dir / "trainer"
    if not create:
        return trainer_dir
    stamp = trainer_dir / "config.json"
    spec = {k: v for k, v in config.to_dict().items() if k != "overwrite"}
    if config.declarations():  # a declared task is defined by its declaration (its data files)
        spec["task_declarations"] = config.declarations()
    spec = json.dumps(spec, sort_keys=True)
    if trainer_dir.is_dir() and (not stamp.is_file() or stamp.read_text(encoding="utf-8") != spec):
        shutil.rmtree(trainer_dir)
    trainer_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(spec, encoding="utf-8")
    return trainer_dir


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total if total else 0.0 for k, v in counts.items()}


def setup_names(setup) -> list[str]:
    """The adapter names of an active setup, in order (``Stack[a, Fuse[b, c]]`` -> a, b, c)."""
    if isinstance(setup, str):
        return [setup]
    return [n for child in setup.children for n in setup_names(child)]


def finished(config: RunConfig) -> RunResult | None:
    """The result of ``config`` when its run folder holds a finished run of this very config
    (same settings, ``overwrite`` aside) and its output is still there; else None."""
    path = config.run_dir / "manifest.json"
    if config.overwrite or not path.is_file():
        return None
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (ValueError, StoreError):
        return None  # damaged: not finished
    same = {k: v for k, v in manifest.config.items() if k != "overwrite"} == {
        k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k != "overwrite"
    }
    full = get_mode(config.mode).full
    output = config.run_dir / "model" if full else AdapterStore(config.store).path(config.name)
    if not same or not (output / ("config.json" if full else "manifest.json")).is_file():
        return None
    return RunResult(config.name, manifest.task, config.mode, manifest.metrics, manifest.summary, str(config.run_dir),
                     None if full else str(output), str(output) if full else None, manifest)  # fmt: skip


def check_runs(configs: list[RunConfig], check_data_files: bool | None = None) -> None:
    """Check every run before the first trains: paths, adapter configs, the store entries each
    builds on (in the store, or made by an earlier run of the list: then checked against that
    run's config), composition rules, sequence length against the model's positions, and (with
    several runs, or ``check_data_files``) every run's data: files, columns, labels."""
    produced: dict[str, Manifest] = {}  # store name -> what an earlier run of the list will save
    check_data_files = len(configs) > 1 if check_data_files is None else check_data_files
    seen_data: set[str] = set()
    for i, config in enumerate(configs):
        try:
            _check_run(config, produced, check_data_files, seen_data)
        except AdapterXLError as exc:
            if len(configs) == 1:
                raise
            raise type(exc)(f"run {i + 1} of {len(configs)} ({config.name}), checked before any trains: {exc}") from exc


def _check_run(config: RunConfig, produced: dict, check_data_files: bool, seen_data: set) -> None:
    """One run of :func:`check_runs`; ``produced`` gains the entry it will save."""
    preflight(config, produced)
    if check_data_files:
        for name, task in config.task_objects().items():
            key = json.dumps([name, dataclasses.asdict(config.data_for(name)), config.seed], sort_keys=True)
            if key not in seen_data:
                seen_data.add(key)
                load_task_data(with_labels(task, config.data_for(name)), config.data_for(name), seed=config.seed)
    if not get_mode(config.mode).full:
        produced[config.name] = Manifest(
            config.name, config.model, task="+".join(config.tasks), kind=ADAPTER_ENTRY, mode=config.mode,
            adapter_config=config.adapter, train_languages=list(training_languages(
                config.task_objects()[config.tasks[0]], config.data_for(config.tasks[0])
            )),
        )  # fmt: skip


def _check_sequence_length(config: RunConfig) -> None:
    """``data.max_seq_length`` (or a family's default) must fit the model's position embeddings."""
    from transformers import AutoConfig

    location = resolve_model(config.model)
    try:
        model_config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError):
        return  # not loadable here (yet): loading the model says why
    positions = getattr(model_config, "max_position_embeddings", None)
    if not positions:
        return
    offset = (model_config.pad_token_id or 0) + 1 if "roberta" in model_config.model_type else 0  # XLM-R: 514 - 2
    for name, task in config.task_objects().items():
        length = config.data_for(name).max_seq_length or task.family.default_max_length
        if length > positions - offset:
            where = f"task_data.{name}" if name in config.task_data else "data"
            raise ConfigError(
                f"{where}.max_seq_length {length} is longer than model {config.model!r} can read "
                f"({positions - offset} tokens): set {where}.max_seq_length to at most {positions - offset}"
            )


def run_all(
    configs: list[RunConfig], results_path: str | Path | None = None, on_start=None, on_result=None
) -> list[RunResult]:
    """Check every run (:func:`check_runs`), then run them in order; a run whose folder already
    holds a finished run of the same config is not run again (its result is reused), so a file
    whose later run failed reruns from there. After each run, ``results_path`` (if given) is
    rewritten with every result so far; ``on_start(i, config)`` and ``on_result(result)`` report
    progress (``result.resumed`` is True for a reused result)."""
    done = {i: r for i, config in enumerate(configs) if (r := finished(config)) is not None}
    todo = [c for i, c in enumerate(configs) if i not in done]
    with contextlib.ExitStack() as locks:  # everything the file writes, locked before the checks
        for config in todo:
            locks.enter_context(run_locks(config))
        check_runs(todo)
        results = []
        for i, config in enumerate(configs):
            if on_start:
                on_start(i, config)
            results.append(done.get(i) or run(config))
            results[-1].reused = i in done
            if on_result:
                on_result(results[-1])
            if results_path:
                write_json(Path(results_path), {"runs": [r.to_dict() for r in results]})
    return results


def results_path_for(config_path: str | Path) -> Path:
    """Where the results of a config file go: ``<config>.results.json`` next to it."""
    path = Path(config_path)
    return path.with_name(path.stem + ".results.json")


def run_file(path: str | Path, overrides: dict | None = None, **callbacks) -> list[RunResult]:
    """Run every run of a config file in order; write ``<config>.results.json`` next to it."""
    return run_all(load_runs(path, overrides), results_path_for(path), **callbacks)


def _stored_entry(adapter: str | None, model: str | None, store: str | None) -> StoreEntry | None:
    """The store entry to evaluate, checked against ``model`` (a local copy of its base model)."""
    from .config import default_store

    if adapter is None and model is None:
        raise ConfigError("name a stored adapter (--adapter NAME) or a model (--model ID_OR_PATH)")
    entry = AdapterStore(store or default_store()).verify(adapter) if adapter else None
    if entry and model and model_identity(model) != model_identity(entry.base_model):
        raise StoreError(
            f"adapter {entry.name!r} was trained on base model {entry.base_model!r}, not {model!r}: "
            "leave out --model to use the adapter's own base model"
        )
    return entry


def _entry_tasks(entry: StoreEntry | None, tasks: TaskRegistry) -> TaskRegistry:
    """``tasks`` plus the tasks declared in the entry's manifest that ``tasks`` lacks: a declaration
    the caller gives (``--tasks FILE``: paths on this machine) wins over the one saved with the
    entry (paths as on the training machine)."""
    saved = {n: d for n, d in (entry.manifest.task_declarations if entry else {}).items() if n not in tasks}
    return tasks.declare(saved, f"store entry {entry.name!r}: task_declarations") if saved else tasks


def _saved_head_labels(model: str) -> tuple[str, ...]:
    """The labels of the one prediction head saved in a model folder (a 'full' run's), in index order:
    from its ``label2id``, or choice indices for a multiple-choice head; () if there is none."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return ()
    heads = json.loads(config.read_text(encoding="utf-8")).get("prediction_heads") or {}
    if len(heads) != 1:
        return ()
    head = next(iter(heads.values()))
    if head.get("label2id"):
        return tuple(name for name, _ in sorted(head["label2id"].items(), key=lambda item: item[1]))
    return tuple(str(i) for i in range(head.get("num_choices") or 0))


def evaluate_setup(
    task_name: str,
    adapter: str | None = None,
    model: str | None = None,
    store: str | None = None,
    data: DataConfig | None = None,
    batch_size: int = 64,
    bf16: bool | str = "auto",
    tasks: TaskRegistry = BUILTIN,
) -> dict:
    """Evaluate a stored adapter or setup (``adapter``), or a fully fine-tuned model folder
    (``model`` alone), on ``task_name`` in ``data.languages`` (default: all of the task's).

    The backbone is the entry's base model unless ``model`` names another location of the same
    model (a local copy). ``task_name`` resolves in ``tasks`` and the tasks the entry was trained
    on (their declarations travel with it). Returns ``{"metrics": {lang: {...}}, "summary": {...}, ...}``.
    """
    entry = _stored_entry(adapter, model, store)
    task = _entry_tasks(entry, tasks).get(task_name)
    if task.kind == "retrieval":
        raise ConfigError(f"task {task.name!r} is a retrieval task: use `adapterxl retrieve` (adapterxl.retrieve)")
    data = data or DataConfig()
    check_data(task, data)
    if not task.labels and task.family.has_labels:  # a label set read from training data (CCG, declared tasks)
        if entry:
            labels, origin = tuple(entry.manifest.labels), f"saved with store entry {entry.name!r}"
        else:
            labels, origin = _saved_head_labels(model), f"the head of the model in {model}"
        if not labels:
            raise ConfigError(
                f"task {task.name!r} takes its labels from its training data, and {model!r} does not record them "
                "(no prediction head with labels): evaluate a model saved by a 'full' run, or declare labels:"
            )
        task = dataclasses.replace(task, labels=labels, labels_from=origin)
    datasets = load_task_data(task, data, train=False).evaluation
    backbone, tokenizer = load_backbone(model or entry.base_model, pinned_source([entry]) if entry else None)
    head = load_stored(backbone, entry) if entry else backbone.active_head
    if head is None or head not in backbone.heads:
        raise ConfigError(f"model {model!r} has no prediction head: evaluate a model saved by a 'full' run")
    problem = task.family.check_head(backbone, head, task)
    if problem:
        raise ConfigError(f"cannot evaluate on {task.name!r}: {problem}")
    attention: dict[str, FusionAttention] = {}
    fused = "Fuse[" in str(backbone.active_adapters)

    def per_language(lang: str):
        if fused:  # report which fused adapter each language leans on
            attention[lang] = FusionAttention()
            return attention[lang]
        return None

    metrics = evaluate_languages(backbone, tokenizer, task, datasets, data, batch_size, bf16, per_language=per_language)
    result = {
        "task": task.name,
        "adapter": adapter,
        "model": model or entry.base_model,
        "eval_split": data.eval_split,
        "metrics": metrics,
        "summary": summarize(metrics, task),
    }
    if attention:
        result["fusion_attention"] = {lang: obs.result() for lang, obs in attention.items()}
    return result


def retrieve(
    task_name: str,
    adapter: str | None = None,
    model: str | None = None,
    store: str | None = None,
    data: DataConfig | None = None,
    layer: int | None = None,
    batch_size: int = 64,
    direction: str = "en->xx",
    precision: str = "float32",
    bucc_dir: str | None = None,
    bf16: bool | str = "auto",
    tasks: TaskRegistry = BUILTIN,
) -> dict:
    """Sentence retrieval (``tatoeba``, ``bucc2018``, ``flores``, or a retrieval task declared in
    ``tasks``) straight off a model with a stored adapter or setup active (``adapter``), or off a
    plain model (``model``).

    Embeddings: ``hidden_states[layer]`` (default per depth, see :func:`adapterxl.embeddings.default_layer`),
    mean-pooled, inputs up to ``data.max_seq_length`` (default 512) tokens. The task's family
    decides the protocol (:mod:`adapterxl.tasks.retrieval`): ``direction`` is aligned pairs'
    (Tatoeba); ``bucc_dir`` holds the original BUCC files (else the Hub's pairs-only copy is used
    and the result says ``pairs_only``). Returns per-language metrics in the same format as the
    other tasks (plus what the family adds: FLORES averages by script and family).
    """

    from .data import retrieval_rows
    from .embeddings import default_layer, embed

    entry = _stored_entry(adapter, model, store)
    task = tasks.get(task_name)  # store entries hold trained tasks, never retrieval ones
    if task.kind != "retrieval":
        raise ConfigError(f"task {task.name!r} is not a retrieval task: use `adapterxl evaluate`")
    data = data or DataConfig(eval_split=task.family.default_split)
    check_data(task, data)
    languages = data.languages or list(task.languages)
    if not languages:
        raise ConfigError(f"task {task.name!r} needs data.languages (FLORES codes such as deu_Latn, swh_Latn)")
    if bucc_dir and not Path(bucc_dir).is_dir():
        raise ConfigError(f"BUCC folder {bucc_dir!r} does not exist")
    backbone, tokenizer = load_backbone(model or entry.base_model, pinned_source([entry]) if entry else None)
    if entry:
        load_stored(backbone, entry)
    layer = default_layer(backbone.config.num_hidden_layers) if layer is None else layer
    max_length = data.max_seq_length or task.family.default_max_length

    encoded: dict[tuple[str, ...], Any] = {}

    def encode(sentences: list[str]):
        """Sentence embeddings, once per list: a pivot's sentences (FLORES: English) are the same for
        every language, and encoding them again for each was half of a retrieval job's time."""
        key = tuple(sentences)
        if key not in encoded:
            encoded[key] = embed(backbone, tokenizer, sentences, layer, batch_size, max_length, bf16)
        return encoded[key]

    def rows(split: str, language: str):
        return retrieval_rows(task, language, split, data)

    options = {"direction": direction, "precision": precision, "bucc_dir": bucc_dir}
    metrics = {
        lang: task.family.evaluate(encode, task, lang, data, options, rows)
        for lang in console.progress(languages, desc=f"retrieval {task.name}", unit="lang")
    }
    result = {
        "task": task.name,
        "adapter": adapter,
        "model": model or entry.base_model,
        "layer": layer,
        "eval_split": data.eval_split,
        "metrics": metrics,
        "summary": summarize(metrics, task),
    }
    return {**result, **task.family.describe(task, result, options)}
