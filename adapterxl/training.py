"""The training loop: ``adapters.AdapterTrainer`` for adapter modes, ``transformers.Trainer`` for
full fine-tuning (AdapterTrainer refuses an unfrozen model), with one shared set of arguments.

Model selection follows the paper's protocol: the model is scored on the *English* dev set only
(after every epoch, or every ``eval_steps``), and the trainable weights of the best evaluation are
restored at the end. Nothing about the target languages is seen during training.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

from .config import TrainingConfig

log = logging.getLogger(__name__)


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


class KeepBest(TrainerCallback):
    """Keeps an in-memory copy of the trainable weights at the best dev score (no checkpoint files)
    and stops training after ``patience`` evaluations without improvement."""

    def __init__(self, metric: str, patience: int | None = None):
        self.metric = metric
        self.patience = patience
        self.best: float | None = None
        self.best_step = 0
        self.bad_evals = 0
        self.snapshot: dict[str, torch.Tensor] | None = None

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        score = (metrics or {}).get(self.metric)
        if score is None or model is None:
            return
        if self.best is None or score > self.best:
            self.best, self.best_step, self.bad_evals = score, state.global_step, 0
            self.snapshot = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
        else:
            self.bad_evals += 1
            if self.patience is not None and self.bad_evals >= self.patience:
                control.should_training_stop = True

    def restore(self, model) -> None:
        if self.snapshot is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.snapshot.items():
                params[name].copy_(value)


def train(
    model, tokenizer, family, train_ds, dev_ds, cfg: TrainingConfig, mode: str, output_dir, seed: int
) -> TrainResult:
    """Train ``model`` (already set up by :func:`adapterxl.modeling.setup_mode`) on the encoded
    ``train_ds``, select on ``dev_ds``, and leave the best weights in ``model``."""
    from adapters import AdapterTrainer
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.resolved_learning_rate(mode),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type="linear",
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="steps" if cfg.eval_steps else "epoch",
        eval_steps=cfg.eval_steps,
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
        label_names=["labels"],
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    keep_best = KeepBest(metric=f"eval_{family.main_metric}", patience=cfg.early_stopping_patience)

    def compute_metrics(pred):
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return family.score(family.decode(logits), pred.label_ids)

    trainer_cls = Trainer if mode == "full" else AdapterTrainer
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        data_collator=family.collator(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[keep_best],
    )
    start = time.perf_counter()
    trainer.train()
    step = trainer.state.global_step
    if not any("eval_loss" in h and h.get("step") == step for h in trainer.state.log_history):
        trainer.evaluate()  # the last step was not scored on dev: score it before choosing
    keep_best.restore(model)
    model.eval()
    return TrainResult(
        best_dev=keep_best.best,
        best_step=keep_best.best_step,
        steps=trainer.state.global_step,
        seconds=time.perf_counter() - start,
        history=list(trainer.state.log_history),
    )
