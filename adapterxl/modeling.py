"""Backbone + adapters: one place that turns a mode into a model with the right parts trainable.

Every mode uses the same model class (``adapters.AutoAdapterModel`` with a flexible head), so the
full fine-tuning baseline and the adapter arms run identical model code:

- ``full``: a new head; every weight trains.
- ``adapter``: a new adapter + head on the frozen backbone.
- ``stack``: frozen intermediate adapters from the store, then a new target adapter + head on top
  (``Stack(intermediate..., target)``); only the target adapter and its head train.
- ``fuse`` (AdapterFusion) will be one more branch of :func:`setup_mode`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import ConfigError, StoreError
from .fixtures import TINY_BACKBONES, build_tiny_backbone
from .store import StoreEntry
from .tasks import Task


class _DropSpuriousWarning(logging.Filter):
    """``adapters`` warns "There are adapters available but none are activated" from inside
    ``train_adapter`` itself (its internal reset runs before the new setup is active): noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "none are activated for the forward pass" not in record.getMessage()


logging.getLogger("adapters.model_mixin").addFilter(_DropSpuriousWarning())


def resolve_model(name: str) -> str:
    """A loadable location for ``name``: built-in tiny backbones are built (once) and cached."""
    if name in TINY_BACKBONES:
        return str(build_tiny_backbone(name))
    return name


def model_identity(name: str) -> str:
    """The name used to match adapters to backbones: ``FacebookAI/xlm-roberta-large``,
    ``xlm-roberta-large`` and a local folder ``/models/xlm-roberta-large`` are the same model."""
    return Path(str(name).rstrip("/")).name


def load_backbone(name: str):
    """``(model, tokenizer)`` for a Hub id, local folder or tiny backbone name, with an
    ``adapters`` flexible-head model class. Failures are ConfigErrors that say what to do."""
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer

    location = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoAdapterModel.from_pretrained(location)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc) or "AdapterModel" in str(exc):
            raise ConfigError(
                f"model {name!r} has an architecture that `adapters` has no model class for: "
                "use an encoder it supports (XLM-R, BERT/mBERT, RoBERTa, DeBERTa, ...)"
            ) from None
        raise ConfigError(f"could not load model {name!r}: {exc}") from exc
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ConfigError(
            f"could not load model {name!r} ({str(exc).splitlines()[0]}). "
            + ("HF_HUB_OFFLINE=1 is set, so only local files are used: " if offline else "If the Hub is unreachable, ")
            + "download the model where it is reachable and pass its local folder as model:, or use "
            f"a built-in tiny backbone ({', '.join(TINY_BACKBONES)}) for offline smoke runs"
        ) from exc
    return model, tokenizer


def parse_adapter_config(text: str):
    """The ``adapters`` config object for a config string; unknown strings are ConfigErrors."""
    from adapters import AdapterConfig
    from adapters.configuration.adapter_config import ADAPTER_CONFIG_MAP

    try:
        return AdapterConfig.load(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"invalid adapter config {text!r} ({exc}); use an `adapters` config string such as "
            f"'seq_bn' or 'seq_bn[reduction_factor=8]'; known names: {sorted(ADAPTER_CONFIG_MAP)}"
        ) from None


def is_multiplicative(config) -> bool:
    """True for LoRA-family configs (LoRA, IA3, VeRA, DoRA, ...), also inside a union: in
    ``adapters`` a Stack of such adapters multiplies their updates instead of adding them."""
    data = config if isinstance(config, dict) else config.to_dict()
    if data.get("architecture") == "union":
        return any(is_multiplicative(c) for c in data.get("configs", []))
    return data.get("architecture") == "lora"


def check_stack(adapter: str, intermediates: list[StoreEntry]) -> None:
    """Refuse stacks that `adapters` would compute multiplicatively (any LoRA-family member)."""
    members = [("target adapter", adapter)]
    members += [(f"intermediate {e.name!r}", e.manifest.get("adapter_config")) for e in intermediates]
    for role, text in members:
        if text is not None and is_multiplicative(parse_adapter_config(text)):
            raise ConfigError(
                f"mode 'stack' cannot use the LoRA-family {role} ({text}): `adapters` composes a Stack "
                "of LoRA adapters multiplicatively, so a fresh target LoRA would hide the intermediate "
                "one. Use bottleneck adapters (adapter: seq_bn, the default) for stacking."
            )


def check_compatible(entry: StoreEntry, model_name: str) -> None:
    """An adapter only fits the backbone it was trained on; a mismatch names both."""
    if model_identity(entry.base_model) != model_identity(model_name):
        raise StoreError(
            f"adapter {entry.name!r} was trained on base model {entry.base_model!r}, but this run uses "
            f"{model_name!r}: use model: {entry.base_model} or an adapter trained on {model_name}"
        )
    if entry.kind != "adapter":
        raise StoreError(
            f"store entry {entry.name!r} is a saved {entry.kind} ({entry.manifest.get('setup')}), not a "
            "single adapter; stack mode builds on single intermediate adapters"
        )


def setup_mode(model, mode: str, name: str, task: Task, adapter: str, intermediates: list[StoreEntry]) -> None:
    """Add the run's parts to ``model`` and set exactly the parameters of ``mode`` trainable.

    ``name`` names the new adapter and head. Intermediate adapters are loaded without their heads
    and stay frozen.
    """
    if mode == "full":
        task.family.add_head(model, name, task)
        for param in model.parameters():
            param.requires_grad_(True)
    elif mode in ("adapter", "stack"):
        if mode == "stack":
            check_stack(adapter, intermediates)
            for entry in intermediates:
                model.load_adapter(str(entry.path), load_as=entry.name, with_head=False, use_safetensors=True)
        model.add_adapter(name, config=parse_adapter_config(adapter))
        task.family.add_head(model, name, task)
        model.train_adapter(name)  # freezes the backbone and every other adapter, activates `name`
        if mode == "stack":
            from adapters.composition import Stack

            model.active_adapters = Stack(*[e.name for e in intermediates], name)
    else:
        raise ConfigError(f"unknown mode {mode!r}")
    model.active_head = name


def load_stored(model, entry: StoreEntry) -> str:
    """Load a store entry (adapter or setup) into ``model``, activate it and its head; return the
    head name."""
    if entry.kind == "adapter":
        model.load_adapter(str(entry.path), load_as=entry.name, set_active=True, use_safetensors=True)
        model.active_head = entry.name
        return entry.name
    _, head = model.load_adapter_setup(str(entry.path), set_active=True, use_safetensors=True)
    return head


def entry_kind(mode: str) -> str:
    """What a run of ``mode`` puts in the store: one ``adapter``, or a ``setup`` (a stack)."""
    kinds = {"adapter": "adapter", "stack": "setup"}
    if mode not in kinds:
        raise ValueError(f"mode {mode!r} saves a full model, not a store entry")
    return kinds[mode]


def save_to_folder(model, mode: str, name: str, folder: Path) -> None:
    """Write the run's adapter part in the ``adapters`` library's own safetensors format: the
    adapter with its head, or (``stack``) the whole active setup with the head."""
    if entry_kind(mode) == "adapter":
        model.save_adapter(str(folder), name, with_head=True, use_safetensors=True)
    else:
        model.save_adapter_setup(str(folder), model.active_adapters, head_setup=name, use_safetensors=True)


def trainable_parameter_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
