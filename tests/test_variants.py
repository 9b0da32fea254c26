"""Composition and training variants: fusion, sequential transfer, additive LoRA stacks, language
adapters (MAD-X), multi-task training with task sampling, MLM, translated / mixed-language data.

For each: exactly which parameters train, reload of the saved setup to identical outputs, and
training that lowers the loss."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import make_entry, run_config

from adapterxl import RunConfig, run
from adapterxl.config import DataConfig, parse_sampling
from adapterxl.data import load_task_data
from adapterxl.fixtures import build_tiny_backbone, write_text_fixture
from adapterxl.modeling import load_backbone, load_stored, save_to_folder, setup_mode, start_fusion
from adapterxl.store import AdapterStore
from adapterxl.tasks import get_task
from adapterxl.training import TaskBatches, task_probabilities

XNLI = get_task("xnli")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Intermediate adapters (three bottleneck, one LoRA) and two language adapters."""
    root = tmp_path_factory.mktemp("variant-store")
    for name in ("inter-a", "inter-b", "inter-c"):
        make_entry(root, name, "tiny-xlmr")
    make_entry(root, "inter-lora", "tiny-xlmr", adapter="lora")
    for lang in ("en", "de"):
        make_entry(root, f"lang-{lang}", "tiny-xlmr", adapter="seq_bn_inv", manifest={"train_languages": [lang]})
    _perturb_entries(root)
    return root


def _perturb_entries(root) -> None:
    """Fresh adapters are near-identity (LoRA: exactly): make every stored one visible."""
    from safetensors.torch import load_file, save_file

    gen = torch.Generator().manual_seed(0)
    for path in sorted(root.glob("*/adapter.safetensors")):
        weights = load_file(path)
        save_file({k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in weights.items()}, path)
    for entry in AdapterStore(root).entries():  # keep the recorded checksums true
        manifest = json.loads((entry.path / "manifest.json").read_text())
        from adapterxl.store import checksums

        manifest["files"] = {k: v for k, v in checksums(entry.path).items() if k in manifest.get("files", {})}
        (entry.path / "manifest.json").write_text(json.dumps(manifest))


def owned_by(names, *owners):
    return {n for n in names for o in owners if re.search(rf"(\.adapters\.{o}\.|^heads\.{o}\.|\.loras\.{o}\.)", n)}


def _perturbed(model) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def _batch(tok):
    return tok(["the big dog sleeps .", "le chat"], ["the dog is big .", "le chien"], padding=True, return_tensors="pt")


VARIANTS = {
    # name: (mode, adapter, intermediates, language adapters, expected trainable owners)
    "fuse": ("fuse", "seq_bn", ["inter-a", "inter-b", "inter-c"], [], ["fusion"]),
    "fuse-joint": ("fuse", "seq_bn", ["inter-a", "inter-b", "inter-c"], [], ["fusion", "tgt"]),
    "sequential": ("sequential", "seq_bn", ["inter-a"], [], ["tgt"]),
    "lora-add": ("stack", "lora", ["inter-lora"], [], ["tgt"]),
    "mad-x": ("stack", "seq_bn", ["inter-a"], ["lang-en", "lang-de"], ["tgt"]),
}


def _build(store, variant):
    mode, adapter, inter, langs, _ = VARIANTS[variant]
    st = AdapterStore(store)
    model, tok = load_backbone("tiny-xlmr")
    core = setup_mode(
        model,
        mode,
        "tgt",
        XNLI,
        adapter,
        [st.get(n) for n in inter],
        language_adapters=[st.get(n) for n in langs],
        language=langs[0] if langs else None,
    )
    if mode == "fuse":
        start_fusion(model, core, "tgt", "dynamic", joint=variant == "fuse-joint")
    return model, tok, core


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_trains_exactly_its_parts(store, variant):
    model, tok, _ = _build(store, variant)
    names = {n for n, _ in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    owners = VARIANTS[variant][4]
    expected = owned_by(names, *[o for o in owners if o != "fusion"]) | {n for n in names if n.startswith("heads.tgt.")}
    if "fusion" in owners:
        expected |= {n for n in names if ".adapter_fusion_layer." in n}
    assert trainable == expected
    frozen_adapters = {n for n in names if re.search(r"\.(adapters|loras)\.(inter|lang)", n)}
    assert not frozen_adapters & trainable
    assert bool(frozen_adapters) == (variant != "sequential")  # sequential loads the intermediate as `tgt`
    assert not any(n.startswith("roberta.") and not re.search(r"adapter|lora", n) for n in trainable)
    # A backward pass reaches only trainable parameters.
    model.train()
    model(**_batch(tok), labels=torch.tensor([0, 2])).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and with_grad <= trainable


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_setup_reloads_to_identical_outputs(store, tmp_path, variant):
    from adapters import AutoAdapterModel

    model, tok, _ = _build(store, variant)
    _perturbed(model)
    model.eval()
    expected = model(**_batch(tok)).logits
    setup = model.active_adapters
    kind = "adapter" if variant == "sequential" else "setup"
    manifest = {"kind": kind, "task": "xnli", "base_model": "tiny-xlmr", "adapter_config": "seq_bn"}
    entry = AdapterStore(tmp_path).save("tgt", lambda d: save_to_folder(model, setup, "tgt", d), manifest, "card")
    fresh, _ = load_backbone("tiny-xlmr")
    load_stored(fresh, entry)
    fresh.eval()
    assert torch.equal(fresh(**_batch(tok)).logits, expected)
    plain = AutoAdapterModel.from_pretrained(build_tiny_backbone("tiny-xlmr"))  # without adapterxl
    if kind == "adapter":
        plain.load_adapter(str(entry.path), set_active=True, use_safetensors=True)
    else:
        plain.load_adapter_setup(str(entry.path), set_active=True, use_safetensors=True)
    plain.eval()
    assert torch.equal(plain(**_batch(tok)).logits, expected)


def test_lora_stack_adds_the_updates(store):
    """Intermediate + fresh target LoRA (B = 0) gives the intermediate alone; the stack is not the
    multiplicative one that would drop the intermediate."""
    from adapters.composition import Stack

    model, tok, core = _build(store, "lora-add")
    model.eval()
    summed = model(**_batch(tok)).logits
    model.active_adapters = Stack("inter-lora")
    alone = model(**_batch(tok)).logits
    model.active_adapters = Stack("inter-lora", "tgt")  # the multiplicative composition
    multiplied = model(**_batch(tok)).logits
    torch.testing.assert_close(summed, alone, rtol=0, atol=1e-5)
    assert not torch.allclose(summed, multiplied, atol=1e-3)


def test_sequential_starts_from_the_intermediate_weights(store):
    model, _, _ = _build(store, "sequential")
    from safetensors.torch import load_file

    stored = load_file(AdapterStore(store).get("inter-a").path / "adapter.safetensors")
    params = dict(model.named_parameters())
    assert stored
    for key, value in stored.items():
        assert torch.equal(params[key.replace(".inter-a.", ".tgt.")], value)


def _losses(manifest, phase=None):
    history = manifest["fusion"]["phases"][phase]["history"] if phase else manifest["dev"]["history"]
    return [h["loss"] for h in history if "loss" in h]


def _moves_down(losses):
    k = max(1, len(losses) // 4)
    return np.mean(losses[-k:]) < np.mean(losses[:k])


def _xnli(nli_files, languages=("en", "de", "fr")):
    return {"data_files": nli_files["xnli"], "languages": list(languages), "max_eval_examples": 40}


TRAIN = {"epochs": 4, "batch_size": 8, "logging_steps": 1}


def test_fusion_of_three_intermediates_trains_and_reports_attention_per_language(tmp_path, store, nli_files):
    config = run_config(
        tmp_path,
        task="xnli",
        mode="fuse",
        intermediate=["inter-a", "inter-b", "inter-c"],
        store=str(store),
        save_as="xnli-fused",
        data={**_xnli(nli_files), "max_train_examples": 64},
        training=TRAIN,
        fusion={"learning_rate": 5e-3, "epochs": 4},
    )
    result = run(RunConfig.from_dict(config))
    manifest = result.manifest.to_dict()
    assert manifest["composition"] == "Fuse[inter-a, inter-b, inter-c, xnli-fused]"
    assert set(result.metrics) == {"en", "de", "fr"}
    for phase in ("train", "fusion"):
        assert _moves_down(_losses(manifest, phase)), phase
    attention = manifest["fusion"]["attention"]
    assert set(attention) == {"en", "de", "fr"}
    for weights in attention.values():
        assert list(weights) == ["inter-a", "inter-b", "inter-c", "xnli-fused"]
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0 <= w <= 1 for w in weights.values()), weights  # a softmax can saturate at 4 epochs of 5e-3
    assert manifest["kind"] == "setup"
    # The stored setup reloads and scores the same as the run did.
    from adapterxl import evaluate_setup

    again = evaluate_setup("xnli", "xnli-fused", store=str(store), data=DataConfig(**_xnli(nli_files)))
    assert again["metrics"] == result.metrics
    assert set(again["fusion_attention"]) == set(attention)
    for lang, weights in attention.items():  # the stored setup attends as the trained one did
        assert again["fusion_attention"][lang] == pytest.approx(weights, abs=1e-6)


def test_a_bf16_fusion_reports_its_attention(tmp_path, store, nli_files):
    """bf16 training (autocast, on a CPU too) and a fusion's attention weights, which the adapters
    library turns into numpy: they are collected in float32 after training."""
    config = run_config(
        tmp_path, task="xnli", mode="fuse", intermediate=["inter-a", "inter-b"], store=str(store),
        save_as="xnli-fused-bf16", data={**_xnli(nli_files, ("en", "de")), "max_train_examples": 32},
        training={**TRAIN, "epochs": 1, "bf16": True}, fusion={"epochs": 1},
    )  # fmt: skip
    result = run(RunConfig.from_dict(config))
    attention = result.manifest.to_dict()["fusion"]["attention"]
    assert set(attention) == {"en", "de"}
    assert all(sum(w.values()) == pytest.approx(1.0, abs=1e-5) for w in attention.values()), attention


@pytest.mark.parametrize("variant", ["sequential", "lora-add", "mad-x"])
def test_variant_runs_lower_the_loss(tmp_path, store, nli_files, variant):
    mode, adapter, inter, langs, _ = VARIANTS[variant]
    config = run_config(
        tmp_path,
        task="xnli",
        mode=mode,
        adapter=adapter,
        intermediate=inter,
        language_adapters={lang.split("-")[1]: lang for lang in langs},
        store=str(store),
        save_as=f"xnli-{variant}",
        data={**_xnli(nli_files), "max_train_examples": 64},
        training=TRAIN,
    )
    result = run(RunConfig.from_dict(config))
    assert _moves_down(_losses(result.manifest.to_dict()))
    if variant == "mad-x":
        # Each language runs with its own language adapter when it has one, else English's.
        assert result.manifest.language_adapters == {"en": "lang-en", "de": "lang-de", "fr": "lang-en"}
        assert result.manifest.composition == "Stack[lang-en, inter-a, xnli-mad-x]"
    if variant == "sequential":
        assert result.manifest.initialized_from == "inter-a" and result.manifest.kind == "adapter"


def test_language_adapter_trained_with_mlm_then_used_in_a_stack(tmp_path, nli_files):
    text = write_text_fixture(tmp_path, ("en", "de"))
    store = tmp_path / "store"
    for lang in ("en", "de"):
        config = run_config(
            tmp_path,
            task="mlm",
            adapter="seq_bn_inv",
            save_as=f"mlm-{lang}",
            data={"data_files": {"train": text}, "train_languages": [lang], "max_eval_examples": 30},
            training={"epochs": 3, "batch_size": 16, "logging_steps": 1, "learning_rate": 5e-3},
        )
        result = run(RunConfig.from_dict(config))
        assert set(result.metrics) == {lang} and 0 <= result.metrics[lang]["accuracy"] <= 100
        assert result.manifest.train_languages == [lang]
        assert _moves_down(_losses(result.manifest.to_dict()))
    entry = AdapterStore(store).get("mlm-en")
    model, _ = load_backbone("tiny-xlmr")
    load_stored(model, entry)
    trainable_inv = [n for n, _ in model.named_parameters() if "invertible_adapters.mlm-en" in n]
    assert trainable_inv  # an invertible (MAD-X) language adapter
    config = run_config(
        tmp_path,
        task="xnli",
        mode="adapter",
        language_adapters={"en": "mlm-en", "de": "mlm-de"},
        save_as="xnli-madx",
        data={**_xnli(nli_files, ("en", "de")), "max_train_examples": 32},
    )
    result = run(RunConfig.from_dict(config))
    assert result.manifest.language_adapters == {"en": "mlm-en", "de": "mlm-de"}


# -- multi-task training ------------------------------------------------------------------------------


def test_task_probabilities_follow_the_sampling_scheme():
    sizes = {"a": 100, "b": 300, "c": 600}
    tasks = list(sizes)
    prop = task_probabilities(parse_sampling("proportional", tasks), sizes)
    assert prop == pytest.approx({"a": 0.1, "b": 0.3, "c": 0.6})
    assert task_probabilities(parse_sampling("uniform", tasks), sizes) == pytest.approx(dict.fromkeys(tasks, 1 / 3))
    temp = task_probabilities(parse_sampling("temperature=2", tasks), sizes)
    root = {t: n**0.5 for t, n in sizes.items()}
    assert temp == pytest.approx({t: r / sum(root.values()) for t, r in root.items()})
    fixed = task_probabilities(parse_sampling("proportional, c=0.5", tasks), sizes)
    assert fixed == pytest.approx({"a": 0.125, "b": 0.375, "c": 0.5})
    weights = task_probabilities(parse_sampling({"a": 1, "b": 1, "c": 2}, tasks), sizes)
    assert weights == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.5})


def test_task_batches_sample_in_proportion_and_cycle_through_each_task():
    sizes = {"a": 100, "b": 300, "c": 600}
    batches = TaskBatches(sizes, {"a": 0.1, "b": 0.3, "c": 0.6}, 5000, 8, seed=0)
    shares = {t: c / 5000 for t, c in batches.counts.items()}
    # 3 standard deviations of a binomial share at n = 5000 is at most 0.022.
    assert shares == pytest.approx({"a": 0.1, "b": 0.3, "c": 0.6}, abs=0.022)
    seen = {t: [] for t in sizes}
    for task, rows in batches.items:
        assert len(rows) == 8 and rows.max() < sizes[task]
        seen[task].extend(rows.tolist())
    first_epoch = seen["a"][:100]
    assert sorted(first_epoch) == list(range(100))  # every row once before any repeats


def test_multitask_run_shares_the_adapter_and_samples_as_configured(tmp_path, nli_files):
    text = write_text_fixture(tmp_path, ("en", "de"))
    config = run_config(
        tmp_path,
        task=["mnli", "xnli", "mlm"],
        save_as="multi",
        sampling="uniform, mlm=0.2",
        data={"data_files": nli_files["mnli"], "max_train_examples": 120, "max_eval_examples": 30},
        task_data={
            "xnli": {"data_files": nli_files["xnli"], "languages": ["en"]},
            "mlm": {"data_files": {"train": text}, "train_languages": ["en", "de"], "max_seq_length": 32},
        },
        training={"max_steps": 150, "batch_size": 4, "logging_steps": 1, "eval_steps": 75},
    )
    result = run(RunConfig.from_dict(config))
    manifest = result.manifest.to_dict()
    sampling = manifest["sampling"]
    assert sampling["probabilities"] == pytest.approx({"mnli": 0.4, "xnli": 0.4, "mlm": 0.2})
    assert sum(sampling["batches_seen"].values()) == 150
    # Measured over the run: within 3 standard deviations of a binomial share at n = 150 (<= 0.12).
    for task, p in sampling["probabilities"].items():
        seen = sampling["batches_seen"][task] / 150
        assert abs(seen - p) <= 3 * (p * (1 - p) / 150) ** 0.5, (task, seen, p)
    # One shared NLI head for mnli and xnli (same label set), one MLM head.
    assert manifest["heads"] == {"multi-mnli": "mnli", "multi-mlm": "mlm"}
    assert set(result.metrics) == {"mnli", "xnli", "mlm"} and set(result.metrics["mlm"]) == {"en", "de"}
    assert _moves_down(_losses(manifest))
    entry = AdapterStore(config["store"]).get("multi")
    assert entry.kind == "adapter" and sorted(p.name for p in entry.path.glob("head-*")) == [
        "head-multi-mlm",
        "head-multi-mnli",
    ]
    model, _ = load_backbone("tiny-xlmr")
    assert load_stored(model, entry) == "multi-mnli" and set(model.heads) == {"multi-mnli", "multi-mlm"}
    # The stored adapter + NLI head score the same as at the end of the run.
    from adapterxl import evaluate_setup

    data = DataConfig(data_files=nli_files["mnli"], max_eval_examples=30, max_seq_length=64)
    again = evaluate_setup("mnli", "multi", store=config["store"], data=data)
    assert again["metrics"] == result.metrics["mnli"]


def test_multitask_trainable_parameters_are_the_adapter_and_every_head():
    model, _ = load_backbone("tiny-xlmr")
    heads = {"m-mnli": get_task("mnli"), "m-squad": get_task("squad"), "m-mlm": get_task("mlm")}
    setup_mode(model, "adapter", "m", get_task("mnli"), "seq_bn", [], heads=heads)
    names = {n for n, _ in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # The MLM head's output layer is tied to the (frozen) input embeddings; its bias stays frozen too.
    assert trainable == owned_by(names, "m", "m-mnli", "m-squad", "m-mlm") - {"heads.m-mlm.3.bias"}
    assert not any("word_embeddings" in n for n in trainable)


# -- translated and mixed-language training data ------------------------------------------------------


def test_training_languages_mix_in_the_configured_shares(nli_files):
    data = DataConfig(
        data_files=nli_files["xnli"], train_languages={"en": 3, "de": 1}, max_train_examples=80, languages=["en"]
    )
    loaded = load_task_data(XNLI, data, seed=0)
    per_language = {
        lang: {(r["premise"], r["hypothesis"]) for r in _rows(nli_files["xnli"]["train"].format(lang=lang))}
        for lang in ("en", "de")
    }
    rows = [(r["text"], r["text_pair"]) for r in loaded.train]
    assert len(rows) == 80
    assert sum(r in per_language["en"] for r in rows) == 60 and sum(r in per_language["de"] for r in rows) == 20
    both = DataConfig(data_files=nli_files["xnli"], train_languages=["de", "fr"], languages=["en"])
    assert len(load_task_data(XNLI, both).train) == 200  # each language's whole train split


def _rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_translate_train_run_lowers_the_loss(tmp_path, nli_files):
    config = run_config(
        tmp_path,
        task="xnli",
        save_as="xnli-translate-train",
        data={**_xnli(nli_files, ("en", "de")), "train_languages": {"en": 1, "de": 1}, "max_train_examples": 64},
        training=TRAIN,
    )
    result = run(RunConfig.from_dict(config))
    assert result.manifest.train_languages == ["en", "de"]
    assert result.manifest.data_sizes["train"] == 64
    assert _moves_down(_losses(result.manifest.to_dict()))


# -- the translate step -------------------------------------------------------------------------------


def test_translate_writes_hub_schema_files_that_train_and_are_cached(tmp_path, nli_files, monkeypatch):
    import adapterxl.translate as translate_module
    from adapterxl.fixtures import build_tiny_translator
    from adapterxl.translate import translate_task_data

    model = str(build_tiny_translator())
    source = DataConfig(data_files=nli_files["mnli"], max_train_examples=24)
    paths = translate_task_data("mnli", model, ["de", "sw"], tmp_path / "tr", data=source, max_new_tokens=16)
    assert set(paths) == {"de", "sw"} and paths["de"] == tmp_path / "tr" / "mnli" / "de" / "train.jsonl"
    english = _rows(nli_files["mnli"]["train"])[:24]
    for path in paths.values():
        rows = _rows(path)
        assert len(rows) == 24 and all(set(r) == {"premise", "hypothesis", "label"} for r in rows)
        assert [r["label"] for r in rows] == [r["label"] for r in english]  # labels carried over
        assert [r["premise"] for r in rows] != [r["premise"] for r in english]  # text is the model's
    # Cached: the same settings translate nothing again; other settings do.
    monkeypatch.setattr(translate_module, "_translator", lambda *a: pytest.fail("translated again"))
    assert translate_task_data("mnli", model, ["de"], tmp_path / "tr", data=source, max_new_tokens=16) == {
        "de": paths["de"]
    }
    with pytest.raises(pytest.fail.Exception, match="translated again"):
        translate_task_data("mnli", model, ["de"], tmp_path / "tr", data=source, max_new_tokens=8)
    # The files train an intermediate adapter on English + translated data.
    config = run_config(
        tmp_path,
        task="mnli",
        save_as="mnli-mixed",
        data={
            "data_files": {"train": str(tmp_path / "tr" / "mnli" / "{lang}" / "train.jsonl")},
            "train_languages": ["de", "sw"],
            "max_eval_examples": 20,
        },
    )
    config["data"]["data_files"]["validation"] = nli_files["mnli"]["validation"]
    result = run(RunConfig.from_dict(config))
    assert result.manifest.data_sizes["train"] == 48


def test_translate_refuses_span_tasks_and_unknown_models(tmp_path, nli_files):
    from adapterxl.errors import DataError
    from adapterxl.translate import translate_task_data

    with pytest.raises(DataError, match="task 'squad' \\(qa\\) cannot be translated"):
        translate_task_data("squad", "m", ["de"], tmp_path)
    with pytest.raises(DataError, match="could not load translation model 'no/such-model'"):
        translate_task_data("mnli", "no/such-model", ["de"], tmp_path, data=DataConfig(data_files=nli_files["mnli"]))


def test_translate_cli(tmp_path, nli_files):
    from click.testing import CliRunner

    from adapterxl.cli import main
    from adapterxl.fixtures import build_tiny_translator

    out = CliRunner().invoke(
        main,
        ["translate", "mnli", "--model", str(build_tiny_translator()), "--to", "de", "--out", str(tmp_path),
         "--data", f"train={nli_files['mnli']['train']}", "--max-examples", "8"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert f"de: {tmp_path}/mnli/de/train.jsonl" in out.output and "{lang}" in out.output


def test_cli_report_shows_task_shares_and_fusion_attention():
    from types import SimpleNamespace

    from adapterxl.manifest import Manifest
    from adapterxl.report import result_lines

    fused = SimpleNamespace(
        name="f",
        metrics={"en": {"accuracy": 50.0}, "de": {"accuracy": 40.0}},
        summary={"metric": "accuracy"},
        manifest=Manifest(
            "f", "tiny-xlmr", fusion={"attention": {"en": {"a": 0.25, "t": 0.75}, "de": {"a": 0.5, "t": 0.5}}}
        ),
    )
    text = "\n".join(result_lines(fused))
    assert "language      a      t" in text and "en        0.250  0.750" in text and "de        0.500  0.500" in text
    multi = SimpleNamespace(
        name="m",
        metrics={"mnli": {"en": {"accuracy": 60.0}}, "mlm": {"de": {"accuracy": 10.0}}},
        summary={"tasks": {"mnli": {"metric": "accuracy"}, "mlm": {"metric": "accuracy"}}},
        manifest=Manifest(
            "m",
            "tiny-xlmr",
            tasks=["mnli", "mlm"],
            sampling={"probabilities": {"mnli": 0.8, "mlm": 0.2}, "shares_seen": {"mnli": 0.79, "mlm": 0.21}},
        ),
    )
    text = "\n".join(result_lines(multi))
    assert "m/mnli" in text and "m/mlm" in text and "mnli 0.79 (p=0.80), mlm 0.21 (p=0.20)" in text


def test_checkpoint_mlm_head_is_set_aside_and_starts_the_mlm_head(tmp_path):
    """Real XLM-R checkpoints are masked-LM models: `adapters` makes their head a trainable flex head
    'default'. It must not join other runs' trainable parameters; the MLM task's head starts from it."""
    from transformers import AutoConfig, XLMRobertaForMaskedLM

    backbone = build_tiny_backbone("tiny-xlmr")
    torch.manual_seed(1)
    checkpoint = XLMRobertaForMaskedLM(AutoConfig.from_pretrained(backbone))
    checkpoint.save_pretrained(tmp_path / "ckpt")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(backbone).save_pretrained(tmp_path / "ckpt")
    model, _ = load_backbone(str(tmp_path / "ckpt"))
    assert list(model.heads) == []
    setup_mode(model, "adapter", "x", XNLI, "seq_bn", [])
    assert not any(n.startswith("heads.default") for n, _ in model.named_parameters())
    model, _ = load_backbone(str(tmp_path / "ckpt"))
    setup_mode(model, "adapter", "lang", get_task("mlm"), "seq_bn_inv", [])
    dense = model.heads["lang"][0].weight
    assert torch.equal(dense, checkpoint.lm_head.dense.weight)
