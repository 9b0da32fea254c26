"""Grid reports: the numbers in the tables for a hand-built results folder, CSV, plots, correlations."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from adapterxl.cli import main
from adapterxl.report import build_report, uriel_distances


def _record(job, kind, labels, task, metrics):
    return {"job": job, "kind": kind, "labels": labels, "spec": {"task": task}, "metrics": metrics}


def _labels(mode, intermediate=None, seed=1, size=None, target="xnli"):
    return {"model": "xlmr", "target": target, "mode": mode, "intermediate": intermediate, "seed": seed,
            "size": size, "baseline": intermediate is None}  # fmt: skip


@pytest.fixture
def results(tmp_path):
    """XNLI in en/de/sw/ur (all four are XTREME and XTREME-R languages) and one non-XTREME language (xx)."""
    jobs = tmp_path / "results" / "jobs"
    jobs.mkdir(parents=True)
    acc = lambda **v: {lang: {"accuracy": x} for lang, x in v.items()}  # noqa: E731
    records = [
        _record("b1", "target", _labels("adapter", seed=1), "xnli", acc(en=80, de=70, sw=50, ur=40, xx=10)),
        _record("b2", "target", _labels("adapter", seed=2), "xnli", acc(en=82, de=72, sw=52, ur=42, xx=12)),
        _record("s1", "target", _labels("stack", "mnli", 1), "xnli", acc(en=84, de=76, sw=58, ur=50, xx=20)),
        _record("s2", "target", _labels("stack", "mnli", 2), "xnli", acc(en=86, de=78, sw=62, ur=52, xx=22)),
        _record("f1", "target", _labels("full", seed=1), "xnli", acc(en=85, de=75, sw=55, ur=45, xx=15)),
        _record("n1", "target", _labels("stack", "mnli", 1, size=1000), "xnli", acc(en=81, de=71, sw=51, ur=41)),
        _record("n2", "target", _labels("stack", "mnli", 1, size=5000), "xnli", acc(en=83, de=74, sw=55, ur=46)),
        _record("i1", "intermediate", {**_labels("adapter", "mnli"), "baseline": False}, "mnli", acc(en=70)),
    ]
    for r in records:
        (jobs / f"{r['job']}.json").write_text(json.dumps(r))
    (jobs / "x1.error.json").write_text(json.dumps({"job": "x1", "error": "boom"}))
    return tmp_path / "results"


def test_report_tables_hold_the_hand_computed_numbers(results):
    out = build_report(results)
    rows = {r["setup"]: r for r in out["rows"]}
    # XTREME: mean over en, de, sw, ur (xx is no XTREME language); then mean / sample std over the two seeds.
    assert rows["baseline adapter"]["xtreme"] == pytest.approx(((80 + 70 + 50 + 40) / 4 + (82 + 72 + 52 + 42) / 4) / 2)
    assert rows["baseline adapter"]["xtreme_std"] == pytest.approx(2**0.5)  # 60 and 62
    assert rows["stack on mnli"]["xtreme"] == pytest.approx((67 + 69.5) / 2)
    assert rows["stack on mnli"]["all"] == pytest.approx((288 / 5 + 300 / 5) / 2)  # all five languages
    assert rows["stack on mnli"]["delta"] == pytest.approx(68.25 - 61)
    assert rows["stack on mnli"]["delta_full"] == pytest.approx(68.25 - 65)
    assert rows["stack on mnli"]["delta_languages"]["sw"] == pytest.approx(60 - 51)
    assert rows["stack on mnli (n1000)"]["delta"] == pytest.approx(61 - 61)
    assert rows["baseline full"]["seeds"] == 1 and rows["baseline full"]["xtreme_std"] == 0.0
    assert "mnli" not in {r["target"] for r in out["rows"]}  # intermediate jobs are no table rows

    text = out["report"].read_text()
    assert "| stack on mnli | 68.2 ± 1.8 (+7.2) |" in text
    assert "| xnli | stack on mnli | 2 | 68.2 ± 1.8 | 68.2 ± 1.8 | +7.2 | +3.2 |" in text
    assert "7 finished jobs" not in text and "8 finished jobs, 1 failed (x1)" in text
    with (results / "report" / "results.csv").open() as f:
        table = {r["setup"]: r for r in csv.DictReader(f)}
    assert float(table["stack on mnli"]["delta"]) == pytest.approx(7.25)
    with (results / "report" / "languages.csv").open() as f:
        langs = list(csv.DictReader(f))
    assert (
        len(langs) == 5 * 5 + 4 * 2
        and {"job": "s1", "language": "sw", "score": "58.0"}.items()
        <= next(r for r in langs if r["job"] == "s1" and r["language"] == "sw").items()
    )


def test_report_plots_are_written_and_non_empty(results):
    out = build_report(results)
    pngs = sorted(p.name for p in out["files"] if p.suffix == ".png")
    # One heatmap per backbone (a panel per mode), bars per target, a URIEL scatter per unsized setup
    # with correlations, scaling curves for the sized runs (drawn there, not as separate bars).
    assert pngs == [
        "heatmap-xlmr.png",
        "languages-xlmr-xnli.png",
        "scaling-xlmr-xnli-mnli-stack.png",
        "uriel-xlmr-xnli-stack-on-mnli.png",
    ]
    for p in out["files"]:
        if p.suffix == ".png":
            data = p.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
            for twin in (p.with_suffix(".pdf"), p.with_suffix(".svg")):
                assert twin in out["files"] and twin.stat().st_size > 1000
    assert len([p for p in out["files"] if p.suffix in (".png", ".pdf", ".svg")]) == 3 * len(pngs)


def test_uriel_distances_and_the_gain_correlation(results):
    d = uriel_distances(["de", "sw", "ur", "zh"])
    assert set(d) == {"de", "sw", "ur", "zh"}
    # German is closer to English than Swahili on every axis (same family, same continent, similar syntax).
    for axis in ("genetic", "geographic", "syntactic"):
        assert d["de"][axis] < d["sw"][axis]
    assert d["de"]["genetic"] < d["zh"]["genetic"]
    out = build_report(results, plots=False)
    rows = [c for c in out["correlations"] if c["setup"] == "stack on mnli" and c["distance"] == "genetic"]
    assert len(rows) == 1 and rows[0]["languages"] == 3 and -1 <= rows[0]["spearman"] <= 1


def test_report_cli_and_its_errors(results, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["report", str(results), "--no-plots"])
    assert ok.exit_code == 0, ok.output
    assert "report.md" in ok.output
    empty = tmp_path / "empty"
    (empty / "jobs").mkdir(parents=True)
    bad = runner.invoke(main, ["report", str(empty)])
    assert bad.exit_code == 2 and "no finished jobs" in bad.output
    assert runner.invoke(main, ["report", str(tmp_path / "nowhere")]).exit_code == 2
