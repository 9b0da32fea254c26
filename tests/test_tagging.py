"""Tagging: first-sub-token labels, words back from sub-tokens, data checks, UDPOS and PAN-X runs."""

import pytest
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.config import DataConfig
from adapterxl.data import load_split
from adapterxl.errors import DataError
from adapterxl.fixtures import write_jsonl, write_tagging_fixture
from adapterxl.modeling import load_backbone
from adapterxl.tasks import TASKS, get_task
from adapterxl.tasks.tagging import IGNORE


@pytest.fixture(scope="module")
def udpos_files(tmp_path_factory):
    langs = get_task("udpos").languages
    return write_tagging_fixture(
        tmp_path_factory.mktemp("udpos"), "upos", langs, train=40, dev=8, test_only=("kk", "th", "tl", "yo")
    )


@pytest.fixture(scope="module")
def panx_files(tmp_path_factory):
    return write_tagging_fixture(tmp_path_factory.mktemp("panx"), "ner", get_task("panx").languages, train=40, dev=8)


def _dataset(tmp_path, rows, task="panx"):
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    return load_split(get_task(task), "train", "en", DataConfig(data_files={"train": str(path)}))


@pytest.mark.parametrize("backbone", ["tiny-xlmr", "tiny-bert"])
def test_only_the_first_subtoken_of_each_word_is_labelled(tmp_path, backbone):
    ds = _dataset(tmp_path, [{"tokens": ["doggarden", "dog", "catkitchen"], "ner_tags": ["B-ORG", "O", "B-LOC"]}])
    _, tok = load_backbone(backbone)
    enc = get_task("panx").family.encode(ds, tok, DataConfig(max_seq_length=64))
    labels, words = enc[0]["labels"], enc[0]["word_index"]
    assert len(enc[0]["input_ids"]) > 5  # the made-up words split into several sub-tokens
    assert [lab for lab in labels if lab != IGNORE] == [3, 0, 5]  # B-ORG, O, B-LOC once each
    assert [w for w in words if w >= 0] == [0, 1, 2]
    assert labels[0] == labels[-1] == IGNORE  # special tokens
    first = [i for i, w in enumerate(words) if w >= 0]
    assert all(labels[i] != IGNORE for i in first)


def test_predictions_map_back_to_words_and_truncated_words_count_as_o(tmp_path):
    task = get_task("panx")
    ds = _dataset(tmp_path, [{"tokens": ["a", "b", "c", "d"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]}])
    _, tok = load_backbone("tiny-xlmr")
    enc = task.family.encode(ds, tok, DataConfig(max_seq_length=4))  # <s> a b </s>: words c, d are cut off
    assert [w for w in enc[0]["word_index"] if w >= 0] == [0, 1]
    predicted = [0] * len(enc[0]["input_ids"])
    predicted[enc[0]["word_index"].index(0)] = 1  # B-PER on word 0
    scores = task.family.score(ds, enc, [predicted], task, "en", DataConfig())
    assert scores == {"precision": 100.0, "recall": 50.0, "f1": pytest.approx(200 / 3)}  # LOC missed


def test_token_and_tag_count_mismatch_names_the_sentence(tmp_path):
    rows = [{"tokens": ["a"], "ner_tags": ["O"]}, {"tokens": ["a", "b"], "ner_tags": ["O"]}]
    with pytest.raises(DataError, match=r"d.jsonl, line 2: the sentence has 2 tokens but 1 tags \(task .panx.\)"):
        _dataset(tmp_path, rows)


def test_unknown_tag_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"d.jsonl, line 1: tag 'B-MISC' is not in the tag set of task 'panx'"):
        _dataset(tmp_path, [{"tokens": ["a"], "ner_tags": ["B-MISC"]}])
    with pytest.raises(DataError, match=r"line 1: tag 17 is not in the tag set"):
        _dataset(tmp_path, [{"tokens": ["a"], "pos_tags": [17]}], task="udpos")


def test_udpos_configs_are_named_by_language_and_test_only_languages_fall_back():
    task = get_task("udpos")
    assert task.source.config_for("de") == "udpos.German"
    assert [lang for lang in task.languages if task.split_for(lang, "validation") == "test"] == ["kk", "th", "tl", "yo"]
    assert len(task.languages) == 33 and len(get_task("panx").languages) == 40
    assert TASKS["panx"].source.config_for("sw") == "PAN-X.sw"


@pytest.mark.parametrize("task_name", ["udpos", "panx"])
def test_tagging_target_stacked_on_intermediate_evaluates_all_languages(
    tmp_path, task_name, udpos_files, panx_files, nli_files
):
    files = udpos_files if task_name == "udpos" else panx_files
    store = str(tmp_path / "store")
    run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task="mnli",
                save_as="inter",
                store=store,
                data={"data_files": nli_files["mnli"], "max_train_examples": 32},
            )
        )
    )
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task=task_name,
                mode="stack",
                intermediate=["inter"],
                save_as="tgt",
                store=store,
                data={"data_files": files, "max_eval_examples": 8},
                training={"epochs": 2},
            )
        )
    )
    assert set(result.metrics) == set(get_task(task_name).languages)
    assert all(set(m) == {"precision", "recall", "f1"} and 0 <= m["f1"] <= 100 for m in result.metrics.values())
    assert result.summary["metric"] == "f1" and 0 <= result.summary["avg"] <= 100


def test_tagging_adapter_learns_a_tiny_training_set(tmp_path, udpos_files):
    train = udpos_files["train"].replace("{lang}", "en")
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task="udpos",
                save_as="pos",
                data={
                    "data_files": {"train": train, "validation": train},
                    "languages": ["en"],
                    "max_train_examples": 16,
                    "max_eval_examples": 16,
                },
                training={"epochs": 30, "batch_size": 8, "learning_rate": 5e-3, "warmup_ratio": 0.0},
            )
        )
    )
    assert result.metrics["en"]["f1"] == 100.0
