"""Multiple choice: Hub schemas to roles, choice checks, intermediate tasks and XCOPA."""

import pytest
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.config import DataConfig
from adapterxl.data import load_split
from adapterxl.errors import DataError
from adapterxl.fixtures import choice_examples, write_choice_fixture, write_jsonl
from adapterxl.tasks import get_task

SCHEMA = {"hellaswag": "hellaswag", "cosmosqa": "cosmosqa", "csqa": "csqa", "siqa": "siqa", "xcopa": "copa"}


def _load(tmp_path, task, rows, split="train", language="en"):
    path = write_jsonl(tmp_path / f"{task}.jsonl", rows)
    return load_split(get_task(task), split, language, DataConfig(data_files={split: str(path)}))


@pytest.mark.parametrize("task", ["hellaswag", "cosmosqa", "csqa", "siqa", "xcopa"])
def test_hub_schemas_become_context_choices_label(tmp_path, task):
    rows = choice_examples("en", 3, seed=5, schema=SCHEMA[task])
    ds = _load(tmp_path, task, rows)
    n = len(get_task(task).labels)
    assert all(len(c) == n for c in ds["choices"])
    context = {"hellaswag": "ctx", "cosmosqa": "context", "csqa": "question", "siqa": "context", "xcopa": "premise"}
    assert ds["context"] == [r[context[task]] for r in rows]
    answers = {
        "hellaswag": lambda r: int(r["label"]),
        "cosmosqa": lambda r: r["label"],
        "csqa": lambda r: "ABCDE".index(r["answerKey"]),
        "siqa": lambda r: int(r["label"]) - 1,
        "xcopa": lambda r: r["label"],
    }[task]
    assert ds["label"] == [answers(r) for r in rows]


def test_copa_questions_become_prompts(tmp_path):
    rows = choice_examples("en", 4, seed=5, schema="copa")
    ds = _load(tmp_path, "xcopa", rows, split="validation")
    expected = {"cause": "What was the cause?", "effect": "What happened as a result?"}
    assert ds["question"] == [expected[r["question"]] for r in rows]


def test_a_row_with_another_choice_count_is_an_error(tmp_path):
    rows = choice_examples("en", 2, seed=5, schema="hellaswag")
    rows[1]["endings"] = rows[1]["endings"][:3]
    with pytest.raises(DataError, match=r"hellaswag.jsonl, line 2: 3 choices, but task 'hellaswag' scores exactly 4"):
        _load(tmp_path, "hellaswag", rows)


@pytest.mark.parametrize("task", ["hellaswag", "cosmosqa", "csqa", "siqa"])
def test_intermediate_multiple_choice_tasks_train_an_adapter(tmp_path, task):
    files = write_choice_fixture(tmp_path / "data", SCHEMA[task], train=24, dev=12)
    result = run(RunConfig.from_dict(run_config(tmp_path, task=task, save_as=task, data={"data_files": files})))
    assert set(result.metrics) == {"en"} and 0 <= result.metrics["en"]["accuracy"] <= 100
    assert result.manifest.kind == "adapter"


def test_multiple_choice_adapter_learns_a_tiny_training_set(tmp_path):
    files = write_choice_fixture(tmp_path / "data", "csqa", train=16, dev=16)
    train = files["train"].replace("{lang}", "en")
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task="csqa",
                save_as="csqa",
                data={"data_files": {"train": train, "validation": train}},
                training={"epochs": 40, "batch_size": 8, "learning_rate": 5e-3, "warmup_ratio": 0.0},
            )
        )
    )
    assert result.metrics["en"]["accuracy"] == 100.0


def test_xcopa_stacked_on_siqa_evaluates_all_eleven_languages(tmp_path):
    store = str(tmp_path / "store")
    siqa = write_choice_fixture(tmp_path / "siqa", "siqa", train=24, dev=12)
    run(RunConfig.from_dict(run_config(tmp_path, task="siqa", save_as="siqa", store=store, data={"data_files": siqa})))
    xcopa = write_choice_fixture(tmp_path / "xcopa", "copa", ("en", *get_task("xcopa").languages), train=24, dev=10)
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task="xcopa",
                mode="stack",
                intermediate=["siqa"],
                save_as="xcopa",
                store=store,
                data={"data_files": xcopa, "eval_split": "test"},
            )
        )
    )
    assert set(result.metrics) == set(get_task("xcopa").languages) and len(result.metrics) == 11
    assert result.manifest.data_sizes["train"] == 24  # English COPA-schema training data
