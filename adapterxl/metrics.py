"""Metrics equal to the official XTREME evaluation code (google-research/xtreme ``evaluate.py``,
``third_party/evaluate_squad.py``, ``third_party/evaluate_mlqa.py``), quirks included.

All scores are on the percent scale (0-100), as XTREME reports them. Where the official code
crashes, the function here raises a ValueError that says why, or does the documented sensible
thing; each such place says so in its docstring.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

from .languages import XTREME_GROUPS, XTREME_R_GROUPS, XTREME_R_TASK_LANGUAGES, XTREME_TASK_LANGUAGES

# -- classification ----------------------------------------------------------------------------


def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Classification accuracy in percent, as XTREME's ``evaluate.accuracy``.

    The official code compares labels as strings read from files and divides by the number of
    predictions; it asserts that both have the same length, so a mismatch is an error here.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"accuracy: {len(predictions)} predictions for {len(references)} references; "
            "every example needs exactly one prediction"
        )
    if not predictions:
        raise ValueError("accuracy: no predictions to score (the evaluation set is empty)")
    correct = sum(str(p) == str(r) for p, r in zip(predictions, references, strict=True))
    return 100.0 * correct / len(predictions)


# -- extractive QA -------------------------------------------------------------------------------

_ASCII_PUNCT = set(string.punctuation)
# MLQA: every Unicode punctuation character (categories P*) plus ASCII string.punctuation. Built
# lazily: scanning all code points takes a moment.
_MLQA_PUNCT: set[str] | None = None
_MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",  # not articles, but what the official script removes
}
_MLQA_WHITESPACE_LANGS = ("en", "es", "hi", "vi", "de", "ar")
_MLQA_LANGUAGES = (*_MLQA_WHITESPACE_LANGS, "zh")
_CJK = re.compile(r"[\u4e00-\u9fa5]")  # the official range: U+9FA6.. and extension A are not in it


def _mlqa_punct() -> set[str]:
    global _MLQA_PUNCT
    if _MLQA_PUNCT is None:
        _MLQA_PUNCT = {
            chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")
        } | _ASCII_PUNCT
    return _MLQA_PUNCT


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 answer normalisation: lower-case, drop ASCII punctuation only, drop English
    articles (in every language), collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _mixed_segmentation(text: str, punct: set[str]) -> list[str]:
    tokens: list[str] = []
    pending = ""
    for char in text:
        if _CJK.search(char) or char in punct:
            tokens.extend(pending.split())
            pending = ""
            tokens.append(char)
        else:
            pending += char
    tokens.extend(pending.split())
    return tokens


def mlqa_normalize(text: str, language: str) -> str:
    """MLQA answer normalisation for ``language`` (en, es, hi, vi, de, ar, zh).

    Lower-case (``str.lower``, no Unicode normalisation), drop Unicode and ASCII punctuation,
    drop the language's articles (Arabic: every ``ال``, even inside a word), then split: on
    whitespace, or for zh one token per character in U+4E00-U+9FA5. The official script raises
    ``Exception('Unknown Language')`` for other languages; this raises ValueError.
    """
    if language not in _MLQA_LANGUAGES:
        raise ValueError(f"the MLQA script has no rules for language {language!r}; it knows {list(_MLQA_LANGUAGES)}")
    punct = _mlqa_punct()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if language in _MLQA_ARTICLES:
        text = re.sub(_MLQA_ARTICLES[language], " ", text)
    elif language == "ar":
        text = text.replace("ال", " ")  # official regex '\sال^|ال': its first branch never matches
    tokens = text.split() if language in _MLQA_WHITESPACE_LANGS else _mixed_segmentation(text, punct)
    return " ".join(t for t in tokens if t.strip())


def _token_f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = prediction.split(), gold.split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], language: str | None = None
) -> dict[str, float]:
    """Exact match and F1 in percent, as the official scripts compute them.

    ``predictions``: question id -> answer text; ``references``: question id -> gold answer
    texts. ``language=None`` is the SQuAD v1.1 script (XQuAD, TyDiQA-GoldP, SQuAD); a language
    code is the MLQA script for that language. Every reference id counts: a missing prediction
    scores 0; prediction ids without a reference are ignored. Per question the best score over
    its gold answers is taken.

    A question with no gold answer makes the official v1.1 script crash (``max`` of nothing);
    here it is a ValueError: score unanswerable questions with :func:`squad_v2_scores`.
    """
    if not references:
        raise ValueError("qa_scores: no reference questions to score")
    exact = f1 = 0.0
    for qid, golds in references.items():
        if isinstance(golds, str):
            raise ValueError(f"qa_scores: references[{qid!r}] must be a list of answer texts, got a string")
        if not golds:
            raise ValueError(f"qa_scores: question {qid!r} has no gold answer (SQuAD v2 style); use squad_v2_scores")
        if qid not in predictions:
            continue
        norm = squad_normalize if language is None else (lambda s: mlqa_normalize(s, language))
        pred = norm(predictions[qid])
        golds_norm = [norm(g) for g in golds]
        exact += max(float(pred == g) for g in golds_norm)
        f1 += max(_token_f1(pred, g) for g in golds_norm)
    total = len(references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def squad_v2_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """SQuAD v2.0 exact match and F1 in percent (official ``evaluate-v2.0.py`` at threshold 1.0).

    An empty prediction means "no answer". Gold answers that normalise to nothing are dropped,
    and a question without gold answers has the single gold answer ``""``; against an empty side,
    EM and F1 are both 1 when both are empty and 0 otherwise. Also reports ``HasAns_*`` and
    ``NoAns_*`` over the answerable and unanswerable questions.

    A missing prediction scores 0, as in the v1.1 script. (The official v2.0 script leaves it out
    of the overall total and crashes with a KeyError in the HasAns/NoAns breakdown.)
    """
    if not references:
        raise ValueError("squad_v2_scores: no reference questions to score")
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    has_answer: dict[str, bool] = {}
    for qid, golds in references.items():
        golds = [g for g in golds if squad_normalize(g)] or [""]
        has_answer[qid] = golds != [""]
        if qid not in predictions:
            exact[qid] = f1[qid] = 0.0
            continue
        pred = squad_normalize(predictions[qid])
        exact[qid] = max(float(pred == squad_normalize(g)) for g in golds)
        f1[qid] = max(
            _token_f1(pred, squad_normalize(g)) if pred and squad_normalize(g) else float(pred == squad_normalize(g))
            for g in golds
        )
    out = {"exact_match": 100.0 * sum(exact.values()) / len(exact), "f1": 100.0 * sum(f1.values()) / len(f1)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [q for q, has in has_answer.items() if has == wanted]
        if ids:
            out[f"{prefix}_exact"] = 100.0 * sum(exact[q] for q in ids) / len(ids)
            out[f"{prefix}_f1"] = 100.0 * sum(f1[q] for q in ids) / len(ids)
            out[f"{prefix}_total"] = len(ids)
    return out


# -- tagging -----------------------------------------------------------------------------------


def tag_chunks(sequences: Sequence[Sequence[str]]) -> set[tuple[str, int, int]]:
    """Chunks ``(type, start, end)`` as seqeval 0.0.12's ``get_entities`` finds them.

    Sentences are joined with an ``O`` between them (a chunk never crosses sentences). Each tag's
    first letter is read as its BIOES position and the text after its last ``-`` as its type; so
    UPOS tags are chunked too: ``NOUN NOUN`` is one chunk, ``SCONJ``/``SYM`` behave as ``S-``
    (single-token chunks), ``INTJ`` as ``I-``, and the type is the whole tag (``CCONJ`` differs
    from ``SCONJ``, unlike seqeval >= 1.0).
    """
    flat = [tag for sentence in sequences for tag in [*sentence, "O"]]
    chunks = set()
    prev_tag, prev_type, begin = "O", "", 0
    for i, label in enumerate([*flat, "O"]):
        tag, type_ = label[0], label.split("-")[-1]
        if _chunk_ends(prev_tag, tag, prev_type, type_):
            chunks.add((prev_type, begin, i - 1))
        if _chunk_starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def _chunk_ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _chunk_starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def tagging_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 in percent over chunks, with the official semantics
    (seqeval 0.0.12 chunking, for NER and POS alike; see :func:`tag_chunks`).

    Without any gold or predicted chunk the score is 0 (also when both are empty). seqeval 0.0.12
    does not check lengths and silently misaligns; here a sentence count or length mismatch is a
    ValueError naming the sentence.
    """
    if isinstance(gold, str) or isinstance(predicted, str) or any(isinstance(s, str) for s in [*gold, *predicted]):
        raise ValueError("tagging_scores: expects lists of tag sequences (one list of tags per sentence)")
    if len(gold) != len(predicted):
        raise ValueError(f"tagging_scores: {len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"tagging_scores: sentence {i} has {len(g)} gold tags but {len(p)} predicted")
    true, pred = tag_chunks(gold), tag_chunks(predicted)
    correct = len(true & pred)
    precision = correct / len(pred) if pred else 0.0
    recall = correct / len(true) if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * f1}


# -- benchmark aggregation -------------------------------------------------------------------------

QA_TASKS = ("xquad", "mlqa", "tydiqa")


def task_score(per_language: Mapping[str, Mapping[str, float]], qa: bool = False) -> dict[str, float]:
    """``avg_<metric>`` (plain mean over the languages given) for every metric, and
    ``avg_metric``: (EM + F1) / 2 for QA tasks (``qa``), else F1 when present, else accuracy."""
    metrics: dict[str, list[float]] = {}
    for scores in per_language.values():
        for name, value in scores.items():
            metrics.setdefault(name, []).append(value)
    out = {f"avg_{name}": sum(values) / len(values) for name, values in metrics.items()}
    if qa:
        out["avg_metric"] = (out["avg_exact_match"] + out["avg_f1"]) / 2
    elif "avg_f1" in out:
        out["avg_metric"] = out["avg_f1"]
    elif "avg_accuracy" in out:
        out["avg_metric"] = out["avg_accuracy"]
    return out


def xtreme_score(results: Mapping[str, Mapping[str, Mapping[str, float]]], version: str = "xtreme") -> dict:
    """Benchmark scores from ``{task: {language: {metric: value}}}``, as ``evaluate.py`` does.

    Returns ``tasks`` (per task: ``avg_*`` and ``avg_metric``, see :func:`task_score`),
    ``groups`` (mean of ``avg_metric`` over a category's tasks, only for complete categories),
    ``all_task`` (mean over every task of the benchmark, only when all are present), and
    ``missing_tasks`` / ``missing_languages`` so that a partial score is never mistaken for the
    official one. ``version``: ``xtreme`` (9 tasks) or ``xtreme-r`` (10 tasks).
    """
    if version not in ("xtreme", "xtreme-r"):
        raise ValueError(f"version must be 'xtreme' or 'xtreme-r', got {version!r}")
    languages, groups = (
        (XTREME_TASK_LANGUAGES, XTREME_GROUPS) if version == "xtreme" else (XTREME_R_TASK_LANGUAGES, XTREME_R_GROUPS)
    )
    unknown = [t for t in results if t not in languages]
    if unknown:
        raise ValueError(f"{version} has no task(s) {unknown}; its tasks are {sorted(languages)}")
    tasks = {task: task_score(per_lang, task in QA_TASKS) for task, per_lang in results.items() if per_lang}
    out: dict = {
        "tasks": tasks,
        "groups": {
            group: sum(tasks[t]["avg_metric"] for t in members) / len(members)
            for group, members in groups.items()
            if all(t in tasks for t in members)
        },
        "missing_tasks": sorted(set(languages) - set(tasks)),
        "missing_languages": {
            t: sorted(set(languages[t]) - set(results[t])) for t in tasks if set(languages[t]) - set(results[t])
        },
    }
    if not out["missing_tasks"]:
        out["all_task"] = sum(tasks[t]["avg_metric"] for t in languages) / len(languages)
    return out
