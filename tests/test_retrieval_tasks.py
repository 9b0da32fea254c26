"""Tatoeba, BUCC and FLORES end to end: file formats, wiring, adapters active while embedding."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_entry

from adapterxl import RunConfig, retrieve
from adapterxl.cli import main
from adapterxl.config import DataConfig
from adapterxl.data import retrieval_rows
from adapterxl.embeddings import embed
from adapterxl.errors import ConfigError, DataError
from adapterxl.fixtures import nli_examples, write_jsonl
from adapterxl.metrics import xtreme_score
from adapterxl.modeling import load_backbone, load_stored
from adapterxl.tasks import get_task

LEXICON_OF = {"de": "de", "fr": "fr", "ru": "ru", "zh": "zh", "deu_Latn": "de", "rus_Cyrl": "ru", "eng_Latn": "en"}


def parallel(lang, n, seed=5):
    """Aligned (other language, English) sentences: the same synthetic sentence in both."""
    xx = [e["premise"] for e in nli_examples(LEXICON_OF[lang], n, seed)]
    en = [e["premise"] for e in nli_examples("en", n, seed)]
    return xx, en


@pytest.fixture(scope="module")
def tatoeba_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tatoeba")
    for lang in ("de", "zh"):
        xx, en = parallel(lang, 20)
        rows = [{"source_sentence": a, "target_sentence": b, "source_lang": lang, "target_lang": "eng"}
                for a, b in zip(xx, en, strict=True)]  # fmt: skip
        write_jsonl(root / f"{lang}.jsonl", rows)
    return {"validation": str(root / "{lang}.jsonl")}


@pytest.fixture(scope="module")
def bucc_dir(tmp_path_factory):
    """Original BUCC layout: id<TAB>sentence files with distractors, gold id pairs, a repeated sentence."""
    root = tmp_path_factory.mktemp("bucc")
    for split, seed in (("sample", 1), ("training", 2)):
        xx, en = parallel("de", 30, seed)
        extra_de = [e["premise"] for e in nli_examples("de", 10, seed + 50)]  # distractors
        de_lines = [(f"de-{i:06d}", s) for i, s in enumerate(xx + extra_de)] + [("de-999999", xx[0])]  # repeated
        en_lines = [(f"en-{i:06d}", s) for i, s in enumerate(en)]
        gold = [(f"de-{i:06d}", f"en-{i:06d}") for i in range(30)]
        for suffix, lines in (("de", de_lines), ("en", en_lines), ("gold", gold)):
            (root / f"de-en.{split}.{suffix}").write_text("".join(f"{a}\t{b}\n" for a, b in lines), encoding="utf-8")
    return str(root)


class PerfectEncoder:
    """Maps the k-th sentence of an aligned corpus (either language) to the k-th one-hot vector."""

    def __init__(self, pairs):
        self.index = {}
        for k, (a, b) in enumerate(pairs):
            self.index.setdefault(a.strip(), k)
            self.index.setdefault(b.strip(), k)
        self.size = len(pairs) + 1

    def __call__(self, sentences):
        out = np.zeros((len(sentences), self.size), dtype=np.float32)
        for i, s in enumerate(sentences):
            k = self.index.get(s.strip(), self.size - 1)
            out[i, k] = 1.0
            out[i, -1] += 0.01 * (i + 1)  # unknown sentences: distinct, far from everything
        return out


def rows_of(task, data):
    """The rows callable a retrieval family reads through (as adapterxl.retrieve builds it)."""
    return lambda split, language: retrieval_rows(task, language, split, data)


def test_tatoeba_wiring_with_a_perfect_encoder(tatoeba_files):
    task = get_task("tatoeba")
    xx, en = parallel("de", 20)
    encode = PerfectEncoder(list(zip(xx, en, strict=True)))
    data = DataConfig(data_files=tatoeba_files)
    for direction in ("en->xx", "xx->en"):
        assert task.family.evaluate(encode, task, "de", data, {"direction": direction}, rows_of(task, data)) == {
            "accuracy": 100.0
        }


def test_bucc_with_original_files_mines_thresholds_on_dev_and_applies_it_to_test(bucc_dir):
    task = get_task("bucc2018")
    pairs = [p for seed in (1, 2) for p in zip(*parallel("de", 30, seed), strict=True)]
    encode = PerfectEncoder(pairs)
    dev = task.family.evaluate(encode, task, "de", DataConfig(eval_split="validation"), {"bucc_dir": bucc_dir}, None)
    # The repeated German sentence (de-000000 / de-999999) is dropped as the official reader does.
    assert dev["recall"] == pytest.approx(100 * 29 / 30) and dev["precision"] == 100.0
    test = task.family.evaluate(encode, task, "de", DataConfig(eval_split="test"), {"bucc_dir": bucc_dir}, None)
    assert test["threshold"] == dev["threshold"]  # the dev threshold, applied to test
    assert test["precision"] == 100.0


def test_bucc_missing_files_are_a_clear_error(tmp_path):
    task = get_task("bucc2018")
    with pytest.raises(DataError, match=r"BUCC file .*fr-en.sample.fr' is missing.*original bucc2018-fr-en"):
        task.family.evaluate(lambda s: None, task, "fr", DataConfig(), {"bucc_dir": str(tmp_path)}, None)


@pytest.fixture(scope="module")
def flores_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("flores")
    for lang in ("deu_Latn", "rus_Cyrl", "eng_Latn"):
        xx, _ = parallel(lang, 15)
        write_jsonl(root / f"{lang}.jsonl", [{"id": i, "text": s} for i, s in enumerate(xx)])
    return {"devtest": str(root / "{lang}.jsonl")}


def test_retrieve_flores_on_the_tiny_model_groups_by_script(flores_files):
    data = DataConfig(data_files=flores_files, languages=["deu_Latn", "rus_Cyrl"], eval_split="devtest")
    result = retrieve("flores", model="tiny-xlmr", data=data)
    assert set(result["metrics"]) == {"deu_Latn", "rus_Cyrl"} and set(result["by_script"]) == {"Latn", "Cyrl"}
    for scores in result["metrics"].values():
        assert scores["accuracy"] == pytest.approx((scores["accuracy_xx2en"] + scores["accuracy_en2xx"]) / 2)
    assert result["layer"] == 1  # the tiny model has 2 layers
    assert set(result["by_family"]) == {"Indo-European"}
    with pytest.raises(DataError, match="'german' is not a FLORES-200 code"):
        retrieve("flores", model="tiny-xlmr", data=DataConfig(languages=["german"], eval_split="devtest"))
    with pytest.raises(ConfigError, match="needs data.languages"):
        retrieve("flores", model="tiny-xlmr", data=DataConfig(eval_split="devtest"))


def test_language_families_from_uriel():
    from adapterxl.tasks.retrieval import language_families

    assert language_families(["deu_Latn", "swh_Latn", "cmn_Hans", "quy_Latn", "zzz_Latn"]) == {
        "deu_Latn": "Indo-European", "swh_Latn": "Atlantic-Congo", "cmn_Hans": "Sino-Tibetan",
        "quy_Latn": "Quechuan", "zzz_Latn": "unknown",
    }  # fmt: skip


def test_embeddings_come_from_the_active_adapter_setup(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    entry = make_entry(tmp_path, "inter", "tiny-xlmr")
    weights = load_file(entry.path / "adapter.safetensors")
    save_file({k: v + 0.5 for k, v in weights.items()}, entry.path / "adapter.safetensors")
    plain, tok = load_backbone("tiny-xlmr")
    adapted, _ = load_backbone("tiny-xlmr")
    load_stored(adapted, entry)
    sentences = ["the dog sleeps .", "der Hund schläft ."]
    with torch.no_grad():
        assert not np.allclose(embed(plain, tok, sentences, layer=2), embed(adapted, tok, sentences, layer=2))
        assert np.allclose(embed(plain, tok, sentences, layer=0), embed(adapted, tok, sentences, layer=0))


def test_cli_retrieve_tatoeba_with_an_adapter_and_xtreme_score(tmp_path, tatoeba_files):
    store = tmp_path / "store"
    make_entry(store, "inter", "tiny-xlmr")
    out = tmp_path / "tatoeba.json"
    result = CliRunner().invoke(main, ["retrieve", "--task", "tatoeba", "--adapter", "inter", "--store", str(store),
                                       "--languages", "de,zh", "--data", f"validation={tatoeba_files['validation']}",
                                       "--output", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert set(saved["metrics"]) == {"de", "zh"} and saved["direction"] == "en->xx"
    assert 0 <= xtreme_score({"tatoeba": saved["metrics"]})["tasks"]["tatoeba"]["avg_metric"] <= 100


def test_bad_retrieval_inputs(tmp_path):
    with pytest.raises(ConfigError, match=r"task 'tatoeba' has no language\(s\) \['xx'\]"):
        retrieve("tatoeba", model="tiny-xlmr", data=DataConfig(languages=["xx"]))
    with pytest.raises(ConfigError, match="has no training data.*adapterxl retrieve"):
        RunConfig.from_dict({"task": "tatoeba"})
    with pytest.raises(ConfigError, match="is not a retrieval task"):
        retrieve("xnli", model="tiny-xlmr")
    with pytest.raises(ConfigError, match="BUCC folder .* does not exist"):
        retrieve("bucc2018", model="tiny-xlmr", bucc_dir=str(tmp_path / "nope"))
    assert get_task("tatoeba").source.config_for("zh") == "tatoeba.cmn"


def _declared_retrieval(tmp_path, family: str, **extra):
    """A declared retrieval task on the synthetic parallel sentences (de, ru against English)."""
    root = tmp_path / family
    for lang in ("de", "ru"):
        xx, en = parallel(lang, 16)
        if family == "aligned_corpora":
            write_jsonl(root / f"{lang}.jsonl", [{"text": s} for s in xx])
            write_jsonl(root / "en.jsonl", [{"text": s} for s in en])
        else:
            write_jsonl(root / f"{lang}.jsonl", [{"src": a, "en": b} for a, b in zip(xx, en, strict=True)])
    columns = {} if family == "aligned_corpora" else {"columns": {"source": "src", "target": "en"}}
    spec = {"family": family, "languages": ["de", "ru"], "data": {"validation": str(root / "{lang}.jsonl")},
            **columns, **extra}  # fmt: skip
    return {"my_parallel": spec}


@pytest.mark.parametrize("family", ["aligned_pairs", "bitext_mining", "aligned_corpora"])
def test_declared_retrieval_task_scores_with_its_familys_protocol(tmp_path, family):
    from adapterxl.tasks import BUILTIN

    registry = BUILTIN.declare(_declared_retrieval(tmp_path, family), "test")
    task = registry.get("my_parallel")
    assert task.kind == "retrieval" and task.family.name == family
    data = DataConfig()
    for lang in ("de", "ru"):
        xx, en = parallel(lang, 16)
        encode = PerfectEncoder(list(zip(xx, en, strict=True)))
        scores = task.family.evaluate(encode, task, lang, data, {}, rows_of(task, data))
        expected = {
            "aligned_pairs": {"accuracy": 100.0},
            "aligned_corpora": {"accuracy": 100.0, "accuracy_xx2en": 100.0, "accuracy_en2xx": 100.0},
        }.get(family)
        if expected:
            assert scores == expected
        else:  # bitext mining: every gold pair mined, nothing else
            assert scores["f1"] == pytest.approx(100.0)
    assert "my_parallel" not in BUILTIN  # declared in its registry only


def test_declared_retrieval_task_runs_in_retrieve_and_the_cli(tmp_path):
    import yaml

    from adapterxl.tasks import BUILTIN

    declaration = _declared_retrieval(tmp_path, "aligned_pairs")
    out = retrieve("my_parallel", model="tiny-xlmr", tasks=BUILTIN.declare(declaration))
    assert set(out["metrics"]) == {"de", "ru"} and out["direction"] == "en->xx"
    assert all(0 <= m["accuracy"] <= 100 for m in out["metrics"].values())
    file = tmp_path / "pairs.yaml"
    file.write_text(yaml.safe_dump({"tasks": declaration}), encoding="utf-8")
    saved = tmp_path / "out.json"
    result = CliRunner().invoke(main, ["retrieve", "--task", "my_parallel", "--tasks", str(file), "--model",
                                       "tiny-xlmr", "--output", str(saved)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(saved.read_text())["metrics"] == out["metrics"]  # the same numbers through the CLI
    unknown = CliRunner().invoke(main, ["retrieve", "--task", "my_parallel", "--model", "tiny-xlmr"])
    assert unknown.exit_code != 0 and "unknown task 'my_parallel'" in unknown.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": {"train": "x.jsonl"}}, "a retrieval task has no training data"),
        ({"labels": ["a", "b"]}, "has no labels"),
        ({"pivot": "fr"}, "pivot is a key of family aligned_corpora"),
        ({"train_language": "de"}, "has no training data: drop train_language"),
    ],
)
def test_bad_retrieval_declarations_are_clear_errors(tmp_path, change, message):
    from adapterxl.tasks import BUILTIN

    spec = _declared_retrieval(tmp_path, "aligned_pairs")["my_parallel"]
    with pytest.raises(ConfigError, match=message):
        BUILTIN.declare({"bad": {**spec, **change}})
    corpora = _declared_retrieval(tmp_path, "aligned_corpora")["my_parallel"]
    with pytest.raises(ConfigError, match="pivot"):
        BUILTIN.declare({"bad": {**corpora, "pivot": "de"}})  # the pivot is one of the languages


def test_the_pivots_sentences_are_encoded_once_per_retrieval(tmp_path, monkeypatch):
    from adapterxl import embeddings  # retrieve imports embed from it when it runs
    from adapterxl.tasks import BUILTIN

    registry = BUILTIN.declare(_declared_retrieval(tmp_path, "aligned_corpora"))
    calls = []
    real = embeddings.embed

    def counting(backbone, tokenizer, sentences, *args):
        calls.append(list(sentences))
        return real(backbone, tokenizer, sentences, *args)

    monkeypatch.setattr(embeddings, "embed", counting)
    out = retrieve("my_parallel", model="tiny-xlmr", tasks=registry)
    english = [{"text": s} for s in parallel("ru", 16)[1]]
    assert len(calls) == 3  # de, en (once, not once per language), ru
    assert sum(c == [r["text"] for r in english] for c in calls) == 1
    assert set(out["metrics"]) == {"de", "ru"}
    monkeypatch.setattr(embeddings, "embed", real)
    assert retrieve("my_parallel", model="tiny-xlmr", tasks=registry)["metrics"] == out["metrics"]
