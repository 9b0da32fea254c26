"""Tasks built from several Hub datasets (ANLI+), tasks without a Hub source (CCG), and the
registry as a whole."""

import datasets
import pytest
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.config import DataConfig
from adapterxl.data import load_split, with_labels
from adapterxl.errors import DataError
from adapterxl.fixtures import nli_examples, tagging_examples, write_jsonl
from adapterxl.tasks import NLI_LABELS, TASKS, get_task


def _nli(n, seed, extra=None, missing=0):
    rows = [{**r, **(extra or {})} for r in nli_examples("en", n, seed)]
    for r in rows[:missing]:
        r["label"] = -1
    ds = datasets.Dataset.from_list(rows)
    return ds.cast_column("label", datasets.ClassLabel(names=list(NLI_LABELS)))


@pytest.fixture
def fake_hub(monkeypatch):
    """datasets.load_dataset answering from local data for the ids ANLI+ asks for; records the calls."""
    hub = {
        ("facebook/anli", "plain_text", "train_r1"): _nli(10, 1, {"uid": "a", "reason": ""}),
        ("facebook/anli", "plain_text", "train_r2"): _nli(12, 2, {"uid": "b", "reason": ""}),
        ("facebook/anli", "plain_text", "train_r3"): _nli(14, 3, {"uid": "c", "reason": ""}),
        ("facebook/anli", "plain_text", "dev_r1"): _nli(5, 4, {"uid": "d", "reason": ""}),
        ("facebook/anli", "plain_text", "dev_r2"): _nli(5, 5, {"uid": "e", "reason": ""}),
        ("facebook/anli", "plain_text", "dev_r3"): _nli(6, 6, {"uid": "f", "reason": ""}),
        ("nyu-mll/glue", "mnli", "train"): _nli(20, 7, {"idx": 0}),
        ("stanfordnlp/snli", "plain_text", "train"): _nli(16, 8, missing=4),  # 4 rows without gold label
    }
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        calls.append((path, name, split))
        return hub[(path, name, split)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_anliplus_concatenates_anli_rounds_mnli_and_snli(fake_hub):
    task, data = get_task("anliplus"), DataConfig()
    train = load_split(task, "train", "en", data, training=True)
    assert len(train) == 10 + 12 + 14 + 20 + (16 - 4)  # SNLI rows labelled -1 are dropped
    assert set(train["label"]) == {0, 1, 2} and train.column_names == ["text", "text_pair", "label"]
    assert fake_hub == [
        ("facebook/anli", "plain_text", "train_r1"),
        ("facebook/anli", "plain_text", "train_r2"),
        ("facebook/anli", "plain_text", "train_r3"),
        ("nyu-mll/glue", "mnli", "train"),
        ("stanfordnlp/snli", "plain_text", "train"),
    ]
    fake_hub.clear()
    dev = load_split(task, "validation", "en", data, training=True)
    assert len(dev) == 16 and [c[2] for c in fake_hub] == ["dev_r1", "dev_r2", "dev_r3"]  # ANLI dev only


def test_anliplus_trains_an_intermediate_adapter(tmp_path, fake_hub):
    result = run(RunConfig.from_dict(run_config(tmp_path, task="anliplus", save_as="anliplus")))
    assert result.manifest.data_sizes["train"] == 68 and set(result.metrics) == {"en"}


def _ccg_files(tmp_path):
    tags = {"DET": "NP/N", "ADJ": "N/N", "NOUN": "N", "VERB": r"S\NP", "ADP": r"(S\NP)\(S\NP)", "PUNCT": "."}
    files = {}
    for split, n, seed in (("train", 30, 1), ("validation", 10, 2)):
        rows = [
            {"tokens": r["tokens"], "tags": [tags[t] for t in r["pos_tags"]]}
            for r in tagging_examples("en", n, seed, "upos")
        ]
        files[split] = str(write_jsonl(tmp_path / f"ccg-{split}.jsonl", rows))
    return files


def test_ccg_needs_local_files_and_reads_its_tag_set_from_training_data(tmp_path):
    with pytest.raises(DataError, match=r"CCGbank \(LDC2005T13\) is licensed .* data.data_files.train"):
        load_split(get_task("ccg"), "train", "en", DataConfig(), training=True)
    data = DataConfig(data_files=_ccg_files(tmp_path))
    task = with_labels(get_task("ccg"), data)
    assert task.labels == tuple(sorted(["NP/N", "N/N", "N", r"S\NP", r"(S\NP)\(S\NP)", "."]))
    result = run(
        RunConfig.from_dict(run_config(tmp_path, task="ccg", save_as="ccg", data={"data_files": data.data_files}))
    )
    assert set(result.metrics["en"]) == {"precision", "recall", "f1"}
    assert result.manifest.labels == list(task.labels)


def test_registry_has_every_task_of_the_paper():
    intermediate = {"anliplus", "mnli", "qqp", "squad", "squad_v2", "hellaswag", "ccg", "cosmosqa", "csqa"}
    target = {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "xcopa"}
    assert intermediate | target <= set(TASKS)
    assert {t for t in TASKS if TASKS[t].kind == "intermediate"} >= intermediate
    assert all(TASKS[t].kind == "target" for t in target)


def test_xtreme_r_language_lists():
    from adapterxl.languages import XTREME_R_TASK_LANGUAGES

    assert (
        set(get_task("wikiann").languages) == set(XTREME_R_TASK_LANGUAGES["panx"])
        and len(get_task("wikiann").languages) == 48
    )
    assert len(get_task("udpos_r").languages) == 38 and len(get_task("xcopa").languages) == 11
    assert get_task("wikiann").source.config_for("qu") == "qu"
    with pytest.raises(DataError, match=r"no Hub source for language 'wo'.*data.data_files.validation"):
        load_split(get_task("udpos_r"), "validation", "wo", DataConfig())
