"""Training options that trade speed for memory, and what a frozen backbone costs in gradients."""

from __future__ import annotations

import pytest
import torch
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.manifest import Manifest
from adapterxl.modeling import load_backbone, setup_mode
from adapterxl.tasks import get_task


@pytest.mark.parametrize("mode", ["adapter", "full"])
def test_gradient_checkpointing_recomputes_and_trains_the_same_model(tmp_path, nli_files, monkeypatch, mode):
    import adapters.model_mixin as model_mixin  # adapters' own gradient_checkpointing_enable wraps this

    calls = []
    original = model_mixin.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return original(*args, **kwargs)

    monkeypatch.setattr(model_mixin, "checkpoint", counting)
    fields = {
        "task": "xnli",
        "mode": mode,
        "data": {"data_files": nli_files["xnli"], "languages": ["en", "de"]},
        "training": {"epochs": 1, "eval_steps": 3, "learning_rate": 2e-3 if mode != "full" else 2e-4},
    }
    plain = run(RunConfig.from_dict(run_config(tmp_path / "a", save_as="plain", **fields)))
    assert calls == []
    fields["training"]["gradient_checkpointing"] = True
    recomputed = run(RunConfig.from_dict(run_config(tmp_path / "b", save_as="recomputed", **fields)))
    # every layer of every training step ran under non-reentrant checkpointing: 7 steps x 2 layers
    assert recomputed.manifest.dev["steps"] == 7  # 100 examples / 16
    assert len(calls) == 7 * 2 and set(calls) == {False}
    history = [h for h in recomputed.manifest.dev["history"] if "loss" not in h]
    assert [h["step"] for h in history] == [3, 6, 7]
    for a, b in zip(history, [h for h in plain.manifest.dev["history"] if "loss" not in h], strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    for language in ("en", "de"):
        assert recomputed.metrics[language]["accuracy"] == pytest.approx(plain.metrics[language]["accuracy"], abs=1e-9)


def test_bad_gradient_checkpointing_value_is_refused(tmp_path):
    from adapterxl.errors import ConfigError

    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        RunConfig.from_dict(run_config(tmp_path, task="mnli", training={"gradient_checkpointing": "yes please"}))


def test_frozen_weights_get_no_gradient_buffers():
    """In adapter modes only the adapter and head weights hold gradients: no buffer the size of the
    embedding matrix (250k x 1024 in XLM-R large) or of any other frozen weight."""
    model, tokenizer = load_backbone("tiny-xlmr")
    setup_mode(model, "adapter", "target", get_task("xnli"), "seq_bn", [])
    batch = tokenizer(["a b c", "d e"], padding=True, return_tensors="pt")
    model(**batch, labels=torch.tensor([0, 2])).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad and all(".adapters.target." in n or n.startswith("heads.target.") for n in with_grad)
    assert model.get_input_embeddings().weight.grad is None


def test_gradient_checkpointing_works_for_adapter_fusion(tmp_path):
    """The fusion phase (two frozen intermediates + the target adapter) gives the same loss and
    gradients with activations recomputed."""
    from adapterxl.modeling import start_fusion
    from adapterxl.store import StoreEntry

    scratch, _ = load_backbone("tiny-xlmr")
    entries = []
    for name in ("inter0", "inter1"):
        scratch.add_adapter(name, config="seq_bn")
        scratch.save_adapter(str(tmp_path / name), name, with_head=False, use_safetensors=True)
        entries.append(
            StoreEntry(name, tmp_path / name, Manifest(name, "tiny-xlmr", kind="adapter", adapter_config="seq_bn"))
        )
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model, tokenizer = load_backbone("tiny-xlmr")
        core = setup_mode(model, "fuse", "target", get_task("xnli"), "seq_bn", entries)
        start_fusion(model, core, "target", "dynamic", joint=False)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        batch = tokenizer(["a b c d", "d e", "f g h"], padding=True, return_tensors="pt")
        torch.manual_seed(1)  # the same dropout masks in both runs
        loss = model(**batch, labels=torch.tensor([0, 2, 1])).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert any("adapter_fusion_layer" in n for n in grads_a) and grads_a.keys() == grads_b.keys()
    assert loss_b == pytest.approx(loss_a, abs=1e-6)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("scheduler", ["linear", "constant_with_warmup"])
def test_lr_scheduler_sets_the_schedule_after_warmup(tmp_path, nli_files, scheduler):
    fields = {
        "task": "xnli",
        "data": {"data_files": nli_files["xnli"], "languages": ["en"]},
        "training": {"epochs": 2, "learning_rate": 1e-3, "warmup_ratio": 0.2, "logging_steps": 1,
                     "lr_scheduler": scheduler},
    }  # fmt: skip
    result = run(RunConfig.from_dict(run_config(tmp_path, save_as=scheduler, **fields)))
    rates = [h["learning_rate"] for h in result.manifest.dev["history"] if "loss" in h]
    assert len(rates) == 14  # 2 epochs x 7 steps, one log line each
    assert rates[0] < rates[2] <= 1e-3  # warmup (3 steps) in both
    if scheduler == "linear":
        assert rates[-1] < 1e-3 / 4 and rates == sorted(rates[:3]) + sorted(rates[3:], reverse=True)
    else:
        assert rates[3:] == [1e-3] * 11


def test_lr_scheduler_names_are_checked():
    from adapterxl.errors import ConfigError

    base = {"task": "xnli", "model": "tiny-xlmr"}
    with pytest.raises(ConfigError, match=r"lr_scheduler must be one of .*got 'constant_warmup' \(did you mean"):
        RunConfig.from_dict({**base, "training": {"lr_scheduler": "constant_warmup"}})
    with pytest.raises(ConfigError, match=r"warmup_ratio must be in \[0, 1\)"):
        RunConfig.from_dict({**base, "training": {"warmup_ratio": 1.5}})
