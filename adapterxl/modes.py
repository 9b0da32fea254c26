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


def _stack(members, name, adapter, intermediates):
    from adapters.composition import Average, Stack

    from .modeling import stack_kind

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


def _check_stack(adapter, intermediates):
    from .modeling import check_stack

    check_stack(adapter, intermediates)


def _check_fuse(adapter, intermediates):
    from .modeling import check_fusable

    check_fusable(adapter, intermediates)


def _check_average(adapter, intermediates):
    """``adapters`` averages the outputs of bottleneck adapters (and the weights of LoRA ones): the
    intermediates must be bottleneck adapters, as for fusion, and the target may be any adapter."""
    from .modeling import parse_adapter_config

    for entry in intermediates:
        text = entry.manifest.get("adapter_config")
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
             compose=_stack, check=_check_stack),
        Mode("fuse", "the new target adapter alone, then AdapterFusion over the intermediates and it",
             intermediates="some", fusion=True, all_intermediates=True, grid_on="fusion", compose=_fuse,
             check=_check_fuse),
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
