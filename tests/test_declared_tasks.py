"""Tasks declared in YAML (a ``tasks:`` block) run like built-in ones: intermediate, stacked target,
zero-shot evaluation in their languages, store entries that carry the declaration."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import run_config

from adapterxl import run
from adapterxl.config import load_runs, parse_runs
from adapterxl.errors import ConfigError
from adapterxl.pipeline import evaluate_setup
from adapterxl.tasks import TASKS, declare_task

# A topic classifier: headlines about sport / weather / money in three languages.
WORDS = {
    "sport": {"en": ["goal", "match", "team"], "de": ["tor", "spiel", "mannschaft"], "fr": ["but", "match", "equipe"]},
    "weather": {"en": ["rain", "storm", "sun"], "de": ["regen", "sturm", "sonne"], "fr": ["pluie", "orage", "soleil"]},
    "money": {"en": ["bank", "price", "tax"], "de": ["bank", "preis", "steuer"], "fr": ["banque", "prix", "impot"]},
}
FILLER = {"en": ["today", "new", "big"], "de": ["heute", "neu", "gross"], "fr": ["aujourd", "nouveau", "grand"]}


def write_topics(root, language: str, split: str, n: int) -> None:
    rows = []
    for i in range(n):
        topic = sorted(WORDS)[i % 3]
        words = [WORDS[topic][language][i % 3], FILLER[language][i % 2], WORDS[topic][language][(i + 1) % 3]]
        rows.append({"headline": " ".join(words), "topic": topic})
    (root / language).mkdir(parents=True, exist_ok=True)
    (root / language / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def topics_dir(tmp_path):
    root = tmp_path / "topics"
    write_topics(root, "en", "train", 90)
    for language in ("en", "de", "fr"):
        write_topics(root, language, "validation", 30)
    return root


def declaration(root) -> dict:
    return {
        "family": "classification",
        "languages": ["en", "de", "fr"],
        "data": {"train": f"{root}/{{lang}}/train.jsonl", "validation": f"{root}/{{lang}}/validation.jsonl"},
        "columns": {"text": "headline", "label": "topic"},
    }


def test_declared_topic_classifier_as_intermediate_and_stacked_target(tmp_path, topics_dir, nli_files):
    TASKS.pop("topics", None)
    store = str(tmp_path / "store")
    fast = {"epochs": 3, "batch_size": 8, "learning_rate": 5e-3}
    document = {
        "tasks": {"topics": declaration(topics_dir)},
        "runs": [
            run_config(tmp_path / "a", task="topics", save_as="topics-inter", store=store, training=fast),
            run_config(tmp_path / "b", task="mnli", save_as="mnli-inter", store=store,
                       data={"data_files": nli_files["mnli"]}),
            run_config(tmp_path / "c", task="topics", mode="stack", intermediate=["mnli-inter"],
                       save_as="topics-on-mnli", store=store, training=fast),
        ],
    }  # fmt: skip
    path = tmp_path / "runs.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    as_intermediate, mnli, as_target = (run(config) for config in load_runs(path))

    for result in (as_intermediate, as_target):
        assert set(result.metrics) == {"en", "de", "fr"}  # zero-shot in the declared languages
        assert result.manifest["labels"] == ["money", "sport", "weather"]  # inferred, sorted, saved
        assert result.manifest["task_declarations"]["topics"]["columns"] == {"text": "headline", "label": "topic"}
        assert result.metrics["en"]["accuracy"] >= 90.0  # the English task is learnt
    assert "mnli-inter" in json.dumps(as_target.manifest["setup"])  # stacked on the MNLI adapter

    # Another process knows nothing of the declaration: the store entry brings it along.
    TASKS.pop("topics")
    again = evaluate_setup("topics", adapter="topics-inter", store=store)
    assert again["metrics"]["de"] == pytest.approx(as_intermediate.metrics["de"])
    assert TASKS["topics"].declaration == declaration(topics_dir)


def test_declaration_errors_name_the_key(tmp_path, topics_dir):
    good = declaration(topics_dir)
    cases = [
        ({**good, "family": "regression"}, "family"),
        ({**good, "langs": ["en"]}, "unknown key 'langs'.*languages"),
        ({**good, "languages": []}, "languages"),
        ({**good, "train_language": "sw"}, "train_language 'sw' is not in languages"),
        ({**good, "columns": {"sentence": "headline"}}, "columns maps the roles of family classification"),
        ({**good, "metric": "f1"}, "metric 'f1'.*accuracy"),
        ({**good, "data": {"validation": good["data"]["validation"]}}, "no training data"),
        ({**good, "labels": ["a", "a"]}, "distinct labels"),
    ]
    for spec, message in cases:
        with pytest.raises(ConfigError, match=message):
            declare_task("topics2", spec)
    with pytest.raises(ConfigError, match="built-in task"):
        parse_runs({"tasks": {"xnli": good}, **run_config(tmp_path, task="xnli")})
    TASKS.pop("topics3", None)
    parse_runs({"tasks": {"topics3": good}, **run_config(tmp_path, task="topics3")})
    with pytest.raises(ConfigError, match="already declared differently"):
        parse_runs({"tasks": {"topics3": {**good, "languages": ["en"]}}, **run_config(tmp_path, task="topics3")})
    TASKS.pop("topics3")
