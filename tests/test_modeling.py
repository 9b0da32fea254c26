import re

import pytest
import torch
from conftest import make_entry

from adapterxl.errors import ConfigError, StoreError
from adapterxl.modeling import (
    check_compatible,
    load_backbone,
    model_identity,
    setup_mode,
    trainable_parameter_names,
)
from adapterxl.modes import check_stack
from adapterxl.tasks import get_task

BACKBONES = ["tiny-xlmr", "tiny-bert"]


def owned_by(names, owner):
    pattern = re.compile(rf"(\.adapters\.{re.escape(owner)}\.|^heads\.{re.escape(owner)}\.)")
    return {n for n in names if pattern.search(n)}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_adapter_mode_trains_exactly_the_new_adapter_and_head(backbone):
    model, _ = load_backbone(backbone)
    setup_mode(model, "adapter", "tgt", get_task("xnli"), "seq_bn", [])
    all_names = {n for n, _ in model.named_parameters()}
    trainable = set(trainable_parameter_names(model))
    assert trainable == owned_by(all_names, "tgt")
    assert any(".adapters.tgt." in n for n in trainable) and any(n.startswith("heads.tgt.") for n in trainable)
    assert not any(n.startswith(("roberta.", "bert.")) and ".adapters." not in n for n in trainable)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_stack_mode_freezes_backbone_and_intermediate(tmp_path, backbone):
    entry = make_entry(tmp_path, "inter", backbone)
    model, tok = load_backbone(backbone)
    setup_mode(model, "stack", "tgt", get_task("xnli"), "seq_bn", [entry])
    all_names = {n for n, _ in model.named_parameters()}
    trainable = set(trainable_parameter_names(model))
    assert trainable == owned_by(all_names, "tgt")
    inter = {n for n in all_names if ".adapters.inter." in n}
    assert inter and not inter & trainable
    assert not any(n.startswith("heads.inter") for n in all_names)  # loaded without its head
    assert str(model.active_adapters) == "Stack[inter, tgt]"
    # A backward pass reaches only the target adapter and head.
    batch = tok(["a b"], ["c"], return_tensors="pt")
    model.train()
    model(**batch, labels=torch.tensor([1])).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad and with_grad <= trainable


@pytest.mark.parametrize("backbone", BACKBONES)
def test_full_mode_trains_everything_without_adapters(backbone):
    model, _ = load_backbone(backbone)
    setup_mode(model, "full", "tgt", get_task("xnli"), "seq_bn", [])
    names = [n for n, _ in model.named_parameters()]
    assert set(trainable_parameter_names(model)) == set(names)
    assert not any(".adapters." in n for n in names)
    assert model.active_head == "tgt" and model.heads["tgt"].config["num_labels"] == 3


def test_stack_applies_intermediate_adapter_in_forward(tmp_path):
    """The frozen intermediate adapter changes the stack's output (it is not silently skipped)."""
    entry = make_entry(tmp_path, "inter", "tiny-xlmr")
    with torch.no_grad():  # a fresh bottleneck adapter is near-identity: make this one visible
        from safetensors.torch import load_file, save_file

        weights = load_file(entry.path / "adapter.safetensors")
        save_file({k: v + 0.5 for k, v in weights.items()}, entry.path / "adapter.safetensors")
    batch = None
    outputs = []
    for intermediates in ([], [entry]):
        torch.manual_seed(0)
        model, tok = load_backbone("tiny-xlmr")
        mode = "stack" if intermediates else "adapter"
        setup_mode(model, mode, "tgt", get_task("xnli"), "seq_bn", intermediates)
        model.eval()
        batch = batch or tok(["the dog"], ["the cat"], return_tensors="pt")
        outputs.append(model(**batch).logits)
    assert not torch.allclose(outputs[0], outputs[1])


def test_lora_stacks_add_and_multiplying_mixes_are_refused(tmp_path):
    from adapterxl.modes import stack_kind

    lora = make_entry(tmp_path, "inter-lora", "tiny-xlmr", adapter="lora")
    bottleneck = make_entry(tmp_path, "inter-bn", "tiny-xlmr")
    assert stack_kind("lora", [lora]) == "add"
    assert stack_kind("seq_bn", [bottleneck]) == "stack"
    assert stack_kind("lora", [bottleneck]) == "stack"  # one LoRA member: nothing to multiply
    assert stack_kind("seq_bn", [lora]) == "stack"
    with pytest.raises(ConfigError, match="target adapter \\(unipelt\\).*multiplicatively"):
        check_stack("unipelt", [lora])  # a union holding LoRA cannot be summed with a LoRA
    with pytest.raises(ConfigError, match="intermediate 'inter-lora' \\(lora\\)"):
        check_stack("unipelt", [lora, bottleneck])


def test_adapter_on_another_base_model_is_refused(tmp_path):
    entry = make_entry(tmp_path, "inter", "tiny-xlmr")
    with pytest.raises(StoreError, match="trained on base model 'tiny-xlmr', but this run uses 'tiny-bert'"):
        check_compatible(entry, "tiny-bert")
    check_compatible(entry, "/some/local/copy/tiny-xlmr")
    assert model_identity("FacebookAI/xlm-roberta-large") == model_identity("xlm-roberta-large")


def test_unknown_adapter_config_and_model():
    model, _ = load_backbone("tiny-xlmr")
    with pytest.raises(ConfigError, match="invalid adapter config 'seq_bm'"):
        setup_mode(model, "adapter", "t", get_task("xnli"), "seq_bm", [])
    with pytest.raises(ConfigError, match="could not load model 'no-such/model'.*HF_HUB_OFFLINE=1"):
        load_backbone("no-such/model")
