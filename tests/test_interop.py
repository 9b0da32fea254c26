"""LoRA adapters between adapterxl / ``adapters`` and PEFT: equal hidden states both ways."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_entry
from safetensors.torch import load_file, save_file

from adapterxl.backbones import resolve_model
from adapterxl.errors import ConfigError, StoreError
from adapterxl.interop import export_peft, import_peft, import_peft_to_store, load_peft, max_difference
from adapterxl.modeling import check_compatible
from adapterxl.modes import parse_adapter_config
from adapterxl.store import AdapterStore


def adapters_model(backbone="tiny-xlmr"):
    from adapters import AutoAdapterModel

    return AutoAdapterModel.from_pretrained(resolve_model(backbone)).eval()


def peft_model(folder, backbone="tiny-xlmr"):
    from peft import PeftModel
    from transformers import AutoModel

    return PeftModel.from_pretrained(AutoModel.from_pretrained(resolve_model(backbone)), str(folder)).eval()


def randomize(model, name, seed=0):
    """Non-zero A and B (adapters initialises B to zero: an untrained LoRA changes nothing)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in model.named_parameters():
            if f".loras.{name}." in key:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)


def hidden(model):
    """Every hidden state on fixed random tokens (second row padded)."""
    ids = torch.randint(5, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        return torch.stack(model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states)


def saved_adapter(tmp_path, config, backbone="tiny-xlmr", name="lora_x"):
    """(folder, hidden states with the adapter active, hidden states without) of a random LoRA."""
    model = adapters_model(backbone)
    plain = hidden(model)
    model.add_adapter(name, config=parse_adapter_config(config))
    randomize(model, name)
    model.set_active_adapters(name)
    folder = tmp_path / "adapters"
    model.save_adapter(str(folder), name, with_head=False, use_safetensors=True)
    return folder, hidden(model), plain


# adapters config -> PEFT target_modules (None: a regex, for leave_out or the feed-forward matrices)
CONFIGS = {
    "lora": ["query", "value"],  # adapters' defaults: r=8, alpha=8, q and v
    "lora[r=8,alpha=16]": ["query", "value"],
    "lora[r=4,alpha=32,dropout=0.1,attn_matrices=['q','k','v']]": ["key", "query", "value"],
    "lora[r=2,alpha=3,attn_matrices=['k'],leave_out=[0]]": None,
    "lora[r=4,alpha=8,intermediate_lora=True,output_lora=True]": None,
    "lora[r=4,alpha=8,selfattn_lora=False,output_lora=True,leave_out=[1]]": None,
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_export_reproduces_the_adapters_hidden_states_in_peft(tmp_path, config):
    folder, ours, plain = saved_adapter(tmp_path, config)
    assert not torch.allclose(ours, plain, atol=1e-2)  # the LoRA does change the encoder
    out = export_peft(folder, tmp_path / "peft")

    model = peft_model(out)
    theirs = hidden(model)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    # PEFT put LoRA on exactly the exported modules (an extra one would hold zeros and go unnoticed)
    injected = {k.split(".", 2)[2] for k, _ in model.named_parameters() if ".lora_A.default." in k}
    exported = load_file(str(out / "adapter_model.safetensors"))
    assert {k.replace(".weight", ".default.weight").split(".", 2)[2] for k in exported if ".lora_A." in k} == injected
    peft_config = json.loads((out / "adapter_config.json").read_text())
    adapters_config = parse_adapter_config(config)
    targets = CONFIGS[config]
    assert peft_config["peft_type"] == "LORA" and peft_config["r"] == adapters_config.r
    assert peft_config["lora_alpha"] == adapters_config.alpha and peft_config["lora_dropout"] == adapters_config.dropout
    assert peft_config["base_model_name_or_path"] == resolve_model("tiny-xlmr")
    if targets:
        assert sorted(peft_config["target_modules"]) == targets
    keys = load_file(str(out / "adapter_model.safetensors"))
    assert all(k.startswith("base_model.model.encoder.layer.") and k.endswith(".weight") for k in keys)
    assert (out / "README.md").is_file()


def test_export_and_round_trip_on_bert(tmp_path):
    folder, ours, _ = saved_adapter(tmp_path, "lora[r=4,alpha=8,attn_matrices=['q','k']]", backbone="tiny-bert")
    out = export_peft(folder, tmp_path / "peft", verify=True)
    assert torch.allclose(ours, hidden(peft_model(out, "tiny-bert")), atol=1e-5)
    back = import_peft(out, tmp_path / "back", name="again")
    model = adapters_model("tiny-bert")
    model.load_adapter(str(back), set_active=True, use_safetensors=True)
    assert torch.allclose(ours, hidden(model), atol=1e-5)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_round_trip_import_gives_the_same_adapter(tmp_path, config):
    folder, ours, _ = saved_adapter(tmp_path, config)
    out = export_peft(folder, tmp_path / "peft")
    back = import_peft(out, tmp_path / "back")
    saved = json.loads((back / "adapter_config.json").read_text())
    assert saved["name"] == "back"
    original = parse_adapter_config(config).to_dict()
    imported = saved["config"]
    for option in ("r", "alpha", "dropout", "leave_out", "intermediate_lora", "output_lora", "selfattn_lora"):
        assert imported[option] == original[option], option
    if original["selfattn_lora"]:
        assert imported["attn_matrices"] == original["attn_matrices"]
    model = adapters_model()
    name = model.load_adapter(str(back), set_active=True, use_safetensors=True)
    assert name == "back"
    assert torch.allclose(ours, hidden(model), atol=1e-5)
    first = load_file(str(folder / "adapter.safetensors"))
    again = load_file(str(back / "adapter.safetensors"))
    assert {k.replace(".loras.lora_x.", ".loras.back.") for k in first} == set(again)
    assert all(torch.equal(v, again[k.replace(".loras.lora_x.", ".loras.back.")]) for k, v in first.items())


def peft_native(tmp_path, **options):
    """A PEFT LoRA folder trained (here: randomised) with PEFT itself on tiny-xlmr, and its hidden states."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    path = resolve_model("tiny-xlmr")
    options = {"r": 4, "lora_alpha": 12, "target_modules": ["query", "key", "value"], **options}
    model = get_peft_model(AutoModel.from_pretrained(path), LoraConfig(base_model_name_or_path=path, **options))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for key, param in model.named_parameters():
            if "lora_" in key:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    folder = tmp_path / "native"
    model.save_pretrained(str(folder))
    return folder, hidden(model.eval())


def test_a_peft_trained_adapter_imports_into_adapters(tmp_path):
    folder, theirs = peft_native(tmp_path, layers_to_transform=[1], layers_pattern="layer", lora_dropout=0.1)
    model = adapters_model()
    assert load_peft(model, folder, "native") == "native"
    model.set_active_adapters("native")
    assert torch.allclose(theirs, hidden(model), atol=1e-5)
    config = model.adapters_config.get("native")
    assert config["leave_out"] == [0] and config["attn_matrices"] == ["q", "k", "v"] and config["alpha"] == 12
    assert config["dropout"] == 0.1


def test_import_into_the_store_and_export_the_entry(tmp_path):
    folder, theirs = peft_native(tmp_path, target_modules=["query", "value", "intermediate.dense"])
    store = AdapterStore(tmp_path / "store")
    entry = import_peft_to_store(store, folder, "from_peft")
    assert store.verify("from_peft").manifest.kind == "adapter"
    m = entry.manifest
    assert m.base_model == "tiny-xlmr" and m.base_model_source == "tiny-random" and m.mode is None
    assert m.adapter_config == "lora[intermediate_lora=True,r=4,alpha=12]"
    assert (
        parse_adapter_config(m.adapter_config).to_dict()
        == json.loads((entry.path / "adapter_config.json").read_text())["config"]
    )
    check_compatible(entry, "tiny-xlmr")  # usable as an intermediate of tiny-xlmr runs
    model = adapters_model()
    model.load_adapter(str(entry.path), load_as="from_peft", with_head=False, set_active=True, use_safetensors=True)
    assert torch.allclose(theirs, hidden(model), atol=1e-5)
    out = export_peft(entry, tmp_path / "again", verify=True)
    assert torch.allclose(theirs, hidden(peft_model(out)), atol=1e-5)
    with pytest.raises(StoreError, match="already has an adapter named 'from_peft'"):
        import_peft_to_store(store, folder, "from_peft")


def test_a_store_entry_exports(tmp_path):
    entry = make_entry(tmp_path / "store", "inter", "tiny-xlmr", adapter="lora[r=4,alpha=16]")
    # A trained LoRA: random A and B in the entry's weights (make_entry's B is zero).
    weights = entry.path / "adapter.safetensors"
    generator = torch.Generator().manual_seed(5)
    save_file({k: torch.randn(v.shape, generator=generator) * 0.2 for k, v in load_file(str(weights)).items()},
              str(weights))  # fmt: skip
    entry = AdapterStore(tmp_path / "store").get("inter")
    model = adapters_model()
    model.load_adapter(str(entry.path), load_as="inter", with_head=False, set_active=True, use_safetensors=True)
    ours = hidden(model)

    out = export_peft(entry, tmp_path / "peft")
    assert torch.allclose(ours, hidden(peft_model(out)), atol=1e-5)
    assert json.loads((out / "adapter_config.json").read_text())["lora_alpha"] == 16
    assert "task `mnli`" in (out / "README.md").read_text()
    assert (
        export_peft(entry.path, tmp_path / "peft2") and max_difference(entry.path, out, resolve_model("tiny-xlmr")) == 0
    )
    with pytest.raises(StoreError, match="already exists and is not empty: pass overwrite"):
        export_peft(entry, out)
    with pytest.raises(StoreError, match="is the folder being converted"):
        export_peft(entry, entry.path, overwrite=True)
    with pytest.raises(StoreError, match="give a new or empty folder"):  # a PEFT folder is no adapters folder
        import_peft(out, tmp_path / "peft2", overwrite=True)
    export_peft(entry, out, overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="give a new or empty folder"):
        export_peft(entry, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "config, message",
    [
        ("seq_bn", "architecture 'bottleneck'.*only adapters' LoRAConfig"),
        ("ia3", "composition_mode='scale' cannot be exported to PEFT"),
        ("lora[use_gating=True]", "use_gating=True cannot be exported to PEFT .PEFT LoRA has no gate"),
        ("lora[use_dora=True]", "use_dora=True cannot be exported"),
        ("vera", "vera_d=0.1 cannot be exported to PEFT .this is a VeRA adapter"),
        ("union", "a config union"),
    ],
)
def test_export_refuses_what_peft_lora_cannot_express(tmp_path, config, message):
    from adapters import ConfigUnion, LoRAConfig, SeqBnConfig

    model = adapters_model()
    union = ConfigUnion(LoRAConfig(), SeqBnConfig())
    model.add_adapter("x", config=union if config == "union" else parse_adapter_config(config))
    model.save_adapter(str(tmp_path / "a"), "x", with_head=False, use_safetensors=True)
    with pytest.raises(StoreError, match=message):
        export_peft(tmp_path / "a", tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_export_refuses_setups_pickles_and_peft_folders(tmp_path):
    (tmp_path / "setup").mkdir()
    (tmp_path / "setup" / "adapter_setup.json").write_text("{}")
    with pytest.raises(StoreError, match="saved adapter setup.*export the adapters of the setup one by one"):
        export_peft(tmp_path / "setup", tmp_path / "out")
    folder, _, _ = saved_adapter(tmp_path, "lora")
    (folder / "adapter.safetensors").rename(folder / "pytorch_adapter.bin")
    with pytest.raises(StoreError, match=r"no adapter.safetensors; it holds pickled weights \['pytorch_adapter.bin'\]"):
        export_peft(folder, tmp_path / "out")
    native, _ = peft_native(tmp_path)
    with pytest.raises(StoreError, match="this is a PEFT folder: use import_peft"):
        export_peft(native, tmp_path / "out")


def edited(folder, **changes):
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return folder


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"use_dora": True}, "use_dora=True is not supported: DoRA"),
        ({"use_rslora": True}, r"use_rslora=True is not supported: rank-stabilised scaling lora_alpha/sqrt\(r\)"),
        ({"bias": "all"}, "bias='all' is not supported: trained base-model biases"),
        ({"lora_bias": True}, "lora_bias=True is not supported"),
        ({"rank_pattern": {"query": 2}}, "rank_pattern=.* per-module ranks"),
        ({"modules_to_save": ["pooler"]}, "modules_to_save=.*pass drop_modules_to_save=True"),
        ({"init_lora_weights": "pissa"}, "init_lora_weights='pissa' is not supported: it changes the base model"),
        ({"some_new_option": 3}, "some_new_option=3 is not supported: an option this converter does not know"),
        ({"peft_type": "IA3"}, "peft_type 'IA3' is not supported; only PEFT LoRA converts"),
    ],
)
def test_import_refuses_unsupported_peft_options(tmp_path, changes, message):
    folder, _ = peft_native(tmp_path)
    with pytest.raises(ConfigError, match=message):
        import_peft(edited(folder, **changes), tmp_path / "back")
    assert not (tmp_path / "back").exists()


def test_import_refuses_modules_adapters_cannot_adapt(tmp_path):
    folder, _ = peft_native(tmp_path, target_modules=["dense"])  # also attention.output.dense
    with pytest.raises(ConfigError, match="LoRA on module 'attention.output.dense' .layer 0. is not supported"):
        import_peft(folder, tmp_path / "back")
    uneven, _ = peft_native(tmp_path / "2", target_modules=r".*layer\.0\.attention\.self\.query|.*layer\.1\..*value")
    with pytest.raises(ConfigError, match="the adapted modules differ between layers"):
        import_peft(uneven, tmp_path / "back")


def test_import_drops_modules_to_save_only_when_asked(tmp_path):
    folder, theirs = peft_native(tmp_path, modules_to_save=["pooler"])
    assert any(".pooler." in k for k in load_file(str(folder / "adapter_model.safetensors")))
    with pytest.raises(ConfigError, match="modules_to_save"):
        import_peft(folder, tmp_path / "back")
    back = import_peft(folder, tmp_path / "back", drop_modules_to_save=True)
    model = adapters_model()
    model.load_adapter(str(back), set_active=True, use_safetensors=True)
    assert torch.allclose(theirs, hidden(model), atol=1e-5)  # the pooler's copy is no hidden state
