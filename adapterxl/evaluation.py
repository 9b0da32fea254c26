"""Evaluation: the same code scores the English dev set during training and every language after.

Each dataset is encoded by its task family, sorted by length (less padding, and the longest batch
first so that memory problems show at once), run without gradients (bf16 autocast on a GPU), and
scored by the family with the official metric. Summaries follow XTREME: the task score is the
plain mean over the task's languages; the zero-shot mean leaves out the training language.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from . import console
from .config import DataConfig
from .embeddings import use_bf16
from .metrics import task_score
from .tasks import Task


def length_order(lengths) -> np.ndarray:
    """The order evaluation runs rows in: longest first (stable), so batches of similar lengths pad
    little and the largest batch comes first."""
    return np.argsort(-np.asarray(lengths), kind="stable")


def predict(
    model,
    encoded,
    family,
    collator,
    batch_size: int,
    bf16: bool | str = "auto",
    desc: str = "Predicting",
    observe=None,
) -> list:
    """The family's per-row model outputs for every row of an encoded dataset, in its order.
    ``observe(model_output, batch)``, if given, sees every batch (its ``extra_inputs`` attribute,
    if any, is passed to the model)."""
    extra = getattr(observe, "extra_inputs", {})
    order = length_order(encoded["length"])
    device = next(model.parameters()).device
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if use_bf16(bf16) and device.type == "cuda"
        else nullcontext()
    )
    if extra:  # fusion attentions: the adapters library turns them into numpy, which has no bfloat16
        autocast = nullcontext()  # (training.train takes a bf16 Trainer's autocast off the model)
    was_training = model.training
    model.eval()
    outputs: list = [None] * len(order)
    try:
        with torch.inference_mode(), autocast:
            for start in console.progress(range(0, len(order), batch_size), desc=desc, unit="batch", nested=True):
                index = order[start : start + batch_size]
                batch = collator(encoded.select(index).to_list())
                inputs = {k: v.to(device) for k, v in batch.items() if k not in family.label_names}
                output = model(**inputs, **extra)
                if observe is not None:
                    observe(output, batch)
                rows = family.batch_outputs(output, batch)
                for i, row in zip(index, rows, strict=True):
                    outputs[i] = row
    finally:
        model.train(was_training)
    return outputs


def evaluate_dataset(
    model,
    tokenizer,
    task: Task,
    ds,
    language: str,
    data: DataConfig,
    batch_size: int,
    bf16: bool | str = "auto",
    encoded=None,
    observe=None,
) -> dict[str, float]:
    """Score ``model`` on one language's dataset (role columns, as from :mod:`adapterxl.data`).
    ``encoded`` may pass the family's encoding of ``ds`` when it is already at hand; ``observe``
    sees every batch's model output (see :func:`predict`)."""
    family = task.family
    if encoded is None:
        encoded = family.encode(ds, tokenizer, data, train=False)
    collator = family.collator(tokenizer)
    outputs = predict(model, encoded, family, collator, batch_size, bf16, f"{task.name}/{language}", observe)
    return family.score(ds, encoded, outputs, task, language, data)


def evaluate_languages(
    model,
    tokenizer,
    task: Task,
    datasets: dict,
    data: DataConfig,
    batch_size: int,
    bf16: bool | str = "auto",
    encoded: dict | None = None,
    per_language=None,
) -> dict[str, dict[str, float]]:
    """``{language: {metric: value}}`` (percent) for each language's dataset; ``encoded`` may hold
    languages whose family encoding is already at hand (the English dev set after training).
    ``per_language(language)`` runs before each language (e.g. to swap its language adapter in)
    and may return an observer for :func:`predict`."""
    encoded = encoded or {}
    out = {}
    for language, ds in console.progress(datasets.items(), desc=f"evaluating {task.name}", unit="lang"):
        observe = per_language(language) if per_language else None
        out[language] = evaluate_dataset(
            model, tokenizer, task, ds, language, data, batch_size, bf16, encoded=encoded.get(language), observe=observe
        )
    return out


class FusionAttention:
    """Observer that averages AdapterFusion attention over real tokens, layers and fusion blocks:
    ``result()`` is ``{adapter: mean weight}``, summing to 1 (each token's weights are a softmax)."""

    extra_inputs = {"output_adapter_fusion_attentions": True}

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def __call__(self, output, batch: dict) -> None:
        attentions = getattr(output, "adapter_fusion_attentions", None) or {}
        mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1]).cpu().numpy().astype(bool)
        for fusion, layers in attentions.items():
            names = fusion.split(",")
            for parts in layers.values():
                for scores in parts.values():
                    scores = np.asarray(scores, dtype=np.float64).reshape(mask.shape[0], mask.shape[1], len(names))
                    tokens = scores[mask]  # [real tokens, adapters]
                    for name, total in zip(names, tokens.sum(0), strict=True):
                        self.sums[name] = self.sums.get(name, 0.0) + float(total)
                    self.count += len(tokens)

    def result(self) -> dict[str, float]:
        return {name: total / self.count for name, total in self.sums.items()} if self.count else {}


def summarize(per_language: dict[str, dict[str, float]], task: Task) -> dict[str, float]:
    """``avg``: XTREME's task score over all languages (QA: (EM + F1) / 2); ``avg_zero_shot``: the
    same without the training language (when there are other languages); plus every ``avg_*``."""
    qa = task.family.name == "qa"
    out = {"metric": task.metric, **task_score(per_language, qa)}
    out["avg"] = out.pop("avg_metric")
    others = {lang: s for lang, s in per_language.items() if lang != task.train_language}
    if others:
        out["avg_zero_shot"] = task_score(others, qa)["avg_metric"]
    return out
