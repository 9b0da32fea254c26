"""Results as tables and plots: plain-text tables for one run, Markdown / CSV reports and PNG plots for a grid."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .modes import get_mode

SMOKE_BANNER = (
    "SMOKE RUN: tiny random backbone. These numbers only show that the pipeline "
    "runs end to end; they say nothing about the method."
)


def results_table(rows: dict[str, dict[str, dict[str, float]]], metric: str, source_language: str = "en") -> str:
    """A table with one row per setup and one column per language, plus the averages.

    ``rows`` maps a setup label to ``{language: {metric: value}}``. ``avg`` is the mean over all
    languages shown; ``0-shot`` the mean over those other than ``source_language``.
    """
    languages: list[str] = []
    for per_lang in rows.values():
        languages += [lang for lang in per_lang if lang not in languages]
    header = ["setup", *languages, "avg", "0-shot"]
    body = []
    for label, per_lang in rows.items():
        values = [per_lang[lang][metric] if lang in per_lang else None for lang in languages]
        present = [v for v in values if v is not None]
        zero_shot = [v for lang, v in zip(languages, values, strict=True) if v is not None and lang != source_language]
        avg = sum(present) / len(present) if present else None
        zs = sum(zero_shot) / len(zero_shot) if zero_shot else None
        body.append([label, *values, avg, zs])
    return format_table(header, body) + f"\n({metric}, percent)"


def format_table(header: list[str], body: list[list]) -> str:
    """A plain-text table: the first column left-aligned, numbers to one decimal, right-aligned."""
    body = [[c if i == 0 else (_fmt(c) if c is None or isinstance(c, float | int) else c) for i, c in enumerate(r)]
            for r in body]  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def result_lines(result) -> list[str]:
    """What the CLI prints after a run: the results table (one per task of a multi-task run),
    the sampled task shares and the fusion attention per language when there are any."""
    manifest = result.manifest
    if len(manifest.tasks) > 1:
        lines = [
            results_table({f"{result.name}/{task}": m}, result.summary["tasks"][task]["metric"])
            for task, m in result.metrics.items()
        ]
    else:
        lines = [results_table({result.name: result.metrics}, result.summary["metric"])]
    sampling = manifest.sampling
    if sampling:
        shares = ", ".join(
            f"{t} {sampling['shares_seen'][t]:.2f} (p={p:.2f})" for t, p in sampling["probabilities"].items()
        )
        lines.append(f"Task shares of the batches: {shares}")
    attention = (manifest.fusion or {}).get("attention")
    if attention:
        lines.append(attention_table(attention))
    return lines


def attention_table(attention: dict[str, dict[str, float]]) -> str:
    """Fusion attention per language: which adapter each language leans on (rows sum to 1)."""
    adapters = list(next(iter(attention.values())))
    width = max(5, *(len(a) for a in adapters))
    lines = [
        "Fusion attention (mean over real tokens and layers):",
        "language  " + "  ".join(a.rjust(width) for a in adapters),
    ]
    for lang, weights in attention.items():
        lines.append(f"{lang:8}  " + "  ".join(f"{weights[a]:.3f}".rjust(width) for a in adapters))
    return "\n".join(lines)


# -- grid reports ------------------------------------------------------------------------------------

# Languages with little pretraining text in XLM-R's CC-100 (highlighted in scaling curves).
LOW_RESOURCE = (
    "af",
    "am",
    "eu",
    "gu",
    "ht",
    "jv",
    "ka",
    "kk",
    "km",
    "mr",
    "my",
    "pa",
    "qu",
    "sw",
    "ta",
    "te",
    "tl",
    "ur",
    "wo",
    "yo",
)
SOURCE_LANGUAGE = "en"  # the training language of the target tasks: the others are zero-shot
URIEL_FEATURES = {"genetic": "fam", "geographic": "geo", "syntactic": "syntax_knn"}
# URIEL has no vectors for these macrolanguage codes: use the variety the XTREME data is in.
URIEL_CODES = {"ar": "arb", "fa": "pes", "sw": "swh", "qu": "quz", "az": "azj", "ms": "zsm", "zh": "cmn"}


def setup_label(labels: dict) -> str:
    """``stack on mnli``, ``full on squad (n1000)``, ``baseline adapter``: one setup of a grid."""
    if labels.get("baseline"):
        return f"baseline {labels['mode']}"
    size = f" (n{labels['size']})" if labels.get("size") else ""
    return f"{labels['mode']} on {labels['intermediate']}{size}"


def language_scores(record: dict) -> dict[str, float]:
    """A job record's per-language score: XTREME's task metric ((EM + F1) / 2 for QA, else F1 or accuracy)."""
    from .metrics import task_score

    qa = record.get("summary", {}).get("metric") == "f1" and any(
        "exact_match" in s for s in record.get("metrics", {}).values()
    )
    return {lang: task_score({lang: s}, qa)["avg_metric"] for lang, s in record.get("metrics", {}).items()}


def benchmark_scores(task: str, per_language: dict[str, float]) -> dict[str, float | None]:
    """Mean over the task's XTREME and XTREME-R languages present (None when none is present)."""
    from .languages import XTREME_R_TASK_LANGUAGES, XTREME_TASK_LANGUAGES

    out = {}
    for name, table in (("xtreme", XTREME_TASK_LANGUAGES), ("xtreme_r", XTREME_R_TASK_LANGUAGES)):
        langs = [lang for lang in table.get(task, per_language) if lang in per_language]
        out[name] = sum(per_language[lang] for lang in langs) / len(langs) if langs else None
    out["all"] = sum(per_language.values()) / len(per_language) if per_language else None
    return out


def metric_name(record: dict) -> str:
    """What :func:`language_scores` reports for a job record, for axis labels: ``(EM + F1) / 2``, ``F1``
    or ``accuracy``."""
    names = {m for s in record.get("metrics", {}).values() for m in s}
    if record.get("summary", {}).get("metric") == "f1" and "exact_match" in names:
        return "(EM + F1) / 2"
    return "F1" if "f1" in names else "accuracy" if "accuracy" in names else "score"


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def grid_rows(records: list[dict]) -> list[dict]:
    """One row per (backbone, target, setup) over seeds: mean and std of the XTREME / XTREME-R
    score, mean per language, and deltas against the no-intermediate baseline of the same kind
    (adapter for adapter modes, full for full) and against the full fine-tuning baseline."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("kind") == "intermediate":
            continue
        labels = r["labels"]
        task = r["spec"].get("task") or r["spec"].get("task_name")
        groups.setdefault((labels["model"], labels["target"], task, setup_label(labels)), []).append(r)
    rows = []
    for (model, target, task, setup), members in groups.items():
        per_seed = [language_scores(m) for m in members]
        scores = [benchmark_scores(task, s) for s in per_seed]
        languages = sorted(set().union(*per_seed))
        spread = {lang: _mean_std([s[lang] for s in per_seed if lang in s]) for lang in languages}
        zero_shot_by_seed = {
            m["labels"].get("seed"): sum(v for lang, v in s.items() if lang != SOURCE_LANGUAGE) / n
            for m, s in zip(members, per_seed, strict=True)
            if (n := sum(lang != SOURCE_LANGUAGE for lang in s))
        }
        zero_shot = list(zero_shot_by_seed.values())
        row = {
            "model": model,
            "target": target,
            "task": task,
            "setup": setup,
            "labels": members[0]["labels"],
            "seeds": len(members),
            "metric": metric_name(members[0]),
            "languages": {lang: m for lang, (m, _) in spread.items()},
            "languages_std": {lang: sd for lang, (_, sd) in spread.items()},
            "zero_shot_seeds": zero_shot_by_seed,
            "language_seeds": {m["labels"].get("seed"): s for m, s in zip(members, per_seed, strict=True)},
        }
        for key in ("xtreme", "xtreme_r", "all"):
            values = [s[key] for s in scores if s[key] is not None]
            row[key], row[f"{key}_std"] = _mean_std(values) if values else (None, None)
        row["zero_shot"], row["zero_shot_std"] = _mean_std(zero_shot) if zero_shot else (None, None)
        rows.append(row)
    by_key = {(r["model"], r["target"], r["setup"]): r for r in rows}
    for r in rows:
        labels = r["labels"]
        if labels.get("baseline"):
            continue
        kind = get_mode(labels["mode"]).kind
        # Retrieval jobs have one baseline: the plain backbone ("baseline base").
        same_kind = by_key.get((r["model"], r["target"], f"baseline {kind}")) or by_key.get(
            (r["model"], r["target"], "baseline base")
        )
        for name, ref in (("delta", same_kind), ("delta_full", by_key.get((r["model"], r["target"], "baseline full")))):
            if ref and r["xtreme"] is not None and ref["xtreme"] is not None:
                r[name] = r["xtreme"] - ref["xtreme"]
                r[f"{name}_baseline"] = ref["setup"]
                r[f"{name}_languages"] = {
                    lang: v - ref["languages"][lang] for lang, v in r["languages"].items() if lang in ref["languages"]
                }
            if name == "delta" and ref and r["zero_shot"] is not None and ref["zero_shot"] is not None:
                r["delta_zero_shot"] = r["zero_shot"] - ref["zero_shot"]
    return rows


def uriel_distances(languages: list[str], to: str = "en") -> dict[str, dict[str, float]]:
    """Cosine distance of URIEL vectors (lang2vec) between each language and ``to``: genetic
    (family-tree membership), geographic (location features), syntactic (kNN-completed WALS-style
    features). Languages URIEL lacks are left out."""
    import numpy as np

    from .tasks.retrieval import lang2vec

    l2v = lang2vec()
    available = _uriel_languages()
    codes = {lang: URIEL_CODES.get(lang, l2v.LETTER_CODES.get(lang, lang)) for lang in {*languages, to}}
    codes = {lang: c for lang, c in codes.items() if c in available}
    if to not in codes:
        return {}
    out: dict[str, dict[str, float]] = {lang: {} for lang in languages if lang in codes and lang != to}
    for name, feature in URIEL_FEATURES.items():
        vectors = _uriel_vectors(tuple(sorted(set(codes.values()))), feature)
        ref = np.asarray(vectors[codes[to]], dtype=float)
        for lang in out:
            vec = np.asarray(vectors[codes[lang]], dtype=float)
            denom = np.linalg.norm(vec) * np.linalg.norm(ref)
            out[lang][name] = float(1 - vec @ ref / denom) if denom else float("nan")
    return out


@functools.lru_cache(maxsize=1)
def _uriel_languages() -> frozenset[str]:
    from .tasks.retrieval import lang2vec

    return frozenset(lang2vec().available_uriel_languages())  # seconds per call: read once


@functools.lru_cache(maxsize=32)
def _uriel_vectors(codes: tuple[str, ...], feature: str) -> dict:
    from .tasks.retrieval import lang2vec

    return lang2vec().get_features(list(codes), feature)


def similarity_correlations(rows: list[dict]) -> list[dict]:
    """Spearman correlation (and p-value) between each language's transfer gain (delta against the
    baseline) and its URIEL distance to English, per backbone, target and setup."""
    from scipy.stats import spearmanr

    out = []
    for r in rows:
        gains = r.get("delta_languages") or {}
        gains = {lang: g for lang, g in gains.items() if lang != "en"}
        if len(gains) < 3:
            continue
        distances = uriel_distances(list(gains))
        for name in URIEL_FEATURES:
            langs = [lang for lang in gains if name in distances.get(lang, {})]
            if len(langs) < 3:
                continue
            rho, p = spearmanr([distances[lang][name] for lang in langs], [gains[lang] for lang in langs])
            out.append(
                {
                    "model": r["model"],
                    "target": r["target"],
                    "setup": r["setup"],
                    "distance": name,
                    "spearman": float(rho),
                    "p_value": float(p),
                    "languages": len(langs),
                }
            )
    return out


def _cell(value, std=None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ± {std:.1f}" if std else f"{value:.1f}"


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _markdown(header: list[str], body: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(str(c) for c in row) + " |" for row in body)])


def setup_order(row: dict) -> tuple:
    """Rows in reading order: per backbone and target, baselines first, then by mode, intermediate
    and data size (numerically, all data last)."""
    labels = row["labels"]
    size = labels.get("size")
    return (row["model"], row["target"], not labels.get("baseline"), labels.get("mode") or "",
            str(labels.get("intermediate") or ""), float("inf") if size is None else size)  # fmt: skip


def intermediate_examples(records: list[dict]) -> dict[tuple[str, str], int]:
    """Training examples of each all-data intermediate job, by (backbone, intermediate label): from its
    record (``train_examples``), else from its run's manifest when the run folder is still there."""
    out = {}
    for r in records:
        labels = r.get("labels", {})
        if r.get("kind") != "intermediate" or labels.get("size") is not None:
            continue
        n = r.get("train_examples")
        manifest = Path(r.get("run_dir") or "") / "manifest.json"
        if n is None and r.get("run_dir") and manifest.is_file():
            import json

            try:
                n = json.loads(manifest.read_text(encoding="utf-8")).get("data_sizes", {}).get("train")
            except (OSError, ValueError):
                n = None
        if isinstance(n, int):
            out[(labels["model"], labels["intermediate"])] = n
    return out


def grid_questions(results_dir: Path, records: list[dict]) -> dict[str, dict]:
    """The research questions of a grid's results: ``questions:`` of the ``grid.yaml`` the run saved,
    plus any question a finished job is labelled with that the file no longer names."""
    from .config import read_yaml
    from .grid import questions_of

    questions: dict[str, dict] = {}
    path = results_dir / "grid.yaml"
    if path.is_file():
        try:
            data = read_yaml(path, "grid file")
            questions = questions_of(data, str(path)) if isinstance(data, dict) else {}
        except ConfigError:
            questions = {}
    for record in records:
        for q in record.get("labels", {}).get("questions", ()):
            questions.setdefault(q, {"ask": q, "compare": [], "figures": ["heatmap", "languages", "uriel", "scaling"]})
    return questions


def paired_difference(a: dict, b: dict) -> dict | None:
    """Setup ``a`` minus setup ``b`` (two :func:`grid_rows` rows of one target), seed by seed: the
    zero-shot average's mean and std over the seeds both have, and the mean per language."""
    seeds = sorted(set(a.get("zero_shot_seeds", {})) & set(b.get("zero_shot_seeds", {})), key=str)
    if not seeds:
        return None
    diffs = [a["zero_shot_seeds"][s] - b["zero_shot_seeds"][s] for s in seeds]
    mean, std = _mean_std(diffs)
    langs = sorted(set(a["languages"]) & set(b["languages"]))
    per_language = {
        lang: sum(a["language_seeds"][s].get(lang, 0.0) - b["language_seeds"][s].get(lang, 0.0) for s in seeds)
        / len(seeds)
        for lang in langs
    }
    wins = sum(d > 0 for d in diffs)
    return {"mean": mean, "std": std, "seeds": len(seeds), "wins": wins, "languages": per_language}


def _question_lines(
    label: str, question: dict, rows: list[dict], retrieval: list[dict], correlations: list[dict]
) -> list[str]:
    lines = ["", f"## {label}: {' '.join(str(question['ask']).split())}", ""]
    if question.get("answer"):
        lines += [f"*Answer:* {' '.join(str(question['answer']).split())}", ""]
    if rows:

        def zero_shot(r: dict) -> str:
            delta = "" if r["labels"].get("baseline") else f" ({_signed(r.get('delta_zero_shot'))})"
            return f"{_cell(r['zero_shot'], r['zero_shot_std'])}{delta}"

        targets, body = _setups_by_target(rows, zero_shot)
        lines += [
            f"Zero-shot average over the target's non-English languages, {_seed_phrase(rows)} of the target "
            "training; in brackets: the change against the no-intermediate baseline of the same kind.",
            "",
            _markdown(
                ["setup", *(f"{t} ({_metric_phrase([r for r in rows if r['target'] == t])})" for t in targets)], body
            ),  # fmt: skip
        ]
        for t in targets:
            mine = [r for r in rows if r["target"] == t]
            langs = sorted({lang for r in mine for lang in r["languages"]}, key=lambda x: (x != SOURCE_LANGUAGE, x))
            body = [[r["setup"], *(_cell(r["languages"].get(lang)) for lang in langs)] for r in mine]
            lines += ["", f"### {t}: per language (mean over seeds)", "", _markdown(["setup", *langs], body)]
    for a_name, b_name in question.get("compare") or []:
        body = []
        for t in dict.fromkeys(r["target"] for r in rows):
            a = next((r for r in rows if r["target"] == t and r["setup"] == a_name), None)
            b = next((r for r in rows if r["target"] == t and r["setup"] == b_name), None)
            d = paired_difference(a, b) if a and b else None
            if d is None:
                body.append([t, "not both run", "", "", ""])
                continue
            per_language = ", ".join(f"{lang} {v:+.1f}" for lang, v in d["languages"].items())
            body.append(
                [t, f"{d['mean']:+.1f} ± {d['std']:.1f}", d["seeds"], f"{d['wins']}/{d['seeds']}", per_language]
            )
        lines += [
            "",
            f"### {a_name} minus {b_name}",
            "",
            "Paired by seed: the zero-shot average's difference, mean ± std over the seeds; wins: seeds where the "
            "first is ahead; per language: the mean difference (English included).",
            "",
            _markdown(["target", "zero-shot difference", "seeds", "wins", "per language"], body),
        ]
    if retrieval:
        families = _families(sorted({lang for r in retrieval for lang in r["languages"]}))
        langs = sorted({lang for r in retrieval for lang in r["languages"]})
        body = [
            [r["target"], r["setup"], _cell(r["all"]), _signed(r.get("delta")),
             *(_cell(r["languages"].get(lang)) for lang in langs)]
            for r in retrieval
        ]  # fmt: skip
        lines += [
            "",
            "### Retrieval: top-1 accuracy per language (both directions averaged)",
            "",
            _markdown(["task", "setup", "average", "vs plain", *langs], body),
        ]
        if families:
            lines += [
                "",
                "Language families (URIEL): "
                + ", ".join(
                    f"{lang} {families[lang]}" + (" (low-resource)" if lang in LOW_RESOURCE else "") for lang in langs
                ),  # fmt: skip
            ]
    if correlations:
        body = [
            [c["target"], c["setup"], c["distance"], f"{c['spearman']:+.2f}", f"{c['p_value']:.3f}", c["languages"]]
            for c in correlations
        ]
        lines += [
            "",
            "### Gain vs distance to English (URIEL, Spearman over languages)",
            "",
            _markdown(["target", "setup", "distance", "rho", "p", "languages"], body),
        ]
    return lines


def _setups_by_target(rows: list[dict], cell) -> tuple[list[str], list[list]]:
    """The targets, and one table line per setup: its name, then ``cell(row)`` per target ("-": not run)."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    cells = {(r["setup"], r["target"]): r for r in rows}
    body = [
        [setup, *("-" if (setup, t) not in cells else cell(cells[(setup, t)]) for t in targets)]
        for setup in dict.fromkeys(r["setup"] for r in rows)
    ]
    return targets, body


def selection_lines(paths: list[Path], records: list[dict], rows: list[dict]) -> tuple[list[str], list[dict]]:
    """The report section that puts ``adapterxl select`` estimates (``selection/*.json``) next to the
    gains the grid measured: each candidate (a store entry) is the intermediate job that saved it,
    its gain that of stacking the target on it over the adapter baseline (zero-shot mean)."""
    from .selection import compare

    entry_setup = {  # store_entry is the entry's folder
        Path(r["store_entry"]).name: setup_label({**r["labels"], "mode": "stack", "baseline": False})
        for r in records
        if r.get("kind") == "intermediate" and r.get("store_entry")
    }
    lines = ["", "## Picking the intermediate without training: estimates against measured gains", ""]
    lines.append(
        "Estimates from `adapterxl select` (LogME and TextEmb on the target's English training data, alignment on "
        "parallel sentences; no training); gain: the stacked setup's zero-shot mean over seeds minus the adapter "
        "baseline's. rho: Spearman over the candidates; regret@k: points lost by taking the best of the "
        "estimator's top k instead of the best measured candidate."
    )
    grid_seconds = sum(r.get("seconds") or 0 for r in records)
    lines.append(
        f"Cost: each estimator's time next to training the whole grid ({grid_seconds / 60:.1f} min of jobs here)."
    )
    out_rows: list[dict] = []
    for path in paths:
        estimates = json.loads(path.read_text(encoding="utf-8"))
        target = estimates["target"]
        by_setup = {r["setup"]: r for r in rows if r["target"] == target or r["task"] == target}
        gains, language_gains = {}, {}
        for candidate in estimates["candidates"]:
            row = by_setup.get(entry_setup.get(candidate, ""))
            if row is None or row.get("delta_zero_shot") is None:
                continue
            gains[candidate] = row["delta_zero_shot"]
            for lang, delta in (row.get("delta_languages") or {}).items():
                if lang != SOURCE_LANGUAGE:
                    language_gains.setdefault(lang, {})[candidate] = delta
        if len(gains) < 2:
            lines += ["", f"{path.name}: fewer than 2 of its candidates have a measured gain in this grid; left out."]
            continue
        result = compare(estimates, gains, language_gains)
        names = {c: entry_setup.get(c, c).removeprefix("stack on ") for c in estimates["candidates"]}
        seconds = estimates.get("seconds", {})
        lines += ["", f"### {target} ({len(gains)} candidates)", ""]
        body = [[names[c], _signed(gains[c]), *(f"{estimates['scores'][e][c]:.3f}" for e in estimates["scores"])]
                for c in sorted(gains, key=lambda c: -gains[c])]  # fmt: skip
        lines.append(_markdown(["intermediate", "measured gain", *estimates["scores"]], body))
        lines.append("")
        table = []
        for estimator, r in result.items():
            rho = "-" if r["rho"] is None else f"{r['rho']:+.2f}"
            by_lang = r.get("rho_languages") or {}
            mean_lang = f"{np.mean(list(by_lang.values())):+.2f} ({len(by_lang)})" if by_lang else "-"
            spent = seconds.get(estimator, sum(seconds.values()))
            share = f" ({spent / grid_seconds:.1%})" if grid_seconds else ""
            cost = f"{spent:.0f} s{share}"
            table.append([estimator, ", ".join(names[c] for c in r["top"]), rho, mean_lang,
                          _signed(r["regret@1"]), _signed(r["regret@3"]), cost])  # fmt: skip
            mean_rho = float(np.mean(list(by_lang.values()))) if by_lang else None
            out_rows.append({"target": target, "estimator": estimator, "candidates": len(gains), "rho": r["rho"],
                             "p": r.get("p"), "rho_languages_mean": mean_rho, "regret_at_1": r["regret@1"],
                             "regret_at_3": r["regret@3"], "seconds": spent,
                             "share_of_grid": spent / grid_seconds if grid_seconds else None})  # fmt: skip
        lines.append(_markdown(["estimator", "top 3", "rho", "rho per language (mean, n)", "regret@1",
                                "regret@3", "time"], table))  # fmt: skip
    return lines, out_rows


def _families(langs: list[str]) -> dict[str, str]:
    """Top-level URIEL family of each language code ({} without lang2vec)."""
    if not _haslang2vec():
        return {}
    from .tasks.retrieval import lang2vec, language_families

    letters = lang2vec().LETTER_CODES
    codes = {lang: URIEL_CODES.get(lang, letters.get(lang, lang)) for lang in langs}
    found = language_families([f"{c}_Xxxx" for c in codes.values()])
    return {lang: found[f"{c}_Xxxx"] for lang, c in codes.items()}


def build_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    plots: bool = True,
    highlight: tuple[str, ...] = LOW_RESOURCE,
    echo=print,
) -> dict:
    """Tables (Markdown + CSV) and plots from a grid's ``jobs/*.json``. Returns paths and rows. A
    damaged job record (not valid JSON) is named and left out, as a job not finished."""
    import csv

    from .grid import read_record

    results_dir = Path(results_dir)
    files = sorted((results_dir / "jobs").glob("*.json"))
    records = []
    for f in files:
        if not f.name.endswith(".error.json"):
            record = read_record(f)
            if record is None:
                echo(f"Warning: {f} is damaged (not valid JSON): left out, as a job not finished; rerun the grid")
            else:
                records.append(record)
    failed = sorted(f.name[: -len(".error.json")] for f in files if f.name.endswith(".error.json"))
    if not records:
        raise ConfigError(f"{results_dir} holds no finished jobs (jobs/*.json): run the grid first")
    out = Path(out_dir) if out_dir else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = grid_rows([r for r in records if r["kind"] == "target"])
    examples = intermediate_examples(records)
    for r in rows:  # an all-data setup's place on a data-size axis: its intermediate's training-set size
        labels = r["labels"]
        if not labels.get("baseline") and labels.get("size") is None:
            r["intermediate_examples"] = examples.get((labels["model"], labels["intermediate"]))
    rows.sort(key=setup_order)
    retrieval = sorted(grid_rows([r for r in records if r["kind"] == "retrieval"]), key=setup_order)
    correlations = similarity_correlations(rows) if _haslang2vec() else []

    smoke = is_smoke_run(records)
    questions = grid_questions(results_dir, records)
    written: list[Path] = []
    sections: list[str] = []
    for label, question in questions.items():
        mine = [r for r in rows if label in r["labels"].get("questions", ())]
        mine_retrieval = [r for r in retrieval if label in r["labels"].get("questions", ())]
        uriel = "uriel" in question["figures"] or "distance" in question["figures"]
        q_correlations = [
            c for c in correlations if any((c["target"], c["setup"]) == (r["target"], r["setup"]) for r in mine)
        ] if uriel else []  # fmt: skip
        if uriel and _haslang2vec():
            q_correlations += similarity_correlations(mine_retrieval)
        sections += _question_lines(label, question, mine, mine_retrieval, q_correlations)
        if plots and question["figures"]:
            figures = plot_grid(mine, out, highlight, correlations=q_correlations, smoke=smoke,
                                kinds=tuple(question["figures"]), prefix=label, retrieval=mine_retrieval)  # fmt: skip
            written += figures
            sections += ["", *(f"![{f.stem}]({f.name})" for f in figures if f.suffix == ".png")]
    parts = [
        f"# Grid report: {results_dir}",
        "",
        *([f"**{SMOKE_BANNER}**", ""] if smoke else []),
        f"{len(records)} finished jobs, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else "") + ".",
        "Scores in percent, mean ± std over seeds; XTREME / XTREME-R: mean over the task's languages of that "
        "benchmark that were evaluated; delta: against the no-intermediate baseline of the same kind (adapter "
        "modes: adapter, full: full); vs full: against full fine-tuning without intermediate task.",
    ]
    selection_rows: list[dict] = []
    estimates = sorted((results_dir / "selection").glob("*.json")) if (results_dir / "selection").is_dir() else []
    if estimates:
        lines, selection_rows = selection_lines(estimates, records, rows)
        sections += lines
    if questions or estimates:
        parts += ["", f"Questions: {', '.join(questions)}; every setup's tables follow them.", *sections, "",
                  "# All setups"]  # fmt: skip
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        targets, body = _setups_by_target(
            mine, lambda r: f"{_cell(r['xtreme'], r['xtreme_std'])} ({_signed(r.get('delta'))})"
        )
        parts += [
            "",
            f"## {model}: XTREME score per target (delta against baseline)",
            "",
            _markdown(["setup", *targets], body),
        ]
        body = [
            [
                r["target"],
                r["setup"],
                r["seeds"],
                _cell(r["xtreme"], r["xtreme_std"]),
                _cell(r["xtreme_r"], r["xtreme_r_std"]),
                _signed(r.get("delta")),
                _signed(r.get("delta_full")),
            ]
            for r in mine
        ]
        parts += [
            "",
            f"## {model}: XTREME and XTREME-R",
            "",
            _markdown(["target", "setup", "seeds", "XTREME", "XTREME-R", "delta", "vs full"], body),
        ]
        for t in targets:
            langs = sorted({lang for r in mine if r["target"] == t for lang in r["languages"]})
            body = [
                [r["setup"], *(_cell(r["languages"].get(lang)) for lang in langs)] for r in mine if r["target"] == t
            ]
            parts += ["", f"### {model} / {t}: per language", "", _markdown(["setup", *langs], body)]
    if retrieval:
        body = [
            [r["model"], r["target"], r["setup"], _cell(r["all"], r["all_std"]), _signed(r.get("delta"))]
            for r in retrieval
        ]
        parts += [
            "",
            "## Retrieval off the intermediate adapters",
            "",
            _markdown(["model", "task", "setup", "score", "delta vs base"], body),
        ]
        groups = [
            (rec["labels"], rec.get(k))
            for rec in records
            if rec["kind"] == "retrieval"
            for k in ("by_family", "by_script")
            if rec.get(k)
        ]
        if groups:
            body = [[setup_label(lab), name, f"{v:.1f}"] for lab, g in groups for name, v in g.items()]
            parts += ["", "### FLORES by language family and script", "", _markdown(["setup", "group", "score"], body)]
    if correlations:
        body = [
            [
                c["model"],
                c["target"],
                c["setup"],
                c["distance"],
                f"{c['spearman']:+.2f}",
                f"{c['p_value']:.3f}",
                c["languages"],
            ]
            for c in correlations
        ]
        parts += [
            "",
            "## Transfer gain vs distance to English (URIEL, Spearman)",
            "",
            _markdown(["model", "target", "setup", "distance", "rho", "p", "languages"], body),
        ]

    with (out / "results.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "model",
                "target",
                "task",
                "setup",
                "seeds",
                "xtreme",
                "xtreme_std",
                "xtreme_r",
                "xtreme_r_std",
                "delta",
                "delta_full",
            ]
        )
        for r in rows + retrieval:
            writer.writerow(
                [
                    r["model"],
                    r["target"],
                    r["task"],
                    r["setup"],
                    r["seeds"],
                    r["xtreme"],
                    r["xtreme_std"],
                    r["xtreme_r"],
                    r["xtreme_r_std"],
                    r.get("delta"),
                    r.get("delta_full"),
                ]
            )
    with (out / "languages.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "model", "target", "setup", "seed", "language", "score"])
        for rec in records:
            if rec["kind"] == "intermediate":
                continue
            for lang, v in language_scores(rec).items():
                lab = rec["labels"]
                writer.writerow([rec["job"], lab["model"], lab["target"], setup_label(lab), lab.get("seed"), lang, v])
    written = [out / "results.csv", out / "languages.csv", *written]
    if selection_rows:
        with (out / "selection.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(selection_rows[0]))
            writer.writeheader()
            writer.writerows(selection_rows)
        written.append(out / "selection.csv")
    if plots and not questions:  # a grid with questions has its figures in their sections
        figures = plot_grid(rows, out, highlight, correlations=correlations, smoke=smoke)
        written += figures
        pngs = [p for p in figures if p.suffix == ".png"]
        parts += [
            "",
            "## Plots",
            "",
            "Each figure is also saved as PDF and SVG (same name)"
            + (", watermarked as a smoke run." if smoke else "."),
            "",
            *(f"![{p.stem}]({p.name})" for p in pngs),
        ]
    (out / "report.md").write_text("\n".join(parts) + "\n", encoding="utf-8")
    return {
        "report": out / "report.md",
        "files": [out / "report.md", *written],
        "rows": rows,
        "retrieval": retrieval,
        "correlations": correlations,
    }


def _haslang2vec() -> bool:
    try:
        from .tasks.retrieval import lang2vec

        lang2vec()
        return True
    except ImportError:
        return False


# -- figures -----------------------------------------------------------------------------------------

WATERMARK = "SMOKE RUN: tiny random backbone\nnumbers mean nothing"
WATERMARK_GID = "smoke-watermark"
FIGURE_FORMATS = ("png", "pdf", "svg")  # every figure in each, same stem
_RC = {
    "svg.fonttype": "none",  # text stays text in SVG (editable, searchable)
    "pdf.fonttype": 42,  # TrueType in PDF: editable, accepted by publishers
    "ps.fonttype": 42,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "adapterxl",
}


def is_smoke_run(records: list[dict]) -> bool:
    """Whether any job ran on a tiny random backbone: a model label or backbone name starting with
    ``tiny-``, or a ``base_model_source`` of ``tiny-random`` (top level, summary or manifest)."""
    for r in records:
        names = [(r.get("labels") or {}).get("model"), (r.get("spec") or {}).get("model")]
        if any(isinstance(n, str) and n.startswith("tiny-") for n in names):
            return True
        sources = [
            r.get("base_model_source"),
            *((r.get(k) or {}).get("base_model_source") for k in ("summary", "manifest")),
        ]
        if "tiny-random" in sources:
            return True
    return False


def shared_limits(*grids, floor: float = 0.5) -> tuple[float, float]:
    """One symmetric colour range around 0 for all panels of a figure: ``(-b, b)`` with ``b`` the
    largest absolute finite value of any grid (at least ``floor``, so that an all-zero grid is no error)."""
    import numpy as np

    values = [abs(float(v)) for g in grids for v in np.ravel(np.asarray(g, dtype=float)) if np.isfinite(v)]
    bound = max([floor, *values])
    return -bound, bound


def text_colour(rgba) -> str:
    """``white`` on a dark cell, ``black`` on a light one (relative luminance of the cell colour)."""
    r, g, b = rgba[:3]
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45 else "black"


def _wrap(text: str, width_in: float, fontsize: float = 9) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points."""
    import textwrap

    chars = max(20, int(width_in * 72 / (0.56 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _slug(*parts) -> str:
    import re

    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "-", str(p)).strip("-") for p in parts)


def _baseline_phrase(rows: list[dict], key: str = "delta_baseline") -> str:
    refs = sorted({r[key].removeprefix("baseline ") for r in rows if r.get(key)})
    if len(refs) == 1:
        return f"{refs[0]} baseline"
    return "no-intermediate baseline of the same kind" + (f" ({' / '.join(refs)})" if refs else "")


def _metric_phrase(rows: list[dict]) -> str:
    names = sorted({r.get("metric", "score") for r in rows})
    return names[0] if len(names) == 1 else "score (task metric)"


def _seed_phrase(rows: list[dict]) -> str:
    seeds = sorted({r["seeds"] for r in rows})
    if seeds[-1] <= 1:
        return "1 seed"
    return f"mean ± std over {'/'.join(map(str, seeds))} seeds"


def plot_grid(
    rows: list[dict],
    out: Path,
    highlight: tuple[str, ...] = LOW_RESOURCE,
    correlations: list[dict] | None = None,
    smoke: bool = False,
    figures: dict | None = None,
    kinds: tuple[str, ...] = ("heatmap", "languages", "uriel", "scaling"),
    prefix: str = "",
    retrieval: list[dict] | None = None,
) -> list[Path]:
    """Figures, each as PNG, PDF and SVG (same stem): intermediate x target heatmaps of the deltas
    (per backbone, one panel per mode, one shared colour scale), per-language gain bars with error
    bars over seeds (per backbone and target), gain vs URIEL distance to English (per backbone,
    target and setup, from ``correlations``) and data-size scaling curves (per backbone, target,
    intermediate and mode, plus one per backbone and target across setups). ``smoke``: watermark
    every figure. ``figures``, when given, is filled with ``{png name: matplotlib figure}`` (closed).
    ``kinds``: which of these to draw (``distance``: one figure of every language's mean gain, over
    the target setups and over the ``retrieval`` rows, against its URIEL distances); ``prefix``:
    put before every file name (a grid question's label)."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures = {} if figures is None else figures

    def save(fig, stem: str) -> None:
        stem = _slug(prefix, stem) if prefix else stem
        written.extend(_save(fig, out / f"{stem}.png", smoke))
        figures[f"{stem}.png"] = fig

    with matplotlib.rc_context(_RC):
        if "heatmap" in kinds:
            _plot_heatmaps(rows, save)
        if "languages" in kinds:
            _plot_language_bars(rows, save)
        if "uriel" in kinds:
            _plot_uriel(rows, correlations or [], highlight, save)
        if "scaling" in kinds:
            _plot_scaling(rows, highlight, save)
        if "distance" in kinds:
            _plot_distance(rows, retrieval or [], highlight, save)
    return written


def _plot_heatmaps(rows: list[dict], save) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    with_delta = [r for r in rows if r.get("delta") is not None and not r["labels"].get("size")]
    for model in dict.fromkeys(r["model"] for r in with_delta):
        mine = [r for r in with_delta if r["model"] == model]
        modes = _ordered_modes(mine)
        inters = list(dict.fromkeys(r["labels"]["intermediate"] for r in mine))
        targets = list(dict.fromkeys(r["target"] for r in mine))
        grids, spreads = {}, {}
        for mode in modes:
            grids[mode] = np.full((len(inters), len(targets)), np.nan)
            spreads[mode] = np.zeros_like(grids[mode])
            for r in mine:
                if r["labels"]["mode"] == mode:
                    at = inters.index(r["labels"]["intermediate"]), targets.index(r["target"])
                    grids[mode][at] = r["delta"]
                    spreads[mode][at] = (r.get("xtreme_std") or 0.0) if r["seeds"] > 1 else 0.0
        lo, hi = shared_limits(*grids.values())
        cmap = plt.get_cmap("RdBu").with_extremes(bad="0.92")
        norm = matplotlib_norm(lo, hi)
        several = any(r["seeds"] > 1 for r in mine)
        cell_w, cell_h = (1.05, 0.62) if several else (0.8, 0.45)
        width = max(5.5, 1.4 + len(modes) * (0.5 + cell_w * max(2, len(targets))) + 1.4)
        height = 2.2 + cell_h * max(2, len(inters))
        fig, axes = plt.subplots(
            1, len(modes), figsize=(width, height), sharey=True, squeeze=False, layout="constrained"
        )
        for ax, mode in zip(axes[0], modes, strict=True):
            grid = grids[mode]
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
            ax.set_xticks(
                range(len(targets)),
                targets,
                rotation=30 if len(targets) > 3 else 0,
                ha="right" if len(targets) > 3 else "center",
            )
            ax.set_yticks(range(len(inters)), inters)
            ax.tick_params(length=0)
            for side in ax.spines.values():
                side.set_visible(False)
            for (i, j), v in np.ndenumerate(grid):
                if np.isnan(v):
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.45")
                    continue
                sd = spreads[mode][i, j]
                label = f"{v:+.1f}\n± {sd:.1f}" if several and sd else f"{v:+.1f}"
                ax.text(j, i, label, ha="center", va="center", fontsize=8, color=text_colour(cmap(norm(v))))
            ref = _baseline_phrase([r for r in mine if r["labels"]["mode"] == mode])
            ax.set_title(f"{mode} (vs {ref})")
            ax.set_xlabel("target task")
        axes[0][0].set_ylabel("intermediate task")
        bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9, aspect=max(10, 12 * height / 3), pad=0.02)
        bar.set_label(_wrap(f"Δ XTREME {_metric_phrase(mine)} vs no-intermediate baseline (points)", height - 0.6))
        title = f"{model}: gain from the intermediate task, per target task ({_seed_phrase(mine)} of the setup)"
        fig.suptitle(_wrap(title, width - 1.2, 10), fontsize=10)
        save(fig, _slug("heatmap", model))


def matplotlib_norm(lo: float, hi: float):
    from matplotlib.colors import TwoSlopeNorm

    return TwoSlopeNorm(vcenter=0.0, vmin=lo, vmax=hi)


def _bar_layout(langs: list[str]) -> tuple[list[str], list[float]]:
    """Group order and x positions: English (training language) first, then the zero-shot languages,
    then their average, with gaps between the groups."""
    zs = [lang for lang in langs if lang != SOURCE_LANGUAGE]
    groups, xs, x = [], [], 0.0
    if SOURCE_LANGUAGE in langs:
        groups.append(SOURCE_LANGUAGE)
        xs.append(x)
        x += 1.6
    for lang in zs:
        groups.append(lang)
        xs.append(x)
        x += 1.0
    if len(zs) > 1:
        groups.append("0-shot avg")
        xs.append(x + 0.6)
    return groups, xs


def _ordered_modes(rows: list[dict]) -> list[str]:
    """Modes in order of appearance, adapter modes before full fine-tuning."""
    modes = list(dict.fromkeys(r["labels"]["mode"] for r in rows))
    return sorted(modes, key=lambda m: (get_mode(m).full, modes.index(m)))


def _plot_language_bars(rows: list[dict], save) -> None:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    with_delta = [r for r in rows if r.get("delta_languages") and not r["labels"].get("size")]
    for model, target in dict.fromkeys((r["model"], r["target"]) for r in with_delta):
        mine = [r for r in with_delta if (r["model"], r["target"]) == (model, target)]
        langs = sorted({lang for r in mine for lang in r["delta_languages"]})
        groups, xs = _bar_layout(langs)
        xs = np.asarray(xs)
        modes = _ordered_modes(mine)
        inters = list(dict.fromkeys(r["labels"]["intermediate"] for r in mine))
        colours = plt.get_cmap("tab10" if len(inters) <= 10 else "tab20").colors
        colour = {inter: colours[k % len(colours)] for k, inter in enumerate(inters)}
        per_panel = max(sum(r["labels"]["mode"] == m for r in mine) for m in modes)
        width = 0.8 / per_panel
        several = any(r["seeds"] > 1 for r in mine)
        width_in = min(13.0, max(5.0, 1.8 + len(groups) * (0.2 + 0.16 * per_panel)))
        fig, axes = plt.subplots(
            len(modes), 1, figsize=(width_in, 0.9 + 2.6 * len(modes)), sharex=True, sharey=True, squeeze=False,
            layout="constrained",
        )  # fmt: skip
        for ax, mode in zip(axes[:, 0], modes, strict=True):
            panel = [r for r in mine if r["labels"]["mode"] == mode]
            for k, r in enumerate(panel):
                gains = r["delta_languages"]
                zs = [g for lang, g in gains.items() if lang != SOURCE_LANGUAGE]
                values, errors = [], []
                for g in groups:
                    if g == "0-shot avg":
                        values.append(sum(zs) / len(zs) if zs else np.nan)
                        errors.append(r.get("zero_shot_std") or 0.0)
                    else:
                        values.append(gains.get(g, np.nan))
                        errors.append((r.get("languages_std") or {}).get(g, 0.0))
                pos = xs - 0.4 + width * (k + 0.5)
                c = colour[r["labels"]["intermediate"]]
                bars = ax.bar(pos, values, width, color=c, zorder=2)
                if r["seeds"] > 1:
                    ax.errorbar(pos, values, yerr=errors, fmt="none", ecolor="black", elinewidth=0.7, capsize=1.5,
                                zorder=3)  # fmt: skip
                for g, bar in zip(groups, bars, strict=True):
                    if g == SOURCE_LANGUAGE:
                        bar.set_hatch("///")
                        bar.set_edgecolor("white")
                    elif g == "0-shot avg":
                        bar.set_edgecolor("black")
                        bar.set_linewidth(0.8)
            if SOURCE_LANGUAGE in groups:
                ax.axvspan(xs[0] - 0.55, xs[0] + 0.55, color="0.93", zorder=0)
                if len(xs) > 1:
                    ax.axvline((xs[0] + xs[1]) / 2, color="0.5", linewidth=0.8, linestyle=":")
            if "0-shot avg" in groups:
                ax.axvline((xs[-1] + xs[-2]) / 2, color="0.5", linewidth=0.8, linestyle=":")
            ax.axhline(0, color="black", linewidth=0.8, zorder=2)
            ax.grid(axis="y", color="0.9", zorder=0)
            ax.set_axisbelow(True)
            ax.tick_params(axis="x", length=0)
            ref = _baseline_phrase(panel)
            ax.set_title(f"{mode} (vs {ref})", loc="left")
            ax.set_ylabel(f"Δ {_metric_phrase(panel)} vs\n{ref} (points)")
        ax = axes[-1, 0]
        ax.set_xticks(xs, [f"{g}\n(train)" if g == SOURCE_LANGUAGE else g for g in groups])
        ax.set_xlim(xs[0] - 0.7, xs[-1] + 0.7)
        ax.set_xlabel("language (hatched, shaded: training language; others: zero-shot)")
        spread = _seed_phrase(mine).replace("mean ± std", "mean") + ("; error bars: ± 1 std" if several else "")
        fig.suptitle(_wrap(f"{model} / {target}: gain per language ({spread})", width_in, 10),
                     fontsize=10)  # fmt: skip
        handles = [Patch(color=colour[i], label=i) for i in inters]
        handles.append(Patch(facecolor="0.6", edgecolor="white", hatch="///", label=f"{SOURCE_LANGUAGE} (train)"))
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False,
                   title="intermediate task")  # fmt: skip
        save(fig, _slug("languages", model, target))


def _plot_uriel(rows: list[dict], correlations: list[dict], highlight, save) -> None:
    import matplotlib.pyplot as plt

    # Sized setups are drawn as scaling curves (their correlations stay in the table).
    by_row = {(r["model"], r["target"], r["setup"]): r for r in rows if not r["labels"].get("size")}
    for key in dict.fromkeys((c["model"], c["target"], c["setup"]) for c in correlations):
        r = by_row.get(key)
        if r is None:
            continue
        mine = {c["distance"]: c for c in correlations if (c["model"], c["target"], c["setup"]) == key}
        gains = {lang: g for lang, g in r["delta_languages"].items() if lang != SOURCE_LANGUAGE}
        distances = uriel_distances(list(gains))
        names = [n for n in URIEL_FEATURES if n in mine]
        fig, axes = plt.subplots(
            1, len(names), figsize=(3.0 * len(names) + 0.6, 3.3), sharey=True, squeeze=False, layout="constrained"
        )
        several = r["seeds"] > 1
        labelled = []
        for ax, name in zip(axes[0], names, strict=True):
            c = mine[name]
            langs = [lang for lang in gains if name in distances.get(lang, {})]
            x = [distances[lang][name] for lang in langs]
            y = [gains[lang] for lang in langs]
            low = [lang in highlight for lang in langs]
            err = [(r.get("languages_std") or {}).get(lang, 0.0) for lang in langs] if several else None
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.75", elinewidth=0.7, capsize=1.5, zorder=1)
            ax.scatter(
                x,
                y,
                s=22,
                c=["tab:red" if h else "tab:blue" for h in low],
                zorder=2,
                edgecolors="white",
                linewidths=0.5,
            )
            labelled.append((ax, langs, x, y))
            ax.axhline(0, color="0.5", linewidth=0.7, linestyle=":")
            ax.set_title(f"{name}: Spearman ρ = {c['spearman']:+.2f}, n = {c['languages']}")
            ax.set_xlabel(f"URIEL {name} distance to English")
            ax.margins(x=0.12, y=0.12)
        axes[0][0].set_ylabel(f"Δ {r.get('metric', 'score')} vs {_baseline_phrase([r])}\n(points)")
        legend = [
            plt.Line2D([], [], marker="o", linestyle="", color="tab:blue", label="zero-shot language"),
            plt.Line2D(
                [], [], marker="o", linestyle="", color="tab:red", label="zero-shot, low-resource (highlighted)"
            ),
        ]
        fig.legend(handles=legend, loc="outside lower center", ncol=2, frameon=False)
        title = f"{r['model']} / {r['target']}, {r['setup']}: gain vs URIEL distance to English ({_seed_phrase([r])})"
        fig.suptitle(_wrap(title, 3.0 * len(names), 10), fontsize=10)
        fig.canvas.draw()  # lay the figure out: the labels are placed in its final coordinates
        for ax, langs, x, y in labelled:
            place_labels(ax, langs, x, y)
        save(fig, _slug("uriel", *key))


_LABEL_OFFSETS = [(3, 2, "left", "bottom"), (3, -2, "left", "top"), (-3, 2, "right", "bottom"),
                  (-3, -2, "right", "top"), (0, 5, "center", "bottom"), (0, -5, "center", "top"),
                  (6, 0, "left", "center"), (-6, 0, "right", "center")]  # fmt: skip


def place_labels(ax, labels: list[str], x: list[float], y: list[float], fontsize: float = 7) -> list:
    """Label each point next to it, greedily picking for each label the first of a few positions
    around its point (then farther out, with a leader line) that overlaps no point and no label
    placed before. Returns the annotations."""
    import numpy as np

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(np.column_stack([x, y])) if len(x) else np.zeros((0, 2))
    r = 3.0 * fig.dpi / 72
    taken = [(px - r, py - r, px + r, py + r) for px, py in points]
    frame = ax.get_window_extent(renderer)

    def clash(box) -> float:
        out = sum(
            max(0.0, min(box[2], t[2]) - max(box[0], t[0])) * max(0.0, min(box[3], t[3]) - max(box[1], t[1]))
            for t in taken
        )
        outside = (box[0] < frame.x0) + (box[2] > frame.x1) + (box[1] < frame.y0) + (box[3] > frame.y1)
        return out + 1e4 * outside

    candidates = [*_LABEL_OFFSETS, *((3 * dx, 3 * dy, ha, va) for dx, dy, ha, va in _LABEL_OFFSETS)]
    notes = []
    for k in sorted(range(len(labels)), key=lambda k: -points[k][1]):
        best = None
        for dx, dy, ha, va in candidates:
            trial = ax.annotate(labels[k], (x[k], y[k]), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                fontsize=fontsize)  # fmt: skip
            e = trial.get_window_extent(renderer)
            trial.remove()
            cost = clash((e.x0, e.y0, e.x1, e.y1))
            if best is None or cost < best[0]:
                best = (cost, (dx, dy, ha, va), (e.x0, e.y0, e.x1, e.y1))
            if cost == 0:
                break
        _, (dx, dy, ha, va), box = best
        leader = {"arrowstyle": "-", "color": "0.6", "linewidth": 0.5, "shrinkA": 0, "shrinkB": 2}
        far = abs(dx) + abs(dy) > 8
        note = ax.annotate(labels[k], (x[k], y[k]), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                           fontsize=fontsize, zorder=4, arrowprops=leader if far else None)  # fmt: skip
        taken.append(box)
        notes.append(note)
    return notes


def _plot_scaling(rows: list[dict], highlight, save) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    sized = [r for r in rows if r["labels"].get("size") and not r["labels"].get("baseline")]
    curves = {}
    for r in sized:
        curves.setdefault((r["model"], r["target"], r["labels"]["intermediate"], r["labels"]["mode"]), []).append(r)
    full = {
        (r["model"], r["target"], r["labels"]["intermediate"], r["labels"]["mode"]): r
        for r in rows
        if not r["labels"].get("size") and not r["labels"].get("baseline")
    }
    for key, v in curves.items():  # the all-data setup is the curve's last point when its size is known
        whole = full.get(key)
        n = (whole or {}).get("intermediate_examples")
        if n and n > max(r["labels"]["size"] for r in v):
            v.append({**whole, "labels": {**whole["labels"], "size": n}, "all_data": True})
            full.pop(key)
    curves = {k: sorted(v, key=lambda r: r["labels"]["size"]) for k, v in curves.items() if len(v) >= 2}

    whole_sizes = {r["labels"]["size"] for v in curves.values() for r in v if r.get("all_data")}

    def axis(ax, sizes, inter="intermediate"):
        if max(sizes) / min(sizes) > 10:
            ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{s:,}\n(all)" if s in whole_sizes else f"{s:,}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel(f"{inter} training examples" + (" (log scale)" if max(sizes) / min(sizes) > 10 else ""))
        ax.grid(color="0.92")

    for (model, target, inter, mode), mine in curves.items():
        sizes = [r["labels"]["size"] for r in mine]
        gain = all(r.get("delta_languages") for r in mine)
        key = "delta_languages" if gain else "languages"
        several = any(r["seeds"] > 1 for r in mine)
        fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        langs = sorted({lang for r in mine for lang in r[key]})
        colours = iter(plt.get_cmap("tab10").colors * 4)
        for lang in langs:
            values = [r[key].get(lang, np.nan) for r in mine]
            if lang in highlight:
                ax.plot(
                    sizes, values, marker="o", markersize=4, linewidth=1.8, color=next(colours), label=lang, zorder=3
                )
            elif lang == SOURCE_LANGUAGE:
                ax.plot(sizes, values, linestyle="--", color="0.35", linewidth=1.2, label=f"{lang} (train)", zorder=2)
            else:
                ax.plot(sizes, values, color="0.75", linewidth=0.8, zorder=1)
        if any(lang not in highlight and lang != SOURCE_LANGUAGE for lang in langs):
            ax.plot([], [], color="0.75", linewidth=0.8, label="other languages")
        mean = [r["delta"] if gain else r["xtreme"] for r in mine]
        ax.errorbar(
            sizes,
            mean,
            yerr=[r["xtreme_std"] or 0.0 for r in mine] if several else None,
            color="black",
            linewidth=2.4,
            capsize=3,
            marker="s",
            markersize=4,
            label="XTREME avg",
            zorder=4,
        )
        ref = full.get((model, target, inter, mode))
        if ref is not None and (ref.get("delta") if gain else ref.get("xtreme")) is not None:
            ax.axhline(
                ref["delta"] if gain else ref["xtreme"],
                color="black",
                linestyle=":",
                linewidth=1.2,
                label="XTREME avg, all data",
            )
        if gain:
            ax.axhline(0, color="0.4", linewidth=0.7)
        axis(ax, sizes, inter)
        metric = _metric_phrase(mine)
        ax.set_ylabel(f"Δ {metric} vs {_baseline_phrase(mine)} (points)" if gain else f"{target} {metric}")
        ax.set_title(_wrap(f"{model}: {target} after {mode} on {inter} by data size ({_seed_phrase(mine)})", 4.8))
        fig.legend(loc="outside right upper", frameon=False, title="language")
        save(fig, _slug("scaling", model, target, inter, mode))
    for model, target in dict.fromkeys((m, t) for m, t, _, _ in curves):
        mine = {k: v for k, v in curves.items() if k[:2] == (model, target)}
        if len(mine) < 2:
            continue
        gain = all(r.get("delta") is not None for v in mine.values() for r in v)
        fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        every = sorted({r["labels"]["size"] for v in mine.values() for r in v})
        order = sorted(mine, key=lambda k: (get_mode(k[3]).full, list(mine).index(k)))
        colours = iter(plt.get_cmap("tab10").colors * 4)
        for key in order:
            v, c = mine[key], next(colours)
            several = any(r["seeds"] > 1 for r in v)
            ref = "" if not gain else f" (vs {_baseline_phrase(v).removesuffix(' baseline')})"
            ax.errorbar(
                [r["labels"]["size"] for r in v],
                [r["delta"] if gain else r["xtreme"] for r in v],
                yerr=[r["xtreme_std"] or 0.0 for r in v] if several else None,
                marker="o",
                markersize=4,
                capsize=3,
                linewidth=1.6,
                color=c,
                label=f"{key[3]} on {key[2]}{ref}",
            )
            whole = full.get(key)
            if whole is not None and (whole.get("delta") if gain else whole.get("xtreme")) is not None:
                ax.axhline(whole["delta"] if gain else whole["xtreme"], color=c, linestyle=":", linewidth=1.1,
                           label=f"{key[3]} on {key[2]}, all data")  # fmt: skip
        if gain:
            ax.axhline(0, color="0.4", linewidth=0.7)
        axis(ax, every)
        flat = [r for v in mine.values() for r in v]
        metric = _metric_phrase(flat)
        ax.set_ylabel(f"Δ XTREME {metric} vs\nno-intermediate baseline (points)" if gain else f"XTREME {metric}")
        ax.set_title(_wrap(f"{model} / {target}: XTREME average by intermediate data size ({_seed_phrase(flat)})", 4.8))
        fig.legend(loc="outside right upper", frameon=False, title="setup")
        save(fig, _slug("scaling", model, target))


def language_gains(rows: list[dict]) -> dict[str, list[float]]:
    """Every zero-shot language's gains (delta against the baseline) over the given setups."""
    gains: dict[str, list[float]] = {}
    for r in rows:
        for lang, g in (r.get("delta_languages") or {}).items():
            if lang != SOURCE_LANGUAGE:
                gains.setdefault(lang, []).append(g)
    return gains


def _plot_distance(rows: list[dict], retrieval: list[dict], highlight, save) -> None:
    """One figure per backbone: each language's mean gain over the target setups (circles) and over
    the retrieval setups (triangles) against its URIEL genetic, geographic and syntactic distance to
    English, with Spearman's rho of each set of points."""
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    for model in dict.fromkeys(r["model"] for r in [*rows, *retrieval]):
        sets = {
            "target tasks": language_gains([r for r in rows if r["model"] == model and not r["labels"].get("size")]),
            "retrieval": language_gains([r for r in retrieval if r["model"] == model]),
        }
        sets = {k: {lang: sum(v) / len(v) for lang, v in g.items()} for k, g in sets.items() if g}
        if not sets:
            continue
        distances = uriel_distances(sorted({lang for g in sets.values() for lang in g}))
        if not distances:
            continue
        names = list(URIEL_FEATURES)
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 0.6, 3.6), sharey=True, squeeze=False,
                                 layout="constrained")  # fmt: skip
        markers = {"target tasks": "o", "retrieval": "^"}
        labelled = []
        for ax, name in zip(axes[0], names, strict=True):
            title = []
            for kind, gains in sets.items():
                langs = [lang for lang in gains if name in distances.get(lang, {})]
                x = [distances[lang][name] for lang in langs]
                y = [gains[lang] for lang in langs]
                ax.scatter(x, y, s=26, marker=markers[kind], zorder=2, edgecolors="white", linewidths=0.5,
                           c=["tab:red" if lang in highlight else "tab:blue" for lang in langs])  # fmt: skip
                if len(langs) >= 3:
                    rho = spearmanr(x, y)[0]
                    title.append(f"{kind}: ρ = {rho:+.2f} (n = {len(langs)})")
                labelled.append((ax, [f"{lang}" for lang in langs], x, y))
            ax.axhline(0, color="0.5", linewidth=0.7, linestyle=":")
            ax.set_title("\n".join([f"URIEL {name}", *title]), fontsize=8)
            ax.set_xlabel(f"{name} distance to English")
            ax.margins(x=0.15, y=0.15)
        axes[0][0].set_ylabel("mean gain vs no-intermediate\nbaseline (points)")
        legend = [
            plt.Line2D([], [], marker="o", linestyle="", color="0.4", label="target tasks (mean over setups)"),
            plt.Line2D([], [], marker="^", linestyle="", color="0.4", label="retrieval (mean over adapters)"),
            plt.Line2D([], [], marker="s", linestyle="", color="tab:blue", label="language"),
            plt.Line2D([], [], marker="s", linestyle="", color="tab:red", label="low-resource language"),
        ]
        fig.legend(handles=legend, loc="outside lower center", ncol=4, frameon=False)
        fig.suptitle(_wrap(f"{model}: gain per language vs distance to English", 3.2 * len(names), 10), fontsize=10)
        fig.canvas.draw()
        for ax, langs, x, y in labelled:
            place_labels(ax, langs, x, y)
        save(fig, _slug("gain-vs-distance", model))


def _watermark(fig) -> None:
    """A large, light, diagonal SMOKE RUN stamp across the whole figure."""
    import math

    w, h = fig.get_size_inches()
    angle = math.degrees(math.atan2(h, w))
    size = max(10.0, min(40.0, 72 * math.hypot(w, h) / 34))
    fig.text(
        0.5,
        0.5,
        WATERMARK,
        rotation=angle,
        ha="center",
        va="center",
        fontsize=size,
        color="tab:red",
        alpha=0.3,  # no path effects: they would turn the text into paths in SVG and PDF
        fontweight="bold",
        zorder=100,
        gid=WATERMARK_GID,
        rotation_mode="anchor",
        multialignment="center",
    )


def _save(fig, path: Path, smoke: bool = False) -> list[Path]:
    """Save ``fig`` as ``path`` (PNG) and as PDF and SVG with the same stem; watermark it first on a
    smoke run. Returns the paths, PNG first."""
    import matplotlib.pyplot as plt

    if smoke:
        _watermark(fig)
    paths = []
    for ext in FIGURE_FORMATS:
        target = path.with_suffix(f".{ext}")
        fig.savefig(target, dpi=200, metadata={"Date": None} if ext in ("pdf", "svg") else None)
        paths.append(target)
    plt.close(fig)
    return paths
