"""Transferability estimates (adapterxl.selection): LogME against the evidence computed another way,
rankings, regret, the estimators end to end on tiny intermediates, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_entry, run_config
from scipy.stats import multivariate_normal

from adapterxl import RunConfig, run
from adapterxl.config import DataConfig
from adapterxl.errors import ConfigError, DataError
from adapterxl.fixtures import nli_examples, write_jsonl
from adapterxl.selection import Selection, compare, logme, logme_column, regret, select
from adapterxl.tasks import BUILTIN


def test_logme_is_the_maximum_log_evidence_of_the_bayesian_linear_model():
    """The evidence LogME maximises is log N(y; 0, I / beta + F F^T / alpha), computed here directly
    (an n x n Gaussian, no eigenbasis): equal at LogME's alpha and beta, and lower around them."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 5))
    y = f @ rng.normal(size=5) + 0.3 * rng.normal(size=40)
    fitted = logme_column(f, y)

    def evidence(alpha, beta):
        return multivariate_normal(np.zeros(40), np.eye(40) / beta + f @ f.T / alpha).logpdf(y) / 40

    assert fitted.logme == pytest.approx(evidence(fitted.alpha, fitted.beta), abs=1e-9)
    for a, b in ((1.2, 1), (0.8, 1), (1, 1.2), (1, 0.8)):
        assert evidence(fitted.alpha * a, fitted.beta * b) < fitted.logme
    # the fixed point: alpha = gamma / m^T m (checked through the hand formulas of the paper)
    s = np.linalg.eigvalsh(f.T @ f)
    gamma = np.sum(fitted.beta * s / (fitted.alpha + fitted.beta * s))
    m = np.linalg.solve(fitted.alpha * np.eye(5) + fitted.beta * f.T @ f, fitted.beta * f.T @ y)
    assert fitted.alpha == pytest.approx(gamma / (m @ m), rel=1e-4)
    assert fitted.beta == pytest.approx((40 - gamma) / np.sum((f @ m - y) ** 2), rel=1e-4)


def test_logme_prefers_features_that_explain_the_labels():
    """You et al.'s premise: features from which the labels follow linearly score higher than noise."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=120)
    informative = np.eye(3)[labels] * 2 + 0.5 * rng.normal(size=(120, 3))
    noise = rng.normal(size=(120, 3))
    assert logme(np.hstack([informative, noise]), labels) > logme(np.hstack([noise, rng.normal(size=(120, 3))]), labels)
    with pytest.raises(ValueError, match="one class only"):
        logme(noise, np.zeros(120, dtype=int))
    with pytest.raises(ValueError, match="120 feature rows"):
        logme(noise, labels[:10])


def test_rankings_regret_and_spearman_against_measured_gains_hand_computed():
    selection = Selection("t", ["a", "b", "c", "d"], {"logme": {"a": -0.5, "b": -0.7, "c": -0.6, "d": -0.6},
                                                    "textemb": {"a": 0.1, "b": 0.9, "c": 0.8, "d": 0.2}})  # fmt: skip
    assert selection.ranking("logme") == ["a", "c", "d", "b"]  # ties broken by name
    assert selection.ranking("textemb") == ["b", "c", "d", "a"]
    # mean ranks: a 1.5, b 1.5, c 1, d 2
    assert selection.ranking("combined") == ["c", "a", "b", "d"]
    gains = {"a": 2.0, "b": -1.0, "c": 5.0, "d": 0.0}
    assert regret(selection.ranking("logme"), gains, 1) == 3.0  # picks a (2.0), best is c (5.0)
    assert regret(selection.ranking("logme"), gains, 3) == 0.0
    assert regret(selection.ranking("textemb"), gains, 1) == 6.0
    result = compare(selection.to_dict(), gains)
    assert result["logme"]["rho"] == pytest.approx(0.6325, abs=1e-4)  # ranks (4, 1, 2.5, 2.5) vs (3, 1, 4, 2)
    assert result["combined"]["regret@1"] == 0.0 and result["combined"]["top"] == ["c", "a", "b"]
    with pytest.raises(ValueError, match="at least 2"):
        compare(selection.to_dict(), {"a": 1.0})


@pytest.fixture(scope="module")
def intermediates(tmp_path_factory, nli_files):
    """Two tiny intermediate adapters (MNLI on 96 and on 24 pairs) in one store."""
    root = tmp_path_factory.mktemp("selection")
    for name, n in (("big", 96), ("small", 24)):
        data = {"data_files": nli_files["mnli"], "languages": ["en"], "max_train_examples": n}
        config = run_config(root, task="mnli", save_as=name, data=data)
        run(RunConfig.from_dict(config))
    return root


def test_select_scores_every_candidate_with_each_estimator_deterministically(intermediates, nli_files, tmp_path):
    pairs = tmp_path / "pairs"
    for lang in ("de", "fr"):
        rows = zip(nli_examples(lang, 12, 5), nli_examples("en", 12, 5), strict=True)
        write_jsonl(pairs / f"{lang}.jsonl", [{"source": a["premise"], "target": b["premise"]} for a, b in rows])
    tasks = BUILTIN.declare({"pairs": {"family": "aligned_pairs", "languages": ["de", "fr", "yo"],
                                       "data": {"validation": str(pairs / "{lang}.jsonl")}}}, "test")  # fmt: skip
    data = DataConfig(data_files=nli_files["xnli"])
    args = {"store": str(intermediates / "store"), "data": data, "tasks": tasks, "max_examples": 60}
    first = select("xnli", ["big", "small"], parallel="pairs", **args)
    assert set(first.scores) == {"logme", "textemb", "alignment"}
    assert all(set(s) == {"big", "small"} for s in first.scores.values())
    assert all(np.isfinite(v) and -1.0 <= v <= 1.0 for v in first.scores["textemb"].values())
    assert all(0.0 <= v <= 100.0 for v in first.scores["alignment"].values())
    # alignment per language: the target languages (xnli: de, fr, zh, ...) the pairs have (not yo)
    assert first.details["alignment_languages"] == ["de", "fr"]
    assert set(first.per_language["alignment"]["big"]) == {"de", "fr"}
    assert first.details["target_examples"] == 60 and set(first.seconds) == {"logme", "textemb", "alignment"}
    again = select("xnli", ["big", "small"], parallel="pairs", **args)
    assert again.scores == first.scores and again.ranking("combined") == first.ranking("combined")
    saved = json.loads(json.dumps(first.to_dict()))
    assert saved["rankings"]["logme"] == first.ranking("logme")


@pytest.mark.parametrize("family_task", ["panx", "xcopa", "squad"])
def test_token_choice_and_span_targets_get_their_features(intermediates, family_task, panx_files, tmp_path):
    """Tagging: a row per labelled token; multiple choice: a row per (context, choice), labelled
    right or wrong; QA: a row per token of the windows, labelled start / end / neither."""
    from adapterxl.fixtures import write_choice_fixture, write_qa_fixture

    files = {
        "panx": lambda: panx_files,
        "xcopa": lambda: write_choice_fixture(tmp_path / "copa", "copa", ("en",), train=24, dev=10),
        "squad": lambda: write_qa_fixture(tmp_path / "squad", ("en",), train=24, dev=8),
    }[family_task]()
    if family_task == "squad":
        files = {"train": files["train"].replace("{lang}", "en"), "validation": files["train"].replace("{lang}", "en")}
    data = DataConfig(data_files=files)
    result = select(family_task, ["big"], store=str(intermediates / "store"), data=data, max_examples=20)
    assert np.isfinite(result.scores["logme"]["big"])
    rows = result.details["logme_rows"]
    assert rows == 20 * 2 if family_task == "xcopa" else rows > 20 * 5  # COPA: 2 choices; tokens otherwise


def test_bad_inputs_are_named_before_any_feature_is_computed(intermediates, nli_files, tmp_path):
    store = str(intermediates / "store")
    make_entry(intermediates / "store", "bert-one", "tiny-bert")
    with pytest.raises(ConfigError, match="different backbones"):
        select("xnli", ["big", "bert-one"], store=store, data=DataConfig(data_files=nli_files["xnli"]))
    with pytest.raises(ConfigError, match="at least one candidate"):
        select("xnli", [], store=store)
    with pytest.raises(ConfigError, match="twice"):
        select("xnli", ["big", "big"], store=store)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    files = {**nli_files["xnli"], "train": str(empty)}
    with pytest.raises(DataError, match="empty.jsonl is empty: the train split of task 'xnli'"):
        select("xnli", ["big"], store=store, data=DataConfig(data_files=files))
    with pytest.raises(ConfigError, match="is a retrieval task"):
        select("tatoeba", ["big"], store=store)


def test_the_report_puts_the_estimates_next_to_the_measured_gains(tmp_path):
    """Three intermediates measured as stacked targets (gains 6, 2, -1 zero-shot points) and
    estimates that rank them b > a > c (LogME) and a > b > c (TextEmb): the report's rho, regret@1."""
    from adapterxl.report import build_report

    jobs = tmp_path / "results" / "jobs"
    jobs.mkdir(parents=True)

    def record(job, kind, labels, metrics, **extra):
        labels = {"model": "m", "target": "xnli", "seed": 1, "size": None, "baseline": False, **labels}
        return {"job": job, "kind": kind, "labels": labels, "spec": {"task": "xnli"}, "seconds": 100.0,
                "metrics": {lang: {"accuracy": v} for lang, v in metrics.items()}, **extra}  # fmt: skip

    records = [record("base", "target", {"mode": "adapter", "intermediate": None, "baseline": True},
                      {"en": 80, "de": 60, "sw": 40})]  # fmt: skip
    for name, gain in (("a", 6), ("b", 2), ("c", -1)):
        records.append(record(f"i-{name}", "intermediate", {"mode": "adapter", "intermediate": name},
                              {"en": 70}, store_entry=f"/somewhere/store/entry-{name}"))  # fmt: skip
        records.append(record(f"s-{name}", "target", {"mode": "stack", "intermediate": name},
                              {"en": 80, "de": 60 + gain, "sw": 40 + gain}))  # fmt: skip
    for r in records:
        (jobs / f"{r['job']}.json").write_text(json.dumps(r))
    estimates = Selection("xnli", ["entry-a", "entry-b", "entry-c"],
                          {"logme": {"entry-a": -0.6, "entry-b": -0.5, "entry-c": -0.9},
                           "textemb": {"entry-a": 0.9, "entry-b": 0.8, "entry-c": 0.1}}, seconds={"logme": 35.0,
                          "textemb": 7.0})  # fmt: skip
    (tmp_path / "results" / "selection").mkdir()
    (tmp_path / "results" / "selection" / "xnli.json").write_text(json.dumps(estimates.to_dict()))
    out = build_report(tmp_path / "results", plots=False)
    text = out["report"].read_text()
    assert "## Picking the intermediate without training" in text and "### xnli (3 candidates)" in text
    rows = {r["estimator"]: r for r in csv_rows(out["report"].parent / "selection.csv")}
    assert float(rows["logme"]["rho"]) == pytest.approx(0.5) and float(rows["logme"]["regret_at_1"]) == 4.0
    assert float(rows["textemb"]["rho"]) == pytest.approx(1.0) and float(rows["textemb"]["regret_at_1"]) == 0.0
    # the grid's jobs took 7 x 100 s: LogME's 35 s is 5% of it
    assert float(rows["logme"]["share_of_grid"]) == pytest.approx(35 / 700)
    assert "| a | +6.0 | -0.600 | 0.900 |" in text


def csv_rows(path):
    import csv

    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_select_command_prints_each_ranking_and_saves_the_estimates(intermediates, nli_files, tmp_path):
    from click.testing import CliRunner

    from adapterxl.cli import main

    out = tmp_path / "sel" / "xnli.json"
    files = [f"--data={split}={path}" for split, path in nli_files["xnli"].items()]
    args = ["select", "--target", "xnli", "--candidates", "big,small", "--store", str(intermediates / "store"),
            "--max-examples", "40", "--output", str(out), *files]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "logme (" in result.output and "textemb (" in result.output and "combined (mean rank):" in result.output
    saved = json.loads(out.read_text())
    assert saved["rankings"]["combined"][0] in {"big", "small"} and saved["details"]["target_examples"] == 40
    bad = CliRunner().invoke(main, ["select", "--target", "xnli", "--candidates", "big,nope", "--store",
                                    str(intermediates / "store")])  # fmt: skip
    assert bad.exit_code == 2 and "nope" in bad.output and "Traceback" not in bad.output
