"""Experiment grids: expansion, plan, a full run, a real process kill and resume, failure isolation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adapterxl.errors import ConfigError, DataError
from adapterxl.grid import load_grid, parse_grid, plan, plan_summary, run_grid
from adapterxl.report import build_report

FAST = {"epochs": 1, "batch_size": 16, "learning_rate": 2e-3, "logging_steps": 1000}


def grid_doc(tmp_path, nli_files, panx_files, **extra) -> dict:
    """2 intermediates x 2 targets x 2 seeds (mode stack), plus the adapter baselines."""
    return {
        "grid": "g",
        "results_dir": str(tmp_path / "results"),
        "defaults": {
            "model": "tiny-xlmr",
            "store": str(tmp_path / "store"),
            "data": {"max_seq_length": 48, "max_eval_examples": 24},
            "training": FAST,
        },
        "intermediates": {
            "mnli": {"task": "mnli", "data": {"data_files": nli_files["mnli"], "max_train_examples": 96}},
            "mnli-small": {"task": "mnli", "data": {"data_files": nli_files["mnli"], "max_train_examples": 48}},
        },
        "targets": {
            "xnli": {"task": "xnli", "data": {"data_files": nli_files["xnli"], "languages": ["en", "de", "fr"]}},
            "panx": {"task": "panx", "data": {"data_files": panx_files, "languages": ["en", "de", "fr"]}},
        },
        "modes": ["stack"],
        "seeds": [1, 2],
        **extra,
    }


def write_grid(tmp_path, doc) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_expansion_counts_ids_and_dependencies(tmp_path, nli_files, panx_files):
    grid = parse_grid(grid_doc(tmp_path, nli_files, panx_files, modes=["stack", "full"], intermediate_sizes=[24, None]))
    kinds = [j.kind for j in grid.jobs]
    # intermediates: 2 variants x 2 sizes x (adapter, full); targets: 2 x 2 seeds x (2 baselines + 2 modes x 2 x 2)
    assert kinds.count("intermediate") == 8 and kinds.count("target") == 2 * 2 * (2 + 2 * 2 * 2)
    by_id = {j.id: j for j in grid.jobs}
    stack = by_id["tiny-xlmr--xnli--stack--on-mnli--n24--s2"]
    assert stack.needs == ["tiny-xlmr--mnli--n24--adapter"]
    assert stack.config.intermediate == [by_id["tiny-xlmr--mnli--n24--adapter"].config.name]
    assert by_id["tiny-xlmr--mnli--n24--adapter"].config.data.max_train_examples == 24
    full = by_id["tiny-xlmr--panx--full--on-mnli-small--s1"]
    assert full.config.mode == "full" and full.config.model.endswith("runs/tiny-xlmr--mnli-small--full/model")
    assert {j.labels["mode"] for j in grid.jobs if j.labels.get("baseline")} == {"adapter", "full"}
    fuse = parse_grid(grid_doc(tmp_path, nli_files, panx_files, modes=["fuse"]))
    fused = [j for j in fuse.jobs if j.labels["mode"] == "fuse"]
    assert len(fused) == 4 and all(len(j.needs) == 2 for j in fused)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modes": ["stak"]}, "did you mean 'stack'"),
        ({"seeds": [1, 1]}, "distinct integers"),
        ({"intermediate_sizes": [0]}, "positive integers"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"targets": {"xnli": {"task": "xnli", "seed": 3}}}, "the grid decides"),
        ({"targets": {"xnli": {"task": "xnli", "trainng": {}}}}, "unknown key 'trainng'"),
        ({"retrieval": ["tatoeba", "wikipedia"]}, "is not a retrieval task: use one of"),
        ({"throughput": {"adapter": -1}}, "tokens per second"),
        ({"throughput": {"adapters": 1000}}, "tokens per second"),
    ],
)
def test_bad_grids_are_errors_before_anything_runs(tmp_path, nli_files, panx_files, change, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid({**grid_doc(tmp_path, nli_files, panx_files), **change})
    assert not (tmp_path / "results").exists()


def test_plan_counts_jobs_and_tokens(tmp_path, nli_files, panx_files):
    from adapterxl.modeling import load_backbone

    doc = grid_doc(tmp_path, nli_files, panx_files, throughput={"adapter": 1000, "full": 500})
    grid = parse_grid({**doc, "baselines": ["adapter", "full"]})
    rows = plan(grid)
    assert len(rows) == 2 + 2 * 2 * 4 and all(r["status"] == "pending" for r in rows)
    # Hand count: the first 96 MNLI training pairs, tokenized with truncation at 48 tokens, one epoch.
    _, tokenizer = load_backbone("tiny-xlmr")
    rows_ = [json.loads(line) for line in Path(nli_files["mnli"]["train"]).read_text().splitlines()][:96]
    expected = sum(
        len(tokenizer(r["premise"], r["hypothesis"], truncation=True, max_length=48)["input_ids"]) for r in rows_
    )
    row = next(r for r in rows if r["id"] == "tiny-xlmr--mnli--adapter")
    assert row["train_tokens"] == expected
    # Adapter training runs 4N FLOPs per token and evaluation 2N: evaluation at twice the rate.
    assert row["estimate_seconds"] == pytest.approx(expected / 1000 + row["eval_tokens"] / 2000)
    assert row["throughput_source"] == "configured"
    full = next(r for r in rows if r["kind"] == "target" and r["mode"] == "full")
    assert full["throughput_source"] == "configured"
    assert full["estimate_seconds"] == pytest.approx(full["train_tokens"] / 500 + full["eval_tokens"] / 1500)
    # A measured evaluation throughput replaces the FLOP ratio.
    grid = parse_grid(grid_doc(tmp_path, nli_files, panx_files, throughput={"adapter": 1000, "evaluation": 4000}))
    rows = plan(grid)
    row = next(r for r in rows if r["id"] == "tiny-xlmr--mnli--adapter")
    assert row["estimate_seconds"] == pytest.approx(expected / 1000 + row["eval_tokens"] / 4000)
    # On N GPUs: the longest intermediate and its longest target bound it; on one, the sum.
    serial = plan_summary(rows, gpus=1)
    assert serial["parallel"]["seconds"] == pytest.approx(serial["todo_estimate_seconds"])
    wide = plan_summary(rows, gpus=len(rows))["parallel"]
    by_id = {r["id"]: r["estimate_seconds"] for r in rows}
    chain = max(by_id[r["id"]] + sum(by_id[n] for n in r["needs"]) for r in rows)
    assert wide["seconds"] == pytest.approx(chain) == pytest.approx(wide["critical_path"])
    assert plan_summary(rows)["parallel"] is None  # asked for no GPUs


def _events(results: Path) -> list[dict]:
    return [json.loads(line) for line in (results / "events.jsonl").read_text().splitlines()]


def _metrics(results: Path) -> dict:
    return {p.name: json.loads(p.read_text())["metrics"] for p in sorted((results / "jobs").glob("*.json"))}


def test_grid_runs_to_the_end_and_a_killed_grid_resumes_without_redoing_work(tmp_path, nli_files, panx_files):
    (tmp_path / "a").mkdir()
    grid = load_grid(write_grid(tmp_path / "a", grid_doc(tmp_path / "a", nli_files, panx_files)))
    counts = run_grid(grid, progress=False)
    assert counts == {"done": 14, "failed": 0, "blocked": 0, "skipped": 0}
    whole = _metrics(grid.results_dir)
    assert len(whole) == 14 and all(set(m) == {"en", "de", "fr"} for k, m in whole.items() if "--mnli" not in k[9:])
    assert run_grid(grid, progress=False)["done"] == 14  # a finished grid: nothing runs again
    starts = [e for e in _events(grid.results_dir) if e["event"] == "start"]
    assert len(starts) == 14 and {(e["pid"], e["host"]) for e in starts} == {(os.getpid(), socket.gethostname())}

    # The same grid in another folder, in a real process, killed (SIGKILL) after some jobs finished.
    (tmp_path / "b").mkdir()
    path = write_grid(tmp_path / "b", grid_doc(tmp_path / "b", nli_files, panx_files))
    results = tmp_path / "b" / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapterxl.cli", "run", str(path)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list((results / "jobs").glob("*.json"))) < 5:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = {p.stem for p in (results / "jobs").glob("*.json")}
    assert 5 <= len(finished_before) < 14
    resumed = run_grid(load_grid(path), progress=False)
    assert resumed["done"] == 14 and resumed["failed"] == 0
    starts = [e["job"] for e in _events(results) if e["event"] == "start"]
    assert all(starts.count(job) == 1 for job in finished_before)  # no finished job trained twice
    assert len(starts) - len(set(starts)) <= 1  # at most the job the kill interrupted started again
    assert _metrics(results) == whole  # identical final results


def test_a_bad_data_file_is_refused_before_any_job_runs(tmp_path, nli_files, panx_files):
    doc = grid_doc(tmp_path, nli_files, panx_files, seeds=[1])
    broken = tmp_path / "missing-{lang}.jsonl"
    doc["intermediates"]["mnli-small"]["data"]["data_files"] = {**nli_files["mnli"], "train": str(broken)}
    grid = load_grid(write_grid(tmp_path, doc))
    with pytest.raises(DataError, match="missing-en.jsonl"):
        run_grid(grid, progress=False, echo=lambda *_: None)
    assert not list((grid.results_dir / "jobs").glob("*.json"))  # nothing trained, nothing recorded


def test_a_failing_run_is_isolated_and_retried(tmp_path, nli_files, panx_files, monkeypatch):
    import adapterxl.executors as executors

    doc = grid_doc(tmp_path, nli_files, panx_files, seeds=[1])
    doc["targets"].pop("panx")
    grid = load_grid(write_grid(tmp_path, doc))
    execute = executors.execute

    def flaky(job):  # a failure checks cannot foresee (out of memory, a lost disk, a bug)
        if job.id == "tiny-xlmr--mnli-small--adapter":
            raise RuntimeError("CUDA out of memory (simulated)")
        return execute(job)

    monkeypatch.setattr(executors, "execute", flaky)
    counts = run_grid(grid, progress=False, echo=lambda *_: None)
    assert counts == {"done": 3, "failed": 1, "blocked": 1, "skipped": 0}
    error = json.loads((grid.results_dir / "jobs" / "tiny-xlmr--mnli-small--adapter.error.json").read_text())
    assert "out of memory" in error["error"] and "Traceback" in error["traceback"]
    # Without --retry-failed the failure stays recorded; with it (the cause gone) it runs, then its target.
    assert run_grid(grid, progress=False, echo=lambda *_: None)["failed"] == 1
    monkeypatch.setattr(executors, "execute", execute)
    counts = run_grid(grid, retry_failed=True, progress=False, echo=lambda *_: None)
    assert counts == {"done": 5, "failed": 0, "blocked": 0, "skipped": 0}
    assert not (grid.results_dir / "jobs" / "tiny-xlmr--mnli-small--adapter.error.json").exists()


def test_shipped_grids_expand_to_the_expected_jobs():
    root = Path(__file__).parent.parent / "configs" / "grids"
    counts = {}
    for path in sorted(root.glob("*.yaml")):
        grid = load_grid(path)
        counts[path.stem] = [sum(j.kind == k for j in grid.jobs) for k in ("intermediate", "target", "retrieval")]
    # paper: 9 intermediates; 7 targets x (baselines + 9); BUCC and Tatoeba off each intermediate and the backbone.
    assert counts["paper-full"] == [9, 7 * (1 + 9), 2 * 10]
    assert counts["paper-adapters"] == [9, 7 * (2 + 9), 2 * 10]
    assert counts["paper-fusion"] == [9, 7 * 3 * (1 + 1), 0]
    assert counts["scaling"] == [2 * 5, 3 * 3 * (1 + 2 * 5), 0]
    assert counts["backbones"] == [3 * 3, 3 * 4 * 3 * (1 + 3), 3 * 4]
    assert counts["data-languages"] == [3, 3 * 3 * (1 + 3), 0]
    assert counts["flores"] == [4, 0, 5]
    assert counts["quickstart"] == [4, 12, 0]
    full = load_grid(root / "paper-adapters.yaml").job("xlm-roberta-large--xnli--full--s1").config
    assert full.training.learning_rate == 1e-5 and full.mode == "full"  # per_mode


def test_full_mode_continues_from_the_intermediate_weights_and_retrieval_runs_off_them(tmp_path, nli_files):
    from adapterxl.fixtures import nli_examples, write_jsonl

    tatoeba = tmp_path / "tatoeba"
    for lang in ("de", "fr"):
        pairs = zip(nli_examples(lang, 12, 5), nli_examples("en", 12, 5), strict=True)
        write_jsonl(
            tatoeba / f"{lang}.jsonl",
            [
                {
                    "source_sentence": a["premise"],
                    "target_sentence": b["premise"],
                    "source_lang": lang,
                    "target_lang": "eng",
                }
                for a, b in pairs
            ],
        )
    doc = grid_doc(tmp_path, nli_files, {}, seeds=[1], modes=["full"])
    doc["intermediates"].pop("mnli-small")
    doc["targets"].pop("panx")
    doc["retrieval"] = {
        "tatoeba": {"data": {"data_files": {"validation": str(tatoeba / "{lang}.jsonl")}, "languages": ["de", "fr"]}}
    }
    grid = load_grid(write_grid(tmp_path, doc))
    assert [j.id for j in grid.jobs] == [
        "tiny-xlmr--mnli--full",
        "tiny-xlmr--xnli--full--s1",
        "tiny-xlmr--xnli--full--on-mnli--s1",
        "tiny-xlmr--tatoeba--none--base",
        "tiny-xlmr--tatoeba--mnli--full",
    ]
    assert run_grid(grid, progress=False) == {"done": 5, "failed": 0, "blocked": 0, "skipped": 0}
    results = grid.results()
    inter_model = results["tiny-xlmr--mnli--full"]["model_dir"]
    target = grid.job("tiny-xlmr--xnli--full--on-mnli--s1")
    assert target.config.model == inter_model  # the target run started from the intermediate's saved weights
    manifest = json.loads((Path(results[target.id]["run_dir"]) / "manifest.json").read_text())
    assert manifest["base_model"] == inter_model
    base, tuned = results["tiny-xlmr--tatoeba--none--base"], results["tiny-xlmr--tatoeba--mnli--full"]
    assert set(base["metrics"]) == set(tuned["metrics"]) == {"de", "fr"}
    assert base["metrics"] != tuned["metrics"]  # different encoders, different retrieval
    report = build_report(grid.results_dir, plots=False)
    (row,) = [r for r in report["retrieval"] if r["setup"] == "full on mnli"]
    assert row["delta"] == pytest.approx(tuned["summary"]["avg"] - base["summary"]["avg"])


def test_a_declared_retrieval_task_runs_in_a_grid_and_its_declaration_defines_the_job(tmp_path):
    from adapterxl.fixtures import nli_examples, write_jsonl

    pairs = tmp_path / "pairs"
    for lang in ("de", "fr"):
        rows = zip(nli_examples(lang, 12, 5), nli_examples("en", 12, 5), strict=True)
        write_jsonl(pairs / f"{lang}.jsonl", [{"source": a["premise"], "target": b["premise"]} for a, b in rows])
    declaration = {
        "family": "aligned_pairs",
        "languages": ["de", "fr"],
        "data": {"validation": str(pairs / "{lang}.jsonl")},
    }
    doc = {
        "grid": "pairs",
        "results_dir": str(tmp_path / "results"),
        "tasks": {"my_pairs": declaration},
        "defaults": {"model": "tiny-xlmr", "store": str(tmp_path / "store")},
        "retrieval": ["my_pairs"],
    }
    grid = load_grid(write_grid(tmp_path, doc))
    (job,) = grid.jobs
    assert job.id == "tiny-xlmr--my_pairs--none--base"
    assert job.describe()["task_declarations"] == {"my_pairs": declaration}
    assert run_grid(grid, progress=False) == {"done": 1, "failed": 0, "blocked": 0, "skipped": 0}
    assert set(grid.results()[job.id]["metrics"]) == {"de", "fr"}
    # The declaration defines the job: changed, the finished job is stale (not silently reused).
    doc["tasks"]["my_pairs"] = {**declaration, "languages": ["de"]}
    assert job.id in load_grid(write_grid(tmp_path, doc)).stale()


def test_planning_offline_falls_back_on_the_table_of_dataset_sizes(tmp_path, monkeypatch):
    from adapterxl.cost import TOKENS
    from adapterxl.grid import plan

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    grid = load_grid(Path(__file__).parent.parent / "configs" / "grids" / "paper-adapters.yaml", tmp_path / "res")
    rows = {r["id"]: r for r in plan(grid)}
    mnli = rows["xlm-roberta-large--mnli--adapter"]
    assert mnli["tokens_source"] == "estimate"
    n_train, per_train, _, _ = TOKENS["mnli"]
    assert mnli["train_tokens"] == int(n_train * per_train * grid.job(mnli["id"]).config.training.epochs)
    assert all(r.get("tokens_source") == "estimate" for r in rows.values() if r["kind"] != "retrieval")


def test_a_data_file_changed_in_place_makes_its_finished_jobs_stale(tmp_path, nli_files):
    import shutil

    data = tmp_path / "mine"
    shutil.copytree(Path(nli_files["mnli"]["train"]).parent, data)
    files = {"train": str(data / "train.jsonl"), "validation": str(data / "validation.jsonl")}
    doc = grid_doc(tmp_path, nli_files, {}, seeds=[1])
    doc["intermediates"] = {"mnli": {"task": "mnli", "data": {"data_files": files, "max_train_examples": 48}}}
    doc["targets"] = {"xnli": GRID_XNLI(nli_files)}
    grid = load_grid(write_grid(tmp_path, doc))
    assert run_grid(grid, progress=False, echo=lambda *_: None)["done"] == 3
    assert grid.stale() == {}
    with (data / "train.jsonl").open("a", encoding="utf-8") as f:  # edited in place, same name
        f.write('{"premise": "new", "hypothesis": "row", "label": 0}\n')
    stale = load_grid(write_grid(tmp_path, doc)).stale()
    assert list(stale) == ["tiny-xlmr--mnli--adapter"]
    assert stale["tiny-xlmr--mnli--adapter"] == [f"data_fingerprints.{data / 'train.jsonl'}"]
    with pytest.raises(ConfigError, match="were run with other settings"):
        run_grid(load_grid(write_grid(tmp_path, doc)), progress=False, echo=lambda *_: None)


def GRID_XNLI(nli_files):
    return {"task": "xnli", "data": {"data_files": nli_files["xnli"], "languages": ["en", "de"]}}


def test_a_damaged_job_record_is_set_aside_and_its_job_runs_again(tmp_path, nli_files):
    doc = grid_doc(tmp_path, nli_files, {}, seeds=[1])
    doc["intermediates"].pop("mnli-small")
    doc["targets"] = {"xnli": GRID_XNLI(nli_files)}
    grid = load_grid(write_grid(tmp_path, doc))
    assert run_grid(grid, progress=False, echo=lambda *_: None)["done"] == 3
    record = grid.result_path(grid.job("tiny-xlmr--mnli--adapter"))
    record.write_text(record.read_text()[:40])  # cut short (a full disk)
    (record.parent / "x.json.tmp").write_text("{")  # what an interrupted write leaves
    said = []
    counts = run_grid(grid, progress=False, echo=said.append)
    assert any("tiny-xlmr--mnli--adapter.json was damaged" in s for s in said)
    assert counts["done"] == 3 and json.loads(record.read_text())["metrics"]
    assert (record.parent / "tiny-xlmr--mnli--adapter.json.damaged").is_file()
    assert not list(record.parent.glob("*.tmp"))


def test_plan_measure_probes_each_job_kind_and_counts_dev_evaluations_and_overhead(tmp_path, nli_files):
    from adapterxl.grid import plan, plan_summary, probe

    doc = grid_doc(tmp_path, nli_files, {}, seeds=[1], modes=["stack", "full"], baselines=["adapter", "full"])
    doc["intermediates"].pop("mnli-small")
    doc["targets"] = {"xnli": GRID_XNLI(nli_files)}
    grid = load_grid(write_grid(tmp_path, doc))
    probed = probe(grid, steps=4, echo=lambda *_: None)
    assert set(probed) == {"tiny-xlmr/adapter", "tiny-xlmr/full"}
    assert all(
        p["overhead"] > 0 and p["train"] > 0 and p["evaluation"] > 0 and p["steps"] == 4 for p in probed.values()
    )
    assert (grid.results_dir / "plan-probe.json").is_file()
    rows = plan(grid)
    assert {r["throughput_source"] for r in rows if r["kind"] != "retrieval"} == {"probed"}
    row = next(r for r in rows if r["id"] == "tiny-xlmr--mnli--adapter")
    counted = json.loads((grid.results_dir / "plan-tokens.json").read_text())
    (tokens,) = [t for t in counted.values() if t["train"] == row["train_tokens"] / FAST["epochs"]] or [None]
    assert tokens is not None and row["eval_tokens"] == tokens["evaluation"] + tokens["dev"] * FAST["epochs"]
    probe_row = probed["tiny-xlmr/adapter"]
    expected = (
        probe_row["overhead"] + row["train_tokens"] / probe_row["train"] + row["eval_tokens"] / probe_row["evaluation"]
    )
    assert row["estimate_seconds"] == pytest.approx(expected)
    assert plan_summary(rows)["todo_estimate_seconds"] == pytest.approx(
        sum(r["estimate_seconds"] for r in rows if "estimate_seconds" in r)
    )
