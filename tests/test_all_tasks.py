"""The tasks not covered by the family test modules: QQP and SQuAD v2 as intermediate tasks, and
XNLI / PAWS-X stacked on an intermediate adapter and evaluated on every one of their languages."""

import pytest
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.fixtures import nli_examples, write_per_language, write_qa_fixture
from adapterxl.tasks import get_task

SCHEMAS = {  # Hub columns of each sentence-pair dataset
    "qqp": lambda i, r: {
        "question1": r["premise"],
        "question2": r["hypothesis"],
        "label": int(r["label"] == 0),
        "idx": i,
    },
    "pawsx": lambda i, r: {
        "id": i,
        "sentence1": r["premise"],
        "sentence2": r["hypothesis"],
        "label": int(r["label"] == 0),
    },
    "xnli": lambda i, r: {"premise": r["premise"], "hypothesis": r["hypothesis"], "label": r["label"]},
}


def write_pairs(root, task, languages, n=24):
    """Per-language files in the task's Hub schema; languages outside the lexicon reuse its words."""
    return write_per_language(
        root,
        languages,
        n,
        n,
        1,
        lambda source, lang, k, seed: [SCHEMAS[task](i, r) for i, r in enumerate(nli_examples(source, k, seed))],
    )


@pytest.fixture(scope="module")
def qqp_adapter(tmp_path_factory):
    root = tmp_path_factory.mktemp("qqp")
    store = str(root / "store")
    files = write_pairs(root / "data", "qqp", ["en"])
    result = run(
        RunConfig.from_dict(run_config(root, task="qqp", save_as="qqp", store=store, data={"data_files": files}))
    )
    return store, result


def test_qqp_trains_an_intermediate_adapter(qqp_adapter):
    _, result = qqp_adapter
    assert set(result.metrics) == {"en"} and result.manifest.labels == ["not_duplicate", "duplicate"]


def test_squad_v2_trains_an_intermediate_adapter(tmp_path):
    files = write_qa_fixture(tmp_path / "data", ("en",), train=24, dev=12, unanswerable=0.3)
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task="squad_v2",
                save_as="squad2",
                data={"data_files": files, "max_seq_length": 128, "doc_stride": 32, "max_query_length": 32},
            )
        )
    )
    assert {"exact_match", "f1", "HasAns_f1", "NoAns_f1"} <= set(result.metrics["en"])


@pytest.mark.parametrize("task_name", ["xnli", "pawsx"])
def test_sentence_pair_targets_evaluate_every_language(tmp_path, qqp_adapter, task_name):
    store, _ = qqp_adapter
    task = get_task(task_name)
    files = write_pairs(tmp_path / "data", task_name, task.languages, n=12)
    result = run(
        RunConfig.from_dict(
            run_config(
                tmp_path,
                task=task_name,
                mode="stack",
                intermediate=["qqp"],
                save_as=f"{task_name}-on-qqp",
                store=store,
                data={"data_files": files},
            )
        )
    )
    assert set(result.metrics) == set(task.languages) and len(result.metrics) == {"xnli": 15, "pawsx": 7}[task_name]
