"""The mini-study (configs/grids/study.yaml) on the real encoder: its data is all there and in the
Hub schemas, its grid expands to the five questions, and a one-seed slice of it runs end to end
(the grid's own tasks, data and settings) to a report whose transfer is far above chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from adapterxl.config import read_yaml
from adapterxl.grid import parse_grid, run_grid
from adapterxl.report import build_report

ROOT = Path(__file__).parent.parent
STUDY = ROOT / "configs" / "grids" / "study.yaml"
QUESTIONS = ["q1-transfer", "q1-modes", "q1-full", "q2-translated", "q3-mixed", "q4-size", "q5-distance"]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)  # the grid's paths are relative to the repository root


def test_the_study_grid_covers_the_five_questions_with_three_seeds(in_repo):
    grid = parse_grid(read_yaml(STUDY, "grid file"), str(STUDY))
    assert list(grid.questions) == QUESTIONS
    targets = [j for j in grid.jobs if j.kind == "target"]
    assert {j.labels["seed"] for j in targets} == {1, 2, 3}
    assert {j.labels["mode"] for j in targets} >= {"adapter", "stack", "fuse", "full"}
    # every question has jobs, and every task's data files exist
    for q in QUESTIONS:
        assert any(q in j.labels["questions"] for j in grid.jobs), q
    sizes = {j.labels["size"] for j in grid.jobs if "q4-size" in j.labels["questions"] and j.kind == "intermediate"}
    assert sizes == {90, 180, 360, None}
    for name in ("paraphrase", "ner", "topics", "parallel", "qa_mini", "copa_mini", "nli_mini", "nli_mini_translated"):
        for split in grid.registry[name].data_files.values():
            for lang, path in split.items() if isinstance(split, dict) else [(None, split)]:
                langs = grid.registry[name].languages if lang is None else [lang]
                for code in langs if "{lang}" in path else [None]:
                    assert Path(path.replace("{lang}", code or "")).is_file(), (name, path, code)


def test_the_study_data_is_parallel_balanced_and_in_its_schemas():
    data = ROOT / "examples" / "mini-study" / "data"
    langs = ["en", "de", "es", "ru", "zh", "hi", "sw", "tl"]
    para = {lang: jsonl(data / "paraphrase" / lang / "test.jsonl") for lang in langs}
    assert all([r["label"] for r in rows] == [r["label"] for r in para["en"]] for rows in para.values())
    assert len(jsonl(data / "paraphrase" / "en" / "train.jsonl")) >= 300
    for lang in langs:
        for row in jsonl(data / "ner" / lang / "test.jsonl"):
            assert len(row["tokens"]) == len(row["ner_tags"]) and set(row["ner_tags"]) <= {
                "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}  # fmt: skip
    for row in jsonl(data / "qa" / "train.jsonl"):
        start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
        assert row["context"][start : start + len(text)] == text
    english = jsonl(ROOT / "adapterxl" / "resources" / "quickstart" / "nli" / "train.jsonl")
    for lang in ("es", "sw"):
        translated = jsonl(data / "nli" / "translated" / lang / "train.jsonl")
        by_idx = {r["idx"]: r for r in english}  # the translations of the first 60 premises' 180 pairs
        assert len(translated) == 180 and all(by_idx[r["idx"]]["label"] == r["label"] for r in translated)
        assert len({by_idx[r["idx"]]["premise"] for r in translated}) == 60
        native = jsonl(data / "nli" / "native" / lang / "train.jsonl")
        assert len(native) == len(translated) and sorted(r["label"] for r in native) == [0] * 60 + [1] * 60 + [2] * 60
    parallel = {p.parent.name: jsonl(p) for p in (data / "parallel").glob("*/test.jsonl")}
    assert len(parallel) >= 9 and len({len(v) for v in parallel.values()}) == 1


@pytest.mark.real_encoder
def test_a_one_seed_slice_of_the_study_runs_to_a_report_above_chance(tmp_path, in_repo, e5_small):
    doc = read_yaml(STUDY, "grid file")
    doc["results_dir"] = str(tmp_path / "results")
    doc["defaults"]["store"] = str(tmp_path / "store")
    doc["seeds"] = [1]
    question = dict(doc["questions"]["q1-transfer"], intermediates=["copa"], targets=["topics"])
    doc["questions"] = {"q1-transfer": question}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    grid = parse_grid(doc)
    assert sorted(j.id.split("--", 1)[1] for j in grid.jobs) == [
        "copa--adapter", "parallel--copa--adapter", "parallel--none--base", "topics--adapter--s1",
        "topics--stack--on-copa--s1",
    ]  # fmt: skip
    counts = run_grid(grid, progress=False, echo=lambda *a: None)
    assert counts["done"] == 5 and counts["failed"] == 0
    out = build_report(tmp_path / "results", echo=lambda *a: None)
    text = out["report"].read_text(encoding="utf-8")
    assert text.count("## q1-transfer: Which intermediate task helps which target task") == 1
    for heading in ("### topics: per language", "### Retrieval: top-1 accuracy per language", "# All setups"):
        assert heading in text
    assert (tmp_path / "results" / "report" / "q1-transfer-heatmap-multilingual-e5-small.png").stat().st_size > 10_000
    rows = {r["setup"]: r for r in out["rows"]}
    assert set(rows) == {"baseline adapter", "stack on copa"}
    for row in rows.values():  # 4 topics: chance 25; zero-shot over 9 languages
        assert row["zero_shot"] > 60 and len(row["languages"]) == 10, row["languages"]
    retrieval = {r["setup"]: r for r in out["retrieval"]}
    assert retrieval["baseline base"]["all"] > 50  # 100 candidates: chance 1
    assert set(retrieval) == {"baseline base", "adapter on copa"}
    assert {"sw", "tl", "yo", "am"} <= set(retrieval["baseline base"]["languages"])
    assert retrieval["adapter on copa"]["delta"] == pytest.approx(
        retrieval["adapter on copa"]["all"] - retrieval["baseline base"]["all"]
    )
