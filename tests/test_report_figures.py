"""Paper-ready grid figures: PDF/SVG next to every PNG, one shared symmetric colour scale, seed spread in
cells and error bars, English set apart, the URIEL scatter, data-size curves, the smoke-run watermark."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text

from adapterxl.report import (
    WATERMARK_GID,
    build_report,
    is_smoke_run,
    plot_grid,
    shared_limits,
    text_colour,
)

LANGS = ("en", "de", "sw", "ur", "zh")
BASE = {"en": 80, "de": 70, "sw": 50, "ur": 40, "zh": 60}
# Gain over the matching baseline per (mode, intermediate, size); seed 2 adds +2 everywhere (std = 2 ** 0.5).
GAINS = {
    ("stack", "mnli", None): {"en": 2, "de": 6, "sw": 9, "ur": 12, "zh": 4},
    ("stack", "copa", None): {"en": -1, "de": -3, "sw": -5, "ur": -2, "zh": -4},
    ("full", "mnli", None): {"en": 1, "de": 3, "sw": 2, "ur": 5, "zh": 2},
    ("stack", "mnli", 1000): {"en": 0, "de": 1, "sw": 2, "ur": 3, "zh": 1},
    ("stack", "mnli", 20000): {"en": 1, "de": 4, "sw": 6, "ur": 8, "zh": 3},
}


def _write_grid(root, model="xlmr", gains=GAINS):
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    n = 0

    def job(labels, scores):
        nonlocal n
        n += 1
        record = {"job": f"j{n}", "kind": "target", "labels": {"model": model, "target": "xnli", **labels},
                  "spec": {"task": "xnli", "model": model},
                  "metrics": {lang: {"accuracy": v} for lang, v in scores.items()}}  # fmt: skip
        (jobs / f"j{n}.json").write_text(json.dumps(record))

    for seed in (1, 2):
        for mode, shift in (("adapter", 0), ("full", 5)):
            job({"mode": mode, "intermediate": None, "seed": seed, "size": None, "baseline": True},
                {lang: BASE[lang] + shift for lang in LANGS})  # fmt: skip
        for (mode, inter, size), gain in gains.items():
            if mode == "full" and seed == 2:
                continue  # full on mnli: one seed only (no spread to show)
            shift = 5 if mode == "full" else 0
            job({"mode": mode, "intermediate": inter, "seed": seed, "size": size, "baseline": False},
                {lang: BASE[lang] + shift + gain[lang] + 2 * (seed - 1) for lang in LANGS})  # fmt: skip
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of the grid above, plus the same figures drawn again with their figure objects kept."""
    root = _write_grid(tmp_path_factory.mktemp("grid") / "results")
    out = build_report(root)
    figures: dict = {}
    plot_grid(out["rows"], tmp_path_factory.mktemp("again"), correlations=out["correlations"], figures=figures)
    return out, figures


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text)]


def test_every_figure_is_png_pdf_and_svg(report):
    out, figures = report
    pngs = sorted(p.name for p in out["files"] if p.suffix == ".png")
    assert (
        pngs
        == sorted(figures)
        == [
            "heatmap-xlmr.png",
            "languages-xlmr-xnli.png",
            "scaling-xlmr-xnli-mnli-stack.png",
            "uriel-xlmr-xnli-full-on-mnli.png",
            "uriel-xlmr-xnli-stack-on-copa.png",
            "uriel-xlmr-xnli-stack-on-mnli.png",
        ]
    )
    files = set(out["files"])
    for png in (p for p in out["files"] if p.suffix == ".png"):
        pdf, svg = png.with_suffix(".pdf"), png.with_suffix(".svg")
        assert pdf in files and svg in files
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
        text = svg.read_text(encoding="utf-8")
        assert "<svg" in text and len(text) > 1000
        assert "SMOKE RUN" not in text  # not a tiny backbone: no watermark
        assert f"]({png.name})" in out["report"].read_text()


def test_heatmap_panels_share_one_symmetric_colour_scale(report):
    out, figures = report
    fig = figures["heatmap-xlmr.png"]
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["stack (vs adapter baseline)", "full (vs full baseline)"]
    deltas = [r["delta"] for r in out["rows"] if r.get("delta") is not None and not r["labels"]["size"]]
    bound = max(abs(d) for d in deltas)
    assert shared_limits([deltas]) == pytest.approx((-bound, bound))
    for ax in panels:
        assert ax.images[0].get_clim() == pytest.approx((-bound, bound))
        assert ax.images[0].get_array().shape == (2, 1)  # the same rows and columns in every panel
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["mnli", "copa"]  # sized runs: scaling curves
    colourbar = next(ax for ax in fig.axes if not ax.images and ax.get_ylabel())
    assert "Δ XTREME accuracy" in colourbar.get_ylabel() and "baseline (points)" in colourbar.get_ylabel()
    # Cells: mean ± std over seeds when there are several (stack: 2 seeds), the plain mean otherwise (full: 1).
    stack = {r["labels"]["intermediate"]: r for r in out["rows"] if r["setup"] in ("stack on mnli", "stack on copa")}
    cells = {t.get_text(): t.get_color() for t in panels[0].texts}
    for r in stack.values():
        assert f"{r['delta']:+.1f}\n± {r['xtreme_std']:.1f}" in cells
    full = next(r for r in out["rows"] if r["setup"] == "full on mnli")
    assert [t.get_text() for t in panels[1].texts] == [f"{full['delta']:+.1f}", "n/a"]
    # The darkest cell (largest |delta|) has white text, light cells black.
    darkest = max(stack.values(), key=lambda r: abs(r["delta"]))
    assert cells[f"{darkest['delta']:+.1f}\n± {darkest['xtreme_std']:.1f}"] == "white"
    assert next(t.get_color() for t in panels[1].texts if t.get_text() == "n/a") != "white"


def test_shared_limits_and_text_colour():
    assert shared_limits([[1.0, -3.0]], np.array([[2.0, np.nan]])) == (-3.0, 3.0)
    assert shared_limits([[np.nan]], []) == (-0.5, 0.5)  # nothing finite: a small range, no error
    assert shared_limits([[0.1]], floor=0.0) == (-0.1, 0.1)
    assert text_colour((0.05, 0.19, 0.38, 1.0)) == "white"  # dark blue
    assert text_colour((0.97, 0.97, 0.97, 1.0)) == "black"  # near white


def test_language_bars_have_error_bars_and_set_english_apart(report):
    out, figures = report
    fig = figures["languages-xlmr-xnli.png"]
    panels = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title(loc="left") for ax in panels] == ["stack (vs adapter baseline)", "full (vs full baseline)"]
    assert panels[0].get_ylabel() == "Δ accuracy vs\nadapter baseline (points)"
    assert panels[1].get_ylabel() == "Δ accuracy vs\nfull baseline (points)"
    ticks = [t.get_text() for t in panels[1].get_xticklabels()]
    assert ticks == ["en\n(train)", "de", "sw", "ur", "zh", "0-shot avg"]
    # Stack runs have two seeds (error bars: one per bar, std over seeds); full on mnli has one (none).
    bars = [c for c in panels[0].containers if not isinstance(c, ErrorbarContainer)]
    errors = [c for c in panels[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(errors) == 2
    stack = [r for r in out["rows"] if r["setup"] in ("stack on copa", "stack on mnli")]
    for r, error in zip(stack, errors, strict=True):
        spans = [abs(s[1][1] - s[0][1]) / 2 for s in error.lines[2][0].get_segments()]
        assert spans == pytest.approx([*(r["languages_std"][lang] for lang in LANGS), r["zero_shot_std"]])
        assert spans[0] == pytest.approx(2**0.5)  # seeds 2 points apart
    assert not any(isinstance(c, ErrorbarContainer) for c in panels[1].containers)
    # English bars hatched, zero-shot ones not; English shaded and a separator before the zero-shot group.
    assert bars[0][0].get_hatch() == "///" and not any(b.get_hatch() for b in list(bars[0])[1:])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["mnli", "copa", "en (train)"]  # intermediates only: sized runs are curves
    assert "error bars" in fig.get_suptitle()


def test_uriel_scatter_reports_the_tables_rho_and_n(report):
    out, figures = report
    fig = figures["uriel-xlmr-xnli-stack-on-mnli.png"]
    mine = {c["distance"]: c for c in out["correlations"] if c["setup"] == "stack on mnli"}
    assert set(mine) == {"genetic", "geographic", "syntactic"}
    titles = [ax.get_title() for ax in fig.axes if ax.collections]
    assert titles == [f"{d}: Spearman ρ = {mine[d]['spearman']:+.2f}, n = {mine[d]['languages']}" for d in mine]
    for ax in (ax for ax in fig.axes if ax.collections):
        labels = sorted(t.get_text() for t in ax.texts)
        assert labels == ["de", "sw", "ur", "zh"]  # one point per zero-shot language, labelled with its code
        assert ax.collections[-1].get_offsets().shape[0] == 4


def test_scaling_curves_over_data_size(report):
    out, figures = report
    fig = figures["scaling-xlmr-xnli-mnli-stack.png"]
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 1,000 to 20,000 examples: more than 10x
    assert ax.get_xlabel() == "mnli training examples (log scale)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1,000", "20,000"]
    assert ax.get_ylabel() == "Δ accuracy vs adapter baseline (points)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    # Low-resource languages highlighted (sw, ur: coloured, markers), English dashed, the others grey.
    for lang in ("sw", "ur"):
        assert lines[lang].get_marker() == "o" and list(lines[lang].get_xdata()) == [1000, 20000]
    assert list(lines["sw"].get_ydata()) == pytest.approx([3.0, 7.0])  # gains +2 and +6, plus 1 (mean seed shift)
    assert lines["en (train)"].get_linestyle() == "--"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "XTREME avg" in legend and "XTREME avg, all data" in legend and "de" not in legend


def test_smoke_runs_are_watermarked(tmp_path):
    root = _write_grid(tmp_path / "results", model="tiny-xlmr")
    out = build_report(root)
    svgs = [p for p in out["files"] if p.suffix == ".svg"]
    assert len(svgs) == 6
    for svg in svgs:
        assert "SMOKE RUN: tiny random backbone" in svg.read_text(encoding="utf-8")
    assert "watermarked as a smoke run" in out["report"].read_text()
    figures: dict = {}
    plot_grid(out["rows"], tmp_path / "again", correlations=out["correlations"], smoke=True, figures=figures)
    plain: dict = {}
    plot_grid(out["rows"], tmp_path / "plain", correlations=out["correlations"], smoke=False, figures=plain)
    for name, fig in figures.items():
        marks = [t for t in fig.texts if t.get_gid() == WATERMARK_GID]
        assert len(marks) == 1 and "numbers mean nothing" in marks[0].get_text(), name
        assert 0 < marks[0].get_rotation() < 90
        assert not [t for t in plain[name].texts if t.get_gid() == WATERMARK_GID]
        assert all("SMOKE" not in t for t in _texts(plain[name]))


@pytest.mark.parametrize(
    ("record", "smoke"),
    [
        ({"labels": {"model": "tiny-xlmr"}}, True),
        ({"labels": {"model": "e5"}, "spec": {"model": "tiny-bert"}}, True),
        ({"labels": {"model": "e5"}, "base_model_source": "tiny-random"}, True),
        ({"labels": {"model": "e5"}, "summary": {"base_model_source": "tiny-random"}}, True),
        ({"labels": {"model": "e5"}, "spec": {"model": "intfloat/multilingual-e5-small"}}, False),
        ({"labels": {"model": "xlmr"}, "base_model_source": "hub"}, False),
    ],
)
def test_is_smoke_run(record, smoke):
    assert is_smoke_run([record]) is smoke
    assert is_smoke_run([{"labels": {"model": "xlmr"}}, record]) is smoke


def test_a_small_size_range_stays_linear(tmp_path):
    """Sizes within 10x of each other: a linear axis; no plots at all with plots=False."""
    gains = {k: v for k, v in GAINS.items() if k[2] != 20000}
    gains[("stack", "mnli", 5000)] = GAINS[("stack", "mnli", 20000)]
    root = _write_grid(tmp_path / "results", gains=gains)
    out = build_report(root, plots=False)
    assert not [p for p in out["files"] if p.suffix in (".png", ".pdf", ".svg")]
    figures: dict = {}
    plot_grid(out["rows"], tmp_path, figures=figures)
    ax = figures["scaling-xlmr-xnli-mnli-stack.png"].axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "mnli training examples"
    assert not any(n.startswith("uriel-") for n in figures)  # no correlations given: no scatter
    assert math.isfinite(ax.get_ylim()[0])


def test_the_all_data_setup_is_the_curves_last_point_when_its_size_is_known(tmp_path):
    root = _write_grid(tmp_path / "results")
    intermediate = {"job": "i1", "kind": "intermediate", "train_examples": 50000, "spec": {"task": "mnli"},
                    "labels": {"model": "xlmr", "intermediate": "mnli", "size": None, "mode": "adapter"}}  # fmt: skip
    (root / "jobs" / "i1.json").write_text(json.dumps(intermediate))
    out = build_report(root)
    figures: dict = {}
    plot_grid(out["rows"], tmp_path / "again", figures=figures)
    ax = figures["scaling-xlmr-xnli-mnli-stack.png"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["sw"].get_xdata()) == [1000, 20000, 50000]
    assert list(lines["sw"].get_ydata()) == pytest.approx([3.0, 7.0, 10.0])  # all data: +9, plus 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1,000", "20,000", "50,000\n(all)"]
    legend = [t.get_text() for t in figures["scaling-xlmr-xnli-mnli-stack.png"].legends[0].get_texts()]
    assert "XTREME avg, all data" not in legend  # on the curve, not a line across it
