"""What the task families share: padding collators and the model-input columns."""

from __future__ import annotations

import numpy as np

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class PaddingCollator:
    """Pads model inputs with the tokenizer and ``label_names`` lists with ``label_pad``; every other
    column (lengths, offsets, example ids) is dropped. Inputs shaped ``[choices, tokens]`` (multiple
    choice) are flattened for padding and reshaped back to ``[batch, choices, tokens]``."""

    def __init__(self, tokenizer, label_names: tuple[str, ...], label_pad: int | None = None):
        self.tokenizer = tokenizer
        self.label_names = label_names
        self.label_pad = label_pad

    def __call__(self, features: list[dict]) -> dict:
        import torch
        from transformers.data.data_collator import pad_without_fast_tokenizer_warning

        keys = [k for k in MODEL_INPUTS if k in features[0]]
        choices = None
        if np.ndim(features[0]["input_ids"][0]) == 1:  # multiple choice: a sequence per choice
            choices = len(features[0]["input_ids"])
            rows = [{k: f[k][c] for k in keys} for f in features for c in range(choices)]
        else:
            rows = [{k: f[k] for k in keys} for f in features]
        batch = pad_without_fast_tokenizer_warning(self.tokenizer, rows, return_tensors="pt")
        if choices is not None:
            batch = {k: v.view(len(features), choices, -1) for k, v in batch.items()}
        width = batch["input_ids"].shape[-1]
        for name in self.label_names:
            if name not in features[0]:
                continue
            values = [f[name] for f in features]
            if self.label_pad is not None and np.ndim(values[0]) == 1:  # token labels: pad to width
                values = [list(v) + [self.label_pad] * (width - len(v)) for v in values]
            batch[name] = torch.tensor(values, dtype=torch.long)
        return dict(batch)


def token_count(encoded) -> int:
    """Tokens of an encoded dataset (after truncation, without padding); multiple choice counts
    every choice's sequence."""
    ids = encoded["input_ids"]
    if len(ids) and len(ids[0]) and isinstance(ids[0][0], list):
        return sum(len(choice) for row in ids for choice in row)
    return sum(len(row) for row in ids)


def valid_lengths(batch: dict) -> np.ndarray:
    """Number of real (non-pad) tokens per row of a padded batch."""
    return batch["attention_mask"].sum(-1).cpu().numpy()


def head_problem(model, name: str, task, head_type: str, size_key: str | None = None) -> str | None:
    """Why head ``name`` cannot serve ``task``: another head type, or (``size_key``, e.g.
    ``num_labels`` / ``num_choices``) a size other than the task's number of labels. None if it can."""
    config = model.heads[name].config
    if config.get("head_type") != head_type:
        return f"head {name!r} is a {config.get('head_type')} head, task {task.name!r} needs {head_type}"
    if size_key and config.get(size_key) != len(task.labels):
        return f"head {name!r} has {size_key} {config.get(size_key)}, task {task.name!r} has {len(task.labels)} labels"
    return None


def logit_rows(output) -> list[np.ndarray]:
    """One score vector per example (classification labels, multiple-choice choices)."""
    return list(output.logits.float().cpu().numpy())


def argmax_accuracy(outputs: list, references) -> dict[str, float]:
    """Accuracy (official semantics) of the best-scoring label / choice of each example."""
    from ..metrics import accuracy

    return {"accuracy": accuracy([int(np.argmax(o)) for o in outputs], references)}


class FamilyOptions:
    """For families with options (a QA metric script, question prompts, a pivot language): two
    instances are equal when their class and options are, so two declarations of one task are the
    same task."""

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(vars(self).items()))))
