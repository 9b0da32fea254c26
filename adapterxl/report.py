"""Plain-text tables of results (per language, per setup)."""

from __future__ import annotations

SMOKE_BANNER = (
    "SMOKE RUN: tiny random backbone and synthetic data. These numbers only show that the pipeline "
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
        body.append([label, *(_fmt(v) for v in values), _fmt(avg), _fmt(zs)])
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({metric}, percent)"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def result_lines(result) -> list[str]:
    """What the CLI prints after a run: the results table (one per task of a multi-task run),
    the sampled task shares and the fusion attention per language when there are any."""
    manifest = result.manifest
    if len(manifest.get("tasks", [])) > 1:
        lines = [
            results_table({f"{result.name}/{task}": m}, result.summary["tasks"][task]["metric"])
            for task, m in result.metrics.items()
        ]
    else:
        lines = [results_table({result.name: result.metrics}, result.summary["metric"])]
    sampling = manifest.get("sampling")
    if sampling:
        shares = ", ".join(
            f"{t} {sampling['shares_seen'][t]:.2f} (p={p:.2f})" for t, p in sampling["probabilities"].items()
        )
        lines.append(f"Task shares of the batches: {shares}")
    attention = manifest.get("fusion", {}).get("attention")
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
