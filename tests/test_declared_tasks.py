"""Tasks declared in YAML (a ``tasks:`` block) run like built-in ones: intermediate, stacked target,
zero-shot evaluation in their languages, store entries that carry the declaration."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import run_config

from adapterxl import run
from adapterxl.config import load_runs, parse_runs
from adapterxl.errors import ConfigError, DataError
from adapterxl.fixtures import write_jsonl
from adapterxl.pipeline import evaluate_setup
from adapterxl.tasks import BUILTIN, TASKS, declare_task

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
    write_jsonl(root / language / f"{split}.jsonl", rows)


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
    configs = load_runs(path)
    assert [c.registry.get("topics").declaration for c in (configs[0], configs[2])] == [declaration(topics_dir)] * 2
    assert configs[0].declarations() == {"topics": declaration(topics_dir)} and configs[1].declarations() == {}
    as_intermediate, mnli, as_target = (run(config) for config in configs)

    for result in (as_intermediate, as_target):
        assert set(result.metrics) == {"en", "de", "fr"}  # zero-shot in the declared languages
        assert result.manifest.labels == ["money", "sport", "weather"]  # inferred, sorted, saved
        assert result.manifest.task_declarations["topics"]["columns"] == {"text": "headline", "label": "topic"}
        assert result.metrics["en"]["accuracy"] >= 90.0  # the English task is learnt
    assert "mnli-inter" in json.dumps(as_target.manifest.setup)  # stacked on the MNLI adapter

    # Reading the file declared nothing globally; the built-in registry alone does not know the task.
    assert "topics" not in BUILTIN and "topics" not in TASKS
    # Evaluating with the built-in tasks only (as another process would): the store entry brings it along.
    again = evaluate_setup("topics", adapter="topics-inter", store=store)
    assert again["metrics"]["de"] == pytest.approx(as_intermediate.metrics["de"])
    assert again["task"] == "topics" and "topics" not in BUILTIN


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
        ({**good, "columns": {"text": ["a", "b"]}}, "columns.text: a column name"),
    ]
    for spec, message in cases:
        with pytest.raises(ConfigError, match=message):
            declare_task("topics2", spec)
    with pytest.raises(ConfigError, match="built-in task"):
        parse_runs({"tasks": {"xnli": good}, **run_config(tmp_path, task="xnli")})
    # Two documents declaring one name differently do not meet: each resolves its own declaration.
    other = {**good, "languages": ["en"]}
    (first,) = parse_runs({"tasks": {"topics3": good}, **run_config(tmp_path, task="topics3")})
    (second,) = parse_runs({"tasks": {"topics3": other}, **run_config(tmp_path, task="topics3")})
    assert first.registry.get("topics3").languages == ("en", "de", "fr")
    assert second.registry.get("topics3").languages == ("en",)
    assert first.declarations() == {"topics3": good} and second.declarations() == {"topics3": other}
    assert "topics3" not in BUILTIN
    # One registry seeing the same name twice, differently, is an error; the same declaration again is not.
    registry = BUILTIN.declare({"topics3": good})
    assert registry.declare({"topics3": good}).get("topics3").declaration == good
    with pytest.raises(ConfigError, match="declared twice, differently"):
        registry.declare({"topics3": other})
    with pytest.raises(ConfigError, match="declared twice, differently"):
        parse_runs({"tasks": {"topics3": other}, **run_config(tmp_path, task="topics3")}, registry=registry)
    assert registry.get("topics3").languages == ("en", "de", "fr")  # unchanged: declare returns a new registry


def test_runs_from_two_files_declaring_one_name_differently_each_resolve_their_own(tmp_path, topics_dir):
    """Two config files each declare a task ``topics`` (different languages, labels and data), read
    in one process: every run resolves its own file's declaration, and neither leaks into the other."""
    en_de = {**declaration(topics_dir), "languages": ["en", "de"], "labels": ["money", "sport", "weather"]}
    en_fr = {**declaration(topics_dir), "languages": ["en", "fr"], "description": "the French one"}
    en_fr["data"] = {**en_fr["data"], "validation": f"{topics_dir}/fr/validation.jsonl"}
    paths = []
    for name, spec in (("a", en_de), ("b", en_fr)):
        path = tmp_path / f"{name}.yaml"
        document = {"tasks": {"topics": spec}, "runs": [run_config(tmp_path / name, task="topics", save_as=name)]}
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        paths.append(path)
    (a,) = load_runs(paths[0])
    (b,) = load_runs(paths[1])
    assert a.declarations() == {"topics": en_de} and b.declarations() == {"topics": en_fr}
    topics_a, topics_b = a.task_objects()["topics"], b.task_objects()["topics"]
    assert topics_a.languages == ("en", "de") and topics_b.languages == ("en", "fr")
    assert topics_a.labels == ("money", "sport", "weather") and topics_b.labels == ()  # b's: from training data
    assert topics_b.description == "the French one" and topics_a.description != topics_b.description
    assert topics_b.data_files["validation"] == f"{topics_dir}/fr/validation.jsonl"
    # Reading b did not change a (nor any global), and a config saved from each runs on its own.
    assert load_runs(paths[0])[0].registry.get("topics").declaration == en_de
    assert "topics" not in BUILTIN and "topics" not in TASKS
    from adapterxl.config import dump_runs

    for config, spec in ((a, en_de), (b, en_fr)):
        saved = dump_runs([config], tmp_path / f"saved-{config.name}.yaml")
        assert yaml.safe_load(saved.read_text(encoding="utf-8"))["tasks"] == {"topics": spec}
        assert load_runs(saved)[0].registry.get("topics").declaration == spec


# -- one declared task of every other family, from local files in two languages ---------------------

COLOURS = {"en": ["red", "blue", "green"], "de": ["rot", "blau", "gruen"]}
THINGS = {"en": ["car", "house", "tree"], "de": ["auto", "haus", "baum"]}
SMALL = {"en": ["the", "a", "one"], "de": ["der", "ein", "das"]}


def _rows(family: str, language: str, n: int) -> list[dict]:
    colours, things, small = COLOURS[language], THINGS[language], SMALL[language]
    rows = []
    for i in range(n):
        colour, thing = colours[i % 3], things[(i // 3) % 3]
        if family == "tagging":  # one word list, one tag per word (names, inferred)
            words = [small[i % 3], colour, thing] if i % 2 else [thing, small[i % 3], colour]
            tags = {colour: "COLOUR", thing: "THING"}
            rows.append({"words": words, "labels": [tags.get(w, "O") for w in words]})
        elif family == "multiple_choice":  # which of three words is a colour (label: an index, inferred)
            choices = [thing, things[(i + 1) % 3], small[i % 3]]
            choices.insert(i % 3, colour)
            rows.append({"prompt": "colour ?", "options": choices[:3], "answer": i % 3})
        else:  # extractive QA without an id column: ids are numbered
            context = f"{small[i % 3]} {thing} {colour} {small[(i + 1) % 3]}"
            start = len(f"{small[i % 3]} {thing} ")
            rows.append(
                {"passage": context, "ask": f"{thing} ?", "answers": {"text": [colour], "answer_start": [start]}}
            )
    return rows


DECLARATIONS = {
    "tagging": {"columns": {"tokens": "words", "tags": "labels"}},
    "multiple_choice": {"columns": {"context": "prompt", "choices": "options", "label": "answer"}},
    "qa": {"columns": {"context": "passage", "question": "ask"}},
}


@pytest.fixture(scope="module")
def family_tasks(tmp_path_factory) -> dict:
    """A declaration per family (tagging, multiple choice, QA), en + de JSON Lines files."""
    root = tmp_path_factory.mktemp("families")
    out = {}
    for family, extra in DECLARATIONS.items():
        for language in ("en", "de"):
            for split, n in (("train", 72 if language == "en" else 0), ("validation", 18)):
                if n:
                    write_jsonl(root / family / language / f"{split}.jsonl", _rows(family, language, n))
        files = {split: f"{root}/{family}/{{lang}}/{split}.jsonl" for split in ("train", "validation")}
        out[f"my_{family}"] = {"family": family, "languages": ["en", "de"], "data": files, **extra}
    return out


def test_every_family_declared_trains_as_intermediate_and_as_stacked_target(tmp_path, family_tasks):
    store = str(tmp_path / "store")
    names = list(family_tasks)  # my_tagging, my_multiple_choice, my_qa

    def config(task, save_as, **fields):
        data = {"doc_stride": 16, "max_query_length": 16} if task == "my_qa" else {}
        training = {"epochs": 3, "batch_size": 8, "learning_rate": 1e-2, **fields.pop("training", {})}
        return run_config(tmp_path, task=task, save_as=save_as, store=store, data=data, training=training, **fields)

    runs = [config(n, f"{n}-adapter") for n in names]
    # Each family as a target stacked on the next family's adapter (tagging on multiple choice, ...).
    runs += [
        config(n, f"{n}-stacked", mode="stack", intermediate=[f"{names[(i + 1) % 3]}-adapter"])
        for i, n in enumerate(names)
    ]
    runs += [
        config(names[:2], "mixture"),  # a multi-task intermediate adapter
        config("my_qa", "qa-fused", mode="fuse", intermediate=["my_tagging-adapter", "mixture"], fusion={"epochs": 1}),
        config("my_tagging", "tagging-full", mode="full", training={"epochs": 3, "learning_rate": 1e-3}),
    ]
    path = tmp_path / "runs.yaml"
    path.write_text(yaml.safe_dump({"tasks": family_tasks, "runs": runs}), encoding="utf-8")
    results = {r.name: r for r in (run(config) for config in load_runs(path))}

    metric = {"my_tagging": "f1", "my_multiple_choice": "accuracy", "my_qa": "f1"}
    for name in names:
        for setup in (f"{name}-adapter", f"{name}-stacked"):
            result = results[setup]
            assert set(result.metrics) == {"en", "de"}  # the training language and a zero-shot one
            assert all(0.0 <= m[metric[name]] <= 100.0 for m in result.metrics.values())
            assert result.manifest.task_declarations == {name: family_tasks[name]}
    assert results["my_tagging-adapter"].manifest.labels == ["COLOUR", "O", "THING"]  # inferred, sorted
    assert results["my_multiple_choice-adapter"].manifest.labels == ["0", "1", "2"]  # indices: one per choice
    # The English tasks are learnt (dev scores), and the stacked setup holds the intermediate adapter.
    learnt = {"my_tagging": 80.0, "my_multiple_choice": 90.0, "my_qa": 90.0}  # chance: ~30, 33, ~20
    for name in names:
        assert results[f"{name}-adapter"].metrics["en"][metric[name]] >= learnt[name]
        assert results[f"{name}-stacked"].metrics["en"][metric[name]] >= learnt[name]
    assert results["tagging-full"].metrics["en"]["f1"] >= learnt["my_tagging"]
    assert "my_multiple_choice-adapter" in json.dumps(results["my_tagging-stacked"].manifest.setup)
    assert set(results["mixture"].metrics) == {"my_tagging", "my_multiple_choice"}
    assert set(results["qa-fused"].metrics) == {"en", "de"} and set(results["tagging-full"].metrics) == {"en", "de"}

    # Store entries carry a model card naming the declared task, and evaluate with the built-in tasks only.
    card = (tmp_path / "store" / "my_qa-stacked" / "README.md").read_text(encoding="utf-8")
    assert "my_qa" in card and "declared qa task" in card
    declared_in_card = yaml.safe_load(card.split("```yaml\n")[-1].split("```")[0])
    assert declared_in_card == {"tasks": {"my_qa": family_tasks["my_qa"]}}
    assert not any(name in BUILTIN for name in names)
    again = evaluate_setup("my_qa", adapter="my_qa-stacked", store=store)
    assert again["metrics"]["de"] == pytest.approx(results["my_qa-stacked"].metrics["de"])


# -- bad data: one clear error each, naming file and line, before any model is loaded -----------------


def _write(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def _break_topics(root, case: str) -> str:
    """Damage the topic data one way; returns the message expected (a regex)."""
    fr, de, en = root / "fr" / "validation.jsonl", root / "de" / "validation.jsonl", root / "en" / "train.jsonl"
    rows = [json.loads(line) for line in fr.read_text(encoding="utf-8").splitlines()]
    if case == "missing file":
        fr.unlink()
        return rf"no file matches '{fr}' \(data.data_files.validation of task 'topics', language 'fr'\)"
    if case == "missing column":
        write_jsonl(de, [{"title": r["headline"], "topic": r["topic"]} for r in rows])
        return rf"{de}: missing column\(s\) 'headline' \(role text\)"
    if case == "unseen label":
        rows[3]["topic"] = "science"
        write_jsonl(fr, rows)
        _write(fr, "\n" + fr.read_text(encoding="utf-8"))  # a blank first line: JSON Lines rows are not lines
        return (
            rf"{fr}, line 5: label 'science' is not in the label set of task 'topics': \['money', 'sport', 'weather'\]"
            rf".*labels of its training data \({en}\), which never has this one: list every label under labels:"
        )
    if case == "empty split":
        _write(en, "\n")
        return rf"{en} is empty: the train split of task 'topics' \(en\) needs at least one row"
    if case == "row without text":
        del rows[2]["headline"]
        write_jsonl(de, rows)
        return rf"{de}, line 3: no value for column 'headline' \(role text\) of task 'topics'"
    if case == "csv":
        quoted = '"a headline\nover two lines"'
        _write(fr, f"headline,topic\n{quoted},sport\nrain today,weather\nbank news,finance\n")
        fr.rename(fr.with_suffix(".csv"))
        return r"validation.csv, line 5: label 'finance' is not in the label set"  # header + two-line field
    if case == "numbers as text":
        _write(fr.with_suffix(".csv"), "headline,topic\n1,sport\n2,money\n")
        fr.unlink()
        return r"validation.csv, line 2: column 'headline' \(role text\) of task 'topics' holds int64 values, not text"
    raise AssertionError(case)


BAD_DATA = ["missing file", "missing column", "unseen label", "empty split", "row without text", "csv",
            "numbers as text"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_one_clear_error_before_any_model_loads(tmp_path, topics_dir, case, monkeypatch):
    import adapterxl.pipeline

    expected = _break_topics(topics_dir, case)
    spec = declaration(topics_dir)
    if case in ("csv", "numbers as text"):
        spec["data"]["validation"] = spec["data"]["validation"].replace(".jsonl", ".{ext}")
        spec["data"]["validation"] = spec["data"]["validation"].replace("{ext}", "*")  # a glob: jsonl or csv
    monkeypatch.setattr(adapterxl.pipeline, "load_backbone", lambda *a: pytest.fail("a model was loaded"))
    (config,) = parse_runs({"tasks": {"topics": spec}, **run_config(tmp_path, task="topics", save_as="t")})
    with pytest.raises(DataError, match=expected):
        run(config)
    assert not (tmp_path / "store" / "t").exists()


def test_bad_rows_of_declared_tagging_and_qa_tasks_name_file_and_line(tmp_path, family_tasks):
    tagging = {**family_tasks["my_tagging"], "data": {"train": str(write_jsonl(tmp_path / "tags.jsonl", [
        {"words": ["red", "car"], "labels": ["COLOUR", "THING"]},
        {"words": ["a", "blue", "tree"], "labels": ["O", "COLOUR"]},
    ]))}}  # fmt: skip
    answers = {"text": ["red"], "answer_start": [4]}
    qa = {**family_tasks["my_qa"], "columns": {**family_tasks["my_qa"]["columns"], "id": "qid"},
          "data": {"train": str(write_jsonl(tmp_path / "qa.jsonl", [
              {"qid": "q1", "passage": "car red", "ask": "colour?", "answers": answers},
              {"qid": "q1", "passage": "car red", "ask": "colour?", "answers": answers},
          ]))}}  # fmt: skip
    from adapterxl.config import DataConfig
    from adapterxl.data import load_split, with_labels

    for name, spec, expected in [
        ("bad_tags", tagging, r"tags.jsonl, line 2: the sentence has 3 tokens but 2 tags \(task 'bad_tags'\)"),
        ("bad_ids", qa, r"qa.jsonl, line 2: question 'q1' repeats the id of .*qa.jsonl, line 1; question ids"),
    ]:
        task = with_labels(BUILTIN.declare({name: spec}).get(name), DataConfig())
        with pytest.raises(DataError, match=expected):
            load_split(task, "train", "en", DataConfig())


def test_declared_tasks_in_a_grid_run_to_a_report(tmp_path, topics_dir, family_tasks):
    from adapterxl.grid import load_grid, run_grid
    from adapterxl.report import build_report

    doc = {
        "grid": "mine",
        "results_dir": str(tmp_path / "results"),
        "tasks": {"topics": declaration(topics_dir), "my_tagging": family_tasks["my_tagging"]},
        "defaults": {"model": "tiny-xlmr", "store": str(tmp_path / "store"), "data": {"max_seq_length": 32},
                     "training": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3}},
        "intermediates": ["my_tagging"],
        "targets": ["topics"],
        "modes": ["stack"],
        "baselines": ["adapter"],
        "seeds": [1],
    }  # fmt: skip
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    grid = load_grid(path)
    assert grid.registry.declarations() == {"topics": declaration(topics_dir), "my_tagging": family_tasks["my_tagging"]}
    assert run_grid(grid, progress=False) == {"done": 3, "failed": 0, "blocked": 0, "skipped": 0}
    target = next(j for j in grid.jobs if j.kind == "target" and j.labels.get("intermediate") == "my_tagging")
    assert target.describe()["task_declarations"] == {"topics": declaration(topics_dir)}  # data changes: stale

    report = build_report(grid.results_dir, plots=False)
    rows = {(r["target"], r["setup"]): r for r in report["rows"]}
    assert {target for target, _ in rows} == {"topics"} and len(rows) == 2  # stacked on my_tagging + baseline
    assert all(set(r["languages"]) == {"en", "de", "fr"} for r in rows.values())
    assert "topics" in report["report"].read_text(encoding="utf-8")

    # Changing a declared task's data makes its finished jobs stale.
    doc["tasks"]["topics"]["data"]["validation"] = doc["tasks"]["topics"]["data"]["validation"].replace("{lang}", "en")
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    stale = load_grid(path).stale()
    assert stale and all("task_declarations.topics.data.validation" in keys for keys in stale.values())
    assert all({k.split(".")[0] for k in keys} <= {"task_declarations", "data_fingerprints"} for keys in stale.values())
    assert len(stale) == 2  # the two topics jobs; the my_tagging intermediate is unchanged


@pytest.mark.real_encoder
def test_the_shipped_news_topics_example_runs(tmp_path, monkeypatch, e5_small):
    """configs/news-topics.yaml (the README's worked example) as a user runs it, from the repository
    root, on the real encoder: it transfers to German, French and Spanish (chance 25)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)  # its data paths are relative to the repository root
    overrides = {"store": str(tmp_path / "store"), "output_dir": str(tmp_path / "run")}
    (config,) = load_runs("configs/news-topics.yaml", overrides)
    result = run(config)
    assert set(result.metrics) == {"en", "de", "fr", "es"}
    assert result.manifest.labels == ["economy", "science", "sport", "weather"]
    assert result.manifest.data_sizes == {"train": 80, "dev": 24, "evaluation": dict.fromkeys(result.metrics, 24)}
    assert all(result.metrics[lang]["accuracy"] >= 75 for lang in ("en", "de", "fr", "es")), result.metrics
    for language in ("en", "de", "fr", "es"):  # 6 headlines per topic, the same 24 in every language
        rows = [json.loads(x) for x in (root / f"configs/data/news_topics/{language}/validation.jsonl").open()]
        assert sorted(r["topic"] for r in rows) == sorted(["economy", "science", "sport", "weather"] * 6)
    assert (tmp_path / "store" / "news-topics" / "README.md").is_file()
    assert "news_topics" not in BUILTIN


def test_a_declared_hub_task_loads_its_configs_splits_and_revision(tmp_path, topics_dir, monkeypatch):
    """hub: {path, config ({lang}), splits, revision} reaches datasets.load_dataset as declared."""
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        if path in ("json", "csv", "parquet", "text"):  # local files still load as usual
            return real(path, name, split=split, revision=revision, **kwargs)
        calls.append((path, name, split, revision))
        language = name.split("-")[-1]
        rows = [
            {"title": f"{WORDS[t][language][i % 3]} {FILLER[language][i % 2]}", "section": t}
            for i, t in enumerate(sorted(WORDS) * 8)
        ]
        return datasets.Dataset.from_list(rows)

    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    spec = {
        "family": "classification",
        "languages": ["en", "de", "fr"],
        "hub": {"path": "my-lab/headlines", "config": "news-{lang}", "splits": {"train": "train", "validation": "dev"},
                "revision": "v1"},
        "columns": {"text": "title", "label": "section"},
        # French evaluation data from a local file (a language the Hub dataset lacks); the rest from the Hub.
        "data": {"validation": {"fr": _write(tmp_path / "fr.csv", "title,section\npluie demain,weather\nbut,sport\n")}},
    }  # fmt: skip
    (config,) = parse_runs({"tasks": {"hub_topics": spec}, **run_config(tmp_path, task="hub_topics", save_as="h")})
    result = run(config)
    assert set(result.metrics) == {"en", "de", "fr"}
    assert result.manifest.data_sizes["evaluation"] == {"en": 24, "de": 24, "fr": 2}
    assert result.manifest.labels == ["money", "sport", "weather"]
    assert sorted(set(calls)) == [
        ("my-lab/headlines", f"news-{lang}", split, "v1")
        for lang, split in [("de", "dev"), ("en", "dev"), ("en", "train")]
    ]

    # Without a Hub source, a per-language mapping must name every evaluation language.
    files = {split: {"en": f"{topics_dir}/en/{split}.jsonl"} for split in ("train", "validation")}
    spec = {**declaration(topics_dir), "data": files}
    with pytest.raises(ConfigError, match=r"data.train names files for \['sw'\], which are not in languages"):
        declare_task("t", {**spec, "data": {"train": {"sw": "x.jsonl"}}})
    (config,) = parse_runs({"tasks": {"map_topics": spec}, **run_config(tmp_path, task="map_topics", save_as="m")})
    with pytest.raises(DataError, match=r"data.validation names files for \['en'\], not for 'de': add de: PATH"):
        run(config)


def test_cli_evaluate_and_translate_know_declared_tasks_from_tasks_files(tmp_path, topics_dir):
    from click.testing import CliRunner

    from adapterxl.cli import main
    from adapterxl.fixtures import build_tiny_translator

    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(yaml.safe_dump({"tasks": {"topics": declaration(topics_dir)}}), encoding="utf-8")
    (config,) = parse_runs({"tasks": {"topics": declaration(topics_dir)},
                            **run_config(tmp_path, task="topics", mode="full", save_as="topics-full")})  # fmt: skip
    trained = run(config)
    # The CLI knows the built-in tasks only: the full model folder has no store entry to declare the task.
    assert "topics" not in BUILTIN

    cli = CliRunner()
    args = ["evaluate", "--task", "topics", "--model", trained.model_dir, "--languages", "de,fr"]
    result = cli.invoke(main, args)
    assert result.exit_code == 2 and "unknown task 'topics'" in result.output and "--tasks FILE" in result.output
    result = cli.invoke(main, [*args, "--tasks", str(tasks_file), "--output", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))["metrics"]
    assert {lang: s["accuracy"] for lang, s in scores.items()} == pytest.approx(
        {lang: trained.metrics[lang]["accuracy"] for lang in ("de", "fr")}
    )

    out = tmp_path / "translated"
    result = cli.invoke(main, ["translate", "topics", "--model", str(build_tiny_translator()), "--to", "sw",
                               "--out", str(out), "--max-examples", "6", "--tasks", str(tasks_file)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "topics" / "sw" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    english = [json.loads(x) for x in (topics_dir / "en" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["topic"] for r in rows] == [r["topic"] for r in english[:6]]  # the declared columns, labels kept
    assert all(set(r) == {"headline", "topic"} for r in rows)
    assert "topics" not in BUILTIN


def test_declaring_the_same_task_again_is_the_same_task(tmp_path):
    from adapterxl.tasks import BUILTIN

    corpora = {
        "family": "aligned_corpora",
        "languages": ["de"],
        "pivot": "en",
        "data": {"validation": "x/{lang}.jsonl"},
    }
    qa = {"family": "qa", "languages": ["en", "de"], "data": {"train": "q/{lang}.jsonl"}}
    once = BUILTIN.declare({"par": corpora, "myqa": qa})
    assert once.declare({"par": dict(corpora)}) is once  # nothing new: the same registry
    again = BUILTIN.declare({"par": dict(corpora), "myqa": dict(qa)})
    assert again == once and hash(again) == hash(once) and again.get("par") == once.get("par")
    other = BUILTIN.declare({"par": {**corpora, "pivot": "fr"}})
    assert other.get("par").family != once.get("par").family  # another pivot: another family


def test_a_callers_declaration_wins_over_the_one_saved_with_a_store_entry():
    from types import SimpleNamespace

    from adapterxl.manifest import Manifest
    from adapterxl.pipeline import _entry_tasks
    from adapterxl.tasks import BUILTIN

    saved = {"family": "classification", "languages": ["en", "de"], "data": {"train": "/train/machine/{lang}.jsonl"}}
    here = {**saved, "data": {"train": "data/{lang}.jsonl"}}
    extra = {**saved, "languages": ["en", "fr"]}
    entry = SimpleNamespace(name="e", manifest=Manifest("e", "tiny-xlmr", task_declarations={"t": saved, "u": extra}))
    mine = BUILTIN.declare({"t": here})
    tasks = _entry_tasks(entry, mine)
    assert tasks.get("t").declaration == here  # the caller's paths, not the training machine's
    assert tasks.get("u").declaration == extra  # what the caller lacks comes from the entry
    assert _entry_tasks(None, mine) is mine
