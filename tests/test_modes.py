"""Every registered mode, by construction: a mode added to adapterxl.modes is tested here without
new test code (what trains, that it learns, that the store gives its numbers back)."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import make_entry, run_config

from adapterxl import RunConfig, evaluate_setup, run
from adapterxl.config import DataConfig
from adapterxl.errors import ConfigError
from adapterxl.modeling import load_backbone, setup_mode, start_fusion
from adapterxl.modes import GRID_MODES, MODES, get_mode
from adapterxl.store import AdapterStore
from adapterxl.tasks import get_task

INTERMEDIATES = {"none": [], "one": ["inter-a"], "some": ["inter-a", "inter-b"]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes-store")
    for name in ("inter-a", "inter-b"):
        make_entry(root, name, "tiny-xlmr")
    return root


def mode_config(tmp_path, store, name: str, train_file: str, **training) -> RunConfig:
    mode = get_mode(name)
    return RunConfig.from_dict(run_config(
        tmp_path, task="mnli", mode=name, save_as=f"m-{name}", store=str(store),
        intermediate=INTERMEDIATES[mode.intermediates],
        data={"data_files": {"train": train_file, "validation": train_file}},
        training={"epochs": 40, "batch_size": 8, "learning_rate": 1e-3 if mode.full else 5e-3, "warmup_ratio": 0.0,
                  "logging_steps": 10, **training},
        fusion={"learning_rate": 1e-3, "epochs": 20},
    ))  # fmt: skip


@pytest.mark.parametrize("name", list(MODES))
def test_mode_trains_exactly_its_parts(store, name):
    mode = get_mode(name)
    entries = [AdapterStore(store).get(n) for n in INTERMEDIATES[mode.intermediates]]
    model, tok = load_backbone("tiny-xlmr")
    core = setup_mode(model, name, "tgt", get_task("xnli"), "seq_bn", entries)
    if mode.fusion:
        start_fusion(model, core, "tgt", "dynamic", joint=False)
    names = {n for n, _ in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if mode.full:
        assert trainable == names
        return
    head = {n for n in names if n.startswith("heads.tgt.")}
    target = {n for n in names if ".adapters.tgt." in n}
    fusion = {n for n in names if ".adapter_fusion_layer." in n}
    assert head and target  # a new head, and the run's adapter (new, or the intermediate continued)
    assert trainable == head | (fusion if mode.fusion else target)
    assert not any(re.search(r"\.adapters\.inter-", n) for n in trainable)  # intermediates stay frozen
    assert not any(n.startswith("roberta.") and ".adapter" not in n for n in trainable)  # backbone frozen
    model.train()
    batch = tok(["the big dog sleeps ."], ["the dog is big ."], return_tensors="pt")
    model(**batch, labels=torch.tensor([0])).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and with_grad <= trainable


@pytest.mark.parametrize("name", list(MODES))
def test_mode_learns_and_the_store_gives_its_numbers_back(tmp_path, store, tiny_train_file, name):
    mode = get_mode(name)
    result = run(mode_config(tmp_path, store, name, tiny_train_file))
    assert result.metrics == {"en": {"accuracy": 100.0}}  # 24 examples learnt by heart
    history = [h for h in result.manifest.dev["history"] if "loss" in h]
    assert history[-1]["loss"] < history[0]["loss"]
    assert result.manifest.mode == name and bool(result.model_dir) == mode.full
    data = DataConfig(data_files={"validation": tiny_train_file}, max_seq_length=64)
    if mode.full:
        again = evaluate_setup("mnli", model=result.model_dir, data=data)
    else:
        again = evaluate_setup("mnli", adapter=result.name, store=str(store), data=data)
        members = INTERMEDIATES[mode.intermediates]
        if mode.continues_intermediate:
            assert result.manifest.initialized_from == members[0]
        else:
            assert result.manifest.setup == [*members, result.name]
    assert again["metrics"] == result.metrics


@pytest.mark.parametrize("name", list(MODES))
def test_mode_rules_are_checked_before_anything_loads(name):
    mode = get_mode(name)
    base = {"task": "mnli", "model": "tiny-xlmr", "mode": name}
    if mode.intermediates != "none":
        with pytest.raises(ConfigError, match=f"mode {name!r} needs"):
            RunConfig.from_dict(base)
    else:
        with pytest.raises(ConfigError, match="only used in modes"):
            RunConfig.from_dict({**base, "intermediate": ["inter-a"]})
    multi = {**base, "task": ["mnli", "qqp"], "intermediate": INTERMEDIATES[mode.intermediates]}
    if mode.multitask:
        assert RunConfig.from_dict(multi).multitask
    else:
        with pytest.raises(ConfigError, match="multi-task training"):
            RunConfig.from_dict(multi)
    assert RunConfig.from_dict(
        {**base, "intermediate": INTERMEDIATES[mode.intermediates]}
    ).training.resolved_learning_rate(name) == (2e-5 if mode.full else 1e-4)


def test_average_composes_the_mean_of_the_intermediates_under_the_target(store):
    from adapters.composition import Average, Stack

    entries = [AdapterStore(store).get(n) for n in ("inter-a", "inter-b")]
    model, _ = load_backbone("tiny-xlmr")
    core = setup_mode(model, "average", "tgt", get_task("xnli"), "seq_bn", entries)
    assert isinstance(core, Stack) and isinstance(core.children[0], Average)
    assert list(core.children[0].children) == ["inter-a", "inter-b"] and core.children[0].weights == [0.5, 0.5]
    assert core.children[1] == "tgt"
    lora = make_entry(store.parent / "lora-store", "inter-lora", "tiny-xlmr", adapter="lora")
    with pytest.raises(ConfigError, match="mode 'average' averages the outputs of bottleneck adapters"):
        get_mode("average").preflight("seq_bn", [lora])


def test_unknown_modes_suggest_the_closest():
    with pytest.raises(ConfigError, match=r"unknown mode 'averag' \(did you mean 'average'\?\)"):
        get_mode("averag")


@pytest.mark.parametrize("name", list(GRID_MODES))
def test_grid_mode_expands_to_targets_on_its_intermediates(tmp_path, nli_files, name):
    from adapterxl.grid import parse_grid

    mode = get_mode(name)
    doc = {
        "grid": "g",
        "results_dir": str(tmp_path / "results"),
        "defaults": {"model": "tiny-xlmr", "store": str(tmp_path / "store")},
        "intermediates": {
            "a": {"task": "mnli", "data": {"data_files": nli_files["mnli"]}},
            "b": {"task": "mnli", "data": {"data_files": nli_files["mnli"]}},
        },  # fmt: skip
        "targets": {"xnli": {"task": "xnli", "data": {"data_files": nli_files["xnli"]}}},
        "modes": [name],
        "seeds": [1],
    }
    grid = parse_grid(doc)
    targets = [j for j in grid.jobs if j.kind == "target" and not j.labels["baseline"]]
    baselines = [j for j in grid.jobs if j.kind == "target" and j.labels["baseline"]]
    assert [b.labels["mode"] for b in baselines] == [mode.kind]
    assert len(targets) == (1 if mode.all_intermediates else 2)
    for job in targets:
        assert job.config.mode == name and len(job.needs) == (2 if mode.all_intermediates else 1)
        assert all(grid.job(n).config.mode == mode.kind for n in job.needs)
    ids = {"fuse": "tiny-xlmr--xnli--fuse--on-fusion--s1", "stack": "tiny-xlmr--xnli--stack--on-a--s1"}
    if name in ids:  # job ids of existing results folders must not change (resuming relies on them)
        assert ids[name] in [j.id for j in targets]
