"""Shared fixtures. Everything runs offline on tiny backbones built once per test session."""

from __future__ import annotations

import os
import tempfile

# Offline before any Hugging Face library is imported: a test that tries the Hub fails fast.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# An empty Hub cache: a model the developer has cached (multilingual-e5-small) must not change
# what the tests resolve it to (the offline copy).
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="adapterxl-test-hub-")

import pytest  # noqa: E402

from adapterxl.fixtures import nli_examples, write_jsonl, write_nli_fixture  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Build the tiny backbones into a per-session cache, never into the user's home."""
    os.environ["ADAPTERXL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["ADAPTERXL_STORE"] = str(tmp_path_factory.mktemp("default-store"))
    os.environ["HF_DATASETS_CACHE"] = str(tmp_path_factory.mktemp("hf-datasets"))


@pytest.fixture(scope="session")
def nli_files(tmp_path_factory):
    """Small MNLI-like and XNLI-like files (4 languages) in the Hub schemas."""
    root = tmp_path_factory.mktemp("nli")
    return write_nli_fixture(root, mnli_train=200, xnli_train=100, dev=60, languages=("en", "de", "fr", "zh"))


@pytest.fixture(scope="session")
def panx_files(tmp_path_factory):
    """Small PAN-X-like files (en, de, fr) in the Hub schema (the grids' tagging target)."""
    from adapterxl.fixtures import write_tagging_fixture

    return write_tagging_fixture(tmp_path_factory.mktemp("panx"), "ner", ("en", "de", "fr"), train=64, dev=24)


@pytest.fixture(scope="session")
def tiny_train_file(tmp_path_factory):
    """24 English NLI examples: the set every mode must learn to 100% accuracy."""
    path = tmp_path_factory.mktemp("tiny") / "train.jsonl"
    return str(write_jsonl(path, [dict(r, idx=i) for i, r in enumerate(nli_examples("en", 24, seed=7))]))


@pytest.fixture(scope="session")
def e5_small():
    """The offline multilingual-e5-small, converted once per test session (about 10 s)."""
    from adapterxl.backbones import offline_e5_small, offline_encoder_available

    if not offline_encoder_available():
        pytest.fail('the real-encoder tests need the offline extra: pip install -e ".[dev]" installs it')
    return offline_e5_small()


def run_config(tmp_path, **fields):
    """A RunConfig dict for fast tests: tiny backbone, store and run folders under tmp_path."""
    data = fields.pop("data", {})
    training = fields.pop("training", {})
    config = {
        "model": "tiny-xlmr",
        "store": str(tmp_path / "store"),
        "seed": 3,
        **fields,
        "data": {"max_seq_length": 64, **data},
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 2e-3, "logging_steps": 1000, **training},
    }
    config.setdefault(
        "output_dir", str(tmp_path / "runs" / config.get("save_as", str(config["task"]) + config.get("mode", "")))
    )
    return config


def make_entry(store_root, name, model_name, adapter="seq_bn", manifest=None):
    """A store entry holding a freshly initialised (untrained) adapter, as an intermediate."""
    from adapterxl.modeling import load_backbone, save_to_folder, setup_mode
    from adapterxl.store import AdapterStore
    from adapterxl.tasks import get_task

    model, _ = load_backbone(model_name)
    setup_mode(model, "adapter", name, get_task("mnli"), adapter, [])
    manifest = {
        "kind": "adapter",
        "task": "mnli",
        "base_model": model_name,
        "adapter_config": adapter,
        **(manifest or {}),
    }
    return AdapterStore(store_root).save(name, lambda d: save_to_folder(model, name, name, d), manifest, "card")
