"""Sentence and sentence-pair classification (MNLI, QQP, XNLI, PAWS-X, ...).

Roles: ``text``, optional ``text_pair``, ``label``. Head: the ``adapters`` classification head
(dense + tanh + projection over the first token). Metric: accuracy, as XTREME computes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, at_row
from .common import PaddingCollator, argmax_accuracy, head_problem, logit_rows

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import DataConfig
    from . import Task

MISSING_LABEL = -1  # GLUE / SNLI / PAWS-X convention for "no gold label": such rows are dropped


def normalize_labels(ds: Dataset, task: Task, where: str, column: str = "label") -> Dataset:
    """Map label names or numbers in ``column`` to indices 0..n-1 of ``task.labels``.

    Rows with label -1 (no gold label) are dropped; any other value outside the label set is a
    DataError naming the value, the row and the valid labels.
    """
    labels = task.labels
    mapping: dict[Any, int] = {}
    bad = []
    for value in ds.unique(column):
        index = _label_index(value, labels)
        if index is None:
            bad.append(value)
        else:
            mapping[value] = index
    if bad:
        row = next(i for i, v in enumerate(ds[column]) if v in bad)
        raise DataError(
            f"{at_row(where, row)}: label {bad[0]!r} is not in the label set of task {task.name!r}: "
            f"{list(labels)} (or their indices 0..{len(labels) - 1}; -1 marks a row without gold label)"
            f"{task.unseen_label_hint()}. Fix the data or the column mapping (data.columns.{column})."
        )
    if MISSING_LABEL in mapping.values():
        ds = ds.filter(lambda v: mapping[v] != MISSING_LABEL, input_columns=column)
    if any(k != v for k, v in mapping.items()):
        import datasets

        # Explicit features: map would keep a large_string column (CSV) a string column.
        features = ds.features.copy()
        features[column] = datasets.Value("int64")
        ds = ds.map(lambda b: {column: [mapping[v] for v in b]}, input_columns=column, batched=True, features=features)
    return ds


class ClassificationFamily:
    name = "classification"
    hub_task = "text-classification"  # the Hub's task type (model card metadata)
    main_metric = "accuracy"
    label_names = ("labels",)
    default_max_length = 128
    has_labels = True

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, ds: Dataset, task: Task, where: str) -> Dataset:
        return normalize_labels(ds, task, where)

    def encode(self, ds: Dataset, tokenizer, data: DataConfig, train: bool = True) -> Dataset:
        """Tokenize ``text`` (+ ``text_pair``) with truncation; keep ``labels`` and ``length``."""
        max_length = data.max_seq_length or self.default_max_length
        has_pair = "text_pair" in ds.column_names

        def tokenize(batch):
            enc = tokenizer(
                batch["text"], batch["text_pair"] if has_pair else None, truncation=True, max_length=max_length
            )
            enc["labels"] = batch["label"]
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            return enc

        return ds.map(tokenize, batched=True, remove_columns=ds.column_names, desc="Tokenizing")

    def collator(self, tokenizer):
        """Dynamic padding to the longest sequence of each batch."""
        return PaddingCollator(tokenizer, self.label_names)

    # -- model --------------------------------------------------------------------------------
    head_type = "classification"

    def add_head(self, model, name: str, task: Task) -> None:
        model.add_classification_head(name, num_labels=len(task.labels), id2label=dict(enumerate(task.labels)))

    def check_head(self, model, name: str, task: Task) -> str | None:
        """Why head ``name`` cannot serve ``task``, or None when it can."""
        return head_problem(model, name, task, self.head_type, "num_labels")

    # -- predictions and metric ---------------------------------------------------------------
    def batch_outputs(self, output, batch: dict) -> list[np.ndarray]:
        return logit_rows(output)

    def score(
        self, ds: Dataset, encoded: Dataset, outputs: list, task: Task, language: str, data: DataConfig
    ) -> dict[str, float]:
        return argmax_accuracy(outputs, encoded["labels"])


def _label_index(value: Any, labels: tuple[str, ...]) -> int | None:
    if isinstance(value, str):
        if value in labels:
            return labels.index(value)
        try:
            value = int(value)
        except ValueError:
            return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value == MISSING_LABEL or 0 <= value < len(labels):
            return int(value)
    return None
