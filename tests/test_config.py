import pytest

from adapterxl.config import (
    RunConfig,
    apply_overrides,
    dump_runs,
    load_runs,
    parse_override,
    parse_runs,
)
from adapterxl.errors import ConfigError


def test_yaml_round_trip_is_lossless(tmp_path):
    config = RunConfig.from_dict(
        {
            "task": "xnli",
            "model": "xlm-roberta-large",
            "mode": "stack",
            "intermediate": ["mnli-large"],
            "adapter": "seq_bn[reduction_factor=8]",
            "seed": 7,
            "data": {"languages": ["de", "sw"], "max_seq_length": 256, "data_files": {"train": "x/{lang}.jsonl"}},
            "training": {"learning_rate": 1e-4, "epochs": 2, "early_stopping_patience": 3, "bf16": True},
        }
    )
    path = dump_runs([config], tmp_path / "run.yaml")
    (loaded,) = load_runs(path)
    assert loaded == config
    assert loaded.training.learning_rate == 1e-4 and loaded.data.languages == ["de", "sw"]


def test_pipeline_defaults_merge_into_each_run():
    runs = parse_runs(
        {
            "defaults": {"model": "tiny-xlmr", "training": {"epochs": 5, "batch_size": 8}},
            "runs": [{"task": "mnli", "save_as": "a"}, {"task": "xnli", "save_as": "b", "training": {"epochs": 1}}],
        }
    )
    assert [r.model for r in runs] == ["tiny-xlmr", "tiny-xlmr"]
    assert [r.training.epochs for r in runs] == [5.0, 1.0]
    assert [r.training.batch_size for r in runs] == [8, 8]


def test_default_names_and_learning_rates():
    stack = RunConfig(task="xnli", mode="stack", intermediate=["m"], seed=2)
    assert stack.name == "xnli-stack-on-m-s2"
    assert stack.training.resolved_learning_rate("stack") == 1e-4
    assert stack.training.resolved_learning_rate("full") == 2e-5


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: mnli\ntraining:\n  learning_rate: 1e-4\n")
    (config,) = load_runs(path)
    assert config.training.learning_rate == 1e-4


@pytest.mark.parametrize(
    "data, message",
    [
        ({"task": "xnl"}, r"unknown task 'xnl' \(did you mean 'xnli'\?\)"),
        ({"task": "xnli", "mode": "fusion"}, r"unknown mode 'fusion'"),
        ({"task": "xnli", "mode": "stack"}, r"mode 'stack' needs at least one intermediate adapter"),
        ({"task": "xnli", "intermediate": ["m"]}, r"only used in modes \[.*'fuse', 'sequential', 'stack'\], not"),
        ({"task": "xnli", "data": {"languages": ["de", "xx"]}}, r"no language\(s\) \['xx'\]"),
        ({"task": "mnli", "data": {"eval_split": "test"}}, r"no labelled 'test' split"),
        ({"task": "xnli", "data": {"data_files": {"dev": "x"}}}, r"keys must be splits"),
        ({"task": "xnli", "data": {"columns": {"premise": "p"}}}, r"unknown role\(s\) \['premise'\]"),
        ({"task": "xnli", "save_as": "../escape"}, r"invalid adapter name '../escape'"),
        ({"task": "xnli", "lerning_rate": 1}, r"unknown key 'lerning_rate'"),
        ({"task": "xnli", "training": {"batch_size": "big"}}, r"training.batch_size: expected int"),
        ({"task": "xnli", "training": {"batch_size": 0}}, r"training.batch_size must be positive"),
        ({"task": "xnli", "training": {"bf16": "yes"}}, r"training.bf16 must be"),
        ({"model": "x"}, r"missing required key\(s\) \['task'\]"),
        ({"task": "xnli", "mode": "stack", "intermediate": ["a", "a"]}, r"lists an adapter twice"),
    ],
)
def test_bad_configs_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(data)


def test_duplicate_run_names_are_rejected():
    with pytest.raises(ConfigError, match=r"several runs are named \['a'\]"):
        parse_runs({"runs": [{"task": "mnli", "save_as": "a"}, {"task": "xnli", "save_as": "a"}]})


def test_overrides_apply_to_every_run():
    key, value = parse_override("training.learning_rate=3e-4")
    assert key == "training.learning_rate"
    doc = apply_overrides({"runs": [{"task": "mnli"}, {"task": "xnli"}]}, {key: value, "seed": 9})
    runs = parse_runs(doc)
    assert [(r.training.learning_rate, r.seed) for r in runs] == [(3e-4, 9), (3e-4, 9)]
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        parse_override("seed")


def test_missing_config_file_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_runs(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_runs(bad)


def test_shipped_example_configs_are_valid():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    assert configs, "configs/ ships example configs"
    for path in configs:
        assert load_runs(path), path
