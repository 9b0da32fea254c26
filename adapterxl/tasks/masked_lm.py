"""Masked language modelling on plain multilingual text: language adapters (MAD-X) and the MLM
objective mixed into intermediate training (the paper's alternative i).

Role: ``text`` (one example per line or row). Training batches are masked on the fly (15% of the
tokens; of those 80% [MASK], 10% random, 10% kept, as BERT). Evaluation masks with a fixed seed, so
every model sees the same masked positions; the metric is the accuracy of the predicted tokens at
the masked positions. Head: the ``adapters`` masked-LM head (its output layer is tied to the
frozen input embeddings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .common import PaddingCollator

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import DataConfig
    from . import Task

IGNORE = -100
MASK_PROBABILITY = 0.15
EVAL_MASK_SEED = 0


def mask_tokens(input_ids, tokenizer, rng, special_mask) -> tuple:
    """BERT masking of an int array ``input_ids`` (any shape) with a numpy ``rng``: returns
    ``(masked_ids, labels)``; ``labels`` is -100 outside the masked positions, and every row with
    a maskable token gets at least one."""
    ids = np.array(input_ids, dtype=np.int64)
    special = np.asarray(special_mask, dtype=bool)
    chosen = (rng.random(ids.shape) < MASK_PROBABILITY) & ~special
    for row in np.flatnonzero(~chosen.any(axis=-1) & (~special).any(axis=-1)):
        chosen[row, rng.choice(np.flatnonzero(~special[row]))] = True
    labels = np.where(chosen, ids, IGNORE)
    roll = rng.random(ids.shape)
    masked = ids.copy()
    masked[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    randomize = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[randomize] = rng.integers(0, len(tokenizer), size=int(randomize.sum()))
    return masked, labels


class MaskingCollator(PaddingCollator):
    """Pads like every family; rows without ``labels`` (training) are masked on the fly with a
    generator seeded from torch's RNG (so ``seed`` makes training reproducible)."""

    def __call__(self, features: list[dict]) -> dict:
        import torch

        batch = super().__call__(features)
        if "labels" in batch:
            return batch
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        ids = batch["input_ids"].numpy()
        special = (batch["attention_mask"].numpy() == 0) | np.isin(ids, self.tokenizer.all_special_ids)
        masked, labels = mask_tokens(ids, self.tokenizer, rng, special)
        batch["input_ids"] = torch.from_numpy(masked)
        batch["labels"] = torch.from_numpy(labels)
        return batch


class MaskedLMFamily:
    name = "masked_lm"
    hub_task = "fill-mask"  # the Hub's task type (model card metadata)
    main_metric = "accuracy"
    label_names = ("labels",)
    default_max_length = 128
    has_labels = False
    head_type = "masked_lm"

    def prepare(self, ds: Dataset, task: Task, where: str) -> Dataset:
        """Drop empty lines."""
        return ds.filter(lambda t: bool(t and t.strip()), input_columns="text", desc="Dropping empty lines")

    def encode(self, ds: Dataset, tokenizer, data: DataConfig, train: bool = True) -> Dataset:
        """Tokenize ``text``; evaluation sets are masked here, once, with a fixed seed."""
        max_length = data.max_seq_length or self.default_max_length
        rng = np.random.default_rng(EVAL_MASK_SEED)

        def tokenize(batch):
            enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            if not train:
                masked_rows, label_rows = [], []
                for ids in enc["input_ids"]:
                    special = np.isin(ids, tokenizer.all_special_ids)[None]
                    masked, labels = mask_tokens(np.array(ids)[None], tokenizer, rng, special)
                    masked_rows.append(masked[0].tolist())
                    label_rows.append(labels[0].tolist())
                enc["input_ids"], enc["labels"] = masked_rows, label_rows
            return enc

        return ds.map(tokenize, batched=True, remove_columns=ds.column_names, desc="Tokenizing")

    def collator(self, tokenizer):
        return MaskingCollator(tokenizer, self.label_names, label_pad=IGNORE)

    def add_head(self, model, name: str, task: Task) -> None:
        """A masked-LM head, starting from the checkpoint's own MLM head when it had one."""
        model.add_masked_lm_head(name)
        pretrained = getattr(model, "pretrained_mlm_head", None)
        if pretrained:
            model.heads[name].load_state_dict(pretrained)

    def check_head(self, model, name: str, task: Task) -> str | None:
        head_type = model.heads[name].config.get("head_type")
        return None if head_type == self.head_type else f"head {name!r} is a {head_type} head, not masked_lm"

    def batch_outputs(self, output, batch: dict) -> list[tuple[int, int]]:
        """Per row: (correct predictions, masked tokens)."""
        predicted = output.logits.argmax(-1).cpu().numpy()
        labels = batch["labels"].cpu().numpy()
        masked = labels != IGNORE
        return [(int(((p == y) & m).sum()), int(m.sum())) for p, y, m in zip(predicted, labels, masked, strict=True)]

    def score(
        self, ds: Dataset, encoded: Dataset, outputs: list, task: Task, language: str, data: DataConfig
    ) -> dict[str, float]:
        correct = sum(c for c, _ in outputs)
        total = sum(n for _, n in outputs)
        return {"accuracy": 100.0 * correct / total if total else 0.0, "masked_tokens": float(total)}
