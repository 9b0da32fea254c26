"""Zero-shot evaluation over languages.

Each language's evaluation set is tokenized, sorted by length (less padding, and the longest batch
first so that memory problems show at once), run without gradients (bf16 autocast on a GPU), and
scored with the task family's official metric. Summaries follow XTREME: the task score is the
plain mean over all of the task's languages; the zero-shot mean leaves out the training language.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from .tasks import Task
from .training import use_bf16


def predict(
    model, encoded, family, collator, batch_size: int, bf16: bool | str = "auto", desc: str = "Predicting"
) -> np.ndarray:
    """Predictions for every row of an encoded dataset, in the dataset's order."""
    lengths = np.asarray(encoded["length"])
    order = np.argsort(-lengths, kind="stable")
    device = next(model.parameters()).device
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if use_bf16(bf16) and device.type == "cuda"
        else nullcontext()
    )
    model.eval()
    outputs: list[np.ndarray] = []
    with torch.inference_mode(), autocast:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, unit="batch"):
            rows = encoded.select(order[start : start + batch_size]).to_list()
            batch = collator(rows)
            batch.pop("labels", None)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(**batch).logits
            outputs.append(family.decode(logits.float().cpu().numpy()))
    predictions = np.empty(len(order), dtype=outputs[0].dtype) if outputs else np.empty(0, dtype=int)
    if outputs:
        predictions[order] = np.concatenate(outputs)
    return predictions


def evaluate_languages(
    model, tokenizer, task: Task, datasets: dict, batch_size: int, max_length: int, bf16: bool | str = "auto"
) -> dict[str, dict[str, float]]:
    """Score ``model`` on each language's dataset (role columns, as from :mod:`adapterxl.data`).
    Returns ``{language: {metric: value}}`` in percent."""
    family = task.family
    collator = family.collator(tokenizer)
    results = {}
    for language, ds in tqdm(datasets.items(), desc=f"Evaluating {task.name}", unit="lang"):
        encoded = family.encode(ds, tokenizer, max_length)
        preds = predict(model, encoded, family, collator, batch_size, bf16, desc=f"{task.name}/{language}")
        results[language] = family.score(preds, encoded["labels"])
    return results


def summarize(per_language: dict[str, dict[str, float]], metric: str, source_language: str = "en") -> dict[str, float]:
    """``avg``: mean over all languages (XTREME's task score); ``avg_zero_shot``: mean over the
    languages other than ``source_language`` (present only when there are any)."""
    values = {lang: scores[metric] for lang, scores in per_language.items()}
    out = {"metric": metric, "avg": float(np.mean(list(values.values())))}
    others = [v for lang, v in values.items() if lang != source_language]
    if others:
        out["avg_zero_shot"] = float(np.mean(others))
    return out
