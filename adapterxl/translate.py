"""Translate-train data: an English task's training split machine-translated into other
languages with any ``transformers`` seq2seq model, written in the task's Hub schema and cached.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import DataConfig
from .data import load_split, local_files, with_labels
from .errors import DataError, first_line
from .tasks import BUILTIN, Task, TaskRegistry

# Roles whose text is translated; labels and the rest are copied. QA answer spans and tag sequences
# cannot be carried through a translation without alignment, so those families are not offered.
TRANSLATABLE_ROLES = {"classification": ("text", "text_pair"), "multiple_choice": ("context", "question", "choices")}


def translate_task_data(
    task_name: str,
    model: str,
    languages: list[str],
    out_dir: str | Path,
    split: str = "train",
    data: DataConfig | None = None,
    source_code: str | None = None,
    target_codes: dict[str, str] | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    num_beams: int = 1,
    tasks: TaskRegistry = BUILTIN,
) -> dict[str, Path]:
    """Machine-translate one split of an English task into ``languages`` with any translation model
    ``transformers`` can load (``AutoModelForSeq2SeqLM``; ``{lang}`` in ``model`` picks one model
    per language, e.g. ``Helsinki-NLP/opus-mt-en-{lang}``; many-to-many models take
    ``source_code`` / ``target_codes``, e.g. NLLB's ``eng_Latn`` / ``{"de": "deu_Latn"}``).

    Writes ``out_dir/{task}/{lang}/{split}.jsonl`` in the task's Hub schema, so that
    ``data.data_files.{split}: out_dir/{task}/{lang}/{split}.jsonl`` trains on it. A file whose
    recorded settings match is reused, not translated again. Returns ``{language: path}``.
    """
    from tqdm.auto import tqdm

    from . import __version__

    task = tasks.get(task_name)
    roles = TRANSLATABLE_ROLES.get(task.family.name)
    if roles is None:
        raise DataError(
            f"task {task.name!r} ({task.family.name}) cannot be translated: its labels are tied to token "
            f"positions (answer spans, tags). Translatable families: {sorted(TRANSLATABLE_ROLES)}"
        )
    data = data or DataConfig()
    task = with_labels(task, data)  # a declared task without labels: its training data's
    if not languages:
        raise DataError("name at least one target language")
    target_codes = target_codes or {}
    out = {}
    rows = None
    for lang in languages:
        path = Path(out_dir) / task.name / lang / f"{split}.jsonl"
        settings = {
            "task": task.name,
            "split": split,
            "model": model.replace("{lang}", lang),
            "source_code": source_code,
            "target_code": target_codes.get(lang),
            "max_train_examples": data.max_train_examples,
            "data_files": local_files(task, data).get(split),
            "num_beams": num_beams,
            "max_new_tokens": max_new_tokens,
        }
        meta_path = path.with_suffix(".meta.json")
        if path.is_file() and meta_path.is_file():
            cached = json.loads(meta_path.read_text(encoding="utf-8"))
            if cached.get("settings") == settings:
                out[lang] = path
                continue
        if rows is None:
            ds = load_split(task, split, task.train_language, data, data.max_train_examples, training=True)
            rows = ds.to_list()
        texts = sorted({t for row in rows for role in roles if role in row for t in _texts(row[role])})
        translate = _translator(settings["model"], source_code, settings["target_code"], num_beams, max_new_tokens)
        table = {}
        for start in tqdm(range(0, len(texts), batch_size), desc=f"Translating {task.name} -> {lang}", unit="batch"):
            chunk = texts[start : start + batch_size]
            table.update(zip(chunk, translate(chunk), strict=True))
        translated = [
            {role: _map_texts(value, table) if role in roles else value for role, value in row.items()} for row in rows
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row in translated:
                f.write(json.dumps(_to_hub_schema(row, task), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        meta = {"settings": settings, "rows": len(translated), "texts": len(texts), "adapterxl": __version__}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        out[lang] = path
    return out


def _texts(value) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if value else []


def _map_texts(value, table: dict[str, str]):
    if isinstance(value, str):
        return table[value]
    return [table.get(v, v) for v in value] if isinstance(value, list) else value


def _to_hub_schema(row: dict, task: Task) -> dict:
    """A role row back in the Hub column names: ``choices`` split over several columns or nested
    under a dotted name (``choices.text`` -> ``{"choices": {"text": [...]}}``)."""
    out: dict = {}
    for role, spec in task.columns.items():
        if role not in row:
            continue
        if not isinstance(spec, str):
            for column, value in zip(spec, row[role], strict=True):
                out[column] = value
        elif "." in spec:
            parent, child = spec.split(".", 1)
            out.setdefault(parent, {})[child] = row[role]
        elif role == "label" and task.declaration and task.family.name == "classification":
            out[spec] = task.labels[row[role]]  # a declared task's files name their labels
        else:
            out[spec] = row[role]
    return out


def _translator(model_name: str, source_code: str | None, target_code: str | None, num_beams: int, max_new_tokens):
    """``translate(list of texts) -> list of texts`` with a seq2seq model (GPU if available)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name)
        model = AutoModelForSeq2SeqLM.from_pretrained(model_name)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"could not load translation model {model_name!r} ({first_line(exc)}): give a Hub id or local folder "
            "of a sequence-to-sequence model (Marian opus-mt, NLLB, M2M100, mBART, T5, ...)"
        ) from exc
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    if source_code and hasattr(tokenizer, "src_lang"):
        tokenizer.src_lang = source_code
    forced = None
    if target_code:
        forced = tokenizer.convert_tokens_to_ids(target_code)
        if forced is None or forced == tokenizer.unk_token_id:
            raise DataError(f"translation model {model_name!r} has no language token {target_code!r}")

    def translate(texts: list[str]) -> list[str]:
        enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            generated = model.generate(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                forced_bos_token_id=forced,
            )
        return [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]

    return translate
