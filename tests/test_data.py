import json

import pytest

from adapterxl.config import DataConfig
from adapterxl.data import load_split, load_task_data
from adapterxl.errors import DataError
from adapterxl.fixtures import write_jsonl
from adapterxl.tasks import get_task


def _jsonl(tmp_path, rows, name="d.jsonl"):
    return str(write_jsonl(tmp_path / name, rows))


def test_local_jsonl_is_renamed_to_roles_with_label_indices(tmp_path):
    path = _jsonl(tmp_path, [{"premise": "a", "hypothesis": "b", "label": 2, "idx": 0}])
    ds = load_split(get_task("mnli"), "train", "en", DataConfig(data_files={"train": path}))
    assert ds.column_names == ["text", "text_pair", "label"]
    assert ds[0] == {"text": "a", "text_pair": "b", "label": 2}


def test_string_labels_map_to_the_task_label_set(tmp_path):
    # google/xtreme stores XNLI labels as names and PAWS-X labels as "0"/"1" strings.
    rows = [{"premise": "a", "hypothesis": "b", "label": name} for name in ("contradiction", "entailment", "1")]
    ds = load_split(get_task("xnli"), "validation", "de", DataConfig(data_files={"validation": _jsonl(tmp_path, rows)}))
    assert ds["label"] == [2, 0, 1]


def test_rows_without_gold_label_are_dropped(tmp_path):
    rows = [{"premise": "a", "hypothesis": "b", "label": lab} for lab in (0, -1, 1, -1)]
    ds = load_split(get_task("mnli"), "train", "en", DataConfig(data_files={"train": _jsonl(tmp_path, rows)}))
    assert ds["label"] == [0, 1]


def test_label_outside_the_label_set_names_value_and_line(tmp_path):
    rows = [{"premise": "a", "hypothesis": "b", "label": 1}, {"premise": "a", "hypothesis": "b", "label": 3}]
    path = _jsonl(tmp_path, rows)
    with pytest.raises(DataError, match=r"label 3 is not in the label set of task 'mnli'") as err:
        load_split(get_task("mnli"), "train", "en", DataConfig(data_files={"train": path}))
    assert str(err.value).startswith(f"{path}, line 2: ")


def test_missing_column_names_it_and_the_fix(tmp_path):
    path = _jsonl(tmp_path, [{"premise": "a", "hyp": "b", "label": 0}])
    with pytest.raises(DataError, match=r"missing column\(s\) 'hypothesis' \(role text_pair\).*data.columns"):
        load_split(get_task("mnli"), "train", "en", DataConfig(data_files={"train": path}))
    # ... and the suggested fix works.
    ds = load_split(
        get_task("mnli"), "train", "en", DataConfig(data_files={"train": path}, columns={"text_pair": "hyp"})
    )
    assert ds[0]["text_pair"] == "b"


def test_missing_local_file(tmp_path):
    with pytest.raises(DataError, match=r"no file matches .*nope/de.jsonl.*language 'de'"):
        load_split(get_task("xnli"), "test", "de", DataConfig(data_files={"test": str(tmp_path / "nope/{lang}.jsonl")}))


def test_offline_hub_failure_names_the_dataset_and_local_alternative():
    with pytest.raises(DataError) as err:
        load_split(get_task("xnli"), "validation", "sw", DataConfig())
    message = str(err.value)
    assert "'facebook/xnli', config 'sw', split 'validation'" in message
    assert "data.data_files.validation" in message


def test_empty_split_is_an_error(tmp_path):
    path = _jsonl(tmp_path, [{"premise": "a", "hypothesis": "b", "label": -1}])
    with pytest.raises(DataError, match="has no labelled rows"):
        load_split(get_task("mnli"), "train", "en", DataConfig(data_files={"train": path}))


@pytest.mark.parametrize("suffix", ["csv", "tsv", "parquet"])
def test_csv_tsv_and_parquet(tmp_path, suffix):
    import pandas as pd

    frame = pd.DataFrame({"sentence1": ["x", "y"], "sentence2": ["z", "w"], "label": [0, 1]})
    path = tmp_path / f"d.{suffix}"
    if suffix == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if suffix == "tsv" else ",", index=False)
    ds = load_split(get_task("pawsx"), "train", "en", DataConfig(data_files={"train": str(path)}))
    assert ds["text"] == ["x", "y"] and ds["label"] == [0, 1]


def test_task_data_caps_and_reuses_english_dev(nli_files):
    data = DataConfig(data_files=nli_files["xnli"], languages=["en", "de"], max_train_examples=10, max_eval_examples=7)
    loaded = load_task_data(get_task("xnli"), data)
    assert loaded.sizes() == {"train": 10, "dev": 7, "evaluation": {"en": 7, "de": 7}}
    assert loaded.evaluation["en"] is loaded.dev


def test_fixture_files_follow_the_hub_schemas(nli_files):
    with open(nli_files["mnli"]["train"], encoding="utf-8") as f:
        row = json.loads(f.readline())
    assert set(row) == {"premise", "hypothesis", "label", "idx"}
    with open(nli_files["xnli"]["test"].replace("{lang}", "zh"), encoding="utf-8") as f:
        assert set(json.loads(f.readline())) == {"premise", "hypothesis", "label"}
