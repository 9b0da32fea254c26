"""Extractive question answering (SQuAD v1.1 / v2.0, XQuAD, MLQA, TyDiQA-GoldP).

Roles: ``id``, ``context``, ``question``, ``answers`` (``{"text": [...], "answer_start": [...]}``,
character offsets into the context). Questions are cut to ``max_query_length`` tokens; contexts
longer than ``max_seq_length`` are split into windows that overlap by ``doc_stride`` tokens (the
``stride`` of Hugging Face's run_qa). Training labels are the first answer's start and end tokens,
or the first token when the answer is not inside a window. Predictions take the best of the
``n_best_size`` start x end candidates over all windows of a question (inside the context, end
after start, at most ``max_answer_length`` tokens) and map it back to the original context text
through the tokenizer's offsets. SQuAD v2 tasks answer "" when the null score (first token) beats
the best span by more than ``null_score_threshold``. Metrics: the official SQuAD or MLQA script.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, at_row
from ..metrics import qa_scores, squad_v2_scores
from .common import FamilyOptions, PaddingCollator, head_problem, valid_lengths

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import DataConfig
    from . import Task

NO_OFFSET = (-1, -1)  # tokens outside the context


class QAFamily(FamilyOptions):
    """Extractive QA. ``script``: the official metric script, ``squad`` (v1.1), ``mlqa``
    (language-aware normalisation) or ``squad_v2`` (unanswerable questions allowed and scored)."""

    name = "qa"
    hub_task = "question-answering"  # the Hub's task type (model card metadata)
    main_metric = "f1"
    label_names = ("start_positions", "end_positions")
    head_type = "question_answering"
    default_max_length = 384
    has_labels = False  # answers are spans of the context, not labels
    SCRIPTS = ("squad", "mlqa", "squad_v2")

    def __init__(self, script: str = "squad"):
        if script not in self.SCRIPTS:
            raise ValueError(f"unknown QA metric script {script!r}: use one of {self.SCRIPTS}")
        self.script = script

    # -- data ---------------------------------------------------------------------------------
    def prepare(self, ds: Dataset, task: Task, where: str) -> Dataset:
        """Check that every answer is found at its offset in its context (and that only SQuAD v2
        style tasks have questions without answers)."""
        unanswerable_ok = self.script == "squad_v2"
        answers_type = ds.features["answers"]
        fields = answers_type.keys() if isinstance(answers_type, dict) else getattr(answers_type, "feature", {})
        if not {"text", "answer_start"} <= set(fields):
            raise DataError(
                f"{where}: the answers of task {task.name!r} must be SQuAD-style "
                '{"text": [answer, ...], "answer_start": [character offset, ...]} per question; got '
                + f"{answers_type}"
            )
        if "id" not in ds.column_names:  # no id column declared: number the questions
            ds = ds.add_column("id", [str(i) for i in range(len(ds))])
        seen: dict[str, int] = {}
        for row, (qid, context, answers) in enumerate(zip(ds["id"], ds["context"], ds["answers"], strict=True)):
            at = f"{at_row(where, row)}: question {qid!r}"
            if qid in seen:
                raise DataError(f"{at} repeats the id of {at_row(where, seen[qid])}; question ids must be unique")
            seen[qid] = row
            texts, starts = answers["text"], answers["answer_start"]
            if len(texts) != len(starts):
                raise DataError(f"{at} has {len(texts)} answer texts but {len(starts)} offsets")
            if not texts and not unanswerable_ok:
                raise DataError(
                    f"{at} of task {task.name!r} has no answer; only SQuAD v2 style tasks (squad_v2) may have "
                    "unanswerable questions"
                )
            for text, start in zip(texts, starts, strict=True):
                found = context[start : start + len(text)]
                if found != text:
                    raise DataError(
                        f"{at}: answer {text!r} does not match its context at offset {start} (the context has "
                        f"{found!r} there); fix answer_start"
                    )
        return ds

    def encode(self, ds: Dataset, tokenizer, data: DataConfig, train: bool = True) -> Dataset:
        """Windows of (question, context) tokens. Training windows get ``start_positions`` and
        ``end_positions``; evaluation windows keep ``example_index`` and context ``offset_mapping``."""
        max_length = data.max_seq_length or self.default_max_length
        cls_index = 0

        def tokenize(batch, indices):
            questions = _cut_questions(tokenizer, [q.lstrip() for q in batch["question"]], data.max_query_length)
            enc = tokenizer(
                questions, batch["context"], truncation="only_second", max_length=max_length,
                stride=data.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
            )  # fmt: skip
            sample = enc.pop("overflow_to_sample_mapping")
            starts, ends, example_index, offsets_out = [], [], [], []
            for f, offsets in enumerate(enc["offset_mapping"]):
                sequence = enc.sequence_ids(f)
                context = [k for k, s in enumerate(sequence) if s == 1]
                i = sample[f]
                if train:
                    start, end = _label_window(batch["answers"][i], offsets, context, cls_index)
                    starts.append(start)
                    ends.append(end)
                else:
                    example_index.append(indices[i])
                    offsets_out.append([tuple(o) if sequence[k] == 1 else NO_OFFSET for k, o in enumerate(offsets)])
            out = {key: enc[key] for key in enc if key != "offset_mapping"}
            if train:
                out["start_positions"], out["end_positions"] = starts, ends
            else:
                out["example_index"], out["offset_mapping"] = example_index, offsets_out
            out["length"] = [len(ids) for ids in enc["input_ids"]]
            return out

        return ds.map(tokenize, batched=True, with_indices=True, remove_columns=ds.column_names, desc="Tokenizing")

    def collator(self, tokenizer):
        return PaddingCollator(tokenizer, self.label_names)

    # -- model --------------------------------------------------------------------------------
    def add_head(self, model, name: str, task: Task) -> None:
        model.add_qa_head(name)

    def check_head(self, model, name: str, task: Task) -> str | None:
        """Why head ``name`` cannot serve ``task``, or None when it can."""
        return head_problem(model, name, task, self.head_type)

    # -- predictions and metric ---------------------------------------------------------------
    def batch_outputs(self, output, batch: dict) -> list[tuple[np.ndarray, np.ndarray]]:
        starts = output.start_logits.float().cpu().numpy()
        ends = output.end_logits.float().cpu().numpy()
        return [(s[:n], e[:n]) for s, e, n in zip(starts, ends, valid_lengths(batch), strict=True)]

    def predictions(self, ds: Dataset, encoded: Dataset, outputs: list, task: Task, data: DataConfig) -> dict[str, str]:
        """Question id -> answer text, decoded from the windows' start and end scores."""
        windows = defaultdict(list)
        for f, example in enumerate(encoded["example_index"]):
            windows[example].append(f)
        offsets_all = encoded["offset_mapping"]
        ids, contexts = ds["id"], ds["context"]
        out = {}
        for example, features in windows.items():
            best_text, best_score, null_score = "", -np.inf, np.inf
            for f in features:
                start, end = outputs[f]
                offsets = offsets_all[f]
                null_score = min(null_score, float(start[0] + end[0]))
                for s in np.argsort(start)[::-1][: data.n_best_size]:
                    for e in np.argsort(end)[::-1][: data.n_best_size]:
                        if offsets[s][0] < 0 or offsets[e][0] < 0 or e < s or e - s + 1 > data.max_answer_length:
                            continue
                        score = float(start[s] + end[e])
                        if score > best_score:
                            best_score = score
                            # strip: some tokenizers' offsets include the space before a word
                            best_text = contexts[example][offsets[s][0] : offsets[e][1]].strip()
            if self.script == "squad_v2" and (not best_text or null_score - best_score > data.null_score_threshold):
                best_text = ""
            out[ids[example]] = best_text
        return out

    def score(
        self, ds: Dataset, encoded: Dataset, outputs: list, task: Task, language: str, data: DataConfig
    ) -> dict[str, float]:
        predictions = self.predictions(ds, encoded, outputs, task, data)
        references = {qid: answers["text"] for qid, answers in zip(ds["id"], ds["answers"], strict=True)}
        if self.script == "squad_v2":
            scores = squad_v2_scores(predictions, references)
            return {k: v for k, v in scores.items() if not k.endswith("_total")}
        return qa_scores(predictions, references, language if self.script == "mlqa" else None)


def _cut_questions(tokenizer, questions: list[str], max_query_length: int) -> list[str]:
    """Questions cut after their ``max_query_length``-th token (at that token's end offset)."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [
        q if len(offsets) <= max_query_length else q[: offsets[max_query_length - 1][1]]
        for q, offsets in zip(questions, enc["offset_mapping"], strict=True)
    ]


def _label_window(answers: dict, offsets, context: list[int], cls_index: int) -> tuple[int, int]:
    """Start and end token of the first answer inside this window, or ``cls_index`` twice."""
    if not answers["text"] or not context:
        return cls_index, cls_index
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    first, last = context[0], context[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1
