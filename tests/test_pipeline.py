"""End-to-end runs on tiny backbones: training, selection, evaluation, store, manifest, errors."""

import json

import pytest
import torch
import yaml
from conftest import make_entry, run_config

import adapterxl.pipeline as pipeline
from adapterxl import RunConfig, evaluate_setup, run
from adapterxl.config import DataConfig
from adapterxl.errors import AdapterXLError, ConfigError, DataError, StoreError
from adapterxl.fixtures import build_tiny_backbone, write_jsonl
from adapterxl.modeling import count_parameters, load_backbone, load_stored
from adapterxl.store import AdapterStore


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline-store")


def _intermediate(store_dir, tmp_path_factory, nli_files, backbone):
    name = f"mnli-{backbone}"
    if not AdapterStore(store_dir).has(name):
        run(
            RunConfig.from_dict(
                run_config(
                    tmp_path_factory.mktemp("runs"),
                    task="mnli",
                    mode="adapter",
                    model=backbone,
                    save_as=name,
                    store=str(store_dir),
                    data={"data_files": nli_files["mnli"]},
                )
            )
        )
    return name


@pytest.fixture(scope="module")
def mnli_adapter(store_dir, tmp_path_factory, nli_files):
    """An MNLI intermediate adapter on tiny-xlmr, trained once for this module."""
    return _intermediate(store_dir, tmp_path_factory, nli_files, "tiny-xlmr")


def overfit_config(tmp_path, mode, train_file, **fields):
    """40 epochs over the same 24 examples used as train and dev set."""
    spec = {
        "task": "mnli",
        "mode": mode,
        "save_as": f"overfit-{mode}",
        "data": {"data_files": {"train": train_file, "validation": train_file}},
        "training": {
            "epochs": 40,
            "batch_size": 8,
            "learning_rate": 1e-3 if mode == "full" else 5e-3,
            "warmup_ratio": 0.0,
        },
    }
    for key, value in fields.items():
        spec[key] = {**spec[key], **value} if key == "training" else value
    return RunConfig.from_dict(run_config(tmp_path, **spec))


@pytest.mark.parametrize("mode", ["adapter", "stack", "full"])
def test_every_mode_learns_a_tiny_training_set_perfectly(tmp_path, store_dir, mnli_adapter, tiny_train_file, mode):
    extra = {"intermediate": [mnli_adapter], "store": str(store_dir)} if mode == "stack" else {}
    result = run(overfit_config(tmp_path, mode, tiny_train_file, **extra))
    assert result.metrics == {"en": {"accuracy": 100.0}}
    assert result.manifest.dev["best"] == 100.0


def test_pipeline_runs_on_a_bert_backbone(tmp_path, store_dir, tmp_path_factory, nli_files, tiny_train_file):
    inter = _intermediate(store_dir, tmp_path_factory, nli_files, "tiny-bert")
    result = run(
        overfit_config(
            tmp_path,
            "stack",
            tiny_train_file,
            model="tiny-bert",
            intermediate=[inter],
            store=str(store_dir),
            save_as="bert-stack",
        )
    )
    assert result.metrics == {"en": {"accuracy": 100.0}}
    assert AdapterStore(store_dir).get("bert-stack").manifest.setup == [inter, "bert-stack"]


def _xnli_stack(tmp_path, store_dir, mnli_adapter, nli_files, save_as, **fields):
    return RunConfig.from_dict(
        run_config(
            tmp_path,
            task="xnli",
            mode="stack",
            intermediate=[mnli_adapter],
            save_as=save_as,
            store=str(store_dir),
            data={"data_files": nli_files["xnli"], "languages": ["en", "de", "fr", "zh"]},
            **fields,
        )
    )


def test_same_seed_gives_the_same_metrics_and_weights(tmp_path, store_dir, mnli_adapter, nli_files):
    first = run(_xnli_stack(tmp_path / "a", store_dir, mnli_adapter, nli_files, "det-a"))
    second = run(_xnli_stack(tmp_path / "b", store_dir, mnli_adapter, nli_files, "det-b"))
    assert first.metrics == second.metrics
    assert first.manifest.dev == second.manifest.dev
    # Bit-identical weights (tensor names contain the adapter name, so compare values in order).
    from safetensors.torch import load_file

    for part in ("adapter.safetensors", "model_head.safetensors"):
        a, b = (load_file(AdapterStore(store_dir).get(n).path / n / part) for n in ("det-a", "det-b"))
        assert len(a) == len(b) > 0
        for (ka, va), (kb, vb) in zip(sorted(a.items()), sorted(b.items()), strict=True):
            assert ka.replace("det-a", "det-b") == kb and torch.equal(va, vb)


def test_stack_run_writes_entry_manifest_and_evaluates_every_language(tmp_path, store_dir, mnli_adapter, nli_files):
    result = run(_xnli_stack(tmp_path, store_dir, mnli_adapter, nli_files, "xnli-stack"))
    assert set(result.metrics) == {"en", "de", "fr", "zh"}
    assert all(0 <= m["accuracy"] <= 100 for m in result.metrics.values())
    assert result.summary["avg"] == pytest.approx(sum(m["accuracy"] for m in result.metrics.values()) / 4)
    assert result.summary["avg_zero_shot"] == pytest.approx(
        sum(result.metrics[lang]["accuracy"] for lang in ("de", "fr", "zh")) / 3
    )
    manifest = json.loads((tmp_path / "runs" / "xnli-stack" / "manifest.json").read_text())
    for key in ("config", "versions", "seed", "git_commit", "parameters", "wall_seconds", "metrics", "data_sizes"):
        assert key in manifest, key
    assert {"torch", "transformers", "adapters"} <= set(manifest["versions"])
    assert manifest["versions"]["adapters"] == "1.3.0"
    assert manifest["seed"] == 3 and manifest["config"]["seed"] == 3
    assert manifest["wall_seconds"] > 0 and manifest["train_seconds"] > 0
    assert manifest["data_sizes"]["train"] == 100 and manifest["data_sizes"]["evaluation"]["de"] == 60
    assert 0 < manifest["parameters"]["trainable"] < manifest["parameters"]["total"]
    entry = AdapterStore(store_dir).get("xnli-stack")
    assert entry.kind == "setup" and entry.manifest.setup == [mnli_adapter, "xnli-stack"]
    assert entry.manifest.metrics == result.metrics
    for rel, digest in entry.manifest.files.items():  # checksums describe the files on disk
        import hashlib

        assert hashlib.sha256((entry.path / rel).read_bytes()).hexdigest() == digest
    card = (entry.path / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert (
        card.startswith("---\n")
        and meta["library_name"] == "adapter-transformers"
        and meta["base_model"] == "tiny-xlmr"
    )
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "mit" and meta["language"] == ["de", "en", "fr", "zh"]
    # Trained and evaluated on local files: no Hub dataset is claimed, the table holds the scores.
    assert "model-index" not in meta and "datasets" not in meta and "used local files" in card
    for lang, m in result.metrics.items():
        assert f"| {lang} | {m['accuracy']:.2f} |" in card

    # `adapterxl evaluate` on a subset of languages reproduces the run's own numbers.
    data = DataConfig(data_files=nli_files["xnli"], languages=["de", "zh"], max_seq_length=64)
    again = evaluate_setup("xnli", adapter="xnli-stack", store=str(store_dir), data=data)
    assert again["metrics"] == {lang: result.metrics[lang] for lang in ("de", "zh")}


def _perturbed(model):
    """Random non-zero values in every trainable weight (a stand-in for training)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


@pytest.mark.parametrize("mode", ["adapter", "stack"])
def test_saved_setup_reloads_to_identical_logits_with_adapterxl_and_plain_adapters(tmp_path, mode):
    from adapters import AutoAdapterModel

    from adapterxl.modeling import save_to_folder, setup_mode
    from adapterxl.tasks import get_task

    intermediates = [make_entry(tmp_path / "store", "inter", "tiny-xlmr")] if mode == "stack" else []
    model, tok = load_backbone("tiny-xlmr")
    setup_mode(model, mode, "tgt", get_task("xnli"), "seq_bn", intermediates)
    _perturbed(model)
    model.eval()
    batch = tok(
        ["the big dog sleeps .", "le chat"], ["the dog is big .", "le chien"], padding=True, return_tensors="pt"
    )
    expected = model(**batch).logits
    kind = "adapter" if mode == "adapter" else "setup"
    manifest = {"kind": kind, "task": "xnli", "base_model": "tiny-xlmr", "adapter_config": "seq_bn"}
    entry = AdapterStore(tmp_path / "store").save(
        "tgt", lambda d: save_to_folder(model, model.active_adapters, "tgt", d), manifest, "card"
    )

    fresh, _ = load_backbone("tiny-xlmr")
    load_stored(fresh, entry)
    fresh.eval()
    assert torch.equal(fresh(**batch).logits, expected)

    # Plain `adapters` code, without adapterxl, loads the stored folder too.
    plain = AutoAdapterModel.from_pretrained(build_tiny_backbone("tiny-xlmr"))
    if kind == "adapter":
        plain.load_adapter(str(entry.path), set_active=True, use_safetensors=True)
    else:
        plain.load_adapter_setup(str(entry.path), set_active=True, use_safetensors=True)
    plain.eval()
    assert torch.equal(plain(**batch).logits, expected)


def test_full_model_reloads_with_its_head(tmp_path, tiny_train_file):
    from adapters import AutoAdapterModel

    config = overfit_config(tmp_path, "full", tiny_train_file, training={"epochs": 1})
    result = run(config)
    assert result.store_entry is None and (tmp_path / "runs" / "overfit-full" / "model" / "model.safetensors").is_file()
    model = AutoAdapterModel.from_pretrained(result.model_dir)
    assert model.active_head == "overfit-full"
    params = result.manifest.parameters
    assert params["trainable"] == params["total"] == count_parameters(model)["total"]
    data = DataConfig(data_files={"validation": tiny_train_file}, max_seq_length=64)
    again = evaluate_setup("mnli", model=result.model_dir, data=data)
    assert again["metrics"] == result.metrics


# -- bad input: one clear error each, before any training ------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started although the input was bad")

    monkeypatch.setattr(pipeline, "train", fail)
    monkeypatch.setattr(pipeline, "load_backbone", fail)


def _bad_label_file(tmp_path):
    return str(write_jsonl(tmp_path / "bad.jsonl", [{"premise": "a", "hypothesis": "b", "label": "maybe"}]))


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("unknown intermediate", StoreError, r"adapter 'nope' is not in the store"),
        ("other base model", StoreError, r"trained on base model 'tiny-xlmr', but this run uses 'tiny-bert'"),
        ("lora stack", ConfigError, r"cannot stack target adapter \(unipelt\).*multiplicatively"),
        ("fuse other backbone", StoreError, r"adapter 'inter-bert' was trained on base model 'tiny-bert'"),
        ("fuse other config", ConfigError, r"mode 'fuse' needs adapters with one configuration.*'inter-r4'"),
        ("fuse lora", ConfigError, r"mode 'fuse' cannot fuse the intermediate 'inter-lora' \(lora\)"),
        ("language without adapter", ConfigError, r"language_adapters names language\(s\) \['yo'\]"),
        ("language adapter of another language", ConfigError, r"maps 'de' to 'lang-fr'.*trained on \['fr'\]"),
        ("bad adapter config", ConfigError, r"invalid adapter config 'bottleneck'"),
        ("existing entry", StoreError, r"already has an adapter named"),
        ("missing column", DataError, r"missing column\(s\) 'hypothesis'"),
        ("label outside label set", DataError, r"label 'maybe' .* not in the label set"),
        ("hub dataset offline", DataError, r"could not load Hub dataset 'facebook/xnli'.*data.data_files"),
        ("missing language file", DataError, r"no file matches .*/ar/"),
    ],
)
def test_bad_input_fails_before_training(
    tmp_path, store_dir, mnli_adapter, nli_files, no_training, case, error, message
):
    xnli = {"data_files": nli_files["xnli"], "languages": ["en", "de"]}
    fields = {"task": "xnli", "mode": "stack", "intermediate": [mnli_adapter], "store": str(store_dir), "data": xnli}
    if case == "unknown intermediate":
        fields["intermediate"] = ["nope"]
    elif case == "other base model":
        fields["model"] = "tiny-bert"
    elif case == "lora stack":
        fields["intermediate"] = [make_entry(store_dir, "inter-lora", "tiny-xlmr", "lora").name]
        fields["adapter"] = "unipelt"
    elif case == "fuse other backbone":
        fields["mode"] = "fuse"
        fields["intermediate"] = [mnli_adapter, make_entry(store_dir, "inter-bert", "tiny-bert").name]
    elif case == "fuse other config":
        fields["mode"] = "fuse"
        fields["intermediate"] = [
            mnli_adapter,
            make_entry(store_dir, "inter-r4", "tiny-xlmr", "seq_bn[reduction_factor=4]").name,
        ]
    elif case == "fuse lora":
        fields["mode"] = "fuse"
        fields["intermediate"] = [make_entry(store_dir, "inter-lora", "tiny-xlmr", "lora").name]
    elif case == "language without adapter":
        fields["language_adapters"] = {"en": "lang-en", "yo": "lang-yo"}
    elif case == "language adapter of another language":
        make_entry(store_dir, "lang-fr", "tiny-xlmr", manifest={"train_languages": ["fr"]})
        fields["language_adapters"] = {"en": mnli_adapter + "-en", "de": "lang-fr"}
        make_entry(store_dir, mnli_adapter + "-en", "tiny-xlmr")
    elif case == "bad adapter config":
        fields["adapter"] = "bottleneck"
    elif case == "existing entry":
        fields["save_as"] = mnli_adapter + "-copy"
        AdapterStore(store_dir).save(
            fields["save_as"], lambda d: None, {"kind": "adapter", "task": "x", "base_model": "tiny-xlmr"}, "card"
        )
    elif case == "missing column":
        path = write_jsonl(tmp_path / "x.jsonl", [{"premise": "a", "label": 0}])
        fields["data"] = {"data_files": {**nli_files["xnli"], "train": str(path)}}
    elif case == "label outside label set":
        fields["data"] = {"data_files": {**nli_files["xnli"], "validation": _bad_label_file(tmp_path)}}
    elif case == "hub dataset offline":
        fields["data"] = {"languages": ["en", "de"]}
    elif case == "missing language file":
        fields["data"] = {"data_files": nli_files["xnli"], "languages": ["en", "ar"]}
    with pytest.raises(error, match=message):
        run(RunConfig.from_dict(run_config(tmp_path, **fields)))
    assert issubclass(error, AdapterXLError)


def test_finished_run_folder_is_not_overwritten_silently(tmp_path, tiny_train_file, no_training):
    config = overfit_config(tmp_path, "adapter", tiny_train_file)
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a finished run"):
        run(config)


# -- interruptions never leave half-written adapters -------------------------------------------------


def test_interrupted_save_leaves_no_entry_and_keeps_the_previous_version(tmp_path, tiny_train_file, monkeypatch):
    config = overfit_config(tmp_path, "adapter", tiny_train_file, training={"epochs": 1})
    first = run(config)
    store = AdapterStore(config.store)
    before = store.get(config.name).manifest.files

    def crash(model, setup, name, folder, *rest):
        (folder / "adapter.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt  # the user pressed Ctrl-C while the adapter was being written

    monkeypatch.setattr(pipeline, "save_to_folder", crash)
    config.overwrite = True
    with pytest.raises(KeyboardInterrupt):
        run(config)
    assert store.get(config.name).manifest.files == before  # the previous version, intact
    assert [p.name for p in store.root.iterdir()] == [config.name]  # no temporary leftovers
    assert first.store_entry


def test_store_recovers_from_a_crash_between_the_two_renames(tmp_path):
    store = AdapterStore(tmp_path)
    store.save("a", lambda d: (d / "w.bin").write_bytes(b"v1"), {"kind": "adapter", "base_model": "m"}, "card")
    (tmp_path / "a").rename(tmp_path / ".old-a-1234abcd")  # state right after the first rename
    recovered = AdapterStore(tmp_path)
    assert recovered.get("a").manifest.files["w.bin"]
    assert (tmp_path / "a" / "w.bin").read_bytes() == b"v1"


def test_store_rejects_names_that_escape_it(tmp_path):
    with pytest.raises(AdapterXLError, match="invalid adapter name"):
        AdapterStore(tmp_path).path("../outside")


def test_a_rerun_reuses_finished_runs_and_continues_with_the_rest(tmp_path, nli_files, monkeypatch):
    import yaml

    import adapterxl.pipeline as pipeline

    monkeypatch.chdir(tmp_path)  # run folders: runs/<name> in the working directory
    base = {
        "task": "mnli",
        "model": "tiny-xlmr",
        "store": str(tmp_path / "st"),
        "data": {"data_files": nli_files["mnli"], "languages": ["en"]},
        "training": {"epochs": 1, "batch_size": 16},
    }
    doc = {
        "defaults": base,
        "runs": [{"save_as": "first"}, {"save_as": "second", "mode": "stack", "intermediate": ["first"]}],
    }
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(doc))
    real_run = pipeline.run

    def crash_on_second(config):
        if config.name == "second":
            raise KeyboardInterrupt  # the machine went away during run 2
        return real_run(config)

    monkeypatch.setattr(pipeline, "run", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_file(path)
    first_manifest = (tmp_path / "st" / "first" / "manifest.json").read_text()
    monkeypatch.setattr(pipeline, "run", real_run)
    results = pipeline.run_file(path)  # no overwrite needed
    assert [r.reused for r in results] == [True, False]
    assert (tmp_path / "st" / "first" / "manifest.json").read_text() == first_manifest  # not trained again
    assert (tmp_path / "st" / "second" / "manifest.json").is_file()
    assert results[0].metrics == json.loads(first_manifest)["metrics"]
