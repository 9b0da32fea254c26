"""adapterxl: cheap, reproducible intermediate-task transfer to many languages.

Intermediate tasks train stackable adapters on a frozen multilingual encoder; target tasks train
their own adapter stacked on an intermediate one (or fully fine-tune, as the baseline), and are
evaluated zero-shot in every language of the task.

The names below are imported on first use, so ``import adapterxl`` (and ``adapterxl --help``)
does not load torch until something needs it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "resolve_model": "backbones",
    "set_verbosity": "console",
    "DataConfig": "config",
    "FusionConfig": "config",
    "RunConfig": "config",
    "TrainingConfig": "config",
    "load_runs": "config",
    "load_task_declarations": "config",
    "AdapterXLError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "StoreError": "errors",
    "load_grid": "grid",
    "run_grid": "grid",
    "export_peft": "interop",
    "import_peft": "interop",
    "Manifest": "manifest",
    "RunResult": "pipeline",
    "evaluate_setup": "pipeline",
    "retrieve": "pipeline",
    "run": "pipeline",
    "run_file": "pipeline",
    "select": "selection",
    "AdapterStore": "store",
    "StoreEntry": "store",
    "BUILTIN": "tasks",
    "TASKS": "tasks",
    "Task": "tasks",
    "TaskRegistry": "tasks",
    "get_task": "tasks",
    "translate_task_data": "translate",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'adapterxl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
