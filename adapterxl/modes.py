"""Training modes: one object per mode, the one place that knows what a mode needs and does.

A :class:`Mode` says how many intermediate adapters it needs, whether it trains the whole model
(``full``) or new adapter weights on a frozen backbone, whether multi-task training may use it,
how it composes the intermediate adapters with the run's new adapter (an ``adapters``
composition block), what it checks before training, whether a fusion phase follows, how a grid
builds its targets and which baseline they are compared with. Everything else (config
validation, model set-up, the pipeline, grids, reports) asks the mode instead of comparing names.

Add a mode by adding one entry to :data:`MODES` below (``average`` is such an addition).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str  # one line: what trains
    full: bool = False  # every weight trains (transformers.Trainer; the run saves a full model folder)
    intermediates: str = "none"  # "none" | "one" | "some": store entries the run builds on
    multitask: bool = False  # a task list may use it (one shared adapter / encoder, one head per task)
    # The intermediate adapter itself continues training under the run's name (no new adapter).
    continues_intermediate: bool = False
    fusion: bool = False  # a second phase trains an AdapterFusion layer over the composition
    grid: bool = True  # a value of a grid's modes: axis (adapter is the grid's baseline, not an axis value)
    all_intermediates: bool = False  # a grid target uses every intermediate at once (else one job per intermediate)
    grid_on: str = ""  # with all_intermediates: what the job id says it is built on (on-fusion)
    # (members, name, adapter config, intermediate entries) -> the composition block; None: just ``name``
    compose: Callable | None = None
    check: Callable | None = None  # (adapter config, intermediate entries) -> None, raising ConfigError

    @property
    def kind(self) -> str:
        """``full`` or ``adapter``: which trainer and cost model apply, which kind of intermediate it
        builds on in a grid, and which no-intermediate baseline its gains are measured against."""
        return "full" if self.full else "adapter"

    def default_learning_rate(self) -> float:
        return 2e-5 if self.full else 1e-4

    def needs_text(self) -> str:
        return {"one": "exactly one", "some": "at least one"}.get(self.intermediates, "no")

    def composition(self, members: list[str], name: str, adapter: str, intermediates):
        """The core composition of the run's adapters (without a language adapter)."""
        if self.compose is None:
            return name
        return self.compose(members, name, adapter, intermediates)

    def preflight(self, adapter: str, intermediates) -> None:
        if self.check is not None:
            self.check(adapter, intermediates)

    def grid_label(self, intermediate: str) -> str:
        """What a grid job id says this target is built on."""
        return (self.grid_on or self.name) if self.all_intermediates else intermediate


# -- adapter configs and how they compose (the rules the modes' checks apply) ---------------------------


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


def _members(adapter: str, intermediates: list) -> list[tuple[str, str | None]]:
    return [("target adapter", adapter)] + [
        (f"intermediate {e.name!r}", e.manifest.adapter_config) for e in intermediates
    ]


def stack_kind(adapter: str, intermediates: list) -> str:
    """How a stack of ``intermediates`` + a new ``adapter`` composes: ``"stack"`` (bottleneck
    adapters run one after another, as in MAD-X) or ``"add"`` (all LoRA-family: their weight
    updates are summed, since `adapters`' Stack of LoRAs multiplies them). A mix in which two or
    more members hold LoRA parts can do neither and is a ConfigError."""
    members = [(role, text, parse_adapter_config(text)) for role, text in _members(adapter, intermediates) if text]
    lora = [(role, text) for role, text, cfg in members if is_multiplicative(cfg)]
    if len(lora) < 2:
        return "stack"  # a single LoRA member sees no other LoRA: nothing is multiplied
    pure = all(cfg.to_dict().get("architecture") == "lora" for _, _, cfg in members)
    if pure and len(lora) == len(members):
        return "add"
    names = ", ".join(f"{role} ({text})" for role, text in lora)
    raise ConfigError(
        f"cannot stack {names}: `adapters` composes a Stack of LoRA-family adapters multiplicatively (a fresh "
        "target LoRA would hide the intermediate one), and a mix with other adapter types cannot be added "
        "instead. Use only LoRA-family adapters (they are added) or only bottleneck adapters (seq_bn, stacked)."
    )


def check_stack(adapter: str, intermediates: list) -> None:
    """Refuse stacks that would multiply LoRA updates (see :func:`stack_kind`)."""
    stack_kind(adapter, intermediates)


def check_fusable(adapter: str, intermediates: list) -> None:
    """AdapterFusion needs bottleneck-type adapters (`adapters` cannot fuse LoRA, prefix tuning,
    ...) that all share one configuration."""
    configs = [(role, text, parse_adapter_config(text).to_dict()) for role, text in _members(adapter, intermediates)]
    for role, text, data in configs:
        if data.get("architecture") not in (None, "bottleneck"):
            raise ConfigError(
                f"mode 'fuse' cannot fuse the {role} ({text}): AdapterFusion works on bottleneck adapters "
                "(seq_bn, double_seq_bn, compacter) only"
            )
    reference = configs[0][2]
    differ = [f"{role} ({text})" for role, text, data in configs[1:] if data != reference]
    if differ:
        raise ConfigError(
            f"mode 'fuse' needs adapters with one configuration, but {', '.join(differ)} differ from the "
            f"target adapter ({adapter}): set adapter: to the intermediates' config, or fuse adapters trained "
            "with the same one"
        )


def _stack(members, name, adapter, intermediates):
    from adapters.composition import Average, Stack

    if stack_kind(adapter, intermediates) == "add":  # LoRA-family: the sum of the updates
        n = len(members) + 1
        return Average(*members, name, weights=[float(n)] * n, normalize_weights=False)
    return Stack(*members, name)


def _fuse(members, name, adapter, intermediates):
    from adapters.composition import Fuse

    return Fuse(*members, name)


def _average(members, name, adapter, intermediates):
    from adapters.composition import Average, Stack

    return Stack(Average(*members), name)


def _check_average(adapter, intermediates):
    """``adapters`` averages the outputs of bottleneck adapters (and the weights of LoRA ones): the
    intermediates must be bottleneck adapters, as for fusion, and the target may be any adapter."""
    for entry in intermediates:
        text = entry.manifest.adapter_config
        if text and parse_adapter_config(text).to_dict().get("architecture") not in (None, "bottleneck"):
            raise ConfigError(
                f"mode 'average' averages the outputs of bottleneck adapters, but intermediate {entry.name!r} is "
                f"{text}: average seq_bn-type intermediates, or use mode stack"
            )


MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("adapter", "a new adapter + head on the frozen backbone", multitask=True, grid=False),
        Mode("stack", "a new adapter + head on top of the frozen intermediate adapter(s)", intermediates="some",
             compose=_stack, check=check_stack),
        Mode("fuse", "the new target adapter alone, then AdapterFusion over the intermediates and it",
             intermediates="some", fusion=True, all_intermediates=True, grid_on="fusion", compose=_fuse,
             check=check_fusable),
        Mode("average", "a new adapter + head on the average of the frozen intermediate adapters' outputs",
             intermediates="some", all_intermediates=True, grid_on="average", compose=_average,
             check=_check_average),
        Mode("sequential", "the one intermediate adapter itself continues training, with a new head",
             intermediates="one", continues_intermediate=True),
        Mode("full", "every weight, with a new head (the paper's baseline)", full=True, multitask=True),
    )
}  # fmt: skip
MODE_NAMES = tuple(MODES)
GRID_MODES = tuple(name for name, mode in MODES.items() if mode.grid)
BASELINES = tuple(dict.fromkeys(mode.kind for mode in MODES.values()))  # no-intermediate runs: adapter, full


def get_mode(name: str) -> Mode:
    """The mode ``name``; an unknown name is a ConfigError listing the modes."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        import difflib

        close = difflib.get_close_matches(str(name), MODE_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown mode {name!r}{hint}; choose one of {list(MODE_NAMES)}") from None


__all__ = ["BASELINES", "GRID_MODES", "MODES", "MODE_NAMES", "Mode", "get_mode"]
