"""Extractive QA: windows and labels, span decoding back to text, data checks, the QA tasks."""

import numpy as np
import pytest
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.config import DataConfig
from adapterxl.data import load_split
from adapterxl.errors import DataError
from adapterxl.fixtures import qa_examples, write_jsonl, write_qa_fixture
from adapterxl.modeling import load_backbone
from adapterxl.tasks import get_task

SMALL_WINDOWS = {"max_seq_length": 128, "doc_stride": 32, "max_query_length": 32}


def test_doc_stride_that_does_not_fit_the_window_is_a_config_error():
    from adapterxl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.doc_stride \(128\) \+ data.max_query_length \(64\)"):
        RunConfig.from_dict({"task": "xquad", "data": {"max_seq_length": 128}})
    RunConfig.from_dict({"task": "xquad"})  # defaults 384 / 128 / 64 fit


def _load(tmp_path, rows, task="squad", split="train", language="en"):
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    return load_split(get_task(task), split, language, DataConfig(data_files={split: str(path)}))


@pytest.fixture(scope="module")
def tok():
    return load_backbone("tiny-xlmr")[1]


def _long_row():
    row = qa_examples("en", 1, seed=4)[0]
    filler = " ".join(["the old dog sleeps in the house ."] * 12)
    start = row["answers"]["answer_start"][0] + len(filler) + 1
    return {**row, "context": filler + " " + row["context"], "answers": {**row["answers"], "answer_start": [start]}}


def test_long_contexts_become_overlapping_windows_with_correct_labels(tmp_path, tok):
    ds = _load(tmp_path, [_long_row()])
    data = DataConfig(max_seq_length=48, doc_stride=16)
    family = get_task("squad").family
    train = family.encode(ds, tok, data, train=True)
    assert len(train) > 2 and all(len(ids) <= 48 for ids in train["input_ids"])
    answer = ds[0]["answers"]["text"][0]
    evaluation = family.encode(ds, tok, data, train=False)
    hits = 0
    for window, offsets in zip(train, evaluation["offset_mapping"], strict=True):
        s, e = window["start_positions"], window["end_positions"]
        if (s, e) == (0, 0):
            continue  # the answer is not inside this window
        hits += 1
        assert ds[0]["context"][offsets[s][0] : offsets[e][1]].strip() == answer
    assert hits >= 1
    assert set(evaluation["example_index"]) == {0}


def test_questions_are_cut_to_max_query_length(tmp_path, tok):
    row = {**qa_examples("en", 1, seed=4)[0], "question": " ".join(["where"] * 100)}
    ds = _load(tmp_path, [row])
    enc = get_task("squad").family.encode(ds, tok, DataConfig(max_query_length=8), train=False)
    question_tokens = [k for k, offset in enumerate(enc[0]["offset_mapping"]) if offset == [-1, -1]]
    assert len(question_tokens) <= 8 + 4  # 8 question tokens plus <s> </s></s> ... </s>


def _peaked_outputs(encoded, ds, target_texts):
    """Fake model outputs peaking at the tokens of ``target_texts`` (one per example)."""
    outputs = []
    for offsets, example in zip(encoded["offset_mapping"], encoded["example_index"], strict=True):
        start, end = np.zeros(len(offsets)), np.zeros(len(offsets))
        text, context = target_texts[example], ds[example]["context"]
        begin = context.find(text) if text else -1
        for k, (a, b) in enumerate(offsets):
            if a >= 0 and begin >= 0 and a == begin:
                start[k] = 10.0
            if a >= 0 and begin >= 0 and b == begin + len(text):
                end[k] = 10.0
        if not text:
            start[0] = end[0] = 10.0
        outputs.append((start, end))
    return outputs


def test_span_decoding_maps_back_to_the_original_text(tmp_path, tok):
    rows = qa_examples("de", 3, seed=8) + [_long_row()]
    ds = _load(tmp_path, rows, task="xquad", split="validation", language="de")
    task, data = get_task("xquad"), DataConfig(max_seq_length=48, doc_stride=16)
    encoded = task.family.encode(ds, tok, data, train=False)
    golds = [r["answers"]["text"][0] for r in rows]
    outputs = _peaked_outputs(encoded, ds, golds)
    assert task.family.predictions(ds, encoded, outputs, task, data) == {
        r["id"]: g for r, g in zip(rows, golds, strict=True)
    }
    assert task.family.score(ds, encoded, outputs, task, "de", data) == {"exact_match": 100.0, "f1": 100.0}
    # A longer span than max_answer_length is never predicted.
    short = DataConfig(max_seq_length=48, doc_stride=16, max_answer_length=1)
    predicted = task.family.predictions(ds, encoded, outputs, task, short)
    assert all(len(tok(p, add_special_tokens=False)["input_ids"]) <= 2 for p in predicted.values())


def test_squad_v2_answers_nothing_when_the_null_score_wins(tmp_path, tok):
    rows = qa_examples("en", 6, seed=2, unanswerable=0.5)
    assert any(not r["answers"]["text"] for r in rows) and any(r["answers"]["text"] for r in rows)
    ds = _load(tmp_path, rows, task="squad_v2", split="validation")
    task, data = get_task("squad_v2"), DataConfig()
    encoded = task.family.encode(ds, tok, data, train=False)
    targets = [r["answers"]["text"][0] if r["answers"]["text"] else "" for r in rows]
    outputs = _peaked_outputs(encoded, ds, targets)
    predictions = task.family.predictions(ds, encoded, outputs, task, data)
    assert predictions == {r["id"]: t for r, t in zip(rows, targets, strict=True)}
    scores = task.family.score(ds, encoded, outputs, task, "en", data)
    assert scores["exact_match"] == scores["NoAns_exact"] == scores["HasAns_f1"] == 100.0


def test_answer_offset_that_does_not_match_names_the_question(tmp_path):
    row = qa_examples("en", 1, seed=1)[0]
    row["answers"]["answer_start"] = [row["answers"]["answer_start"][0] + 1]
    with pytest.raises(
        DataError, match=rf"qa.jsonl, line 1: question '{row['id']}': answer 'garden' does not match its context"
    ):
        _load(tmp_path, [row])


def test_unanswerable_questions_only_in_squad_v2(tmp_path):
    row = qa_examples("en", 1, seed=1)[0]
    row["answers"] = {"text": [], "answer_start": []}
    with pytest.raises(DataError, match=r"has no answer; only SQuAD v2"):
        _load(tmp_path, [row])
    assert len(_load(tmp_path, [row], task="squad_v2")) == 1


def test_tydiqa_mixed_file_is_split_by_id_prefix(tmp_path):
    task = get_task("tydiqa")
    write_qa_fixture(tmp_path, ("en", "ar", "sw"), train=5, dev=4, id_prefixes=dict(task.id_prefixes))
    data = DataConfig(data_files={"validation": str(tmp_path / "mixed" / "validation.jsonl")})
    arabic = load_split(task, "validation", "ar", data)
    assert len(arabic) == 4 and all(i.startswith("arabic-") for i in arabic["id"])


def test_squad_adapter_learns_a_tiny_training_set(tmp_path):
    files = write_qa_fixture(tmp_path / "data", ("en",), train=16, dev=16)
    train = files["train"].replace("{lang}", "en")
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task="squad",
                save_as="squad",
                data={"data_files": {"train": train, "validation": train}, **SMALL_WINDOWS},
                training={"epochs": 40, "batch_size": 8, "learning_rate": 5e-3, "warmup_ratio": 0.0},
            )
        )
    )
    assert result.metrics["en"] == {"exact_match": 100.0, "f1": 100.0}


@pytest.mark.parametrize("task_name", ["xquad", "mlqa", "tydiqa"])
def test_qa_targets_stacked_on_squad_evaluate_every_language(tmp_path, task_name):
    store = str(tmp_path / "store")
    squad = write_qa_fixture(tmp_path / "squad", ("en",), train=24, dev=8)
    run(
        RunConfig.from_dict(
            run_config(
                tmp_path, task="squad", save_as="squad", store=store, data={"data_files": squad, **SMALL_WINDOWS}
            )
        )
    )
    task = get_task(task_name)
    target = write_qa_fixture(tmp_path / task_name, task.languages, train=24, dev=6)
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task=task_name,
                mode="stack",
                intermediate=["squad"],
                save_as=task_name,
                store=store,
                data={"data_files": target, **SMALL_WINDOWS},
            )
        )
    )
    assert set(result.metrics) == set(task.languages)
    assert all(set(m) == {"exact_match", "f1"} for m in result.metrics.values())
    expected = (result.summary["avg_exact_match"] + result.summary["avg_f1"]) / 2
    assert result.summary["avg"] == pytest.approx(expected)  # XTREME's QA task score
