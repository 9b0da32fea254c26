"""``adapterxl quickstart``: the whole method, end to end, offline, in a few minutes on a CPU.

1. build (once, then cached) a tiny random XLM-R-architecture backbone with a tokenizer trained
   on the multilingual text shipped in the package;
2. write MNLI-like and XNLI-like synthetic data in the Hub schemas (8 languages);
3. train an intermediate MNLI adapter on the frozen backbone;
4. train the XNLI target three ways: an adapter stacked on the MNLI adapter, the same adapter
   without intermediate (baseline), and full fine-tuning (baseline);
5. evaluate all three zero-shot in 7 non-English languages and print a table.

The config it ran is written as ``<out>/quickstart.yaml``, the results next to it as
``<out>/quickstart.results.json``; the adapters go to the store.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .config import default_store
from .fixtures import build_tiny_backbone, fixture_languages, write_nli_fixture
from .pipeline import RunResult, run_file
from .report import SMOKE_BANNER, results_table

SETUP_LABELS = {
    "quickstart-xnli-stack": "stack: mnli -> xnli",
    "quickstart-xnli-adapter": "adapter: xnli only",
    "quickstart-xnli-full": "full fine-tuning",
}


def quickstart_config(data_files: dict[str, dict[str, str]], store: str, languages: list[str], runs_dir: str) -> dict:
    """The quickstart pipeline as a config document (what ``quickstart.yaml`` holds)."""
    defaults = {
        "model": "tiny-xlmr",
        "seed": 13,
        "store": store,
        "overwrite": True,
        "data": {"max_seq_length": 64, "languages": languages},
        # A tiny random backbone needs larger steps than a pretrained one (1e-4 / 2e-5).
        "training": {"epochs": 4, "batch_size": 32, "learning_rate": 2e-3, "logging_steps": 100},
    }
    xnli = {"data_files": data_files["xnli"]}
    runs = [
        {
            "task": "mnli",
            "mode": "adapter",
            "save_as": "quickstart-mnli",
            "data": {"data_files": data_files["mnli"], "languages": ["en"]},
        },
        {
            "task": "xnli",
            "mode": "stack",
            "intermediate": ["quickstart-mnli"],
            "save_as": "quickstart-xnli-stack",
            "data": xnli,
        },
        {"task": "xnli", "mode": "adapter", "save_as": "quickstart-xnli-adapter", "data": xnli},
        {
            "task": "xnli",
            "mode": "full",
            "save_as": "quickstart-xnli-full",
            "data": xnli,
            "training": {"learning_rate": 2e-4},
        },
    ]
    for spec in runs:
        spec["output_dir"] = f"{runs_dir}/{spec['save_as']}"
    return {"defaults": defaults, "runs": runs}


def quickstart(out_dir: str | Path = "adapterxl-quickstart", store: str | None = None, echo=print) -> list[RunResult]:
    """Run the quickstart; returns the four run results and prints the comparison table."""
    out = Path(out_dir)
    languages = list(fixture_languages())
    echo("Building the tiny backbone (cached after the first time) ...")
    build_tiny_backbone("tiny-xlmr")
    data_files = write_nli_fixture(out / "data")
    config = quickstart_config(data_files, store or default_store(), languages, str(out / "runs"))
    path = out / "quickstart.yaml"
    header = "# adapterxl quickstart: tiny random backbone + synthetic NLI data. Numbers mean nothing.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    echo(f"Running the 4 runs of {path} ...")
    results = run_file(path)
    rows = {SETUP_LABELS[r.name]: r.metrics for r in results if r.name in SETUP_LABELS}
    echo("")
    echo(SMOKE_BANNER)
    echo(f"XNLI-like zero-shot accuracy ({len(languages) - 1} non-English languages; trained on English only):")
    echo(results_table(rows, "accuracy"))
    echo(f"\nConfig: {path}\nResults: {path.with_name('quickstart.results.json')}")
    stored = [r.store_entry for r in results if r.store_entry]
    echo("Adapters in the store: " + ", ".join(stored))
    return results
