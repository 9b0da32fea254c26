"""One path from a run config to a trained, evaluated and stored result.

``run(config)``: check everything that can be checked (task, languages, adapter config, store
entries, base-model match, data loadable with the right columns and labels) *before* training;
then build the model for the mode, train on English with English dev selection, evaluate zero-shot
on every language, save the adapter (or setup) atomically to the store, and write a manifest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .backbones import backbone_source, source_files
from .config import DataConfig, RunConfig, check_data, dump_runs, load_runs, parse_sampling
from .data import load_task_data, training_languages, with_labels
from .errors import ConfigError, StoreError
from .evaluation import FusionAttention, evaluate_dataset, evaluate_languages, summarize
from .modeling import (
    check_compatible,
    compose,
    count_parameters,
    entry_kind,
    load_backbone,
    load_stored,
    model_identity,
    parse_adapter_config,
    pinned_source,
    save_to_folder,
    setup_mode,
    start_fusion,
)
from .modes import get_mode
from .store import AdapterStore, StoreEntry, model_card
from .tasks import TASKS, Task, declare_tasks, get_task
from .tasks.common import token_count
from .training import TaskBatchCollator, multitask_batches, train


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
    manifest: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "manifest"}


def versions() -> dict[str, str]:
    """Versions of the libraries that decide the numbers."""
    import adapters
    import datasets
    import torch
    import transformers

    return {
        "adapterxl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "adapters": adapters.__version__,
        "datasets": datasets.__version__,
    }


def git_commit() -> str | None:
    """The commit of the adapterxl checkout this code runs from, with ``-dirty`` for uncommitted
    changes; None for an installed copy (one that is not the top of its own git checkout)."""
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=package, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != package.parent:
            return None  # e.g. a virtual environment inside some other repository
        dirty = git("status", "--porcelain", "--", ".")
        return git("rev-parse", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class Inputs:
    """The store entries a run builds on, checked against its backbone."""

    intermediates: list[StoreEntry]
    languages: dict[str, StoreEntry]  # language -> language adapter
    source: str | None = None  # the backbone's source these entries were trained on (backbones.resolve_model)


def preflight(config: RunConfig) -> Inputs:
    """Every check that needs no model and no data: adapter config, store entries, base-model
    match, composition (stack, fusion), language adapters, store and run folder writable."""
    store = AdapterStore(config.store)
    mode = get_mode(config.mode)
    if not mode.full:
        parse_adapter_config(config.adapter)
        store.check_writable(config.name, config.overwrite)
    intermediates = [store.verify(name) for name in config.intermediate]
    languages = {lang: store.verify(name) for lang, name in config.language_adapters.items()}
    source = pinned_source([*intermediates, *languages.values()])
    for entry in [*intermediates, *languages.values()]:
        check_compatible(entry, config.model, source)
    for lang, entry in languages.items():
        trained_on = entry.manifest.get("train_languages")
        if trained_on and lang not in trained_on:
            raise ConfigError(
                f"language_adapters maps {lang!r} to {entry.name!r}, a language adapter trained on {trained_on}: "
                f"give {lang!r} an adapter trained on {lang} text (task mlm, data.train_languages: [{lang}])"
            )
    mode.preflight(config.adapter, intermediates)
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


def run(config: RunConfig) -> RunResult:
    """Train and evaluate one run; see the module docstring."""
    from transformers import set_seed

    started = time.perf_counter()
    inputs = preflight(config)
    tasks = {name: with_labels(get_task(name), config.data_for(name)) for name in config.tasks}
    # All data errors surface here, before training.
    data = {name: load_task_data(task, config.data_for(name), seed=config.seed) for name, task in tasks.items()}
    primary = tasks[config.tasks[0]]
    train_cfg = config.training

    set_seed(config.seed)
    model, tokenizer = load_backbone(config.model, inputs.source)
    heads, task_head = head_names(config.name, tasks)
    train_language = inputs.languages.get(primary.train_language)
    core = setup_mode(
        model,
        config.mode,
        config.name,
        primary,
        config.adapter,
        inputs.intermediates,
        heads=heads,
        language_adapters=list(inputs.languages.values()),
        language=train_language and train_language.name,
    )
    params = count_parameters(model)
    encoded = {
        name: (
            task.family.encode(data[name].train, tokenizer, config.data_for(name), train=True),
            task.family.encode(data[name].dev, tokenizer, config.data_for(name), train=False),
        )
        for name, task in tasks.items()
    }

    def evaluate_dev(m) -> dict[str, float]:
        scores = {}
        for name, task in tasks.items():
            m.active_head = task_head[name]
            result = evaluate_dataset(
                m,
                tokenizer,
                task,
                data[name].dev,
                task.train_language or "dev",
                config.data_for(name),
                train_cfg.eval_batch_size,
                train_cfg.bf16,
                encoded=encoded[name][1],
            )
            scores[name] = result[task.metric]
        m.active_head = next(iter(heads))
        return {"dev": sum(scores.values()) / len(scores)}

    sampling = None
    if config.multitask:
        sizes = {name: len(encoded[name][0]) for name in tasks}
        train_ds = multitask_batches(sizes, parse_sampling(config.sampling, config.tasks), train_cfg, config.seed)
        collator = TaskBatchCollator(
            {name: enc[0] for name, enc in encoded.items()},
            {name: task.family.collator(tokenizer) for name, task in tasks.items()},
            {name: task_head[name] for name, task in tasks.items()},
        )
        sampling = {
            "spec": config.sampling,
            "train_sizes": sizes,
            "probabilities": train_ds.probabilities,
            "batches_drawn": train_ds.counts,
        }
    else:
        train_ds, collator = encoded[primary.name][0], primary.family.collator(tokenizer)
    label_names = tuple(dict.fromkeys(n for t in tasks.values() for n in t.family.label_names))

    run_dir = config.run_dir
    trainer_dir = _trainer_dir(config)

    def train_phase(phase: str, **schedule):
        return train(model, train_ds, collator, train_cfg, config.mode, trainer_dir / phase, config.seed,
                     evaluate_dev, "dev", label_names, **schedule)  # fmt: skip

    mode = get_mode(config.mode)
    phases = {"train": train_phase("train")}
    if mode.fusion:  # the target adapter trained first; now the fusion layer
        language = train_language and train_language.name
        start_fusion(model, core, config.name, config.fusion.config, config.fusion.joint, language)
        params = count_parameters(model)
        phases["fusion"] = train_phase("fusion", learning_rate=config.fusion.learning_rate, epochs=config.fusion.epochs)
    trained = phases[list(phases)[-1]]

    metrics, summary, fusion_attention, used_language = {}, {}, {}, {}
    for name, task in tasks.items():
        model.active_head = task_head[name]
        task_data = data[name]
        # The English evaluation set is often the dev set itself: reuse its encoding.
        reuse = {lang: encoded[name][1] for lang, ds in task_data.evaluation.items() if ds is task_data.dev}

        def per_language(lang: str):
            if inputs.languages:  # MAD-X: the language's own adapter when it has one
                entry = inputs.languages.get(lang, train_language)
                used_language[lang] = entry.name
                model.active_adapters = compose(core, entry.name)
            if mode.fusion:
                fusion_attention[lang] = FusionAttention()
                return fusion_attention[lang]
            return None

        metrics[name] = evaluate_languages(
            model,
            tokenizer,
            task,
            task_data.evaluation,
            config.data_for(name),
            train_cfg.eval_batch_size,
            train_cfg.bf16,
            encoded=reuse,
            per_language=per_language,
        )
        summary[name] = summarize(metrics[name], task)
    if not mode.full:
        model.active_adapters = compose(core, train_language and train_language.name)
    model.active_head = next(iter(heads))
    if not config.multitask:
        metrics, summary = metrics[primary.name], summary[primary.name]
    else:
        summary = {"metric": "mean", "avg": sum(s["avg"] for s in summary.values()) / len(summary), "tasks": summary}

    adapter_config = config.adapter
    if mode.continues_intermediate:
        adapter_config = inputs.intermediates[0].manifest.get("adapter_config") or config.adapter
    manifest = {
        "name": config.name,
        "task": "+".join(config.tasks),
        "tasks": config.tasks,
        "task_family": primary.family.name,
        "labels": list(primary.labels),
        # tasks declared in YAML travel with the entry, so a later `evaluate` knows them
        "task_declarations": {name: t.declaration for name, t in tasks.items() if t.declaration},
        "mode": config.mode,
        "adapter_config": None if mode.full else adapter_config,
        "base_model": config.model,
        "base_model_source": backbone_source(config.model, inputs.source),
        "base_model_revision": getattr(model.config, "_commit_hash", None),
        "setup": None if mode.full else setup_names(model.active_adapters),
        "composition": None if mode.full else str(model.active_adapters),
        "head": config.name,
        "heads": {head: task.name for head, task in heads.items()},
        "seed": config.seed,
        "license": config.license,
        "config": config.to_dict(),
        "versions": versions(),
        "git_commit": git_commit(),
        "device": str(next(model.parameters()).device),
        "parameters": params,
        "data_sizes": {name: d.sizes() for name, d in data.items()} if config.multitask else data[primary.name].sizes(),
        "train_languages": list(training_languages(primary, config.data_for(primary.name))),
        "dev": {
            "metric": "mean of the tasks' " if config.multitask else primary.metric,
            "best": trained.best_dev,
            "best_step": trained.best_step,
            "steps": trained.steps,
            "history": trained.history,
        },
        "eval_split": config.data.eval_split,
        "metrics": metrics,
        "summary": summary,
        "train_seconds": round(sum(p.seconds for p in phases.values()), 2),
        # Tokens seen in training (steps x examples per step x mean tokens per example; no padding).
        "train_tokens": int(
            sum(p.steps for p in phases.values())
            * train_cfg.batch_size
            * train_cfg.gradient_accumulation_steps
            * sum(token_count(enc[0]) for enc in encoded.values())
            / max(1, sum(len(enc[0]) for enc in encoded.values()))
        ),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if mode.fusion:
        manifest["fusion"] = {
            "phases": {k: {"best": v.best_dev, "steps": v.steps, "history": v.history} for k, v in phases.items()},
            "attention": {lang: obs.result() for lang, obs in fusion_attention.items()},
        }
    if mode.continues_intermediate:
        manifest["initialized_from"] = inputs.intermediates[0].name
    resumed = {k: p.resumed_from for k, p in phases.items() if p.resumed_from is not None}
    if resumed:
        manifest["resumed_from_step"] = resumed
    if sampling:
        seen = collator.seen
        manifest["sampling"] = {**sampling, "batches_seen": seen, "shares_seen": _shares(seen)}
    if used_language:
        manifest["language_adapters"] = used_language
    result = RunResult(config.name, manifest["task"], config.mode, metrics, summary, str(run_dir))
    if mode.full:
        provenance = source_files(config.model, inputs.source)  # fine-tuned from the offline copy: say so
        result.model_dir = str(_save_full_model(model, tokenizer, run_dir / "model", provenance))
    else:
        setup = model.active_adapters
        manifest["kind"] = entry_kind(setup)
        entry = AdapterStore(config.store).save(
            config.name,
            lambda folder: save_to_folder(model, setup, config.name, folder, list(heads)),
            manifest,
            model_card(manifest),
        )
        result.store_entry = str(entry.path)
    manifest["wall_seconds"] = round(time.perf_counter() - started, 2)
    dump_runs([config], run_dir / "config.yaml")
    write_json(run_dir / "manifest.json", manifest)
    shutil.rmtree(trainer_dir, ignore_errors=True)  # checkpoints are only for continuing this run
    result.manifest = manifest
    return result


def _trainer_dir(config: RunConfig) -> Path:
    """The run's scratch folder for Trainer checkpoints (``training.save_steps``). Checkpoints left
    by an interrupted run of the *same* config are kept (training continues from them); those of
    another config are removed."""
    trainer_dir = config.run_dir / "trainer"
    stamp = trainer_dir / "config.json"
    spec = json.dumps({k: v for k, v in config.to_dict().items() if k != "overwrite"}, sort_keys=True)
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


def _save_full_model(model, tokenizer, target: Path, files: dict[str, str] | None = None) -> Path:
    """Save a fully fine-tuned model (with its head, and ``files``: name -> text) atomically:
    temp folder, then rename over the previous one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as UTF-8 JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_all(
    configs: list[RunConfig], results_path: str | Path | None = None, on_start=None, on_result=None
) -> list[RunResult]:
    """Run configs in order. After each run, ``results_path`` (if given) is rewritten with every
    result so far; ``on_start(i, config)`` and ``on_result(result)`` report progress."""
    results = []
    for i, config in enumerate(configs):
        if on_start:
            on_start(i, config)
        results.append(run(config))
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
) -> dict:
    """Evaluate a stored adapter or setup (``adapter``), or a fully fine-tuned model folder
    (``model`` alone), on ``task_name`` in ``data.languages`` (default: all of the task's).

    The backbone is the entry's base model unless ``model`` names another location of the same
    model (a local copy). Returns ``{"metrics": {lang: {...}}, "summary": {...}, ...}``.
    """
    entry = _stored_entry(adapter, model, store)
    declared = (entry.manifest.get("task_declarations") or {}) if entry else {}
    if task_name in declared and task_name not in TASKS:  # a declared task, known from the entry
        declare_tasks({task_name: declared[task_name]}, f"store entry {entry.name!r}: task_declarations")
    task = get_task(task_name)
    if task.kind == "retrieval":
        raise ConfigError(f"task {task.name!r} is a retrieval task: use `adapterxl retrieve` (adapterxl.retrieve)")
    data = data or DataConfig()
    check_data(task, data)
    if not task.labels and task.family.has_labels:  # a label set read from training data (CCG, declared tasks)
        if entry:
            labels, origin = tuple(entry.manifest["labels"]), f"saved with store entry {entry.name!r}"
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
) -> dict:
    """Sentence retrieval (``tatoeba``, ``bucc2018``, ``flores``) straight off a model with a stored
    adapter or setup active (``adapter``), or off a plain model (``model``).

    Embeddings: ``hidden_states[layer]`` (default per depth, see :func:`adapterxl.retrieval.default_layer`),
    mean-pooled, inputs up to ``data.max_seq_length`` (default 512) tokens. ``direction`` is
    Tatoeba's; ``bucc_dir`` holds the original BUCC files (else the Hub's pairs-only copy is used
    and the result says ``pairs_only``). Returns per-language metrics in the same format as the
    other tasks (plus, for FLORES, averages by script).
    """
    from tqdm.auto import tqdm

    from .retrieval import default_layer, embed

    task = get_task(task_name)
    if task.kind != "retrieval":
        raise ConfigError(f"task {task.name!r} is not a retrieval task: use `adapterxl evaluate`")
    data = data or DataConfig(eval_split="devtest" if task.name == "flores" else "validation")
    check_data(task, data)
    languages = data.languages or list(task.languages)
    if not languages:
        raise ConfigError(f"task {task.name!r} needs data.languages (FLORES codes such as deu_Latn, swh_Latn)")
    if bucc_dir and not Path(bucc_dir).is_dir():
        raise ConfigError(f"BUCC folder {bucc_dir!r} does not exist")
    entry = _stored_entry(adapter, model, store)
    backbone, tokenizer = load_backbone(model or entry.base_model, pinned_source([entry]) if entry else None)
    if entry:
        load_stored(backbone, entry)
    layer = default_layer(backbone.config.num_hidden_layers) if layer is None else layer
    max_length = data.max_seq_length or task.family.default_max_length

    def encode(sentences: list[str]):
        return embed(backbone, tokenizer, sentences, layer, batch_size, max_length, bf16)

    options = {"direction": direction, "precision": precision, "bucc_dir": bucc_dir}
    metrics = {
        lang: task.family.evaluate(encode, task, lang, data, options)
        for lang in tqdm(languages, desc=f"Retrieval {task.name}", unit="lang")
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
    if task.name == "tatoeba":
        result["direction"] = direction
    if task.name == "bucc2018":
        result["pairs_only"] = bucc_dir is None
        if result["pairs_only"]:
            result["note"] = (
                "Hub bucc18 holds only the gold pairs, without the distractor sentences of the BUCC "
                "corpora: these numbers are not the BUCC benchmark. Pass the original files (bucc_dir)."
            )
    if task.name == "flores":
        by_script: dict[str, list[float]] = {}
        for lang, scores in metrics.items():
            by_script.setdefault(lang.split("_")[1], []).append(scores["accuracy"])
        result["by_script"] = {script: sum(v) / len(v) for script, v in sorted(by_script.items())}
        try:
            from .tasks.retrieval import language_families

            families = language_families(list(metrics))
        except ImportError:
            result["note"] = "install the 'families' extra (lang2vec) for averages by language family"
        else:
            by_family: dict[str, list[float]] = {}
            for lang, scores in metrics.items():
                by_family.setdefault(families[lang], []).append(scores["accuracy"])
            result["by_family"] = {fam: sum(v) / len(v) for fam, v in sorted(by_family.items())}
    return result
