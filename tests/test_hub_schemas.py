"""Every registry task with a Hub source, loaded from its published schema and layout.

Each task's repos are written in the Hub's exact features (``tests/data/hub_schemas.json``: the
published features of 226 configs, a copy of ``shared/reference/hub_schemas.json``) and file
layout (parquet with the features in its schema; a README ``configs:`` block on main; a
``refs/convert/parquet`` branch's ``{config}/{split}/0000.parquet`` folders without README), then
loaded through ``data._load_hub`` exactly as a real run loads them: only the network is replaced
(:class:`adapterxl.fixtures.HubStub`). The rows come from the project's synthetic generators, so a
generator that drifts from the real layout fails here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.config import DataConfig
from adapterxl.data import load_task_data
from adapterxl.errors import DataError
from adapterxl.fixtures import (
    NLI_LABELS,
    HubStub,
    choice_examples,
    fixture_languages,
    hub_features,
    hub_rows,
    nli_examples,
    qa_examples,
    tagging_examples,
    write_hub_repo,
)
from adapterxl.pipeline import retrieve
from adapterxl.tasks import BUILTIN_TASKS, TYDIQA_PREFIXES, get_task

SCHEMAS = json.loads((Path(__file__).parent / "data" / "hub_schemas.json").read_text(encoding="utf-8"))
HUB_TASKS = sorted(name for name in BUILTIN_TASKS if get_task(name).source or get_task(name).train_source)
N = 12  # rows per split
# Where the Hub's ClassLabel names differ from the registry's (same indices): PAWS-X names its
# labels "0" / "1", 1 = paraphrase (the dataset card).
HUB_LABEL_NAMES = {"pawsx": {"not_paraphrase": "0", "paraphrase": "1"}}
MC_SCHEMA = {"hellaswag": "hellaswag", "cosmosqa": "cosmosqa", "csqa": "csqa", "siqa": "siqa", "xcopa": "copa"}


def schema_of(source, config: str | None) -> dict:
    """The published schema of one config (template keys for FLORES+ and Wikipedia)."""
    for key in (f"{source.path}|{source.data_dir or config or 'default'}", f"{source.path}|{source.config}"):
        if key in SCHEMAS:
            return SCHEMAS[key]
    raise KeyError(f"no published schema for {source.path} {config}")


def words(lang: str) -> str:
    """A lexicon language for synthetic text in ``lang`` (others reuse German words)."""
    return lang if lang in fixture_languages() else "de"


def languages_of(task) -> list[str]:
    """The training language and one other language of the task."""
    others = [lang for lang in task.languages if lang != task.train_language]
    if task.name == "flores":
        return ["deu_Latn"]
    if task.kind == "retrieval":  # each language against English: no training language
        return others[:1]
    if task.name == "mlm":
        return ["en", "de"]
    if task.train_source is not None and task.train_language not in task.languages:
        return others[:1]  # XCOPA: COPA (English) trains, no English evaluation data
    return [lang for lang in (task.train_language, *others[:1]) if lang]


def rows_for(task, lang: str, n: int, seed: int) -> tuple[list[dict], list]:
    """Rows in the task's Hub columns and, per row, what a correct loader must give back: the
    registry label name (classification), the answer index (multiple choice), the tag names
    (tagging), the id (QA), or the text (retrieval, MLM)."""
    family, cols = task.family.name, task.columns
    if family == "classification":
        rows, gold = [], []
        names = HUB_LABEL_NAMES.get(task.name, {})
        for ex in nli_examples(words(lang), n, seed):
            name = NLI_LABELS[ex["label"]] if len(task.labels) == 3 else task.labels[int(ex["label"] == 0)]
            rows.append({cols["text"]: ex["premise"], cols["text_pair"]: ex["hypothesis"],
                         cols["label"]: names.get(name, name)})  # fmt: skip
            gold.append(name)
        return rows, gold
    if family == "tagging":
        scheme = "upos" if task.name.startswith("udpos") else "ner"
        rows = tagging_examples(words(lang), n, seed, scheme)
        return rows, [r[cols["tags"]] for r in rows]
    if family == "multiple_choice":
        schema = MC_SCHEMA[task.name]
        rows = choice_examples(words(lang), n, seed, schema)
        answer = {
            "hellaswag": lambda r: int(r["label"]),
            "cosmosqa": lambda r: r["label"],
            "csqa": lambda r: "ABCDE".index(r["answerKey"]),
            "siqa": lambda r: int(r["label"]) - 1,  # "1".."3" on the Hub
            "copa": lambda r: r["label"],
        }[schema]
        return rows, [answer(r) for r in rows]
    if family == "qa":
        prefix = f"{TYDIQA_PREFIXES[lang]}-" if task.id_prefixes else ""
        rows = qa_examples(words(lang), n, seed, id_prefix=prefix)
        return rows, [r["id"] for r in rows]
    sentences = [ex["premise"] for ex in nli_examples(words(lang), n, seed)]
    if task.name in ("tatoeba", "bucc2018"):
        english = [ex["premise"] for ex in nli_examples("en", n, seed)]
        rows = [{"source_sentence": s, "target_sentence": e, "source_lang": lang, "target_lang": "en"}
                for s, e in zip(sentences, english, strict=True)]  # fmt: skip
        return rows, sentences
    if task.name == "flores":
        return [{"text": s} for s in sentences], sentences
    return [{"id": str(i), "url": "", "title": "fixture", "text": s} for i, s in enumerate(sentences)], sentences


def build_hub(task, root: Path) -> tuple[HubStub, dict]:
    """Write every repo the task reads (evaluation source, training source, extra sources) in its
    published layout; return the stub and ``{(role, language): gold}`` of the rows written."""
    languages = languages_of(task)
    repos, gold = {}, {}
    sources = [("eval", task.source), ("train", task.train_source)] + [("extra", s) for s in task.extra_sources]
    for role, source in sources:
        if source is None:
            continue
        langs = [task.train_language] if role in ("train", "extra") else languages
        if role == "eval" and task.train_source is not None:
            langs = [lang for lang in languages if lang in task.languages]
        if task.name == "flores":
            langs = [*langs, "eng_Latn"]
        data, features = {}, {}
        for lang in langs:
            config = source.config_for(lang)
            folder = source.data_dir or config or "default"
            schema = schema_of(source, config)
            features[folder] = hub_features(schema["features"])
            seed = 100 * len(gold)
            for adapterxl_split, hub_splits in source.splits.items():
                for i, hub_split in enumerate([hub_splits] if isinstance(hub_splits, str) else hub_splits):
                    rows, expected = rows_for(task, lang, N, seed + 10 * i + len(adapterxl_split))
                    data.setdefault(folder, {}).setdefault(hub_split, []).extend(rows)
                    gold.setdefault((role, adapterxl_split, lang), []).extend(expected)
        layout = "parquet-branch" if source.revision == "refs/convert/parquet" else "main"
        if source.path == "aps/super_glue":  # the branch holds every SuperGLUE subset next to copa/
            boolq = datasets.Features({"question": datasets.Value("string"), "passage": datasets.Value("string"),
                                       "idx": datasets.Value("int32"),
                                       "label": datasets.ClassLabel(names=["False", "True"])})  # fmt: skip
            data["boolq"] = {"train": [{"question": "q?", "passage": "p.", "idx": 0, "label": 1}]}
            features["boolq"] = boolq
        repos[(source.path, source.revision)] = write_hub_repo(root, source.path, data, features, layout)
    return HubStub(repos), gold


def column(ds, role: str) -> list:
    return list(ds[role])


@pytest.mark.parametrize("name", HUB_TASKS)
def test_task_loads_its_published_schema_and_a_short_run_trains_on_it(name, tmp_path, monkeypatch):
    task = get_task(name)
    stub, gold = build_hub(task, tmp_path / "hub")
    monkeypatch.setattr(datasets, "load_dataset", stub)
    languages = languages_of(task)
    family = task.family.name

    if task.kind == "retrieval":
        split = "devtest" if name == "flores" else "validation"
        result = retrieve(name, model="tiny-xlmr", data=DataConfig(languages=languages, eval_split=split))
        assert set(result["metrics"]) == set(languages)
        assert all(0 <= m[task.metric] <= 100 for m in result["metrics"].values())
        assert {(c["path"], c["name"], c["revision"]) for c in stub.calls} >= {
            (task.source.path, task.source.config_for(lang), task.source.revision) for lang in languages
        }
        return

    data = DataConfig(languages=languages, train_languages=["en", "de"] if name == "mlm" else None)
    loaded = load_task_data(task, data, seed=0)
    train_role = "train" if task.train_source else "eval"
    if family in ("classification", "multiple_choice"):
        labels = column(loaded.dev, "label")
        if name == "anliplus":  # dev = the three ANLI rounds, in order
            assert [task.labels[i] for i in labels] == gold[("eval", "validation", "en")]
        elif family == "classification":
            assert [task.labels[i] for i in labels] == gold[(train_role, "validation", "en")]  # names, in order
        else:
            assert labels == gold[(train_role, "validation", "en")]  # the right choice, 0-based
        other = languages[-1]
        if other != "en":
            expected = gold[("eval", data.eval_split, other)]
            got = column(loaded.evaluation[other], "label")
            assert ([task.labels[i] for i in got] if family == "classification" else got) == expected
    elif family == "tagging":
        assert [[task.labels[i] for i in tags] for tags in column(loaded.dev, "tags")] == gold[
            ("eval", "validation", "en")
        ]
    elif family == "qa":
        other = languages[-1]
        ids = column(loaded.evaluation[other], "id")
        assert ids == gold[("eval", task.split_for(other, data.eval_split), other)]
        if task.id_prefixes:  # one mixed config: each language is its id prefix's rows
            assert all(i.startswith(TYDIQA_PREFIXES[other] + "-") for i in ids) and len(ids) == N
    else:  # mlm: held-out rows of each training language
        assert len(loaded.train) > 0 and set(loaded.evaluation) == {"en", "de"}
    assert all(c["revision"] == s.revision and c.get("data_dir") == s.data_dir for c in stub.calls
               for s in [task.source, task.train_source, *task.extra_sources] if s and s.path == c["path"])  # fmt: skip

    qa = {"max_seq_length": 128, "doc_stride": 32, "max_query_length": 32} if family == "qa" else {}
    config = run_config(
        tmp_path, task=name, save_as=f"{name}-hub",
        data={"languages": languages, "max_train_examples": 8, "max_eval_examples": 8, **qa,
              **({"train_languages": ["en", "de"]} if name == "mlm" else {})},
        training={"max_steps": 2, "batch_size": 4},
    )  # fmt: skip
    result = run(RunConfig.from_dict(config))
    assert result.manifest.dev["steps"] == 2 and set(result.metrics) == set(loaded.evaluation)


def test_copa_loads_from_its_folder_on_the_parquet_branch_not_as_a_config(tmp_path, monkeypatch):
    """aps/super_glue's refs/convert/parquet branch has copa/{split}/0000.parquet next to the other
    subsets and no README: datasets sees one "default" config, so the config name "copa" fails and
    the folder (data_dir) works."""
    task = get_task("xcopa")
    stub, gold = build_hub(task, tmp_path / "hub")
    monkeypatch.setattr(datasets, "load_dataset", stub)
    with pytest.raises(ValueError, match="BuilderConfig 'copa' not found"):
        datasets.load_dataset("aps/super_glue", "copa", split="train", revision="refs/convert/parquet")
    loaded = load_task_data(task, DataConfig(languages=["et"]), seed=0)
    assert len(loaded.train) == N and column(loaded.dev, "label") == gold[("train", "validation", "en")]
    copa = [c for c in stub.calls if c["path"] == "aps/super_glue" and c.get("data_dir") == "copa"]
    assert {c["split"] for c in copa} == {"train", "validation"} and all(c["name"] is None for c in copa)


def test_cosmos_qa_without_a_parquet_branch_says_to_use_the_original_release(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", HubStub({}))  # no refs/convert/parquet branch
    with pytest.raises(DataError) as error:
        load_task_data(get_task("cosmosqa"), DataConfig(), seed=0)
    message = str(error.value)
    assert "allenai/cosmos_qa" in message and "refs/convert/parquet" in message
    assert "original release" in message and "data.data_files.train" in message and "answer0-answer3" in message


def test_gated_repos_say_how_to_get_access(monkeypatch):
    from huggingface_hub.errors import GatedRepoError

    def gated(path, *args, **kwargs):
        raise GatedRepoError(f"Access to dataset {path} is restricted. You must have access to it and be authenticated")

    monkeypatch.setattr(datasets, "load_dataset", gated)
    for task_name, data in (("flores", DataConfig(languages=["deu_Latn"], eval_split="devtest")),
                            ("xnli", DataConfig(languages=["de"]))):  # fmt: skip
        with pytest.raises(DataError, match=r"is gated .*accept the dataset's terms on the Hub .* log in") as error:
            retrieve(task_name, model="tiny-xlmr", data=data) if task_name == "flores" else load_task_data(
                get_task(task_name), data
            )
        assert "offline" not in str(error.value)
    # FLORES+ is gated: even an offline failure names the terms first, then local files.
    monkeypatch.setattr(datasets, "load_dataset", HubStub({}))
    with pytest.raises(DataError, match=r"This dataset is gated: accept the dataset's terms .*cannot reach the Hub"):
        retrieve("flores", model="tiny-xlmr", data=DataConfig(languages=["deu_Latn"], eval_split="devtest"))


def test_tatoeba_describes_its_short_languages():
    task = get_task("tatoeba")
    for code, n in {
        "jav": 205,
        "kat": 746,
        "kaz": 575,
        "mal": 687,
        "swh": 390,
        "tam": 307,
        "tel": 234,
        "tha": 548,
    }.items():
        assert SCHEMAS[f"google/xtreme|tatoeba.{code}"]["splits"]["validation"] == n
        lang = next(k for k, v in task.source.language_names.items() if v == code)
        assert f"{lang} {n}" in task.description


def test_the_synthetic_generators_write_only_published_columns():
    """The generators' rows fit the published features (no column the Hub lacks, every value of its
    type): what the local-file fixtures of other tests are written from."""
    cases = {
        "nyu-mll/glue|mnli": [dict(r, idx=i) for i, r in enumerate(nli_examples("en", 4, 1))],
        "facebook/xnli|de": nli_examples("de", 4, 1),
        "google/xtreme|udpos.German": tagging_examples("de", 4, 1, "upos"),
        "google/xtreme|PAN-X.de": tagging_examples("de", 4, 1, "ner"),
        "unimelb-nlp/wikiann|de": tagging_examples("de", 4, 1, "ner"),
        "Rowan/hellaswag|default": choice_examples("en", 4, 1, "hellaswag"),
        "allenai/cosmos_qa|default": choice_examples("en", 4, 1, "cosmosqa"),
        "tau/commonsense_qa|default": choice_examples("en", 4, 1, "csqa"),
        "allenai/social_i_qa|default": choice_examples("en", 4, 1, "siqa"),
        "aps/super_glue|copa": choice_examples("en", 4, 1, "copa"),
        "cambridgeltl/xcopa|it": choice_examples("it" if "it" in fixture_languages() else "de", 4, 1, "copa"),
        "rajpurkar/squad|plain_text": qa_examples("en", 4, 1),
        "google/xtreme|MLQA.de.de": qa_examples("de", 4, 1),
    }
    for key, rows in cases.items():
        features = hub_features(SCHEMAS[key]["features"])
        extra = sorted({c for r in rows for c in r} - set(features))
        assert not extra, f"{key}: the generator writes columns the Hub lacks: {extra}"
        ds = datasets.Dataset.from_list(hub_rows(rows, features), features=features)
        assert ds.features == features and len(ds) == 4
