# ruff: noqa: E501  (regexes of whole console lines)
"""The console (levels, lines, library noise kept off the screen), Trainer options with loggers that
see the dev score, and model cards whose usage snippet runs as written."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.cli import main
from adapterxl.errors import ConfigError


def _train_args(tmp_path, nli_files, *extra: str) -> list[str]:
    return ["train", "--task", "mnli", "--model", "tiny-xlmr", "--store", str(tmp_path / "st"), "--save-as", "c",
            "--output-dir", str(tmp_path / "run"), "--languages", "en",
            "--set", f"data.data_files.train={nli_files['mnli']['train']}",
            "--set", f"data.data_files.validation={nli_files['mnli']['validation']}",
            "--set", "training.epochs=2", "--set", "training.logging_steps=5", "--set", "training.batch_size=16", *extra]  # fmt: skip


def test_the_normal_console_shows_a_header_step_and_dev_lines_and_no_library_noise(tmp_path, nli_files):
    result = CliRunner().invoke(main, _train_args(tmp_path, nli_files))
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"^\[1/1\] c: mnli - adapter - tiny-xlmr$", out, re.M)
    steps = re.findall(
        r"^  step (\d+)/26 · epoch [\d.]+ · loss [\d.]+ · grad norm [\d.]+ · learning rate [\d.e-]+$", out, re.M
    )
    assert [int(s) for s in steps] == [5, 10, 15, 20, 25]  # one rounded line per logging step
    assert (
        len(re.findall(r"^  dev accuracy [\d.]+ at step \d+ \(best [\d.]+ at step \d+\)$", out, re.M)) == 2
    )  # per epoch
    for noise in ("Generating train split", "Tokenizing", "'train_runtime'", "{'loss'"):
        assert noise not in out
    assert (tmp_path / "run" / "log.txt").is_file()  # library warnings go here


def test_quiet_shows_no_bars_or_step_lines(tmp_path, nli_files):
    result = CliRunner().invoke(main, ["--quiet", *_train_args(tmp_path, nli_files)])
    assert result.exit_code == 0, result.output
    assert (
        "step 5/26" not in result.output and "dev accuracy" not in result.output and "training c" not in result.output
    )
    assert "[1/1] c: mnli" in result.output and "Saved:" in result.output  # header and result stay


def _events(folder: Path) -> dict[str, list[float]]:
    """Scalars of the TensorBoard event files under ``folder`` (TFRecord framing, Event protos)."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[float]] = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(value.simple_value)
    return scalars


def test_a_tensorboard_run_writes_the_dev_metric_through_the_trainer(tmp_path, nli_files):
    config = RunConfig.from_dict(
        run_config(
            tmp_path,
            task="mnli",
            data={"data_files": nli_files["mnli"], "languages": ["en"]},
            training={"epochs": 2, "batch_size": 16, "logging_steps": 5, "report_to": ["tensorboard"]},
        )  # fmt: skip
    )
    result = run(config)
    scalars = _events(config.run_dir / "logs" / "train")
    dev = [h["dev_accuracy"] for h in result.manifest.dev["history"] if "dev_accuracy" in h]
    assert scalars["train/dev_accuracy"] == pytest.approx(dev)  # every dev evaluation, as the run selected on
    assert len(scalars["train/loss"]) == 5


def test_bf16_trains_on_a_cpu_when_asked(tmp_path, nli_files):
    """``training.bf16: true`` on a machine without a GPU: bf16 autocast on the CPU (transformers
    alone refuses it there), and the run learns like the float32 one."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this checks the CPU path")
    import os

    from adapterxl import evaluate_setup
    from adapterxl.config import DataConfig

    before = os.environ.get("ACCELERATE_MIXED_PRECISION")
    results = {}
    for bf16 in (True, False):  # bf16 first: the float32 run after it in this process must not inherit it
        config = RunConfig.from_dict(
            run_config(
                tmp_path / str(bf16),
                task="mnli",
                save_as=f"bf16-{bf16}",
                data={"data_files": nli_files["mnli"], "languages": ["en"], "max_train_examples": 64},
                training={"epochs": 2, "batch_size": 16, "bf16": bf16},
            )  # fmt: skip
        )
        result = run(config)
        results[bf16] = result.metrics["en"]["accuracy"]
        again = evaluate_setup("mnli", adapter=f"bf16-{bf16}", store=config.store,
                               data=DataConfig(data_files=nli_files["mnli"], languages=["en"]))  # fmt: skip
        assert again["metrics"] == result.metrics  # the run evaluates as a reload from the store does
        # transformers writes the run's precision into os.environ, where the next run (and every process
        # this one starts, Ray workers too) would read it: each run leaves it as it found it
        assert os.environ.get("ACCELERATE_MIXED_PRECISION") == before
    assert abs(results[True] - results[False]) <= 10, results


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"optim": "adamw_torchh"}, "did you mean 'adamw_torch'"),
        ({"report_to": ["tensorbord"]}, "did you mean 'tensorboard'"),
        ({"fp16": True, "bf16": True}, "choose one"),
        ({"dataloader_num_workers": -1}, "0 or more"),
    ],
)
def test_trainer_options_are_checked(tmp_path, nli_files, training, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(run_config(tmp_path, task="mnli", training=training))


def test_the_model_cards_usage_snippet_runs_as_written(tmp_path, nli_files):
    config = RunConfig.from_dict(
        run_config(
            tmp_path,
            task="mnli",
            save_as="card",
            data={"data_files": nli_files["mnli"], "languages": ["en"]},
            training={"epochs": 1, "batch_size": 16},
        )  # fmt: skip
    )
    result = run(config)
    card = (Path(result.store_entry) / "README.md").read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", card, re.S)
    assert str(Path(result.store_entry)) in snippet and "set_active=True" in snippet
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102  (the card's own code, exactly as a reader would paste it)
    model = namespace["model"]
    assert str(model.active_adapters) == "Stack[card]" and model.active_head == "card"
    assert "datasets:" not in card.split("---")[1]  # trained on local files: no Hub dataset claimed
    assert "local files" in card
