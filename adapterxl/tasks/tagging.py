"""Token tagging (UDPOS, PAN-X / WikiANN, CCG supertagging).

Roles: ``tokens`` (list of words) and ``tags`` (one label per word, as names or indices). Only the
first sub-token of each word carries the label; the other sub-tokens and special tokens are
ignored (-100) in the loss, and predictions are read back at first sub-tokens, so the metric is
computed on words. This works whether or not the tokenizer marks word starts with a leading-space
symbol (``▁`` in SentencePiece, ``Ġ`` in byte-level BPE). Metric: seqeval-0.0.12 F1 as XTREME.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, at_row
from ..metrics import tagging_scores
from .common import PaddingCollator, head_problem, valid_lengths

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import DataConfig
    from . import Task

IGNORE = -100


class TaggingFamily:
    name = "tagging"
    hub_task = "token-classification"  # the Hub's task type (model card metadata)
    main_metric = "f1"
    label_names = ("labels",)
    default_max_length = 128
    has_labels = True
    head_type = "tagging"

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, ds: Dataset, task: Task, where: str) -> Dataset:
        """Check that every sentence has one tag per token and map tags to label indices."""
        labels = task.labels
        lengths = ds.map(
            lambda b: {"n_tokens": [len(t) for t in b["tokens"]], "n_tags": [len(t) for t in b["tags"]]},
            batched=True,
            remove_columns=ds.column_names,
            desc="Checking",
        )
        for row, (n_tokens, n_tags) in enumerate(zip(lengths["n_tokens"], lengths["n_tags"], strict=True)):
            if n_tokens != n_tags:
                raise DataError(
                    f"{at_row(where, row)}: the sentence has {n_tokens} tokens but {n_tags} tags (task "
                    f"{task.name!r}); every token needs exactly one tag"
                )
        values = set(chain.from_iterable(ds["tags"]))
        index = {}
        for value in values:
            if isinstance(value, str) and value in labels:
                index[value] = labels.index(value)
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(labels):
                index[value] = int(value)
            else:
                row = next(i for i, tags in enumerate(ds["tags"]) if value in tags)
                shown = list(labels) if len(labels) <= 40 else f"{len(labels)} labels"
                raise DataError(
                    f"{at_row(where, row)}: tag {value!r} is not in the tag set of task {task.name!r}: {shown} "
                    f"(or their indices){task.unseen_label_hint()}"
                )
        ds = ds.filter(lambda tokens: len(tokens) > 0, input_columns="tokens")
        if any(k != v for k, v in index.items()):
            import datasets

            features = ds.features.copy()  # explicit: map would keep large_string tags (parquet, CSV) strings
            features["tags"] = getattr(datasets, "List", datasets.Sequence)(datasets.Value("int64"))
            ds = ds.map(
                lambda b: {"tags": [[index[t] for t in tags] for tags in b]},
                input_columns="tags",
                batched=True,
                features=features,
            )
        return ds

    def encode(self, ds: Dataset, tokenizer, data: DataConfig, train: bool = True) -> Dataset:
        """Tokenize pre-split words; label first sub-tokens; keep each first sub-token's word index
        (``word_index``, -1 elsewhere) to map predictions back to words."""
        max_length = data.max_seq_length or self.default_max_length
        tokenizer = for_pretokenized_input(tokenizer)

        def tokenize(batch):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            labels, word_index = [], []
            for i, tags in enumerate(batch["tags"]):
                previous = None
                row_labels, row_words = [], []
                for word in enc.word_ids(i):
                    first = word is not None and word != previous
                    row_labels.append(tags[word] if first else IGNORE)
                    row_words.append(word if first else -1)
                    previous = word
                labels.append(row_labels)
                word_index.append(row_words)
            enc["labels"] = labels
            enc["word_index"] = word_index
            enc["length"] = [len(ids) for ids in enc["input_ids"]]
            return enc

        return ds.map(tokenize, batched=True, remove_columns=ds.column_names, desc="Tokenizing")

    def collator(self, tokenizer):
        return PaddingCollator(tokenizer, self.label_names, label_pad=IGNORE)

    # -- model --------------------------------------------------------------------------------
    def add_head(self, model, name: str, task: Task) -> None:
        model.add_tagging_head(name, num_labels=len(task.labels), id2label=dict(enumerate(task.labels)))

    def check_head(self, model, name: str, task: Task) -> str | None:
        """Why head ``name`` cannot serve ``task``, or None when it can."""
        return head_problem(model, name, task, self.head_type, "num_labels")

    # -- predictions and metric ---------------------------------------------------------------
    def batch_outputs(self, output, batch: dict) -> list[np.ndarray]:
        """The predicted label index of every real token of each row."""
        best = output.logits.argmax(-1).cpu().numpy()
        return [row[:n] for row, n in zip(best, valid_lengths(batch), strict=True)]

    def score(
        self, ds: Dataset, encoded: Dataset, outputs: list, task: Task, language: str, data: DataConfig
    ) -> dict[str, float]:
        """Word-level tags; words cut off by ``max_seq_length`` are predicted as ``O`` (or the
        first label when there is no ``O``), so every gold word is scored."""
        fill = task.labels.index("O") if "O" in task.labels else 0
        gold, predicted = [], []
        for tags, words, pred in zip(ds["tags"], encoded["word_index"], outputs, strict=True):
            row = [fill] * len(tags)
            for position, word in enumerate(words):
                if word >= 0:
                    row[word] = int(pred[position])
            gold.append([task.labels[t] for t in tags])
            predicted.append([task.labels[t] for t in row])
        return tagging_scores(gold, predicted)


def for_pretokenized_input(tokenizer):
    """Byte-level BPE tokenizers (RoBERTa style) encode pre-split words only when built with
    ``add_prefix_space=True``; such a tokenizer is reloaded that way. SentencePiece (XLM-R) and
    WordPiece (BERT) tokenizers are returned unchanged."""
    if getattr(tokenizer, "add_prefix_space", None) is False:
        return type(tokenizer).from_pretrained(tokenizer.name_or_path, add_prefix_space=True)
    return tokenizer
