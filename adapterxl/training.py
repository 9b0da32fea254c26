"""The training loop: ``adapters.AdapterTrainer`` for adapter modes, ``transformers.Trainer`` for
full fine-tuning (AdapterTrainer refuses an unfrozen model), with one shared set of arguments.

Model selection follows the paper's protocol: the model is scored on the *English* dev set only
(after every epoch, or every ``eval_steps``), and the trainable weights of the best evaluation are
restored at the end. Nothing about the target languages is seen during training.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from . import console
from .config import TrainingConfig
from .embeddings import use_bf16
from .modes import get_mode

MIXED_PRECISION_ENV = "ACCELERATE_MIXED_PRECISION"


@dataclass
class TrainResult:
    """What training did: best English dev score and where it was reached."""

    best_dev: float | None
    best_step: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    resumed_from: int | None = None  # the checkpoint step training continued from


SELECTION_STATE = "adapterxl_selection.json"
SELECTION_WEIGHTS = "adapterxl_best.safetensors"


class DevSelection(TrainerCallback):
    """Scores the model on the English dev set (every ``eval_steps`` steps, else after every epoch)
    with the run's own evaluator, keeps an in-memory copy of the trainable weights at the best
    score, and stops after ``patience`` evaluations without improvement."""

    def __init__(self, evaluate, metric: str, eval_steps: int | None = None, patience: int | None = None):
        self.trainer = None  # set by train(): dev scores go through trainer.log, so every logger sees them
        self.evaluate = evaluate  # model -> {metric: value}
        self.metric = metric
        self.eval_steps = eval_steps
        self.patience = patience
        self.best: float | None = None
        self.best_step = 0
        self.bad_evals = 0
        self.last_step = -1
        self.history: list[dict] = []
        self.snapshot: dict[str, torch.Tensor] | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.eval_steps and state.global_step % self.eval_steps == 0:
            self.score(model, state, control)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if not self.eval_steps:
            self.score(model, state, control)

    def score(self, model, state, control=None) -> None:
        if state.global_step == self.last_step:
            return
        self.last_step = state.global_step
        value = self.evaluate(model)[self.metric]
        self.history.append({"step": state.global_step, "epoch": state.epoch, f"dev_{self.metric}": value})
        if self.best is None or value > self.best:
            self.best, self.best_step, self.bad_evals = value, state.global_step, 0
            self.snapshot = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
        else:
            self.bad_evals += 1
            if control is not None and self.patience is not None and self.bad_evals >= self.patience:
                control.should_training_stop = True
        console.dev_line(state.global_step, self.metric, value, self.best, self.best_step)
        if self.trainer is not None and control is not None:  # TensorBoard, wandb, ... see the dev score
            self.trainer.log({f"dev_{self.metric}": value, f"dev_{self.metric}_best": self.best})

    def on_save(self, args, state, control, **kwargs):
        """Save the selection state next to the Trainer's checkpoint, so a resumed run keeps it."""
        from safetensors.torch import save_file

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.is_dir():
            return
        keys = ("best", "best_step", "bad_evals", "last_step", "history")
        (folder / SELECTION_STATE).write_text(json.dumps({k: getattr(self, k) for k in keys}), encoding="utf-8")
        if self.snapshot is not None:
            save_file({k: v.contiguous() for k, v in self.snapshot.items()}, str(folder / SELECTION_WEIGHTS))

    def load(self, checkpoint: str | Path) -> None:
        """Continue from the state :meth:`on_save` wrote into ``checkpoint``."""
        from safetensors.torch import load_file

        folder = Path(checkpoint)
        state = json.loads((folder / SELECTION_STATE).read_text(encoding="utf-8"))
        for key, value in state.items():
            setattr(self, key, value)
        weights = folder / SELECTION_WEIGHTS
        self.snapshot = load_file(str(weights)) if weights.is_file() else None

    def restore(self, model) -> None:
        if self.snapshot is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.snapshot.items():
                params[name].copy_(value)


class SeededLengthGroupedSampler(torch.utils.data.Sampler):
    """transformers' length-grouped order, drawn from ``seed + epoch`` instead of the global random
    state: the order of every epoch is the same whether a run started fresh or continued from a
    checkpoint (accelerate calls ``set_epoch``)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def _seeded(trainer_cls):
    """``trainer_cls`` with :class:`SeededLengthGroupedSampler` for length-grouped training."""

    class Seeded(trainer_cls):
        def _get_train_sampler(self, train_dataset=None):
            dataset = self.train_dataset if train_dataset is None else train_dataset
            lengths = self.args.length_column_name
            if self.args.group_by_length and hasattr(dataset, "column_names") and lengths in dataset.column_names:
                batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
                return SeededLengthGroupedSampler(dataset[lengths], batch, self.args.data_seed or self.args.seed)
            return super()._get_train_sampler(train_dataset)

    Seeded.__name__ = Seeded.__qualname__ = f"Seeded{trainer_cls.__name__}"
    return Seeded


class TaskBatches(torch.utils.data.Dataset):
    """Multi-task training as a list of batches drawn in advance: item ``i`` is ``(task, row
    indices)``, every batch from one task. Tasks are drawn independently per batch with
    ``probabilities``; each task's rows are visited in a fresh random order, epoch after epoch
    of that task. ``counts`` records how many batches each task got."""

    def __init__(self, sizes: dict[str, int], probabilities: dict[str, float], n_batches: int, batch_size: int, seed):
        rng = np.random.default_rng(seed)
        names = list(sizes)
        drawn = rng.choice(len(names), size=n_batches, p=[probabilities[t] for t in names])
        orders = {t: np.empty(0, dtype=np.int64) for t in names}
        self.items: list[tuple[str, np.ndarray]] = []
        for index in drawn:
            task = names[index]
            while len(orders[task]) < batch_size:  # wrap around: next epoch of this task
                orders[task] = np.concatenate([orders[task], rng.permutation(sizes[task])])
            self.items.append((task, orders[task][:batch_size]))
            orders[task] = orders[task][batch_size:]
        self.counts = {t: int((drawn == i).sum()) for i, t in enumerate(names)}
        self.probabilities = dict(probabilities)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        return self.items[i]


class TaskBatchCollator:
    """Turns one ``(task, indices)`` item into that task family's padded batch, plus ``head``
    (the flexible-head model runs that task's head); counts the batches of each task it served."""

    def __init__(self, datasets: dict, collators: dict, heads: dict[str, str]):
        self.datasets, self.collators, self.heads = datasets, collators, heads
        self.seen = dict.fromkeys(datasets, 0)  # batches actually collated, per task

    def __call__(self, items: list[tuple[str, np.ndarray]]) -> dict:
        (task, indices), *rest = items
        if rest:
            raise ValueError("TaskBatchCollator expects one pre-drawn batch per step (per_device_train_batch_size=1)")
        self.seen[task] += 1
        rows = self.datasets[task].select(indices).to_list()
        return {**self.collators[task](rows), "head": self.heads[task]}


def task_probabilities(sampling: dict, sizes: dict[str, int]) -> dict[str, float]:
    """Sampling probabilities per task from a parsed spec (:func:`adapterxl.config.parse_sampling`)
    and the training-set sizes (already capped): proportional to size, uniform, size^(1/T), or given
    weights; tasks with a fixed share get it and the others split the rest by the scheme."""
    fixed = sampling.get("fixed", {})
    others = [t for t in sizes if t not in fixed]
    scheme = sampling["scheme"]
    if scheme == "proportional":
        raw = {t: float(sizes[t]) for t in others}
    elif scheme == "uniform":
        raw = dict.fromkeys(others, 1.0)
    elif scheme == "temperature":
        raw = {t: float(sizes[t]) ** (1.0 / sampling["temperature"]) for t in others}
    else:
        raw = {t: sampling["weights"][t] for t in others}
    rest = 1.0 - sum(fixed.values())
    total = sum(raw.values())
    return {t: fixed[t] if t in fixed else rest * raw[t] / total for t in sizes}


def multitask_batches(sizes: dict[str, int], sampling: dict, cfg: TrainingConfig, seed: int) -> TaskBatches:
    """The run's batches: ``max_steps`` x accumulation, else (as jiant) ``epochs`` x the sum over
    tasks of their batches per epoch."""
    if cfg.max_steps > 0:
        n = cfg.max_steps * cfg.gradient_accumulation_steps
    else:
        n = int(cfg.epochs * sum(-(-size // cfg.batch_size) for size in sizes.values()))
    return TaskBatches(sizes, task_probabilities(sampling, sizes), max(n, 1), cfg.batch_size, seed)


def last_whole_checkpoint(folder: Path) -> str | None:
    """The latest checkpoint in ``folder`` that was saved to the end (its dev-selection state, written
    last, is there): a process killed while saving leaves a newer, partial one, which is skipped."""
    steps = []
    for path in folder.glob("checkpoint-*"):
        step = path.name.split("-")[-1]
        if step.isdigit() and (path / SELECTION_STATE).is_file():
            steps.append((int(step), path))
    return str(max(steps)[1]) if steps else None


def train(
    model,
    train_ds,
    collator,
    cfg: TrainingConfig,
    mode: str,
    output_dir,
    seed: int,
    evaluate_dev,
    metric: str,
    label_names: tuple[str, ...] = ("labels",),
    learning_rate: float | None = None,
    epochs: float | None = None,
    label: str = "",
    logging_dir: str | Path | None = None,
) -> TrainResult:
    """Train ``model`` (already set up by :func:`adapterxl.modeling.setup_mode`) on the encoded
    ``train_ds`` (or a :class:`TaskBatches` of a multi-task run); ``evaluate_dev(model) -> {metric:
    value}`` scores the English dev set. The best weights by ``metric`` are left in ``model``.

    With ``cfg.save_steps``, a checkpoint (weights, optimizer, scheduler, RNG and the dev-selection
    state) is kept in ``output_dir`` every that many steps, and training continues from the last
    one found there. ``label`` names the run in the console; loggers of ``cfg.report_to`` write
    to ``logging_dir``."""
    from adapters import AdapterTrainer
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # TrainingArguments writes the run's mixed precision into os.environ (ACCELERATE_MIXED_PRECISION)
    # and keeps a value it finds there: a bf16 run would make every later run of the process (and the
    # processes it starts) train in bf16. Each run sees the value from before the first (a launcher's).
    before = os.environ.get(MIXED_PRECISION_ENV)
    try:
        batches = isinstance(train_ds, TaskBatches)
        args = TrainingArguments(
            output_dir=str(output_dir),
            per_device_train_batch_size=1 if batches else cfg.batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=learning_rate or cfg.resolved_learning_rate(mode),
            num_train_epochs=1 if batches else (epochs or cfg.epochs),
            max_steps=-1 if batches else cfg.max_steps,
            lr_scheduler_type=cfg.lr_scheduler,
            warmup_ratio=cfg.warmup_ratio,
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm,
            eval_strategy="no",  # DevSelection scores the dev set with the run's own evaluator
            save_strategy="steps" if cfg.save_steps else "no",
            save_steps=cfg.save_steps or 500,
            save_total_limit=1,
            logging_strategy="steps",
            logging_steps=cfg.logging_steps,
            report_to=list(cfg.report_to),
            logging_dir=str(logging_dir) if logging_dir else None,
            **({"optim": cfg.optim} if cfg.optim else {}),
            fp16=cfg.fp16,
            torch_compile=cfg.torch_compile,
            disable_tqdm=True,  # adapterxl's own bar and lines (console.train_callback)
            seed=seed,
            data_seed=seed,
            bf16=use_bf16(cfg.bf16),
            # transformers refuses bf16 without a bf16 GPU unless told to run on the CPU (AVX512-BF16 CPUs
            # gain about 2x from it: benchmarks/RESULTS.md, levers)
            use_cpu=use_bf16(cfg.bf16) and not torch.cuda.is_available(),
            group_by_length=cfg.group_by_length and not batches,
            length_column_name="length",
            remove_unused_columns=False,
            label_names=list(label_names),
            gradient_checkpointing=cfg.gradient_checkpointing,
            # non-reentrant: works when the inputs need no gradient (frozen embeddings in adapter modes)
            gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
            dataloader_num_workers=cfg.dataloader_num_workers,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        selection = DevSelection(evaluate_dev, metric, cfg.eval_steps, cfg.early_stopping_patience)
        checkpoint = None
        if cfg.save_steps and Path(output_dir).is_dir():
            checkpoint = last_whole_checkpoint(Path(output_dir))
            if checkpoint:
                selection.load(checkpoint)
        from accelerate.state import AcceleratorState

        # accelerate's state is a process-wide singleton that keeps the first Trainer's mixed precision:
        # without a reset, every run after a bf16 one would train in bf16 too.
        AcceleratorState._reset_state()
        trainer_cls = _seeded(Trainer if get_mode(mode).full else AdapterTrainer)
        phase = Path(output_dir).name
        shown = console.train_callback(label or phase, phase)
        trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                              callbacks=[selection, shown])  # fmt: skip
        for default in (PrinterCallback, ProgressCallback):  # raw log dicts and an unlabelled bar
            trainer.remove_callback(default)
        selection.trainer = trainer
        if checkpoint:
            step = Path(checkpoint).name.split("-")[-1]
            console.say(f"  {label or phase}: continuing from {checkpoint} (step {step})")
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=checkpoint)
        selection.score(model, trainer.state)  # the last step, unless it was just scored
        selection.restore(model)
        # A mixed-precision Trainer leaves model.forward wrapped in autocast (keeping the forward it wrapped):
        # unwrap it, so that evaluation follows its own precision rule, as a reload from the store does.
        original = model.__dict__.pop("_original_forward", None)
        if original is not None:
            model.forward = original
        model.eval()
        losses = [
            {"step": h["step"], "loss": h["loss"], "learning_rate": h.get("learning_rate")}
            for h in trainer.state.log_history
            if "loss" in h
        ]
        return TrainResult(
            best_dev=selection.best,
            best_step=selection.best_step,
            steps=trainer.state.global_step,
            seconds=time.perf_counter() - start,
            history=sorted(selection.history + losses, key=lambda h: h["step"]),
            resumed_from=int(Path(checkpoint).name.split("-")[-1]) if checkpoint else None,
        )
    finally:
        if before is None:
            os.environ.pop(MIXED_PRECISION_ENV, None)
        else:
            os.environ[MIXED_PRECISION_ENV] = before
