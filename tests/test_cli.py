import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapterxl.cli import main


@pytest.fixture
def cli():
    return CliRunner()


def test_tasks_lists_the_registry(cli):
    result = cli.invoke(main, ["tasks"])
    assert result.exit_code == 0
    assert "xnli" in result.output and "pawsx" in result.output and "mnli" in result.output


def test_tasks_lists_tasks_declared_in_files(cli, tmp_path):
    from adapterxl.tasks import BUILTIN

    spec = {"family": "classification", "languages": ["en", "sw"], "data": {"train": "x/{lang}.jsonl"},
            "description": "news topics"}  # fmt: skip
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": {"headlines": spec}}), encoding="utf-8")
    result = cli.invoke(main, ["tasks", str(path)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("headlines"))
    assert line.split()[:5] == ["headlines", "target", "classification", "2", "lang"]
    assert line.endswith(f"news topics  [declared in {path}]")
    assert "headlines" not in BUILTIN  # listing a file's tasks declares nothing globally
    # The same name declared differently in another file (here: badly) is that file's own declaration.
    path.write_text(yaml.safe_dump({"tasks": {"headlines": {**spec, "family": "regression"}}}), encoding="utf-8")
    result = cli.invoke(main, ["tasks", str(path)])
    assert result.exit_code == 2 and "headlines: family:" in result.output and "Traceback" not in result.output


def test_bad_input_is_one_clean_error_line(cli, tmp_path):
    result = cli.invoke(main, ["train", "--task", "xnl", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "Error: command line: unknown task 'xnl' (did you mean 'xnli'?)" in result.output
    assert "Traceback" not in result.output
    result = cli.invoke(
        main, ["train", "--task", "xnli", "--mode", "stack", "--intermediate", "ghost", "--store", str(tmp_path)]
    )
    assert result.exit_code == 2 and "adapter 'ghost' is not in the store" in result.output
    result = cli.invoke(main, ["train"])
    assert result.exit_code == 2 and "give a CONFIG file or at least --task" in result.output


def test_train_from_yaml_then_evaluate_a_language_subset(cli, tmp_path, nli_files):
    config = {
        "defaults": {
            "model": "tiny-xlmr",
            "store": str(tmp_path / "store"),
            "seed": 1,
            "data": {"max_seq_length": 64},
            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 2e-3},
        },
        "runs": [
            {
                "task": "mnli",
                "save_as": "m",
                "output_dir": str(tmp_path / "runs/m"),
                "data": {"data_files": nli_files["mnli"]},
            },
            {
                "task": "xnli",
                "mode": "stack",
                "intermediate": ["m"],
                "save_as": "x",
                "output_dir": str(tmp_path / "runs/x"),
                "data": {"data_files": nli_files["xnli"], "languages": ["en", "de", "zh"]},
            },
        ],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli.invoke(main, ["train", str(path)])
    assert result.exit_code == 0, result.output
    assert "[1/2] m: mnli - adapter - tiny-xlmr" in result.output and "[2/2] x: xnli - stack on m" in result.output
    results = json.loads((tmp_path / "grid.results.json").read_text())
    assert [r["name"] for r in results["runs"]] == ["m", "x"]
    assert set(results["runs"][1]["metrics"]) == {"en", "de", "zh"}

    out = tmp_path / "eval.json"
    xnli_dev = nli_files["xnli"]["validation"]
    result = cli.invoke(
        main,
        [
            "evaluate",
            "--task",
            "xnli",
            "--adapter",
            "x",
            "--store",
            str(tmp_path / "store"),
            "--languages",
            "de,zh",
            "--data",
            f"validation={xnli_dev}",
            "--max-seq-length",
            "64",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads(out.read_text())
    assert evaluated["metrics"] == {k: results["runs"][1]["metrics"][k] for k in ("de", "zh")}

    result = cli.invoke(main, ["store", "list", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0 and "m -> x" in result.output


def test_quickstart_end_to_end(cli, tmp_path):
    out, store = tmp_path / "qs", tmp_path / "store"
    result = cli.invoke(main, ["quickstart", "--tiny", "--out", str(out), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "SMOKE RUN" in result.output and "numbers only show that the pipeline runs" in result.output
    table = result.output.split("Topic classification: accuracy on 64 test sentences per language")[1]
    assert "chance 25.0" in table.splitlines()[0] and "other languages are zero-shot" in table.splitlines()[1]
    header = table.splitlines()[2].split()
    assert header == ["setup", "en", "de", "es", "ru", "zh", "ar", "hi", "tr", "sw", "avg", "0-shot"]
    for label in ("stack: nli -> topics", "adapter: topics only", "full fine-tuning"):
        assert label in table
    retrieval = result.output.split("Sentence retrieval: top-1 accuracy")[1].splitlines()
    assert "chance 1.6" in retrieval[1]
    assert retrieval[2].split() == ["setup", "de", "es", "ru", "zh", "ar", "hi", "tr", "sw", "avg"]
    assert retrieval[4].startswith("plain encoder") and retrieval[5].startswith("nli adapter")
    assert (out / "quickstart.yaml").is_file()
    results = json.loads((out / "quickstart.results.json").read_text())
    assert [r["mode"] for r in results["runs"]] == ["adapter", "stack", "adapter", "full"]
    assert all(len(r["metrics"]) == 9 for r in results["runs"][1:])
    manifest = json.loads((Path(results["runs"][1]["run_dir"]) / "manifest.json").read_text())
    assert manifest["eval_split"] == "test" and manifest["data_sizes"]["train"] == 400
    retrieved = json.loads((out / "quickstart.retrieval.json").read_text())
    assert sorted(retrieved["plain encoder"]["metrics"]) == sorted(["de", "es", "ru", "zh", "ar", "hi", "tr", "sw"])
    entries = sorted(p.name for p in store.iterdir())
    assert entries == ["quickstart-nli", "quickstart-topics-adapter", "quickstart-topics-stack"]
