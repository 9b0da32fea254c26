"""Multiple choice (HellaSwag, Cosmos QA, CommonsenseQA, SIQa, COPA / XCOPA).

Roles: ``context``, optional ``question``, ``choices`` (a list of answer texts) and ``label`` (the
index or name of the right choice). Each choice is encoded as the pair (context, question +
choice); one head scores every choice of an example and a softmax over them picks one. The number
of choices is fixed per task (the head's), and a row with another number is an error. Metric:
accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, at_row
from .classification import normalize_labels
from .common import FamilyOptions, PaddingCollator, argmax_accuracy, head_problem, logit_rows

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import DataConfig
    from . import Task


class MultipleChoiceFamily(FamilyOptions):
    """Multiple choice. ``question_prompts``: texts that replace values of the ``question`` role
    (COPA's ``cause`` / ``effect`` become questions)."""

    name = "multiple_choice"
    hub_task = "multiple-choice"  # the Hub's task type (model card metadata)
    main_metric = "accuracy"
    label_names = ("labels",)
    default_max_length = 128
    has_labels = True
    head_type = "multiple_choice"

    def __init__(self, question_prompts: Mapping[str, str] | None = None):
        self.question_prompts = dict(question_prompts or {})

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, ds: Dataset, task: Task, where: str) -> Dataset:
        """Check the choice count of every row and map labels to choice indices."""
        n = len(task.labels)
        for row, choices in enumerate(ds["choices"]):
            if len(choices) != n:
                raise DataError(
                    f"{at_row(where, row)}: {len(choices)} choices, but task {task.name!r} scores exactly {n} "
                    f"(one per label: {list(task.labels)})"
                )
        if self.question_prompts and "question" in ds.column_names:
            prompts = self.question_prompts
            ds = ds.map(lambda b: {"question": [prompts.get(q, q) for q in b]}, input_columns="question", batched=True)
        return normalize_labels(ds, task, where)

    def encode(self, ds: Dataset, tokenizer, data: DataConfig, train: bool = True) -> Dataset:
        """One (context, question + choice) pair per choice: ``input_ids`` is [choices][tokens]."""
        max_length = data.max_seq_length or self.default_max_length
        has_question = "question" in ds.column_names

        def tokenize(batch):
            firsts, seconds = [], []
            for i, choices in enumerate(batch["choices"]):
                question = batch["question"][i] if has_question else ""
                for choice in choices:
                    firsts.append(batch["context"][i])
                    seconds.append(f"{question} {choice}".strip())
            enc = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)
            per_row = len(batch["choices"][0]) if batch["choices"] else 0
            out = {
                key: [values[j : j + per_row] for j in range(0, len(values), per_row)] for key, values in enc.items()
            }
            out["labels"] = batch["label"]
            out["length"] = [max(len(ids) for ids in row) for row in out["input_ids"]]
            return out

        return ds.map(tokenize, batched=True, remove_columns=ds.column_names, desc="Tokenizing")

    def collator(self, tokenizer):
        return PaddingCollator(tokenizer, self.label_names)

    # -- model --------------------------------------------------------------------------------
    def add_head(self, model, name: str, task: Task) -> None:
        model.add_multiple_choice_head(name, num_choices=len(task.labels))

    def check_head(self, model, name: str, task: Task) -> str | None:
        """Why head ``name`` cannot serve ``task``, or None when it can."""
        return head_problem(model, name, task, self.head_type, "num_choices")

    # -- predictions and metric ---------------------------------------------------------------
    def batch_outputs(self, output, batch: dict) -> list[np.ndarray]:
        return logit_rows(output)

    def score(
        self, ds: Dataset, encoded: Dataset, outputs: list, task: Task, language: str, data: DataConfig
    ) -> dict[str, float]:
        return argmax_accuracy(outputs, encoded["labels"])
