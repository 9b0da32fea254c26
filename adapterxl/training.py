"""The training loop: ``adapters.AdapterTrainer`` for adapter modes, ``transformers.Trainer`` for
full fine-tuning (AdapterTrainer refuses an unfrozen model), with one shared set of arguments.

Model selection follows the paper's protocol: the model is scored on the *English* dev set only
(after every epoch, or every ``eval_steps``), and the trainable weights of the best evaluation are
restored at the end. Nothing about the target languages is seen during training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

from .config import TrainingConfig


@dataclass
class TrainResult:
    """What training did: best English dev score and where it was reached."""

    best_dev: float | None
    best_step: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def use_bf16(setting: str | bool) -> bool:
    """bf16 autocast: on by default when a bf16-capable GPU is present, never on CPU by default."""
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


class DevSelection(TrainerCallback):
    """Scores the model on the English dev set (every ``eval_steps`` steps, else after every epoch)
    with the run's own evaluator, keeps an in-memory copy of the trainable weights at the best
    score, and stops after ``patience`` evaluations without improvement."""

    def __init__(self, evaluate, metric: str, eval_steps: int | None = None, patience: int | None = None):
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

    def restore(self, model) -> None:
        if self.snapshot is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.snapshot.items():
                params[name].copy_(value)


def train(
    model, tokenizer, family, train_ds, cfg: TrainingConfig, mode: str, output_dir, seed: int, evaluate_dev
) -> TrainResult:
    """Train ``model`` (already set up by :func:`adapterxl.modeling.setup_mode`) on the encoded
    ``train_ds``; ``evaluate_dev(model) -> {metric: value}`` scores the English dev set. The best
    weights by ``family.main_metric`` are left in ``model``."""
    from adapters import AdapterTrainer
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.resolved_learning_rate(mode),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type="linear",
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="no",  # DevSelection scores the dev set with the run's own evaluator
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        report_to=[],
        seed=seed,
        data_seed=seed,
        bf16=use_bf16(cfg.bf16),
        group_by_length=cfg.group_by_length,
        length_column_name="length",
        remove_unused_columns=False,
        label_names=list(family.label_names),
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    selection = DevSelection(evaluate_dev, family.main_metric, cfg.eval_steps, cfg.early_stopping_patience)
    trainer_cls = Trainer if mode == "full" else AdapterTrainer
    trainer = trainer_cls(
        model=model, args=args, train_dataset=train_ds, data_collator=family.collator(tokenizer), callbacks=[selection]
    )
    start = time.perf_counter()
    trainer.train()
    selection.score(model, trainer.state)  # the last step, unless it was just scored
    selection.restore(model)
    model.eval()
    losses = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    return TrainResult(
        best_dev=selection.best,
        best_step=selection.best_step,
        steps=trainer.state.global_step,
        seconds=time.perf_counter() - start,
        history=sorted(selection.history + losses, key=lambda h: h["step"]),
    )
