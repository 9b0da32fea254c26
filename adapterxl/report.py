"""Results as tables and plots: plain-text tables for one run, Markdown / CSV reports and PNG plots for a grid."""

from __future__ import annotations

import functools
from pathlib import Path

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
        row = {
            "model": model,
            "target": target,
            "task": task,
            "setup": setup,
            "labels": members[0]["labels"],
            "seeds": len(members),
            "languages": {lang: _mean_std([s[lang] for s in per_seed if lang in s])[0] for lang in languages},
        }
        for key in ("xtreme", "xtreme_r", "all"):
            values = [s[key] for s in scores if s[key] is not None]
            row[key], row[f"{key}_std"] = _mean_std(values) if values else (None, None)
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
                r[f"{name}_languages"] = {
                    lang: v - ref["languages"][lang] for lang, v in r["languages"].items() if lang in ref["languages"]
                }
    return rows


def uriel_distances(languages: list[str], to: str = "en") -> dict[str, dict[str, float]]:
    """Cosine distance of URIEL vectors (lang2vec) between each language and ``to``: genetic
    (family-tree membership), geographic (location features), syntactic (kNN-completed WALS-style
    features). Languages URIEL lacks are left out."""
    import numpy as np

    from .tasks.retrieval import lang2vec

    l2v = lang2vec()
    available = set(l2v.available_uriel_languages())
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
    rows.sort(key=lambda r: (r["model"], r["target"], not r["labels"].get("baseline"), r["setup"]))
    retrieval = grid_rows([r for r in records if r["kind"] == "retrieval"])
    correlations = similarity_correlations(rows) if _haslang2vec() else []

    smoke = any(r["labels"]["model"].startswith("tiny-") for r in records)
    parts = [
        f"# Grid report: {results_dir}",
        "",
        *([f"**{SMOKE_BANNER}**", ""] if smoke else []),
        f"{len(records)} finished jobs, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else "") + ".",
        "Scores in percent, mean ± std over seeds; XTREME / XTREME-R: mean over the task's languages of that "
        "benchmark that were evaluated; delta: against the no-intermediate baseline of the same kind (adapter "
        "modes: adapter, full: full); vs full: against full fine-tuning without intermediate task.",
    ]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        targets = list(dict.fromkeys(r["target"] for r in mine))
        setups = list(dict.fromkeys(r["setup"] for r in mine))
        cells = {(r["setup"], r["target"]): r for r in mine}
        body = []
        for setup in setups:
            line = [setup]
            for t in targets:
                r = cells.get((setup, t))
                line.append("-" if r is None else f"{_cell(r['xtreme'], r['xtreme_std'])} ({_signed(r.get('delta'))})")
            body.append(line)
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
    written = [out / "results.csv", out / "languages.csv"]
    if plots:
        pngs = plot_grid(rows, out, highlight)
        written += pngs
        parts += ["", "## Plots", "", *(f"![{p.stem}]({p.name})" for p in pngs)]
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


def plot_grid(rows: list[dict], out: Path, highlight: tuple[str, ...] = LOW_RESOURCE) -> list[Path]:
    """PNG plots: intermediate x target heatmap of deltas (per backbone and mode), per-language
    bars of the deltas (per backbone and target), and data-size scaling curves per language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    with_delta = [r for r in rows if r.get("delta") is not None]
    for model, mode in dict.fromkeys((r["model"], r["labels"]["mode"]) for r in with_delta):
        mine = [
            r for r in with_delta if r["model"] == model and r["labels"]["mode"] == mode and not r["labels"]["size"]
        ]
        if not mine:
            continue
        inters = list(dict.fromkeys(r["labels"]["intermediate"] for r in mine))
        targets = list(dict.fromkeys(r["target"] for r in mine))
        grid = np.full((len(inters), len(targets)), np.nan)
        for r in mine:
            grid[inters.index(r["labels"]["intermediate"]), targets.index(r["target"])] = r["delta"]
        bound = max(1e-9, float(np.nanmax(np.abs(grid))))
        fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + 0.9 * len(targets)), max(2.8, 1.2 + 0.6 * len(inters))))
        image = ax.imshow(grid, cmap="RdBu", vmin=-bound, vmax=bound)
        ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right")
        ax.set_yticks(range(len(inters)), inters)
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=8)
        ax.set_xlabel("target task")
        ax.set_ylabel("intermediate task")
        ax.set_title(f"{model}, {mode}: delta vs baseline", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
        written.append(_save(fig, out / f"heatmap-{model}-{mode}.png"))
    for model, target in dict.fromkeys((r["model"], r["target"]) for r in with_delta):
        mine = [r for r in with_delta if r["model"] == model and r["target"] == target and r.get("delta_languages")]
        langs = sorted({lang for r in mine for lang in r["delta_languages"]})
        if not mine or not langs:
            continue
        fig, ax = plt.subplots(figsize=(2 + 0.45 * len(langs) * max(1, len(mine) / 2), 3.5))
        width = 0.8 / len(mine)
        for k, r in enumerate(mine):
            values = [r["delta_languages"].get(lang, np.nan) for lang in langs]
            ax.bar(np.arange(len(langs)) + k * width, values, width, label=r["setup"])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(langs)) + 0.4 - width / 2, langs)
        ax.set_ylabel("delta vs baseline (points)")
        ax.set_title(f"{model} / {target}: gain per language")
        ax.legend(fontsize=7)
        written.append(_save(fig, out / f"languages-{model}-{target}.png"))
    sized = [r for r in rows if r["labels"].get("size") and not r["labels"].get("baseline")]
    for model, target, inter, mode in dict.fromkeys(
        (r["model"], r["target"], r["labels"]["intermediate"], r["labels"]["mode"]) for r in sized
    ):
        mine = sorted(
            (
                r
                for r in sized
                if (r["model"], r["target"], r["labels"]["intermediate"], r["labels"]["mode"])
                == (model, target, inter, mode)
            ),
            key=lambda r: r["labels"]["size"],
        )
        if len(mine) < 2:
            continue
        sizes = [r["labels"]["size"] for r in mine]
        fig, ax = plt.subplots(figsize=(6, 4))
        for lang in sorted({lang for r in mine for lang in r["languages"]}):
            low = lang in highlight
            ax.plot(
                sizes,
                [r["languages"].get(lang, np.nan) for r in mine],
                marker="o" if low else None,
                linewidth=2 if low else 0.8,
                color=None if low else "0.7",
                label=lang if low else None,
            )
        ax.plot(sizes, [r["xtreme"] for r in mine], color="black", linewidth=2.5, label="mean")
        ax.set_xscale("log")
        ax.set_xlabel(f"{inter} training examples")
        ax.set_ylabel(f"{target} score")
        ax.set_title(f"{model}: {target} after {mode} on {inter} (low-resource languages in colour)")
        ax.legend(fontsize=7, ncol=2)
        written.append(_save(fig, out / f"scaling-{model}-{target}-{inter}-{mode}.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
