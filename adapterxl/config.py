"""Run configs: dataclasses that load from and save to YAML losslessly, validated on load.

A *run* is one training phase (an intermediate task, or a target task in one mode) followed by
zero-shot evaluation. A config file holds either one run (its fields at the top level) or a
pipeline: ``runs:`` (a list of runs, executed in order) with optional ``defaults:`` merged into
each run. Relative paths in a config are relative to the current working directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, check_keys, check_name, suggest
from .files import dump_yaml
from .modes import MODE_NAMES, get_mode
from .modes import MODES as MODE_TABLE
from .tasks import BUILTIN, TaskRegistry

# Training modes live in adapterxl.modes; MODES are their names.
MODES = MODE_NAMES
SAMPLING_SCHEMES = ("proportional", "uniform", "temperature")
# The Trainer's schedules that need no extra arguments (transformers.SchedulerType).
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


def default_store() -> str:
    """The adapter store used when a config names none: ``$ADAPTERXL_STORE`` or ``adapters_store``."""
    return os.environ.get("ADAPTERXL_STORE", "adapters_store")


@dataclass
class DataConfig:
    """Where a run's data comes from and how it is cut.

    ``data_files`` maps a split (``train``, ``validation``, ``test``) to a local file (JSON Lines,
    JSON, CSV, TSV or parquet; globs allowed) in the task's Hub schema; ``{lang}`` in the path is
    replaced by the language code. Splits not listed come from the Hub. ``columns`` renames
    schema roles to other column names (e.g. ``{text: sentence_a}``).
    """

    data_files: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str | list[str]] = field(default_factory=dict)
    max_seq_length: int | None = None  # None: the task family's default (384 for QA, else 128)
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    eval_split: str = "validation"
    languages: list[str] | None = None  # evaluation languages; None: every language of the task
    # Training languages (translate-train, mixed-language or multilingual MLM data): a list (each
    # language's train split in full) or {language: share of the training examples}; None: English.
    train_languages: list[str] | dict[str, float] | None = None
    # Extractive QA (XTREME / BERT defaults): windows over long contexts, span decoding.
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best_size: int = 20
    null_score_threshold: float = 0.0  # SQuAD v2: answer "" when null score - best span score > this


@dataclass
class TrainingConfig:
    """Optimisation settings. ``learning_rate: null`` picks 1e-4 for adapters, 2e-5 for ``full``."""

    learning_rate: float | None = None
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    # Learning-rate schedule after warmup. "linear" (decay to 0, the paper's) learns late on a few
    # hundred examples; "constant_with_warmup" converges in fewer epochs there (README: small data).
    lr_scheduler: str = "linear"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_steps: int | None = None  # None: evaluate on the English dev set after every epoch
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    bf16: str | bool = "auto"  # "auto": on when a bf16-capable GPU is present
    group_by_length: bool = True
    logging_steps: int = 50
    save_steps: int | None = None  # keep a checkpoint every N steps; a rerun continues from the last
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    # The Trainer's own options: its optimizer name (transformers.training_args.OptimizerNames),
    # loggers (report_to: tensorboard, wandb, mlflow, ...; their files go to <run folder>/logs),
    # fp16 autocast (GPUs), data-loading worker processes and torch.compile.
    optim: str | None = None  # None: the Trainer's default (adamw_torch_fused with torch >= 2.8)
    report_to: list[str] = field(default_factory=list)
    fp16: bool = False
    dataloader_num_workers: int = 0
    torch_compile: bool = False

    def resolved_learning_rate(self, mode: str) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return get_mode(mode).default_learning_rate()


@dataclass
class FusionConfig:
    """AdapterFusion (mode ``fuse``): the target adapter trains first on its own, then a fusion
    layer over the intermediate adapters and the target adapter trains (``joint``: the target
    adapter keeps training with it) at its own learning rate."""

    config: str = "dynamic"  # "dynamic" or "static" (adapters' fusion configs)
    learning_rate: float = 5e-5
    epochs: float | None = None  # None: training.epochs
    joint: bool = False


@dataclass
class RunConfig:
    """One training phase and its zero-shot evaluation.

    - ``model``: Hub id, local folder, or a built-in tiny backbone (``tiny-xlmr``, ``tiny-bert``).
    - ``task``: a task name, or a list of names for multi-task training (modes ``adapter`` and
      ``full``): one shared adapter (or encoder), one head per task, batches of one task at a time
      drawn by ``sampling``; ``task_data`` gives a task its own data settings.
    - ``mode``: ``adapter`` (new adapter on the frozen model), ``stack`` (new adapter stacked on
      the frozen ``intermediate`` adapters from the store; LoRA-family adapters are *added*),
      ``fuse`` (AdapterFusion over the intermediate adapters and a new target adapter),
      ``sequential`` (the one intermediate adapter itself continues training on the task) or
      ``full`` (all weights train).
    - ``adapter``: any ``adapters`` config string (``seq_bn``, ``seq_bn[reduction_factor=8]``, ...).
    - ``language_adapters``: ``{language: store entry}`` (MAD-X): the training language's adapter
      sits under the task adapters during training; at evaluation each language uses its own
      when it has one, else the training language's.
    - ``sampling``: ``proportional`` (to training-set size), ``uniform``, ``temperature=T``
      (size^(1/T)), or ``{task: weight}``; append ``, TASK=RATE`` to give a task a fixed share
      of the batches (``proportional, mlm=0.1``).
    - ``save_as``: the store entry (adapter modes) and run folder name; default derived.
    - ``license``: the Hub license id written into the entry's model card (``mit``: XLM-R's own);
      set it to your training data's terms where they are stricter (``cc-by-nc-4.0``, ``other``).
    """

    task: str | list[str]
    model: str = "xlm-roberta-large"
    mode: str = "adapter"
    adapter: str = "seq_bn"
    intermediate: list[str] = field(default_factory=list)
    save_as: str | None = None
    overwrite: bool = False
    store: str = field(default_factory=default_store)
    output_dir: str | None = None
    seed: int = 42
    language_adapters: dict[str, str] = field(default_factory=dict)
    sampling: str | dict[str, float] = "proportional"
    fusion: FusionConfig = field(default_factory=FusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task_data: dict[str, DataConfig] = field(default_factory=dict)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    license: str = "mit"
    # Where the task names resolve: the built-in tasks and those declared in the config's file
    # (its tasks: block). Not a YAML key: dump_runs writes the declarations as a tasks: block.
    registry: TaskRegistry = field(default=BUILTIN, repr=False, compare=False, metadata={"yaml": False})

    def __post_init__(self) -> None:
        self.validate()

    @property
    def tasks(self) -> list[str]:
        """The run's task names (one, or several for multi-task training)."""
        return [self.task] if isinstance(self.task, str) else list(self.task)

    @property
    def multitask(self) -> bool:
        return len(self.tasks) > 1

    def data_for(self, task: str) -> DataConfig:
        """The data settings of one task of the run: ``task_data[task]``, else ``data``."""
        return self.task_data.get(task, self.data)

    @property
    def name(self) -> str:
        """The run's name: ``save_as``, or ``{task}-{mode}[-on-{intermediate}]-s{seed}``."""
        if self.save_as:
            return self.save_as
        on = f"-on-{'-'.join(self.intermediate)}" if self.intermediate else ""
        return f"{'-'.join(self.tasks)}-{self.mode}{on}-s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name

    def validate(self) -> None:
        """Check what can be checked without loading anything; raise ConfigError otherwise."""
        if not self.tasks:
            raise ConfigError("task: name at least one task")
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"task lists a task twice: {self.tasks}")
        tasks = [self.registry.get(name) for name in self.tasks]  # unknown names: a suggestion
        for task in tasks:
            if task.kind == "retrieval":
                raise ConfigError(
                    f"task {task.name!r} has no training data: it is evaluated straight off an encoder with "
                    "`adapterxl retrieve` (adapterxl.retrieve)"
                )
        mode = get_mode(self.mode)
        if self.multitask and not mode.multitask:
            allowed = [name for name, m in MODE_TABLE.items() if m.multitask]
            raise ConfigError(
                f"multi-task training ({self.tasks}) trains one new adapter or the whole model (modes "
                f"{', '.join(allowed)}), not mode {self.mode!r}"
            )
        if mode.intermediates != "none" and not self.intermediate:
            raise ConfigError(
                f"mode {self.mode!r} needs {mode.needs_text()} intermediate adapter: set intermediate: [NAME] "
                "to store entries trained in an earlier run (see `adapterxl store list`)"
            )
        if mode.intermediates == "one" and len(self.intermediate) != 1:
            several = [name for name, m in MODE_TABLE.items() if m.intermediates == "some"]
            raise ConfigError(
                f"mode {self.mode!r} continues training one intermediate adapter, got {self.intermediate}: "
                f"name one, or use mode {' / '.join(several)} for several"
            )
        if mode.intermediates == "none" and self.intermediate:
            using = sorted(name for name, m in MODE_TABLE.items() if m.intermediates != "none")
            raise ConfigError(
                f"intermediate adapters {self.intermediate} are only used in modes {using}, not "
                f"{self.mode!r}: set one of those modes or remove intermediate"
            )
        if mode.full and self.language_adapters:
            raise ConfigError("language_adapters need an adapter mode: full fine-tuning has no adapter stack")
        if not isinstance(self.license, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", self.license):
            raise ConfigError(
                f"license {self.license!r} is not a Hub license id: use one like mit, apache-2.0, cc-by-4.0 "
                "or other (lower case, see https://huggingface.co/docs/hub/repositories-licenses)"
            )
        names = [*self.intermediate, *self.language_adapters.values(), *([self.save_as] if self.save_as else [])]
        for name in names:
            check_name(name)
        if len(set(self.intermediate)) != len(self.intermediate):
            raise ConfigError(f"intermediate lists an adapter twice: {self.intermediate}")
        if self.save_as and self.save_as in [*self.intermediate, *self.language_adapters.values()]:
            raise ConfigError(f"save_as {self.save_as!r} is also an input adapter: pick another name")
        clash = set(self.intermediate) & set(self.language_adapters.values())
        if clash:
            raise ConfigError(f"{sorted(clash)} listed both as intermediate and as language adapter")
        if self.language_adapters:
            task = tasks[0]
            unknown = [lang for lang in self.language_adapters if lang not in task.languages]
            if unknown:
                raise ConfigError(
                    f"language_adapters names language(s) {unknown} that task {task.name!r} does not have "
                    f"(its languages: {list(task.languages)})"
                )
            if task.train_language not in self.language_adapters:
                raise ConfigError(
                    f"language_adapters has no adapter for the training language {task.train_language!r}: "
                    f"MAD-X trains the task adapter on top of it (add {task.train_language}: NAME)"
                )
        extra = [t for t in self.task_data if t not in self.tasks]
        if extra:
            raise ConfigError(f"task_data names task(s) {extra} that are not in task: {self.tasks}")
        for task in tasks:
            check_data(task, self.data_for(task.name))
        parse_sampling(self.sampling, self.tasks)
        if self.fusion.config not in ("dynamic", "static"):
            raise ConfigError(f"fusion.config must be 'dynamic' or 'static', got {self.fusion.config!r}")
        positive = {
            "fusion.learning_rate": self.fusion.learning_rate,
            "fusion.epochs": self.fusion.epochs,
            "training.learning_rate": self.training.learning_rate,
            "training.batch_size": self.training.batch_size,
            "training.eval_batch_size": self.training.eval_batch_size,
            "training.gradient_accumulation_steps": self.training.gradient_accumulation_steps,
            "training.save_steps": self.training.save_steps,
            "training.eval_steps": self.training.eval_steps,
            "training.early_stopping_patience": self.training.early_stopping_patience,
            "training.logging_steps": self.training.logging_steps,
            **{
                f"{where}.{key}": getattr(data, key)
                for where, data in [("data", self.data), *((f"task_data.{t}", d) for t, d in self.task_data.items())]
                for key in ("max_seq_length", "max_train_examples", "max_eval_examples", "doc_stride",
                            "max_query_length", "max_answer_length", "n_best_size")
            },
        }  # fmt: skip
        for key, value in positive.items():
            if value is not None and not value > 0:
                raise ConfigError(f"{key} must be positive, got {value}")
        for key, value in {"training.weight_decay": self.training.weight_decay,
                           "training.max_grad_norm": self.training.max_grad_norm}.items():  # fmt: skip
            if not value >= 0:
                raise ConfigError(f"{key} must be zero or positive, got {value}")
        if self.training.learning_rate is not None and self.training.learning_rate >= 1:
            raise ConfigError(
                f"training.learning_rate {self.training.learning_rate} is far too large (adapters use about 1e-4, "
                "full fine-tuning 2e-5): write it as e.g. 1e-4"
            )
        if self.training.epochs <= 0 and self.training.max_steps <= 0:
            raise ConfigError("set training.epochs > 0 or training.max_steps > 0")
        if self.training.lr_scheduler not in LR_SCHEDULERS:
            raise ConfigError(
                f"training.lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, got {self.training.lr_scheduler!r}"
                + suggest(self.training.lr_scheduler, LR_SCHEDULERS)
            )
        if not 0 <= self.training.warmup_ratio < 1:
            raise ConfigError(f"training.warmup_ratio must be in [0, 1), got {self.training.warmup_ratio}")
        if self.training.bf16 not in ("auto", True, False):
            raise ConfigError(f"training.bf16 must be auto, true or false, got {self.training.bf16!r}")
        check_trainer_options(self.training)

    def task_objects(self) -> dict:
        """``{name: Task}`` of the run's tasks, from its registry."""
        return {name: self.registry.get(name) for name in self.tasks}

    def declarations(self) -> dict[str, dict]:
        """The declarations of the run's declared tasks (``{name: declaration}``, as written)."""
        return self.registry.declarations(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        """The YAML fields (the registry is not one; see :func:`dump_runs`)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config", registry: TaskRegistry = BUILTIN) -> RunConfig:
        """Build a validated config; unknown keys and wrong types are errors naming the key.
        Each ``task_data`` entry replaces the fields of ``data`` it names, for its task; task names
        resolve in ``registry``."""
        if isinstance(data, dict) and isinstance(data.get("task_data"), dict):
            base = data.get("data") or {}
            # Field by field: a task's data_files replace the run's, they do not add to them.
            merged = {k: {**base, **v} if isinstance(v, dict) else v for k, v in data["task_data"].items()}
            data = {**data, "task_data": merged}
        return build(cls, data, where, registry=registry)


def check_trainer_options(training: TrainingConfig) -> None:
    """The Trainer options of ``training`` name things the installed transformers has."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.training_args import OptimizerNames

    optimizers = [o.value for o in OptimizerNames]
    if training.optim is not None and training.optim not in optimizers:
        raise ConfigError(
            f"training.optim {training.optim!r} is not a Trainer optimizer{suggest(training.optim, optimizers)}; "
            "common ones: adamw_torch, adamw_torch_fused, adafactor, sgd (all: transformers' OptimizerNames)"
        )
    known = ("tensorboard", "wandb", "mlflow", "comet_ml", "neptune", "clearml", "dvclive", "codecarbon", "trackio",
             "swanlab", "azure_ml", "flyte", "dagshub")  # fmt: skip
    for name in training.report_to:
        if name not in known:
            raise ConfigError(f"training.report_to: unknown logger {name!r}{suggest(name, known)}; use {list(known)}")
    missing = [n for n in training.report_to if n not in get_available_reporting_integrations()]
    if missing:
        raise ConfigError(
            f"training.report_to names {missing}, which is not installed here: pip install "
            + " ".join('"adapterxl[tensorboard]"' if n == "tensorboard" else n for n in missing)
        )
    if training.fp16 and training.bf16 is True:
        raise ConfigError("training.fp16 and training.bf16 are both on: choose one (bf16 on recent GPUs)")
    if training.dataloader_num_workers < 0:
        raise ConfigError(f"training.dataloader_num_workers must be 0 or more, got {training.dataloader_num_workers}")


def parse_sampling(spec: str | dict[str, float], tasks: list[str]) -> dict:
    """Parse a task-sampling spec into ``{"scheme": ..., "temperature": T, "weights": {...},
    "fixed": {task: rate}}``; a spec that does not parse is a ConfigError showing the grammar."""
    grammar = (
        "use proportional, uniform, temperature=T (T > 0) or a mapping {task: weight}, optionally followed "
        "by ', TASK=RATE' fixed shares (e.g. 'proportional, mlm=0.1')"
    )
    if isinstance(spec, dict):
        missing = [t for t in tasks if t not in spec]
        extra = [t for t in spec if t not in tasks]
        if missing or extra or any(w < 0 for w in spec.values()) or not sum(spec.values()) > 0:
            raise ConfigError(
                f"sampling weights {spec} must give every task of the run {tasks} a weight >= 0, some > 0 "
                f"(missing: {missing}, unknown: {extra})"
            )
        return {"scheme": "weights", "weights": {t: float(spec[t]) for t in tasks}, "fixed": {}}
    parts = [p.strip() for p in str(spec).split(",")]
    head, rest = parts[0], parts[1:]
    out: dict = {"scheme": head, "fixed": {}}
    if head.startswith("temperature"):
        try:
            key, value = head.split("=")
            out = {"scheme": "temperature", "temperature": float(value), "fixed": {}}
        except ValueError:
            raise ConfigError(f"sampling {spec!r} does not parse: {grammar}") from None
        if key.strip() != "temperature" or not out["temperature"] > 0:
            raise ConfigError(f"sampling {spec!r} does not parse: {grammar}")
    elif head not in SAMPLING_SCHEMES:
        raise ConfigError(f"sampling {spec!r} does not parse: unknown scheme {head!r}; {grammar}")
    for part in rest:
        task, _, value = part.partition("=")
        task = task.strip()
        try:
            rate = float(value)
        except ValueError:
            raise ConfigError(f"sampling {spec!r} does not parse at {part!r}: {grammar}") from None
        if task not in tasks:
            raise ConfigError(f"sampling {spec!r} gives a share to {task!r}, which is not a task of the run {tasks}")
        if not 0 < rate < 1:
            raise ConfigError(f"sampling {spec!r}: the share of {task!r} must be between 0 and 1, got {rate}")
        out["fixed"][task] = rate
    if out["fixed"] and (sum(out["fixed"].values()) >= 1 or len(out["fixed"]) == len(tasks)):
        raise ConfigError(f"sampling {spec!r}: fixed shares must leave some of the batches to the other tasks")
    return out


def check_data(task, data: DataConfig) -> None:
    """Check a data section against a task: languages, split names, eval split, column roles."""
    unknown = [lang for lang in data.languages or [] if task.languages and lang not in task.languages]
    if unknown:
        raise ConfigError(f"task {task.name!r} has no language(s) {unknown}; its languages are {list(task.languages)}")
    splits = {"train", "validation", "test", *(task.source.splits if task.source else ())}
    bad = [k for k in data.data_files if k not in splits]
    if bad:
        raise ConfigError(f"data.data_files keys must be splits {sorted(splits)}, got {bad}")
    hub_splits = task.source.splits if task.source else {}
    held_out = task.held_out_dev and data.eval_split == "validation"  # evaluated on held-out training rows
    if task.source and not held_out and data.eval_split not in hub_splits and data.eval_split not in data.data_files:
        raise ConfigError(
            f"task {task.name!r} has no labelled {data.eval_split!r} split on the Hub; use "
            f"data.eval_split: one of {sorted(hub_splits)}, or give data.data_files.{data.eval_split}"
        )
    if task.family.name == "qa":
        length = data.max_seq_length or task.family.default_max_length
        if data.doc_stride + data.max_query_length + 4 > length:
            raise ConfigError(
                f"data.doc_stride ({data.doc_stride}) + data.max_query_length ({data.max_query_length}) + 4 special "
                f"tokens must fit in data.max_seq_length ({length}) for task {task.name!r}: lower doc_stride or "
                "max_query_length, or raise max_seq_length"
            )
    positive = {
        "data.max_seq_length": data.max_seq_length or 1,
        "data.doc_stride": data.doc_stride,
        "data.max_query_length": data.max_query_length,
        "data.max_answer_length": data.max_answer_length,
        "data.n_best_size": data.n_best_size,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    check_train_languages(task, data)
    bad_roles = [k for k in data.columns if k not in task.columns]
    if bad_roles:
        raise ConfigError(
            f"data.columns renames unknown role(s) {bad_roles}; roles of task {task.name!r}: {sorted(task.columns)}"
        )


def check_train_languages(task, data: DataConfig) -> None:
    """Training languages must exist for the task (on the Hub, or as ``{lang}`` local files) and
    shares must be positive numbers."""
    spec = data.train_languages
    if spec is None:
        if task.train_language is None:
            raise ConfigError(
                f"task {task.name!r} has no default training language: list them with data.train_languages "
                "(e.g. [en, de, sw])"
            )
        return
    languages = list(spec)
    if not languages:
        raise ConfigError("data.train_languages is empty: list at least one language, or remove it")
    if isinstance(spec, dict):
        bad = {k: v for k, v in spec.items() if not v > 0}
        if bad:
            raise ConfigError(f"data.train_languages shares must be positive numbers, got {bad}")
    local = "{lang}" in data.data_files.get("train", "")
    if not local:
        unknown = [lang for lang in languages if lang not in task.languages]
        if unknown:
            raise ConfigError(
                f"task {task.name!r} has no training data in {unknown} on the Hub (its languages: "
                f"{list(task.languages)}): give translated files with data.data_files.train: path/{{lang}}.jsonl "
                "(see `adapterxl translate`)"
            )


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a simple type hint; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _check_type(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {hint}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _check_type(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _plain(value: Any) -> Any:
    """``value`` as YAML data: config dataclasses (at any depth) as mappings of their YAML fields."""
    if dataclasses.is_dataclass(value):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.metadata.get("yaml", True)
        }
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build(cls, data: Any, where: str, **extra):
    """A ``cls`` (config dataclass) from a YAML mapping, every key and type checked; ``extra``:
    fields that are not YAML keys (a RunConfig's registry)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}
    check_keys(data, fields, where)
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build(hint, value, f"{where}.{key}")
        else:
            kwargs[key] = _check_type(value, hint, f"{where}.{key}")
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    try:
        return cls(**kwargs, **extra)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_fields(cls, data: dict, where: str) -> None:
    """Every key of ``data`` (and of its nested config sections) is a field of ``cls``: what a
    ``defaults:`` block may hold, checked where it is written (not in the first run it reaches)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}
    check_keys(data, fields, where)
    for key, value in data.items():
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            check_fields(hints[key], value, f"{where}.{key}")


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_runs(data: Any, where: str = "config", registry: TaskRegistry = BUILTIN) -> list[RunConfig]:
    """Turn a parsed YAML document (one run, or ``runs:`` + ``defaults:``; either with a ``tasks:``
    block declaring tasks) into run configs whose task names resolve in ``registry`` plus the
    file's own declarations."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: a config is a mapping (task: ..., mode: ..., or runs: [...]), got a {type(data).__name__}"
        )
    if "tasks" in data:  # tasks declared in the file, usable by its runs like built-in ones
        registry = registry.declare(data["tasks"], f"{where}: tasks")
        data = {k: v for k, v in data.items() if k != "tasks"}
    if "runs" not in data:
        return [RunConfig.from_dict(data, where, registry)]
    extra = [k for k in data if k not in ("runs", "defaults")]
    if extra:
        raise ConfigError(f"{where}: a pipeline file has only 'tasks', 'runs' and 'defaults', not {extra}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}: defaults: a mapping of run fields, got {defaults!r}")
    check_fields(RunConfig, defaults, f"{where}: defaults")
    runs = data["runs"]
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{where}: 'runs' must be a non-empty list of runs")
    configs = [
        RunConfig.from_dict(merge(defaults, run or {}), f"{where}: runs[{i}]", registry) for i, run in enumerate(runs)
    ]
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: several runs are named {dupes}: give each a distinct save_as")
    return configs


MAX_CONFIG_BYTES = 1_000_000  # config, grid and task files are small; anything larger is a mistake


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """A YAML file's document; a missing, empty, oversized, non-UTF-8 or invalid YAML file is a
    ConfigError naming the file (and the line, for YAML errors)."""
    path = Path(path)
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to the working directory {os.getcwd()})"
        raise ConfigError(f"{what} {str(path)!r} does not exist{where}")
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} is not a file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {size / 1e6:.1f} MB is too large for a {what} (at most {MAX_CONFIG_BYTES // 1000} kB): put data "
            "in data files and point data.data_files at them"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}, line {line}): save the {what} as UTF-8 YAML"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{path}: a binary file, not a YAML {what}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: the {what} is empty: write a run (task: ..., mode: ...) or runs: [...]")
    return data


def load_runs(path: str | Path, overrides: dict[str, Any] | None = None) -> list[RunConfig]:
    """Read a YAML config file; ``overrides`` (dotted keys) apply to every run."""
    data = read_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return parse_runs(data, str(path))


def load_task_declarations(path: str | Path, registry: TaskRegistry = BUILTIN) -> TaskRegistry:
    """``registry`` plus the tasks declared in the ``tasks:`` block of a run-config, grid or task
    file; a file without one is a ConfigError."""
    data = read_yaml(path)
    if not isinstance(data, dict) or "tasks" not in data:
        raise ConfigError(f"{path}: no tasks: block (tasks: {{name: {{family: ..., languages: [...], ...}}}})")
    return registry.declare(data["tasks"], f"{path}: tasks")


def apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """Apply ``{"training.learning_rate": 1e-4}``-style overrides to every run of a document."""
    nested: dict = {}
    for dotted, value in overrides.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if isinstance(data, dict) and "runs" in data:
        return {**data, "runs": [merge(run or {}, nested) for run in data["runs"]]}
    return merge(data or {}, nested)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` command-line override; the value is read as YAML (``null`` for none)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. training.learning_rate=1e-4)")
    key, value = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has no key: KEY=VALUE (e.g. training.learning_rate=1e-4)")
    if not value.strip():
        raise ConfigError(
            f"override {text!r} has an empty value: give one ({key.strip()}=1e-4), or {key.strip()}=null for none"
        )
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value  # text that is not YAML (a path with a colon and a space)


def dump_runs(configs: list[RunConfig], path: str | Path, header: str = "") -> Path:
    """Save configs as YAML (one run at the top level, several under ``runs:``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data: Any = configs[0].to_dict() if len(configs) == 1 else {"runs": [c.to_dict() for c in configs]}
    declared = BUILTIN
    for config in configs:  # one name declared differently by two of the configs is an error
        declared = declared.declare(config.declarations(), f"{path}: tasks")
    if declared.declared:  # the file declares its tasks again, so that it runs on its own
        data = {"tasks": declared.declarations(), **data}
    text = dump_yaml(data)
    path.write_text((header + "\n" if header else "") + text, encoding="utf-8")
    return path
