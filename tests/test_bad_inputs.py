# ruff: noqa: E501  (one table row per line reads best)
"""Every class of bad input a user can give, one table row each: the command, its exit code, the
words its one message must hold, and that nothing saved changed and no model was loaded.

Each row runs the real CLI (in-process) in a fresh folder holding a store with one intermediate
adapter (``inter``), NLI data files under ``nli/`` and whatever files the row adds. Exit code 2
means one clean ``Error: ...`` line: a traceback fails the row.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import make_entry

from adapterxl.cli import main
from adapterxl.fixtures import nli_examples, write_jsonl

NLI = {"train": "nli/train.jsonl", "validation": "nli/validation.jsonl"}
RUN = {
    "task": "mnli",
    "model": "tiny-xlmr",
    "store": "st",
    "save_as": "a",
    "data": {"data_files": NLI, "languages": ["en"]},
    "training": {"epochs": 1, "batch_size": 8},
}


def cfg(**change) -> str:
    """A run config (YAML) with ``change`` merged into :data:`RUN` (``None`` removes a key)."""
    data = json.loads(json.dumps(RUN))
    for dotted, value in change.items():
        node, *path = data, *dotted.split("__")
        *parents, leaf = path
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return yaml.safe_dump(data)


def runs(*changes: dict, defaults: dict | None = None) -> str:
    """A pipeline file: ``runs:`` of RUN-based runs (each dict changes RUN), optional ``defaults:``."""
    out = []
    for change in changes:
        out.append(yaml.safe_load(cfg(**change)))
    doc = {"runs": out}
    if defaults is not None:
        doc["defaults"] = defaults
    return yaml.safe_dump(doc)


def bad_train(name: str, content: str | bytes) -> dict:
    """Files for a run on :data:`RUN` whose training file is ``bad/NAME`` holding ``content``."""
    return {"c.yaml": cfg(data__data_files__train=f"bad/{name}"), f"bad/{name}": content}


TOPICS = {
    "tasks": {
        "topics": {
            "family": "classification",
            "languages": ["en", "de"],
            "data": {"train": "top/{lang}.jsonl", "validation": "top/{lang}.jsonl"},
        }
    },
    **{k: v for k, v in RUN.items() if k != "data"},
    "task": "topics",
}


def topics(rows_en: str, columns: dict | None = None, family: str = "classification", suffix: str = "jsonl") -> dict:
    """Files for a declared task whose English data is ``rows_en`` (the text of the file)."""
    doc = json.loads(json.dumps(TOPICS))
    task = doc["tasks"]["topics"]
    task["family"] = family
    task["data"] = {"train": f"top/{{lang}}.{suffix}", "validation": f"top/{{lang}}.{suffix}"}
    if columns:
        task["columns"] = columns
    if family == "qa":
        task["languages"] = ["en"]
    return {"c.yaml": yaml.safe_dump(doc), f"top/en.{suffix}": rows_en, f"top/de.{suffix}": rows_en}


GRID = {
    "grid": "g",
    "results_dir": "res",
    "defaults": {"model": "tiny-xlmr", "store": "st"},
    "intermediates": {"nli": {"task": "mnli", "data": {"data_files": NLI, "languages": ["en"]}}},
    "targets": {"xnli": {"task": "xnli", "data": {"data_files": NLI, "languages": ["en"]}}},
}


def grid(**change) -> str:
    return yaml.safe_dump({**GRID, **change})


@dataclass
class Case:
    id: str
    args: list[str]
    words: list[str]  # each must appear in the output (case-insensitive)
    files: dict[str, str | bytes] = field(default_factory=dict)
    code: int = 2


TRAIN = ["train", "c.yaml"]
QA_ROW = {
    "context": "Anna lives in Berlin.",
    "question": "Where?",
    "answers": {"text": ["Berlin"], "answer_start": [14]},
}

CASES = [
    # -- config files -------------------------------------------------------------------------------
    Case("config missing", TRAIN, ["c.yaml", "does not exist", "working directory"]),
    Case("config binary", TRAIN, ["c.yaml", "binary"], {"c.yaml": b"\x00\x01\x02task: mnli"}),
    Case(
        "config not utf-8", TRAIN, ["c.yaml", "not utf-8", "line 2"], {"c.yaml": "a: 1\nb: caf\xe9\n".encode("latin-1")}
    ),
    Case("config empty", TRAIN, ["c.yaml", "is empty"], {"c.yaml": "# nothing here\n"}),
    Case("config a list", TRAIN, ["a config is a mapping", "list"], {"c.yaml": "- task: mnli\n"}),
    Case("config invalid yaml", TRAIN, ["not valid yaml", "line 2"], {"c.yaml": "task: mnli\n  mode: [stack\n"}),
    Case("config too large", TRAIN, ["too large", "kB"], {"c.yaml": "task: mnli\n" + "# pad\n" * 200_000}),
    Case("unknown top key", TRAIN, ["unknown key 'trainig'", "training"], {"c.yaml": cfg(trainig={"epochs": 1})}),
    Case("unknown nested key", TRAIN, ["unknown key 'epoch'", "epochs"], {"c.yaml": cfg(training__epoch=1)}),
    Case(
        "typo under defaults",
        TRAIN,
        ["defaults.training", "unknown key 'batchsize'"],
        {"c.yaml": runs({}, defaults={"training": {"batchsize": 8}})},
    ),  # fmt: skip
    Case("defaults not a mapping", TRAIN, ["defaults: a mapping"], {"c.yaml": "defaults: 3\nruns: [{task: mnli}]\n"}),
    Case("runs empty", TRAIN, ["non-empty list"], {"c.yaml": "runs: []\n"}),
    Case("two runs one name", TRAIN, ["several runs are named", "save_as"], {"c.yaml": runs({}, {})}),
    Case(
        "negative learning rate",
        TRAIN,
        ["training.learning_rate must be positive", "-0.001"],
        {"c.yaml": cfg(training__learning_rate=-1e-3)},
    ),  # fmt: skip
    Case("learning rate far too large", TRAIN, ["far too large", "1e-4"], {"c.yaml": cfg(training__learning_rate=5)}),
    Case("zero batch size", TRAIN, ["training.batch_size must be positive"], {"c.yaml": cfg(training__batch_size=0)}),
    Case("no epochs no steps", TRAIN, ["epochs > 0"], {"c.yaml": cfg(training__epochs=0)}),
    Case("warmup ratio out of range", TRAIN, ["warmup_ratio", "[0, 1)"], {"c.yaml": cfg(training__warmup_ratio=1.5)}),
    Case(
        "negative weight decay",
        TRAIN,
        ["weight_decay must be zero or positive"],
        {"c.yaml": cfg(training__weight_decay=-0.1)},
    ),  # fmt: skip
    Case(
        "bad scheduler",
        TRAIN,
        ["lr_scheduler", "did you mean 'cosine'"],
        {"c.yaml": cfg(training__lr_scheduler="cosin")},
    ),
    Case(
        "bf16 not a switch",
        TRAIN,
        ["training.bf16", "auto, true or false"],
        {"c.yaml": cfg(training__bf16="yes please")},
    ),
    Case("seed not a number", TRAIN, ["seed", "expected int", "abc"], {"c.yaml": cfg(seed="abc")}),
    Case(
        "epochs a string",
        TRAIN,
        ["training.epochs", "expected a number", "three"],
        {"c.yaml": cfg(training__epochs="three")},
    ),
    Case(
        "zero max_train_examples",
        TRAIN,
        ["data.max_train_examples must be positive"],
        {"c.yaml": cfg(data__max_train_examples=0)},
    ),  # fmt: skip
    Case(
        "negative max_seq_length",
        TRAIN,
        ["data.max_seq_length must be positive"],
        {"c.yaml": cfg(data__max_seq_length=-5)},
    ),  # fmt: skip
    Case(
        "sequence longer than the model",
        TRAIN,
        ["max_seq_length 1024", "512"],
        {"c.yaml": cfg(data__max_seq_length=1024)},
    ),  # fmt: skip
    Case("unknown mode", TRAIN, ["unknown mode 'stak'", "did you mean 'stack'"], {"c.yaml": cfg(mode="stak")}),
    Case("unknown task", TRAIN, ["unknown task 'mnlii'", "did you mean 'mnli'"], {"c.yaml": cfg(task="mnlii")}),
    Case("retrieval task trained", TRAIN, ["no training data", "adapterxl retrieve"], {"c.yaml": cfg(task="tatoeba")}),
    Case(
        "bad adapter string", TRAIN, ["invalid adapter config 'seq_bnn'", "seq_bn"], {"c.yaml": cfg(adapter="seq_bnn")}
    ),
    Case("stack without intermediate", TRAIN, ["needs at least one intermediate"], {"c.yaml": cfg(mode="stack")}),
    Case(
        "intermediate not in store",
        TRAIN,
        ["'nope' is not in the store", "inter"],
        {"c.yaml": cfg(mode="stack", intermediate=["nope"])},
    ),  # fmt: skip
    Case(
        "sequential with two",
        TRAIN,
        ["continues training one intermediate", "or use mode"],
        {"c.yaml": cfg(mode="sequential", intermediate=["inter", "x"])},
    ),  # fmt: skip
    Case("save_as with a slash", TRAIN, ["invalid adapter name 'a/b'"], {"c.yaml": cfg(save_as="a/b")}),
    Case(
        "save_as is an input",
        TRAIN,
        ["also an input adapter"],
        {"c.yaml": cfg(mode="stack", intermediate=["inter"], save_as="inter")},
    ),
    Case("license not an id", TRAIN, ["not a hub license id"], {"c.yaml": cfg(license="My License")}),
    Case(
        "fusion config bad",
        TRAIN,
        ["fusion.config must be 'dynamic' or 'static'"],
        {"c.yaml": cfg(fusion={"config": "x"})},
    ),
    Case("language not in task", TRAIN, ["has no language(s) ['xx']"], {"c.yaml": cfg(data__languages=["xx"])}),
    Case("eval split unknown", TRAIN, ["eval", "nosuch"], {"c.yaml": cfg(data__eval_split="nosuch")}),
    Case(
        "entry exists", TRAIN, ["already has an adapter named 'inter'", "overwrite"], {"c.yaml": cfg(save_as="inter")}
    ),
    Case("store is a file", TRAIN, ["store 'st_file'", "is a file"], {"c.yaml": cfg(store="st_file"), "st_file": "x"}),
    Case(
        "run folder under a file",
        TRAIN,
        ["run folder", "is a file"],
        {"c.yaml": cfg(output_dir="blocker/run"), "blocker": "x"},
    ),
    # -- several runs: run 2's problem before run 1 trains --------------------------------------------
    Case(
        "run 2 bad adapter",
        TRAIN,
        ["run 2 of 2 (b)", "before any trains", "invalid adapter config"],
        {"c.yaml": runs({}, {"save_as": "b", "adapter": "seq_bn[reduction_factor=x]"})},
    ),  # fmt: skip
    Case(
        "run 2 missing data file",
        TRAIN,
        ["nli/missing.jsonl"],
        {
            "c.yaml": runs(
                {}, {"save_as": "b", "data": {"data_files": {**NLI, "train": "nli/missing.jsonl"}, "languages": ["en"]}}
            )
        },
    ),  # fmt: skip
    Case(
        "run 2 missing intermediate",
        TRAIN,
        ["'zz' is not in the store"],
        {"c.yaml": runs({}, {"save_as": "b", "mode": "stack", "intermediate": ["zz"]})},
    ),  # fmt: skip
    Case(
        "run 2 fuses run 1 with another config",
        TRAIN,
        ["fuse", "one configuration"],
        {
            "c.yaml": runs(
                {"adapter": "seq_bn[reduction_factor=4]"},
                {"save_as": "b", "mode": "fuse", "intermediate": ["a", "inter"]},
            )
        },
    ),  # fmt: skip
    # -- command line --------------------------------------------------------------------------------
    Case("empty --set value", [*TRAIN, "--set", "training.learning_rate="], ["empty value", "null"], {"c.yaml": cfg()}),
    Case("--set without =", [*TRAIN, "--set", "training.learning_rate"], ["not key=value"], {"c.yaml": cfg()}),
    Case(
        "--set unknown key",
        [*TRAIN, "--set", "training.lerning_rate=1e-4"],
        ["unknown key 'lerning_rate'"],
        {"c.yaml": cfg()},
    ),  # fmt: skip
    Case("train without config or task", ["train"], ["config file or at least --task"]),
    Case("--mode not a choice", ["train", "--task", "mnli", "--mode", "stak"], ["invalid value for '--mode'"]),
    Case(
        "evaluate unknown task",
        ["evaluate", "--task", "xnlli", "--adapter", "inter", "--store", "st"],
        ["unknown task 'xnlli'", "did you mean 'xnli'"],
    ),  # fmt: skip
    Case("evaluate nothing named", ["evaluate", "--task", "xnli"], ["name a stored adapter"]),
    Case(
        "evaluate missing entry",
        ["evaluate", "--task", "xnli", "--adapter", "zz", "--store", "st"],
        ["'zz' is not in the store", "inter"],
    ),  # fmt: skip
    Case(
        "evaluate a retrieval task",
        ["evaluate", "--task", "tatoeba", "--adapter", "inter", "--store", "st"],
        ["is a retrieval task", "adapterxl retrieve"],
    ),  # fmt: skip
    Case("retrieve a trained task", ["retrieve", "--task", "xnli", "--model", "tiny-xlmr"], ["not a retrieval task"]),
    Case(
        "retrieve missing bucc dir",
        ["retrieve", "--task", "bucc2018", "--model", "tiny-xlmr", "--bucc-dir", "nope"],
        ["bucc folder 'nope' does not exist"],
    ),  # fmt: skip
    Case("store show missing", ["store", "show", "zz", "--store", "st"], ["'zz' is not in the store"]),
    Case(
        "store pull malformed id",
        ["store", "pull", "not a/valid//id", "--store", "st"],
        ["is not a hub repo id", "owner/name"],
    ),
    Case(
        "store pull unreachable",
        ["store", "pull", "someone/adapter", "--store", "st"],
        ["could not download 'someone/adapter'", "hf_hub_offline"],
    ),  # fmt: skip
    Case("plan missing grid", ["plan", "g.yaml"], ["g.yaml", "does not exist"]),
    Case("report without jobs", ["report", "st"], ["no jobs/ folder"]),
    Case(
        "tasks file bad family",
        ["tasks", "t.yaml"],
        ["family", "classification"],
        {"t.yaml": "tasks:\n  x: {family: clasification, languages: [en], data: {train: a.jsonl}}\n"},
    ),  # fmt: skip
    # -- data files ----------------------------------------------------------------------------------
    Case(
        "malformed json line",
        TRAIN,
        ["train.jsonl, line 3", "not valid json"],
        bad_train("train.jsonl", '{"premise": "a", "hypothesis": "b", "label": 0}\n\n{"premise": "a", "label":}\n'),
    ),  # fmt: skip
    Case(
        "malformed json array",
        TRAIN,
        ["train.json, line 3", "not valid json"],
        bad_train("train.json", '[\n {"premise": "a", "hypothesis": "b", "label": 0},\n {"premise": }\n]\n'),
    ),  # fmt: skip
    Case(
        "ragged csv row",
        TRAIN,
        ["train.csv, line 3", "4 fields", "header has 3"],
        bad_train("train.csv", "premise,hypothesis,label\na,b,0\nc,d,1,extra\n"),
    ),  # fmt: skip
    Case(
        "data not utf-8",
        TRAIN,
        ["train.jsonl, line 2", "not utf-8", "0xe9"],
        bad_train(
            "train.jsonl",
            '{"premise": "a", "hypothesis": "b", "label": 0}\n{"premise": "caf\xe9", "hypothesis": "b", "label": 0}\n'.encode(
                "latin-1"
            ),
        ),
    ),  # fmt: skip
    Case(
        "number where text belongs",
        TRAIN,
        ["train.jsonl, line 3", "holds 5, not text"],
        bad_train(
            "train.jsonl",
            "".join(
                json.dumps(r) + "\n"
                for r in [
                    {"premise": "a", "hypothesis": "b", "label": 0},
                    {"premise": "c", "hypothesis": "d", "label": 1},
                    {"premise": 5, "hypothesis": "e", "label": 2},
                ]
            ),
        ),
    ),  # fmt: skip
    Case(
        "unseen label",
        TRAIN,
        ["train.jsonl, line 2", "'maybe'", "label set"],
        bad_train(
            "train.jsonl",
            '{"premise": "a", "hypothesis": "b", "label": 0}\n{"premise": "a", "hypothesis": "b", "label": "maybe"}\n',
        ),
    ),  # fmt: skip
    Case(
        "missing column",
        TRAIN,
        ["missing column(s) 'hypothesis'"],
        bad_train("train.jsonl", '{"premise": "a", "label": 0}\n'),
    ),  # fmt: skip
    Case(
        "empty data file",
        TRAIN,
        ["is empty", "at least one row"],
        bad_train("train.jsonl", "\n"),
    ),  # fmt: skip
    Case(
        "row without a value",
        TRAIN,
        ["train.jsonl, line 2", "no value for column 'hypothesis'"],
        bad_train("train.jsonl", '{"premise": "a", "hypothesis": "b", "label": 0}\n{"premise": "a", "label": 1}\n'),
    ),  # fmt: skip
    Case(
        "missing data file relative",
        TRAIN,
        ["no file matches 'nli/nope.jsonl'", "working directory"],
        {"c.yaml": cfg(data__data_files__train="nli/nope.jsonl")},
    ),  # fmt: skip
    Case(
        "qa duplicate ids found by the id column",
        TRAIN,
        ["en.jsonl, line 2", "'q1' repeats the id"],
        topics("".join(json.dumps({**QA_ROW, "id": "q1"}) + "\n" for _ in range(2)), family="qa"),
    ),  # fmt: skip
    Case(
        "declared task bad column",
        TRAIN,
        ["missing column(s) 'sentence'"],
        topics('{"text": "a", "label": "x"}\n', columns={"text": "sentence"}),
    ),  # fmt: skip
    # -- damaged store entries -----------------------------------------------------------------------
    Case(
        "weights changed",
        ["evaluate", "--task", "xnli", "--adapter", "inter", "--store", "st"],
        ["'inter'", "mismatch"],
        {"@flip": "st/inter/adapter.safetensors"},
    ),  # fmt: skip
    Case(
        "manifest not json",
        ["store", "show", "inter", "--store", "st"],
        ["manifest.json is not valid json", "damaged"],
        {"@write": "st/inter/manifest.json", "@text": "{ not json"},
    ),  # fmt: skip
    Case(
        "manifest from a newer adapterxl",
        ["store", "show", "inter", "--store", "st"],
        ["newer adapterxl", "upgrade"],
        {"@manifest": {"manifest_version": 99}},
    ),  # fmt: skip
    Case(
        "manifest with unknown keys",
        ["store", "show", "inter", "--store", "st"],
        ["unknown manifest key(s) ['exec']"],
        {"@manifest": {"exec": "rm -rf /"}},
    ),  # fmt: skip
    Case(
        "forged pickle in the manifest",
        ["evaluate", "--task", "xnli", "--adapter", "inter", "--store", "st"],
        ["pickled weights", "safetensors only"],
        {"@pickle": "st/inter/pytorch_model.bin"},
    ),  # fmt: skip
    # -- grids ---------------------------------------------------------------------------------------
    Case(
        "grid unknown key", ["plan", "g.yaml", "--no-count"], ["unknown key 'modez'"], {"g.yaml": grid(modez=["stack"])}
    ),
    Case(
        "grid bad mode",
        ["plan", "g.yaml", "--no-count"],
        ["not grid modes", "did you mean 'stack'"],
        {"g.yaml": grid(modes=["stak"])},
    ),  # fmt: skip
    Case(
        "grid retrieval unknown",
        ["plan", "g.yaml", "--no-count"],
        ["'wikipedia' is not a retrieval task"],
        {"g.yaml": grid(retrieval=["wikipedia"])},
    ),  # fmt: skip
    Case(
        "grid seeds repeated",
        ["plan", "g.yaml", "--no-count"],
        ["seeds must be distinct"],
        {"g.yaml": grid(seeds=[1, 1])},
    ),
    Case(
        "grid damaged job record",
        ["plan", "g.yaml", "--no-count"],
        ["tiny-xlmr--nli--adapter.json is damaged", "not finished"],
        {"g.yaml": grid(), "res/jobs/tiny-xlmr--nli--adapter.json": '{"spec": {"task": "mn'},
        code=0,
    ),  # fmt: skip
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with one intermediate adapter (``inter``) and NLI files, copied for every row."""
    root = tmp_path_factory.mktemp("bad-inputs")
    make_entry(root / "st", "inter", "tiny-xlmr")
    write_jsonl(root / "nli" / "train.jsonl", nli_examples("en", 24, seed=1))
    write_jsonl(root / "nli" / "validation.jsonl", nli_examples("en", 12, seed=2))
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "res" not in p.parts
    }


def _prepare(root: Path, files: dict) -> None:
    for name, content in files.items():
        if name == "@flip":
            path = root / content
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        elif name == "@write":
            (root / content).write_text(files["@text"], encoding="utf-8")
        elif name == "@manifest":
            path = root / "st" / "inter" / "manifest.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), **content}), encoding="utf-8")
        elif name == "@pickle":  # a pickle listed with its right checksum, as a forger would
            path = root / content
            path.write_bytes(b"\x80\x04K\x01.")  # pickle of the number 1: never to be loaded
            manifest_path = root / "st" / "inter" / "manifest.json"
            manifest = json.loads(manifest_path.read_text())
            manifest["files"][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
        elif not name.startswith("@"):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def test_the_table_covers_every_class_of_bad_input():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_message_and_changes_nothing(case, template, tmp_path, monkeypatch):
    import adapterxl.modeling
    import adapterxl.pipeline

    root = tmp_path / "w"
    shutil.copytree(template, root)
    _prepare(root, case.files)
    monkeypatch.chdir(root)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded: the check came too late")

    monkeypatch.setattr(adapterxl.pipeline, "load_backbone", no_model)
    monkeypatch.setattr(adapterxl.modeling, "load_backbone", no_model)
    before = _snapshot(root)
    result = CliRunner().invoke(main, case.args)
    output = result.output + (
        str(result.exception) if result.exception and not isinstance(result.exception, SystemExit) else ""
    )
    assert result.exit_code == case.code, output
    assert "Traceback" not in output, output
    for word in case.words:
        assert word.lower() in output.lower(), (word, output)
    after = _snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing saved changed
    assert not [k for k in after if k not in before and k.startswith("st/")]  # and nothing new in the store
