"""Sentence retrieval tasks: evaluated straight off an encoder, no training data. One family per
protocol, each usable by built-in tasks and by tasks declared in YAML:

- :class:`AlignedPairsFamily` (``aligned_pairs``): rows of (sentence, English translation);
  top-1 accuracy of nearest-neighbour search. Tatoeba.
- :class:`BitextMiningFamily` (``bitext_mining``): mine translation pairs between two corpora
  with the ratio margin; F1 against gold pairs. BUCC 2018.
- :class:`AlignedCorporaFamily` (``aligned_corpora``): one file (or Hub config) per language,
  row ``i`` of every language the same sentence; accuracy both ways against a pivot language.
  FLORES-200.

A family reads its rows through ``rows(split, language)`` (given by the caller, see
:func:`adapterxl.data.retrieval_rows`) and embeds through ``encode(sentences)``.

- Tatoeba (google/xtreme ``tatoeba.{iso3}``): aligned pairs; top-1 accuracy of English queries
  over the other language's sentences (``xx->en`` as an option).
- BUCC 2018: bitext mining with the ratio margin. The faithful benchmark needs the original
  corpora with distractor sentences (``{lang}-en.{sample|training}.{lang|en|gold}`` files);
  the Hub copy (google/xtreme ``bucc18.{lang}``) holds only the gold pairs, and results on it are
  marked ``pairs_only``. The threshold is optimised on the dev ("sample") gold and applied to test
  ("training"); the dev score is at its own optimal threshold, as jiant and XTREME report it.
- FLORES-200 (openlanguagedata/flores_plus ``{code}``, e.g. ``deu_Latn``): every language's
  sentences aligned with ``eng_Latn``; accuracy in both directions, grouped by script.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..embeddings import bucc_candidates, bucc_scores, bucc_threshold, margin_mine, tatoeba_accuracy
from ..errors import DataError
from .common import FamilyOptions

if TYPE_CHECKING:
    from datasets import Dataset

    from ..config import DataConfig
    from . import Task

Encoder = Callable[[list[str]], np.ndarray]
Rows = Callable[[str, str], "Dataset"]  # (split, language) -> rows with the task's columns
FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
BUCC_SPLITS = {"validation": "sample", "test": "training"}  # BUCC's names (XTREME: sample = dev)


class RetrievalFamily(FamilyOptions):
    """What every retrieval protocol shares: no labels, no head, no training data."""

    hub_task = "sentence-similarity"  # the Hub's task type (model card metadata)
    main_metric = "accuracy"
    has_labels = False
    default_max_length = 512
    default_split = "validation"

    def evaluate(self, encode: Encoder, task: Task, language: str, data: DataConfig, options: dict, rows: Rows) -> dict:
        """Metrics of one language."""
        raise NotImplementedError

    def describe(self, task: Task, result: dict, options: dict) -> dict:
        """What the result says beyond its metrics (how it was measured)."""
        return {}


class AlignedPairsFamily(RetrievalFamily):
    name = "aligned_pairs"  # columns source (a sentence in the language) and target (its English translation)

    def evaluate(self, encode, task, language, data, options, rows) -> dict:
        ds = rows(data.eval_split, language)
        if data.max_eval_examples:
            ds = ds.select(range(min(data.max_eval_examples, len(ds))))
        src = encode(list(ds[task.columns["source"]]))
        en = encode(list(ds[task.columns["target"]]))
        direction = options.get("direction", "en->xx")
        return {"accuracy": tatoeba_accuracy(src, en, direction, precision=options.get("precision", "float32"))}

    def describe(self, task, result, options) -> dict:
        return {"direction": options.get("direction", "en->xx")}


class BitextMiningFamily(RetrievalFamily):
    name = "bitext_mining"  # columns source and target, as aligned pairs
    main_metric = "f1"

    def evaluate(self, encode, task, language, data, options, rows) -> dict:
        split = data.eval_split
        directory = options.get("bucc_dir")
        if directory:
            dev_src, dev_en, dev_gold = read_bucc(directory, language, "validation")
            dev = bucc_threshold(_bucc_mine(encode, dev_src, dev_en, options), dev_gold)
            if split == "validation":
                return dev
            src, en, gold = read_bucc(directory, language, "test")
            return bucc_scores(_bucc_mine(encode, src, en, options), gold, dev["threshold"])
        # Gold pairs only, no distractors (the Hub copy). Still mined the same way; flagged in the result.
        ds = rows(split, language)
        src = {f"{language}-{i}": t for i, t in enumerate(ds[task.columns["source"]])}
        en = {f"en-{i}": t for i, t in enumerate(ds[task.columns["target"]])}
        gold = [(f"{language}-{i}", f"en-{i}") for i in range(len(ds))]
        return bucc_threshold(_bucc_mine(encode, src, en, options), gold)

    def describe(self, task, result, options) -> dict:
        if options.get("bucc_dir"):
            return {"pairs_only": False}
        note = (
            "mined among the gold pairs only, without distractor sentences: easier than the BUCC benchmark, whose "
            "corpora have them"
        )
        if task.source is not None:  # a Hub copy of BUCC: the original files give the benchmark
            note = f"{task.source.path} holds only the gold pairs: {note}. Pass the original files (bucc_dir)."
        return {"pairs_only": True, "note": note}


class AlignedCorporaFamily(RetrievalFamily):
    """``pivot``: the language every other is aligned with; ``codes``: a pattern language codes
    must match (FLORES: ``deu_Latn``), whose part after ``_`` is the script."""

    name = "aligned_corpora"  # column text

    def __init__(self, pivot: str = "en", codes: re.Pattern | None = None, default_split: str = "validation"):
        self.pivot, self.codes, self.default_split = pivot, codes, default_split

    def evaluate(self, encode, task, language, data, options, rows) -> dict:
        if self.codes is not None and not self.codes.match(language):
            raise DataError(
                f"{language!r} is not a FLORES-200 code such as 'deu_Latn' (ISO 639-3 + '_' + ISO 15924 script)"
            )
        split = data.eval_split
        xx, en = rows(split, language), rows(split, self.pivot)
        if len(xx) != len(en):
            raise DataError(
                f"{task.name} {language} has {len(xx)} sentences but {self.pivot} {len(en)}: rows must align"
            )
        x = encode(list(xx[task.columns["text"]]))
        e = encode(list(en[task.columns["text"]]))
        precision = options.get("precision", "float32")
        xx2en = tatoeba_accuracy(x, e, "xx->en", precision=precision)
        en2xx = tatoeba_accuracy(x, e, "en->xx", precision=precision)
        return {"accuracy": (xx2en + en2xx) / 2, "accuracy_xx2en": xx2en, "accuracy_en2xx": en2xx}

    def describe(self, task, result, options) -> dict:
        if self.codes is None:
            return {}
        metrics = result["metrics"]
        out: dict = {"by_script": _means({lang: lang.split("_")[1] for lang in metrics}, metrics)}
        try:
            families = language_families(list(metrics))
        except ImportError:
            out["note"] = "install the 'families' extra (lang2vec) for averages by language family"
        else:
            out["by_family"] = _means(families, metrics)
        return out


def _means(groups: dict[str, str], metrics: dict[str, dict]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for lang, scores in metrics.items():
        by.setdefault(groups[lang], []).append(scores["accuracy"])
    return {group: sum(v) / len(v) for group, v in sorted(by.items())}


@functools.lru_cache(maxsize=1)
def _l2v_languages() -> frozenset[str]:
    return frozenset(lang2vec().available_languages())


def language_families(codes: list[str]) -> dict[str, str]:
    """Top-level language family of each FLORES code (``deu_Latn`` -> ``Indo-European``) from URIEL
    via ``lang2vec`` (which lists a language's top-level family first among its family features);
    ``unknown`` for languages URIEL lacks. Needs the ``families`` extra (lang2vec)."""
    l2v = lang2vec()
    iso = {code: code.split("_")[0] for code in codes}
    available = _l2v_languages()  # about a second per call: once, not once per language
    known = sorted({c for c in iso.values() if c in available})
    families = {}
    if known:
        features = l2v.get_features(known, "fam", header=True)
        names = features["CODE"]
        for lang in known:
            members = [str(names[i]) for i, v in enumerate(features[lang]) if v == 1]
            families[lang] = members[0][2:] if members else "unknown"
    return {code: families.get(lang, "unknown") for code, lang in iso.items()}


def lang2vec():
    """The ``lang2vec.lang2vec`` module. lang2vec also installs a *script* ``lang2vec.py`` next to
    the console scripts; when Python runs one of those (``adapterxl``, ``pytest``), that folder is
    first on ``sys.path`` and the script shadows the package. Import past it."""
    import importlib
    import os
    import sys
    import warnings

    with warnings.catch_warnings():  # lang2vec imports pkg_resources, which warns that it is deprecated
        warnings.simplefilter("ignore", UserWarning)
        try:
            return importlib.import_module("lang2vec.lang2vec")
        except (ImportError, OSError):
            pass
        sys.modules.pop("lang2vec", None)
        saved = list(sys.path)
        sys.path[:] = [p for p in saved if not os.path.isfile(os.path.join(p or ".", "lang2vec.py"))]
        try:
            return importlib.import_module("lang2vec.lang2vec")
        finally:
            sys.path[:] = saved


def read_bucc(directory: str | Path, language: str, split: str) -> tuple[dict[str, str], dict[str, str], list]:
    """The original BUCC 2018 files of a language pair and split: ``(src id->text, en id->text,
    gold [(src_id, en_id)])`` from ``{lang}-en.{sample|training}.{lang|en|gold}``."""
    stem = Path(directory) / f"{language}-en.{BUCC_SPLITS[split]}"

    def read(suffix: str) -> list[list[str]]:
        path = Path(f"{stem}.{suffix}")
        if not path.is_file():
            raise DataError(
                f"BUCC file {str(path)!r} is missing: the faithful BUCC benchmark needs the original "
                f"bucc2018-{language}-en.{BUCC_SPLITS[split]}-gold files unpacked in {str(directory)!r}"
            )
        with path.open(encoding="utf-8") as f:
            return [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]

    src = {i: t for i, t in read(language)}
    en = {i: t for i, t in read("en")}
    gold = [tuple(pair) for pair in read("gold")]
    return src, en, gold


def _bucc_mine(encode: Encoder, src: dict[str, str], en: dict[str, str], options: dict):
    """Mine candidates between two id->text corpora; duplicate texts are embedded once."""
    src_texts = list(dict.fromkeys(t.strip() for t in src.values()))
    en_texts = list(dict.fromkeys(t.strip() for t in en.values()))
    mined = margin_mine(encode(src_texts), encode(en_texts), k=4, precision=options.get("precision", "float32"))
    return bucc_candidates([(score, src_texts[s], en_texts[t]) for s, t, score in mined], src, en)
